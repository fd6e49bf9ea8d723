//! `cdplake maintain`: keep every table small and every log short, enforce row retention, and
//! generate (and apply) the archival rules of each zone.
//!
//! Per table ([`cdplake_engine::maintenance`]): compaction to `[maintenance] target_file_mb`,
//! Z-order where jobs look rows up (`curated.id_mapping` by id_value, `curated.customer_profiles`
//! by one_id), vacuum with the history its zone keeps (`[retention]`: raw 30 days, clean and
//! curated 7, the catalog's and audit's 7), change-data files included, a checkpoint and the
//! cleanup of older log files. The zone's history is also set as the table's
//! `delta.deletedFileRetentionDuration` / `delta.logRetentionDuration`, so any Delta engine that
//! vacuums honours it, and PII columns (the catalog's) are kept out of Delta statistics with
//! `delta.dataSkippingStatsColumns` (a raw table keeps statistics on its lineage only).
//!
//! Row retention: a table whose catalog entry has `retention_days` and an `_ingest_date` column
//! (the raw zone, from `[retention] raw_days`) loses rows ingested before `now - retention_days`
//! (one audit row per table); the files go with the next vacuum past the zone's history.
//!
//! Archival: S3 lifecycle rules from `[retention]`, in [`crate::lifecycle`].

use std::collections::BTreeMap;

use cdplake_catalog::TableEntry;
use cdplake_engine::{MaintainOptions, TableId, TableMaintenance};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::audit::{Invoker, JobRun};
use crate::error::Result;
use crate::workspace::Workspace;

/// `[retention]`: how long each zone keeps history and rows, and when raw is archived.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of history (time travel) kept per zone before vacuum deletes replaced files.
    pub history_days: BTreeMap<String, u32>,
    /// Days raw rows are kept (by ingest date); none: forever. Written into the catalog's
    /// `retention_days` of every raw table.
    pub raw_days: Option<u32>,
    /// Raw objects move to S3 Standard-IA after this many days, and to Glacier Instant
    /// Retrieval after `raw_archive_days`.
    pub raw_infrequent_access_days: u32,
    pub raw_archive_days: u32,
    /// Query results written by the query handler expire after this many days.
    pub query_results_days: u32,
    /// Old versions of objects (a versioned bucket keeps them) expire after this many days.
    pub noncurrent_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            history_days: [("raw", 30), ("clean", 7), ("curated", 7)].map(|(z, d)| (z.to_string(), d)).into(),
            raw_days: None,
            raw_infrequent_access_days: 30,
            raw_archive_days: 90,
            query_results_days: 7,
            noncurrent_days: 1,
        }
    }
}

impl RetentionConfig {
    /// The history a zone keeps (7 days for zones not listed: `_catalog`, `_audit`, `_quality`).
    pub fn history(&self, zone: &str) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.history_days.get(zone).copied().unwrap_or(7)))
    }
}

/// `[maintenance]`.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Compaction's target file size.
    pub target_file_mb: u64,
    /// Z-order columns per table (`"curated.user_events" = ["one_id"]`), beside the built-in
    /// (`curated.id_mapping` on id_value, `curated.customer_profiles` on one_id); `[]` turns one off.
    pub zorder: BTreeMap<String, Vec<String>>,
    /// The daily schedule's DAG ends with `maintain` (every table).
    pub daily: bool,
    /// Untracked files (change data, orphans) and log entries younger than this stay whatever
    /// the history: a job that listed them a moment before still reads them. Lower it only where
    /// no job runs beside maintenance (a benchmark compressing days into minutes).
    pub min_age_minutes: u64,
}

/// The columns the jobs look rows up by, Z-ordered unless `[maintenance.zorder]` says otherwise.
const BUILT_IN_ZORDER: [(&str, &str); 2] =
    [("curated.id_mapping", "id_value"), ("curated.customer_profiles", "one_id")];

