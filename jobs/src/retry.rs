//! Rerunning a whole job step that lost a commit race with a concurrent run (two Lambda
//! invocations cleaning the same source): the step starts over on the new table versions, and
//! its application transactions make the rerun skip whatever the winner already did.

use std::future::Future;
use std::time::Duration;

use crate::error::{JobError, Result};

impl JobError {
    /// True when a commit lost a race and the step may be rerun.
    pub fn is_commit_conflict(&self) -> bool {
        match self {
            JobError::Engine(e) => e.is_commit_conflict(),
            JobError::Catalog(cdplake_catalog::CatalogError::Engine(e)) => e.is_commit_conflict(),
            _ => false,
        }
    }
}

/// Run `step` until it succeeds, fails otherwise, or has lost `attempts` races.
pub async fn retry_step<T, F, Fut>(attempts: usize, mut step: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match step().await {
            Err(e) if e.is_commit_conflict() && attempt < attempts => {
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 100;
                tracing::info!(attempt, error = %e, "commit conflict, rerunning the step");
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64 + jitter)).await;
            }
            other => return other,
        }
    }
}
