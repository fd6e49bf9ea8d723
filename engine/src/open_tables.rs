//! The tables a lake has opened, kept so that the next open of one reads only the commits made
//! since. A full open replays the log (the last checkpoint and every commit after it: a dozen
//! requests or more on S3); an update checks the kept version's commit file and the log's last
//! checkpoint, lists the log after the kept version and reads the new commits: four requests
//! when nothing changed. Delta Spark keeps its `DeltaLog`s per table path the same way and
//! `update()`s them before every use.
//!
//! An open through the cache returns the latest version, whoever committed it. The table is
//! loaded afresh instead when
//! - the kept version's commit file is gone or is another file than the one loaded (another
//!   process dropped the table, or dropped and created it again up to that version), before or
//!   after the update;
//! - the log's last checkpoint is not the one seen at the load: log cleanup may then delete the
//!   checkpoint and commits the kept state was replayed from (a fresh load starts from the
//!   newest checkpoint, which cleanup keeps), and replays of the kept state would fail.

use std::collections::HashMap;
use std::sync::Mutex;

use deltalake::DeltaTable;
use object_store::ObjectStoreExt;
use object_store::path::Path;

/// A table as last opened, with what its newest commit file and the log's last checkpoint
/// looked like then.
#[derive(Clone)]
struct Kept {
    table: DeltaTable,
    commit: CommitFile,
    last_checkpoint: Option<u64>,
}

/// What identifies one commit file: a file written again at the same path differs in one of these.
#[derive(Clone, PartialEq, Eq)]
struct CommitFile {
    e_tag: Option<String>,
    last_modified: chrono::DateTime<chrono::Utc>,
    size: u64,
}

/// Opened tables by their path under the lake root.
#[derive(Default)]
pub(crate) struct OpenTables {
    tables: Mutex<HashMap<String, Kept>>,
}

impl OpenTables {
    /// The kept table updated to the latest version; None when nothing is kept or the kept
    /// table cannot be updated safely (then it is forgotten and the caller loads the table).
    pub(crate) async fn updated(&self, path: &str) -> Option<DeltaTable> {
        let kept = self.lock().get(path).cloned()?;
        match Self::update(kept).await {
            Some(kept) => {
                let table = kept.table.clone();
                self.keep(path, kept);
                Some(table)
            }
            None => {
                self.forget(path);
                None
            }
        }
    }

    async fn update(kept: Kept) -> Option<Kept> {
        let version = kept.table.version()?;
        if commit_file(&kept.table, version).await? != kept.commit
            || last_checkpoint(&kept.table).await? != kept.last_checkpoint
        {
            return None;
        }
        let mut table = kept.table.clone();
        if let Err(e) = table.update_state().await {
            tracing::debug!(error = %e, "a kept table could not be updated: loading it again");
            return None;
        }
        let newer = table.version()?;
        if newer == version {
            return Some(kept);
        }
        // The commits read must follow the kept one: that commit file is still the same.
        if commit_file(&table, version).await? != kept.commit {
            return None;
        }
        Some(Kept { commit: commit_file(&table, newer).await?, table, last_checkpoint: kept.last_checkpoint })
    }

    /// Keep a table just loaded, unless its newest commit file is no longer the one the load
    /// listed (the table was dropped and created again meanwhile).
    pub(crate) async fn remember(&self, path: &str, table: &DeltaTable) {
        let Some(version) = table.version() else { return };
        let (Some(commit), Some(last_checkpoint)) = (commit_file(table, version).await, last_checkpoint(table).await)
        else {
            return;
        };
        let listed = table.snapshot().ok().and_then(|s| s.version_timestamp(version));
        // HTTP dates (HEAD) have whole seconds; listings have milliseconds.
        if listed.is_some_and(|millis| millis.div_euclid(1000) != commit.last_modified.timestamp()) {
            return;
        }
        self.keep(path, Kept { table: table.clone(), commit, last_checkpoint });
    }

    /// Keep `kept` unless a newer version of the table is kept already.
    fn keep(&self, path: &str, kept: Kept) {
        let mut tables = self.lock();
        if tables.get(path).is_none_or(|k| k.table.version() <= kept.table.version()) {
            tables.insert(path.to_string(), kept);
        }
    }

    /// Drop what is known of the table (its files were deleted).
    pub(crate) fn forget(&self, path: &str) {
        self.lock().remove(path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The version `_delta_log/_last_checkpoint` names: Some(None) when there is none, None when it
/// cannot be read.
async fn last_checkpoint(table: &DeltaTable) -> Option<Option<u64>> {
    let store = table.log_store().object_store(None);
    match store.get(&Path::from("_delta_log/_last_checkpoint")).await {
        Ok(found) => {
            let bytes = found.bytes().await.ok()?;
            let hint: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            Some(Some(hint["version"].as_u64()?))
        }
        Err(object_store::Error::NotFound { .. }) => Some(None),
        Err(_) => None,
    }
}

/// The commit file of `version` as storage describes it; None when it is not there.
async fn commit_file(table: &DeltaTable, version: u64) -> Option<CommitFile> {
    let store = table.log_store().object_store(None);
    let meta = store.head(&Path::from(format!("_delta_log/{version:020}.json"))).await.ok()?;
    Some(CommitFile { e_tag: meta.e_tag, last_modified: meta.last_modified, size: meta.size })
}

impl std::fmt::Debug for OpenTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTables").field("tables", &self.lock().len()).finish()
    }
}