impl MaintenanceConfig {
    /// The Z-order columns of a table: the configured ones, else the built-in (empty: none).
    pub fn zorder_of(&self, table: &str) -> Vec<String> {
        match self.zorder.get(table) {
            Some(columns) => columns.clone(),
            None => BUILT_IN_ZORDER.iter().filter(|(t, _)| *t == table).map(|(_, c)| c.to_string()).collect(),
        }
    }
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self { target_file_mb: 128, zorder: BTreeMap::new(), daily: true, min_age_minutes: 60 }
    }
}

/// What to maintain.
#[derive(Debug, Clone, Default)]
pub struct MaintainRequest {
    /// Only these tables (empty: every registered table).
    pub tables: Vec<TableId>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MaintainReport {
    pub tables: Vec<TableMaintenance>,
    /// Rows deleted by row retention, per table.
    pub retention: BTreeMap<String, u64>,
    pub dry_run: bool,
}

/// Duration as Delta's interval string.
fn interval(duration: chrono::Duration) -> String {
    format!("interval {} days", duration.num_days())
}

/// The statistics columns of a table: every column but the PII ones (a raw table: lineage only).
fn stats_columns(entry: &TableEntry) -> Option<String> {
    // Partition columns are not in the data files: they have no statistics to keep out.
    let columns: Vec<String> = entry
        .columns()
        .into_iter()
        .map(|(name, _, _)| name)
        .filter(|name| !entry.partition_columns.contains(name))
        .collect();
    let keep: Vec<&String> = if entry.zone == "raw" {
        columns.iter().filter(|c| cdplake_zones::raw::is_lineage(c)).collect()
    } else if entry.pii_columns.is_empty() {
        return None;
    } else {
        columns.iter().filter(|c| !entry.pii_columns.contains(c)).collect()
    };
    (!keep.is_empty()).then(|| keep.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(","))
}

/// `[maintenance] min_age_minutes`: what vacuum and log cleanup keep whatever the history.
fn min_age(workspace: &Workspace) -> chrono::Duration {
    chrono::Duration::minutes(workspace.config.maintenance.min_age_minutes as i64)
}

/// The maintenance options of one table.
pub fn options_for(workspace: &Workspace, entry: &TableEntry, now: DateTime<Utc>, dry_run: bool) -> MaintainOptions {
    let history = workspace.config.retention.history(&entry.zone);
    let mut options = MaintainOptions::new(history, now);
    options.dry_run = dry_run;
    options.target_size = workspace.config.maintenance.target_file_mb.max(1) * 1024 * 1024;
    options.zorder = workspace.config.maintenance.zorder_of(&entry.name);
    options.min_age = min_age(workspace);
    let mut properties = cdplake_engine::spec::default_properties();
    properties.insert("delta.deletedFileRetentionDuration".to_string(), interval(history));
    properties.insert("delta.logRetentionDuration".to_string(), interval(history.max(chrono::Duration::days(1))));
    if let Some(columns) = stats_columns(entry) {
        properties.insert("delta.dataSkippingStatsColumns".to_string(), columns);
    }
    options.properties = properties;
    options
}

/// Maintain the requested tables (see the module docs). `now` is the wall-clock instant file
/// ages are measured against.
pub async fn maintain(
    workspace: &Workspace,
    request: &MaintainRequest,
    invoker: &Invoker,
    now: DateTime<Utc>,
) -> Result<MaintainReport> {
    let mut report = MaintainReport { dry_run: request.dry_run, ..Default::default() };
    let mut entries = workspace.catalog.list().await?;
    if !request.tables.is_empty() {
        let wanted: Vec<String> = request.tables.iter().map(|t| t.to_string()).collect();
        for name in &wanted {
            if !entries.iter().any(|e| &e.name == name) && name != "_catalog.tables" {
                return Err(crate::JobError::NotFound(format!(
                    "{name} is not in the catalog; `cdplake tables` lists the tables"
                )));
            }
        }
        entries.retain(|e| wanted.contains(&e.name));
    }
    // Row retention first, so the vacuum below already sees the deleted rows' files.
    if !request.dry_run {
        for entry in entries.iter().filter(|e| e.retention_days.is_some()) {
            let started = Utc::now();
            if let Some(rows) = enforce_retention(workspace, entry, now).await? {
                report.retention.insert(entry.name.clone(), rows);
                let run = JobRun {
                    run_id: uuid::Uuid::new_v4().to_string(),
                    job: "retention".into(),
                    arguments: serde_json::json!({"table": entry.name, "retention_days": entry.retention_days}),
                    trigger: invoker.trigger.clone(),
                    principal: invoker.principal.clone(),
                    started_at: started,
                    ended_at: Utc::now(),
                    outcome: "ok".into(),
                    error: None,
                    tables: vec![entry.name.clone()],
                    rows_in: rows,
                    rows_out: 0,
                };
                crate::audit::append(workspace, &run).await?;
            }
        }
    }
    for entry in &entries {
        let id = TableId::new(&entry.zone, &entry.table_name)?;
        if !workspace.lake().table_exists(&id).await? {
            continue;
        }
        let options = options_for(workspace, entry, now, request.dry_run);
        report.tables.push(workspace.lake().maintain_table(&id, &options).await?);
    }
    // The catalog itself, last (maintenance above may have refreshed entries).
    if request.tables.is_empty() || request.tables.iter().any(|t| t.to_string() == "_catalog.tables") {
        let id = cdplake_catalog::catalog_table_id();
        let mut options = MaintainOptions::new(workspace.config.retention.history("_catalog"), now);
        options.dry_run = request.dry_run;
        options.min_age = min_age(workspace);
        report.tables.push(workspace.lake().maintain_table(&id, &options).await?);
    }
    Ok(report)
}

/// Delete the rows of a table older than its catalog `retention_days` (by `_ingest_date`);
/// `None` when the table has no such column or nothing was old enough.
async fn enforce_retention(workspace: &Workspace, entry: &TableEntry, now: DateTime<Utc>) -> Result<Option<u64>> {
    let Some(days) = entry.retention_days else { return Ok(None) };
    if !entry.columns().iter().any(|(name, _, _)| name == cdplake_zones::raw::INGEST_DATE) {
        return Ok(None);
    }
    let id = TableId::new(&entry.zone, &entry.table_name)?;
    let cutoff = (now - chrono::Duration::days(i64::from(days))).format("%Y-%m-%d").to_string();
    let predicate = format!("{} < {}", cdplake_zones::raw::INGEST_DATE, cdplake_engine::sql::quote_literal(&cutoff));
    let lake = workspace.lake();
    let table = lake.table(&id).await?;
    let append_only = table
        .snapshot()
        .map(|s| s.metadata().configuration().get("delta.appendOnly").is_some_and(|v| v == "true"))
        .unwrap_or(false);
    let set = |value: &'static str| {
        let id = id.clone();
        async move {
            lake.table(&id)
                .await?
                .set_tbl_properties()
                .with_properties([("delta.appendOnly".to_string(), value.to_string())].into())
                .await
                .map_err(|e| cdplake_engine::EngineError::delta(&id, "set properties", e))
        }
    };
    if append_only {
        set("false").await?;
    }
    let result = lake.delete(&id, &predicate).await;
    if append_only {
        set("true").await?;
    }
    let (_, metrics) = result?;
    let rows = metrics.num_deleted_rows.unwrap_or(0) as u64;
    Ok((rows > 0).then_some(rows))
}

