//! Cross-crate integration tests: one binary (each test binary relinks datafusion).
//!
//! S3 tests run against the real SeaweedFS server that `infra/s3/seaweedfs.sh` installs and
//! starts on 127.0.0.1; run the whole suite with `bash tests/run.sh`.
#![recursion_limit = "256"]

mod support;

mod athena;
mod audiences;
mod audit;
mod catalog;
mod cli;
mod concurrency;
mod consumption;
mod engine_suite;
mod erasure;
mod golden;
mod house;
mod identity;
mod lambda;
mod maintenance;
mod own_data;
mod probe;
mod profiles;
mod python_reader;
mod zones_pipeline;
