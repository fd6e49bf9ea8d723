//! The application: what runs the jobs. The `cdplake` command line (`main.rs`), the pipeline
//! DAG that the demo, the schedule and the S3 handler share, the Lambda handlers that
//! `infra/`'s binary serves, and the benchmark helpers. No job logic lives here: every step is a
//! call into a job crate.

pub mod bench;
pub mod dag;
pub mod demo;
pub mod init;
pub mod lambda;