/// The report as lines for people.
pub fn describe_report(r: &MaintainReport) -> String {
    let mut text = String::new();
    if r.dry_run {
        text.push_str("dry run: nothing changed\n");
    }
    text.push_str("table                            files before → after   bytes before → after   live files   log files   compacted  vacuumed\n");
    for t in &r.tables {
        text.push_str(&format!(
            "{:<32} {:>6} → {:<6}   {:>10} → {:<10}   {:>4} → {:<4}  {:>4} → {:<4}  {:>6}  {:>8}\n",
            t.table,
            t.before.files,
            t.after.files,
            t.before.bytes,
            t.after.bytes,
            t.before.live_files,
            t.after.live_files,
            t.before.log_files,
            t.after.log_files,
            t.files_compacted,
            t.files_vacuumed
        ));
    }
    for (table, rows) in &r.retention {
        text.push_str(&format!("retention: {rows} rows past retention deleted from {table}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let times: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        assert_eq!(percentile(&times, 0.5), 5.0);
        assert_eq!(percentile(&times, 0.9), 9.0);
        assert_eq!(percentile(&times, 1.0), 10.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn zones_keep_their_history() {
        let r = RetentionConfig::default();
        assert_eq!(r.history("raw").num_days(), 30);
        assert_eq!(r.history("curated").num_days(), 7);
        assert_eq!(r.history("_audit").num_days(), 7);
    }
}

/// One window of [`bench_micro_batches`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BenchWindow {
    /// Batches done at the end of the window.
    pub batches: u64,
    /// Over every table (and the catalog): data files on storage, live files, log files.
    pub files: u64,
    pub live_files: u64,
    pub log_files: u64,
    pub bytes: u64,
    /// `curated.id_mapping` alone.
    pub id_mapping_files: u64,
    pub id_mapping_live_files: u64,
    /// Mean storage requests per batch of the window (maintenance not included), by kind.
    pub requests_per_batch: f64,
    pub gets_per_batch: f64,
    pub lists_per_batch: f64,
    pub puts_per_batch: f64,
    /// The ten targets read most in the window: (`zone/table log|change data|data`, reads per
    /// batch).
    pub top_reads_per_batch: Vec<(String, f64)>,
    /// Batch wall times of the window, seconds: mean, median, 90th percentile, slowest, last.
    pub mean_batch_s: f64,
    pub median_batch_s: f64,
    pub p90_batch_s: f64,
    pub max_batch_s: f64,
    pub last_batch_s: f64,
    /// The maintenance run at the end of the window, seconds (0 without).
    pub maintain_s: f64,
}

/// `cdplake bench micro-batches` (hidden): `batches` S3-event micro-batches (two small files
/// each, a CRM change and app events, from the generator with a seed per batch) through the S3
/// handler's code path (`lambda::invoke_as`, audit included) on an S3 lake, with maintenance
/// every `maintain_every` batches (0: never); a [`BenchWindow`] every `window` batches.
pub async fn bench_micro_batches(
    workspace: &Workspace,
    batches: u64,
    window: u64,
    maintain_every: u64,
    mut on_window: impl FnMut(&BenchWindow),
) -> Result<Vec<BenchWindow>> {
    let root = workspace.lake().location().root().clone();
    if !workspace.lake().location().is_s3() {
        return Err(crate::JobError::Invalid("the S3 handler needs an S3 lake: pass --lake s3://bucket/prefix".into()));
    }
    let bucket = root.host_str().unwrap_or_default().to_string();
    let prefix = root.path().trim_matches('/').to_string();
    let mut windows = Vec::new();
    let mut times = Vec::new();
    let mut requests = cdplake_engine::RequestCounts::default();
    let mut reads_at_window_start = workspace.lake().storage_reads_by_target();
    for batch in 1..=batches {
        let (files, _) = crate::generate::generate(3, 1000 + batch);
        let mut records = Vec::new();
        for source in ["crm_members", "app_events"] {
            let Some(file) = files.iter().find(|f| f.source == source) else { continue };
            let extension = file.name.rsplit('.').next().unwrap_or("json");
            let key = format!("{prefix}/landing/{source}/batch-{batch:05}.{extension}");
            workspace.lake().put_object(&format!("s3://{bucket}/{key}"), file.content.clone().into()).await?;
            records.push(serde_json::json!({
                "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2024-12-30T12:00:00.000Z", "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "bench"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "bench", "x-amz-id-2": "bench"},
                "s3": {"s3SchemaVersion": "1.0", "configurationId": "bench",
                       "bucket": {"name": bucket, "ownerIdentity": {"principalId": "bench"}, "arn": format!("arn:aws:s3:::{bucket}")},
                       "object": {"key": key, "size": file.content.len(), "eTag": "0", "sequencer": format!("{batch:016X}")}}
            }));
        }
        let event = serde_json::json!({ "Records": records });
        let invoker = crate::audit::Invoker::lambda("s3", &format!("bench-{batch}"));
        let started = std::time::Instant::now();
        let before = workspace.lake().storage_requests();
        let now = Utc::now();
        crate::lambda::invoke_as(workspace, crate::lambda::Handler::S3, event, now, &invoker).await?;
        times.push(started.elapsed().as_secs_f64());
        let made = workspace.lake().storage_requests().since(&before);
        requests += made;
        let mut maintain_s = 0.0;
        if maintain_every > 0 && batch % maintain_every == 0 {
            let started = std::time::Instant::now();
            maintain(workspace, &MaintainRequest::default(), &crate::audit::Invoker::cli(), Utc::now()).await?;
            maintain_s = started.elapsed().as_secs_f64();
        }
        if batch % window == 0 || batch == batches {
            let mut w = BenchWindow { batches: batch, maintain_s, ..Default::default() };
            let n = times.len().max(1) as f64;
            w.mean_batch_s = times.iter().sum::<f64>() / n;
            w.last_batch_s = times.last().copied().unwrap_or_default();
            w.median_batch_s = percentile(&times, 0.5);
            w.p90_batch_s = percentile(&times, 0.9);
            w.max_batch_s = percentile(&times, 1.0);
            w.requests_per_batch = requests.total() as f64 / n;
            w.gets_per_batch = requests.get as f64 / n;
            w.lists_per_batch = requests.list as f64 / n;
            w.puts_per_batch = requests.put as f64 / n;
            w.top_reads_per_batch = top_reads(&reads_at_window_start, &workspace.lake().storage_reads_by_target(), n);
            times.clear();
            requests = cdplake_engine::RequestCounts::default();
            reads_at_window_start = workspace.lake().storage_reads_by_target();
            let mut ids: Vec<TableId> = Vec::new();
            for entry in workspace.catalog.list().await? {
                ids.push(TableId::new(&entry.zone, &entry.table_name)?);
            }
            ids.push(cdplake_catalog::catalog_table_id());
            for id in ids {
                let Ok(f) = workspace.lake().footprint(&id).await else { continue };
                w.files += f.files;
                w.live_files += f.live_files;
                w.log_files += f.log_files;
                w.bytes += f.bytes;
                if id.to_string() == "curated.id_mapping" {
                    w.id_mapping_files = f.files;
                    w.id_mapping_live_files = f.live_files;
                }
            }
            on_window(&w);
            windows.push(w);
        }
    }
    Ok(windows)
}

/// The `q` quantile (0..=1) of `values` by the nearest-rank method; 0 when empty.
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied().unwrap_or_default()
}

/// The ten targets read most between two counts, per batch (maintenance's reads included).
fn top_reads(
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
    batches: f64,
) -> Vec<(String, f64)> {
    let mut reads: Vec<(String, f64)> = after
        .iter()
        .map(|(target, n)| (target.clone(), (n - before.get(target).copied().unwrap_or(0)) as f64 / batches))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    reads.sort_by(|a, b| b.1.total_cmp(&a.1));
    reads.truncate(10);
    reads
}
