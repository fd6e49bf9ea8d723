//! Rerunning a whole job step that lost a commit race with a concurrent run (two Lambda
//! invocations cleaning the same source): the step starts over on the new table versions, and
//! its application transactions make the rerun skip whatever the winner already did.

use std::future::Future;

use crate::error::{JobError, Result};

impl JobError {
    /// True when a commit lost a race, or a concurrent run published newer input first, and the
    /// step may be rerun.
    pub fn is_commit_conflict(&self) -> bool {
        match self {
            JobError::Superseded { .. } => true,
            JobError::Engine(e) => e.is_commit_conflict(),
            JobError::Step { source, .. } => source.is_commit_conflict(),
            JobError::Catalog(cdplake_catalog::CatalogError::Engine(e)) => e.is_commit_conflict(),
            _ => false,
        }
    }
}

/// Run `step` until it succeeds, fails otherwise, or has lost `attempts` races.
pub async fn retry_step<T, F, Fut>(attempts: usize, step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    cdplake_engine::retry::retry_when(attempts, JobError::is_commit_conflict, step).await
}
