//! The core every cdplake job builds on: opening the workspace (lake, catalog, configuration),
//! the error type, the audit trail and its [`audit::JobReport`] trait, watermarks of upstream
//! batches, retries of lost commit races, and Arrow helpers. It knows no job: each job's crate
//! depends on it, never the other way round.

pub mod audit;
pub mod batches;
pub mod columns;
pub mod config;
pub mod error;
pub mod output;
pub mod query;
pub mod retry;
pub mod stopwatch;
pub mod workspace;

pub use config::Config;
pub use error::{JobError, Result};
pub use workspace::Workspace;
