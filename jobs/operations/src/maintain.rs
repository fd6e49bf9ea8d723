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
//! Archival: S3 lifecycle rules from `[retention]`, in `lifecycle`.

use std::collections::BTreeMap;

use cdplake_catalog::{TableEntry, catalog_table_id};
use cdplake_engine::{MaintainOptions, TableId, TableMaintenance};
use chrono::{DateTime, Utc};

use cdplake_core::audit::{Invoker, JobRun};
use cdplake_core::error::Result;
use cdplake_core::workspace::Workspace;

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

impl cdplake_core::audit::JobReport for MaintainReport {}

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
        let catalog_table = catalog_table_id().to_string();
        for name in &wanted {
            if !entries.iter().any(|e| &e.name == name) && *name != catalog_table {
                return Err(cdplake_core::JobError::not_found(
                    format!("{name} is not in the catalog"),
                    "`cdplake tables` lists the tables",
                ));
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
                cdplake_core::audit::append(workspace, &run).await?;
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
    if request.tables.is_empty() || request.tables.contains(&catalog_table_id()) {
        let id = catalog_table_id();
        let mut options = MaintainOptions::new(workspace.config.retention.history(id.zone()), now);
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
