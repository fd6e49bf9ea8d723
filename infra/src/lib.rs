//! Serverless entry points and deployment for cdplake.
//!
//! Lambda handlers (S3 object events, schedules, read-only queries) parse their event and call
//! the same job functions as the `cdplake` command line; they hold no logic of their own. The
//! deployment template and `s3/seaweedfs.sh` (a real S3-compatible server on 127.0.0.1 for tests
//! and local use) live beside this crate. The handlers themselves are `cdplake_app::lambda`; the binary is `src/main.rs`.
