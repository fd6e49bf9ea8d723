//! Keeping a table small and its log short: compaction (optionally Z-ordered), vacuum of files
//! no version within the retention needs (change-data files included), a checkpoint and the
//! cleanup of log files older than it, and the files and bytes on storage before and after.
//!
//! Every step is a Delta operation: compaction commits with `dataChange = false` and conflicts
//! (then is rerun on the new version) only with a writer that removed the same files, so a job
//! running beside maintenance never loses a write. Vacuum deletes only files no version inside
//! the retention references, and untracked files only when older than the retention (a
//! concurrent writer's not-yet-committed file is younger).

use std::collections::HashMap;
use std::num::NonZeroU64;

use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use futures::TryStreamExt;
use object_store::ObjectStore;

use crate::error::{EngineError, Result};
use crate::lake::{COMMIT_RETRIES, Lake};
use crate::naming::TableId;
use crate::retry::retry_on_conflict;

/// What to do to one table.
#[derive(Debug, Clone)]
pub struct MaintainOptions {
    /// Compaction's target file size in bytes.
    pub target_size: u64,
    /// Z-order by these columns (rows looked up by them land in few files); empty: compact.
    pub zorder: Vec<String>,
    /// Keep the files and log entries versions of the last `history` need (time travel).
    pub history: chrono::Duration,
    /// Table properties the table must have (set in one commit when they differ).
    pub properties: HashMap<String, String>,
    /// Untracked files and log entries younger than this stay whatever the history
    /// ([`ORPHAN_MIN_AGE`] unless the caller knows no job runs beside it).
    pub min_age: chrono::Duration,
    /// Report what would be done; change nothing.
    pub dry_run: bool,
    /// The wall-clock instant file ages are measured against (storage times are wall clock).
    pub now: DateTime<Utc>,
}

impl MaintainOptions {
    pub fn new(history: chrono::Duration, now: DateTime<Utc>) -> Self {
        Self {
            target_size: 128 * 1024 * 1024,
            zorder: Vec::new(),
            history,
            properties: HashMap::new(),
            min_age: ORPHAN_MIN_AGE,
            dry_run: false,
            now,
        }
    }
}

/// A table's objects on storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Footprint {
    /// Data files on storage (Parquet, change-data files included), referenced or not.
    pub files: u64,
    pub bytes: u64,
    /// Files the current version reads.
    pub live_files: u64,
    pub live_bytes: u64,
    /// Commit, checkpoint and other files under `_delta_log/`.
    pub log_files: u64,
    pub log_bytes: u64,
}

/// What maintenance did to one table.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableMaintenance {
    pub table: String,
    pub before: Footprint,
    pub after: Footprint,
    /// Live files compaction would merge (dry run) or merged.
    pub files_compacted: u64,
    /// Files compaction wrote.
    pub files_written: u64,
    /// Files vacuum deleted (or would).
    pub files_vacuumed: u64,
    /// Log files deleted after the checkpoint.
    pub logs_removed: u64,
    /// The version of the checkpoint written.
    pub checkpoint_version: Option<u64>,
    /// Properties set on the table.
    pub properties_set: Vec<String>,
    pub dry_run: bool,
}

const RERUNS: usize = 10;

/// The youngest an untracked file (change data, an orphan) or a log entry must be to be
/// deleted by default: a writer or reader that listed it a moment before still reads it.
pub const ORPHAN_MIN_AGE: chrono::Duration = chrono::Duration::hours(1);

impl Lake {
    /// The table's objects on storage now.
    pub async fn footprint(&self, id: &TableId) -> Result<Footprint> {
        let table = self.table(id).await?;
        let store = table.log_store().object_store(None);
        let objects: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.map_err(|e| {
            EngineError::Store { context: format!("table {id}: listing its files"), source: Box::new(e) }
        })?;
        let mut footprint = Footprint::default();
        for object in objects {
            let path = object.location.as_ref();
            if path.starts_with("_delta_log/") {
                footprint.log_files += 1;
                footprint.log_bytes += object.size;
            } else if path.ends_with(".parquet") {
                footprint.files += 1;
                footprint.bytes += object.size;
            }
        }
        let snapshot = table.snapshot().map_err(|e| EngineError::delta(id, "footprint", e))?;
        for file in snapshot.log_data().iter() {
            footprint.live_files += 1;
            footprint.live_bytes += file.size() as u64;
        }
        Ok(footprint)
    }

    /// Compact, vacuum, checkpoint and clean the log of one table (see the module docs).
    pub async fn maintain_table(&self, id: &TableId, options: &MaintainOptions) -> Result<TableMaintenance> {
        if !options.dry_run {
            self.ensure_writable()?;
        }
        let mut report = TableMaintenance {
            table: id.to_string(),
            before: self.footprint(id).await?,
            dry_run: options.dry_run,
            ..Default::default()
        };
        let table = self.table(id).await?;
        report.properties_set = missing_properties(&table, id, &options.properties)?;
        let small = small_files(&table, id, options.target_size)?;
        report.files_compacted = small;
        if options.dry_run {
            let (_, metrics) = self.vacuum_table(table, id, options, true).await?;
            report.files_vacuumed = metrics;
            report.after = report.before;
            return Ok(report);
        }
        if !report.properties_set.is_empty() {
            let set: HashMap<String, String> = report
                .properties_set
                .iter()
                .filter_map(|k| options.properties.get(k).map(|v| (k.clone(), v.clone())))
                .collect();
            retry_on_conflict(RERUNS, || {
                let set = set.clone();
                async move {
                    self.table(id)
                        .await?
                        .set_tbl_properties()
                        .with_properties(set)
                        .with_commit_properties(CommitProperties::default().with_max_retries(COMMIT_RETRIES))
                        .await
                        .map_err(|e| EngineError::delta(id, "set properties", e))
                }
            })
            .await?;
        }
        let (compacted, written) = self.compact(id, options).await?;
        report.files_compacted = compacted;
        report.files_written = written;
        let table = self.table(id).await?;
        let (table, vacuumed) = self.vacuum_table(table, id, options, false).await?;
        report.files_vacuumed = vacuumed;
        // Log objects age by the storage's clock, and this run's own commits are younger than
        // `now`: the cutoff counts from the later of the two clocks. Commits younger than
        // `min_age` stay whatever the history: a writer or reader that listed the log just
        // before this checkpoint still reads them.
        let log_cutoff = options.now.max(Utc::now()) - options.history.max(options.min_age);
        let (version, removed) = self.checkpoint_and_clean(&table, id, log_cutoff).await?;
        report.checkpoint_version = Some(version);
        report.logs_removed = removed;
        report.after = self.footprint(id).await?;
        Ok(report)
    }

