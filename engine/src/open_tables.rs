//! The tables a lake has opened, kept so that the next open of one reads only the commits made
//! since. A full open replays the log (the last checkpoint and every commit after it: a dozen
//! requests or more on S3); an update lists the log from the kept version on and, when there are
//! new commits, reads just those: one request when nothing changed. Delta Spark keeps its
//! `DeltaLog`s per table path the same way and `update()`s them before every use.
//!
//! An open through the cache returns the latest version the listing showed, whoever committed
//! it. The table is loaded afresh instead when
//! - the kept version's commit file is gone or is another file than the one loaded (another
//!   process dropped the table, or dropped and created it again up to that version);
//! - the log's `_last_checkpoint` is another object than at the load: log cleanup may then
//!   delete the checkpoint and commits the kept state was replayed from (a fresh load starts
//!   from the newest checkpoint, which cleanup keeps), and replays of the kept state would fail;
//! - the commits the update read are not the ones the listing showed (the table changed between
//!   the two listings).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use deltalake::DeltaTable;
use futures::TryStreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;

/// A table as last opened, with what its newest commit file and the log's last checkpoint
/// looked like then.
#[derive(Clone)]
struct Kept {
    table: DeltaTable,
    commit: Stamp,
    last_checkpoint: Option<Stamp>,
}

/// What identifies one object as a listing shows it: an object written again at the same path
/// differs in one of these. Always taken from listings, so that stamps compare with the times of
/// the commits a load listed (a HEAD's time has whole seconds; a listing's has milliseconds on
/// SeaweedFS and MinIO, whole seconds on AWS, where the e-tag still tells two files apart).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    e_tag: Option<String>,
    last_modified: chrono::DateTime<chrono::Utc>,
    size: u64,
}

impl From<&ObjectMeta> for Stamp {
    fn from(meta: &ObjectMeta) -> Self {
        Self { e_tag: meta.e_tag.clone(), last_modified: meta.last_modified, size: meta.size }
    }
}

/// The log from one version on, as one listing shows it.
struct LogTail {
    commits: BTreeMap<u64, Stamp>,
    last_checkpoint: Option<Stamp>,
}

impl LogTail {
    /// Lists `_delta_log/` from the files of `version` on: its commit, the newer ones, and
    /// `_last_checkpoint` (`_` sorts after every digit). None when the listing fails.
    async fn list(table: &DeltaTable, version: u64) -> Option<Self> {
        let store = table.log_store().object_store(None);
        // The bare version number sorts before every file of that version.
        let from = Path::from(format!("_delta_log/{version:020}"));
        let listed: Vec<ObjectMeta> =
            store.list_with_offset(Some(&Path::from("_delta_log")), &from).try_collect().await.ok()?;
        let mut tail = Self { commits: BTreeMap::new(), last_checkpoint: None };
        for meta in &listed {
            let mut parts = meta.location.parts();
            let (Some(_log), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
                continue; // staged commits and sidecars live in subdirectories
            };
            let name = name.as_ref();
            if name == "_last_checkpoint" {
                tail.last_checkpoint = Some(meta.into());
            } else if let Some(commit) = commit_version(name) {
                tail.commits.insert(commit, meta.into());
            }
        }
        Some(tail)
    }

    fn newest(&self) -> Option<u64> {
        self.commits.keys().next_back().copied()
    }

    /// Whether the commits of `table` after `kept` are the files this listing showed: a load
    /// lists them too, and records each commit file's time. (A checkpoint the update started
    /// from leaves the commits below it out of the snapshot: then this is false, and the table
    /// is loaded afresh, which is rare: a new checkpoint also moves `_last_checkpoint`.)
    fn shows_the_commits_of(&self, table: &DeltaTable, kept: u64) -> bool {
        let Ok(snapshot) = table.snapshot() else { return false };
        self.commits.range(kept + 1..).all(|(version, stamp)| {
            snapshot.version_timestamp(*version) == Some(stamp.last_modified.timestamp_millis())
        })
    }
}

/// The version of a commit file's name (`00000000000000000012.json`).
fn commit_version(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
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
        let kept_version = kept.table.version();
        match Self::update(kept).await {
            Some(kept) => {
                let table = kept.table.clone();
                self.keep(path, kept);
                Some(table)
            }
            None => {
                self.forget_version(path, kept_version);
                None
            }
        }
    }

    async fn update(kept: Kept) -> Option<Kept> {
        let version = kept.table.version()?;
        let tail = LogTail::list(&kept.table, version).await?;
        if tail.commits.get(&version) != Some(&kept.commit) || tail.last_checkpoint != kept.last_checkpoint {
            return None;
        }
        let newest = tail.newest()?;
        if newest == version {
            return Some(kept);
        }
        let mut table = kept.table;
        if let Err(e) = table.update_incremental(Some(newest)).await {
            tracing::debug!(error = %e, "a kept table could not be updated: loading it again");
            return None;
        }
        if table.version() != Some(newest) || !tail.shows_the_commits_of(&table, version) {
            return None;
        }
        Some(Kept { commit: tail.commits[&newest].clone(), table, last_checkpoint: tail.last_checkpoint })
    }

    /// Keep a table just loaded, unless its newest commit file is no longer the one the load
    /// listed (the table was dropped and created again meanwhile). A load at a checkpoint's
    /// version holds no commit times to compare; it is kept on the listing's word.
    pub(crate) async fn remember(&self, path: &str, table: &DeltaTable) {
        let Some(version) = table.version() else { return };
        let Some(mut tail) = LogTail::list(table, version).await else { return };
        let Some(commit) = tail.commits.remove(&version) else { return };
        let loaded = table.snapshot().ok().and_then(|s| s.version_timestamp(version));
        if loaded.is_some_and(|millis| millis != commit.last_modified.timestamp_millis()) {
            return;
        }
        self.keep(path, Kept { table: table.clone(), commit, last_checkpoint: tail.last_checkpoint });
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

    /// Drop the kept table if it is still the version an update gave up on, not a newer one
    /// another task kept meanwhile.
    fn forget_version(&self, path: &str, version: Option<u64>) {
        let mut tables = self.lock();
        if tables.get(path).is_some_and(|k| k.table.version() == version) {
            tables.remove(path);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        // A panic elsewhere while holding the lock leaves a map that is still consistent.
        self.tables.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for OpenTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTables").field("tables", &self.lock().len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::commit_version;

    #[test]
    fn only_commit_files_name_a_version() {
        assert_eq!(commit_version("00000000000000000012.json"), Some(12));
        assert_eq!(commit_version("00000000000000000012.crc"), None);
        assert_eq!(commit_version("00000000000000000012.checkpoint.parquet"), None);
        assert_eq!(commit_version("00000000000000000012.3a0d65cd-4056-49b8-937b-95f9e3ee90e5.json"), None);
        assert_eq!(commit_version("_last_checkpoint"), None);
    }
}
