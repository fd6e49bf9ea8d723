//! The conditional-write probe.
//!
//! delta-rs 1.x commits a version by writing `_delta_log/N.json` with `If-None-Match: *`: of
//! two writers racing for version N exactly one may win. A server that ignores the header
//! lets both "win" and one commit silently vanishes. Before the first write to an S3 lake we
//! therefore write a probe object twice with `If-None-Match: *`; the second write must be
//! refused. A sequential check does not catch a server whose check-then-write is not atomic
//! (s3s-fs, measured), so the probe then races [`RACERS`] creates of one fresh object: exactly
//! one may succeed. The verdict is cached per endpoint and bucket for the life of the process.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tokio::sync::Mutex;

/// How many concurrent creates race for one probe object.
pub const RACERS: usize = 8;

/// May this process write to the lake?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteAccess {
    Allowed,
    /// Writes are refused, and why.
    Refused {
        reason: String,
    },
}

fn verdicts() -> &'static Mutex<HashMap<String, WriteAccess>> {
    static VERDICTS: OnceLock<Mutex<HashMap<String, WriteAccess>>> = OnceLock::new();
    VERDICTS.get_or_init(Default::default)
}

/// The verdict for `endpoint`, probing `store` (rooted at the lake) the first time.
///
/// A conclusive verdict is cached; a probe that could not run (network, permissions) is
/// not, so the next open tries again.
pub async fn check_conditional_writes(endpoint: &str, store: Arc<dyn ObjectStore>) -> WriteAccess {
    // Held across the probe so that concurrent opens of one endpoint probe it once.
    let mut verdicts = verdicts().lock().await;
    if let Some(verdict) = verdicts.get(endpoint) {
        return verdict.clone();
    }
    let (verdict, conclusive) = probe(store.as_ref()).await;
    match &verdict {
        WriteAccess::Allowed => tracing::debug!(endpoint, "conditional writes honoured"),
        WriteAccess::Refused { reason } => tracing::warn!(endpoint, reason, "writes refused"),
    }
    if conclusive {
        verdicts.insert(endpoint.to_string(), verdict.clone());
    }
    verdict
}

async fn probe(store: &dyn ObjectStore) -> (WriteAccess, bool) {
    let path = Path::from(format!("_cdplake/probe/{}", uuid::Uuid::new_v4()));
    let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
    let refused = |reason: String| WriteAccess::Refused { reason };

    let first = store.put_opts(&path, PutPayload::from_static(b"first"), create()).await;
    let outcome = match first {
        Err(object_store::Error::NotImplemented { .. }) | Err(object_store::Error::NotSupported { .. }) => {
            (refused("the object store does not support conditional writes (If-None-Match: *)".into()), true)
        }
        Err(e) => (refused(format!("the conditional-write probe could not write {path}: {e}")), false),
        Ok(_) => match store.put_opts(&path, PutPayload::from_static(b"second"), create()).await {
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
                (WriteAccess::Allowed, true)
            }
            Ok(_) => (
                refused(
                    "the server ignores If-None-Match: * (a second create of the probe object \
                     succeeded instead of failing with 412)"
                        .into(),
                ),
                true,
            ),
            Err(e) => (refused(format!("the conditional-write probe failed on its second write: {e}")), false),
        },
    };
    remove_probe(store, &path).await;
    match outcome {
        (WriteAccess::Allowed, _) => race(store).await,
        refused => refused,
    }
}

/// Races [`RACERS`] creates of one fresh object; an atomic server lets exactly one win.
async fn race(store: &dyn ObjectStore) -> (WriteAccess, bool) {
    let path = Path::from(format!("_cdplake/probe/race-{}", uuid::Uuid::new_v4()));
    let attempts = (0..RACERS).map(|i| {
        let options = PutOptions { mode: PutMode::Create, ..Default::default() };
        store.put_opts(&path, PutPayload::from(format!("racer {i}").into_bytes()), options)
    });
    let results = futures::future::join_all(attempts).await;
    remove_probe(store, &path).await;
    let mut winners = 0;
    for result in results {
        match result {
            Ok(_) => winners += 1,
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {}
            Err(e) => {
                let reason = format!("the conditional-write race probe failed: {e}");
                return (WriteAccess::Refused { reason }, false);
            }
        }
    }
    if winners == 1 {
        (WriteAccess::Allowed, true)
    } else {
        let reason = format!(
            "the server's If-None-Match: * check is not atomic ({winners} of {RACERS} racing creates \
             of one object succeeded; exactly one may)"
        );
        (WriteAccess::Refused { reason }, true)
    }
}

async fn remove_probe(store: &dyn ObjectStore, path: &Path) {
    if let Err(e) = store.delete(path).await {
        tracing::debug!(%path, error = %e, "could not remove the probe object");
    }
}
