//! Rerunning an operation that lost a commit race.
//!
//! delta-rs retries a commit by itself when the winner's changes cannot conflict (two
//! appends). When they can (two MERGEs touching the same files) the commit fails with
//! "a concurrent transaction added new data" and the whole operation must be rerun on the
//! new version of the table: that is what this does.

use std::future::Future;
use std::time::Duration;

use crate::error::{EngineError, Result};

/// Run `op` until it succeeds, fails with something other than a commit conflict, or has
/// lost `attempts` races. Backs off a little (with jitter) between attempts.
pub async fn retry_on_conflict<T, F, Fut>(attempts: usize, op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    retry_when(attempts, EngineError::is_commit_conflict, op).await
}

/// [`retry_on_conflict`] for any error type that can tell a lost commit race.
pub async fn retry_when<T, E, F, Fut>(attempts: usize, is_conflict: impl Fn(&E) -> bool, mut op: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if is_conflict(&e) && attempt < attempts => {
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 50;
                let wait = Duration::from_millis(20 * attempt as u64 + jitter);
                tracing::info!(attempt, error = %e, "commit conflict, rerunning");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}