    /// Compaction (Z-ordered when asked), rerun when it conflicts; (files removed, files added).
    async fn compact(&self, id: &TableId, options: &MaintainOptions) -> Result<(u64, u64)> {
        let target = NonZeroU64::new(options.target_size.max(1)).unwrap_or(NonZeroU64::MIN);
        retry_on_conflict(RERUNS, || async move {
            let table = self.table(id).await?;
            // A partition of one file is not rewritten, Z-ordered or not (it would be every run).
            if small_files(&table, id, options.target_size)? == 0 {
                return Ok((0, 0));
            }
            let kind = if options.zorder.is_empty() {
                OptimizeType::Compact
            } else {
                OptimizeType::ZOrder(options.zorder.clone())
            };
            let (_, metrics) = table
                .optimize()
                .with_session_state(self.session_state())
                .with_type(kind)
                .with_target_size(target)
                .with_commit_properties(CommitProperties::default().with_max_retries(COMMIT_RETRIES))
                .await
                .map_err(|e| EngineError::delta(id, "optimize", e))?;
            Ok((metrics.num_files_removed, metrics.num_files_added))
        })
        .await
    }

    /// Vacuum: files replaced more than `history` ago (lite mode), then untracked files (change
    /// data, orphans) older than `history` but never younger than `min_age`, which
    /// protects a concurrent writer's not-yet-committed files.
    async fn vacuum_table(
        &self,
        table: DeltaTable,
        id: &TableId,
        options: &MaintainOptions,
        dry_run: bool,
    ) -> Result<(DeltaTable, u64)> {
        let clock = std::sync::Arc::new(FixedClock(options.now.timestamp_millis()));
        let mut deleted = 0;
        let mut table = table;
        for (mode, retention) in
            [(VacuumMode::Lite, options.history), (VacuumMode::Full, options.history.max(options.min_age))]
        {
            let (vacuumed, metrics) = table
                .vacuum()
                .with_mode(mode)
                .with_retention_period(retention)
                .with_enforce_retention_duration(false)
                .with_dry_run(dry_run)
                .with_clock(clock.clone())
                .with_commit_properties(CommitProperties::default().with_max_retries(COMMIT_RETRIES))
                .await
                .map_err(|e| EngineError::delta(id, "vacuum", e))?;
            deleted += metrics.files_deleted.len() as u64;
            table = vacuumed;
        }
        Ok((table, deleted))
    }

    /// Write a checkpoint at the current version and delete log files before it written before
    /// `cutoff`; (checkpoint version, log files deleted).
    pub async fn checkpoint_and_clean(
        &self,
        table: &DeltaTable,
        id: &TableId,
        cutoff: DateTime<Utc>,
    ) -> Result<(u64, u64)> {
        let mut table = table.clone();
        table.update_state().await.map_err(|e| EngineError::delta(id, "checkpoint", e))?;
        let version = table.version().unwrap_or(0) as u64;
        deltalake::checkpoints::create_checkpoint(&table, None)
            .await
            .map_err(|e| EngineError::delta(id, "checkpoint", e))?;
        let removed = deltalake::checkpoints::cleanup_expired_logs_for(
            version,
            table.log_store().as_ref(),
            cutoff.timestamp_millis(),
            None,
        )
        .await
        .map_err(|e| EngineError::delta(id, "log cleanup", e))?;
        Ok((version, removed as u64))
    }
}

/// Properties of `wanted` the table lacks or has with another value.
fn missing_properties(table: &DeltaTable, id: &TableId, wanted: &HashMap<String, String>) -> Result<Vec<String>> {
    let snapshot = table.snapshot().map_err(|e| EngineError::delta(id, "read properties", e))?;
    let configuration = snapshot.metadata().configuration();
    let mut missing: Vec<String> =
        wanted.iter().filter(|(k, v)| configuration.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    missing.sort();
    Ok(missing)
}

/// Live files smaller than `target` in partitions holding more than one of them: what
/// compaction would merge.
fn small_files(table: &DeltaTable, id: &TableId, target: u64) -> Result<u64> {
    let snapshot = table.snapshot().map_err(|e| EngineError::delta(id, "plan compaction", e))?;
    let mut per_partition: HashMap<String, u64> = HashMap::new();
    for file in snapshot.log_data().iter() {
        if (file.size() as u64) < target {
            let key = format!("{:?}", file.partition_values_map());
            *per_partition.entry(key).or_default() += 1;
        }
    }
    Ok(per_partition.values().filter(|n| **n > 1).sum())
}

/// A clock that reads `now` as given to the job.
#[derive(Debug)]
struct FixedClock(i64);

impl deltalake::operations::vacuum::Clock for FixedClock {
    fn current_timestamp_millis(&self) -> i64 {
        self.0
    }
}
