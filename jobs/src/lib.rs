//! cdplake's jobs: the pipeline steps as plain async functions, each returning a report, and
//! the `cdplake` command line that calls them. Lambda handlers (in `infra/`) call the same
//! functions with the same parameters.

pub mod audience;
pub mod audit;
pub mod batches;
pub mod check;
pub mod clean;
pub mod config;
pub mod dag;
pub mod demo;
pub mod erase;
pub mod error;
pub mod generate;
pub mod identity;
pub mod ingest;
pub mod init;
pub mod inspect;
pub mod lambda;
pub mod lifecycle;
pub mod maintain;
mod normalize_for_truth;
pub mod output;
pub mod privacy;
pub mod profiles;
pub mod quality;
pub mod query;
pub mod report;
pub mod retry;
pub mod segments;
pub mod serve;
pub mod stopwatch;
pub mod sync;
pub mod workspace;

pub use config::Config;
pub use error::{JobError, Result};
pub use workspace::Workspace;
