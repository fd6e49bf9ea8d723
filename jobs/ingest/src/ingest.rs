//! `cdplake ingest`: append source files to `raw.<source>` exactly as received, with lineage.
//!
//! Replay safety: each object is identified by its URI and ETag (or content SHA-256 locally).
//! The append commits a Delta application transaction for that identity, so "already
//! ingested?" and the append are one atomic commit: of two concurrent replays one commits and
//! the other fails its commit and reports the object as already ingested.

use std::collections::BTreeMap;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::datatypes::{DataType, Field};
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::{EngineError, applied_version};
use cdplake_zones::Source;
use cdplake_zones::contract::Contract;
use cdplake_zones::quarantine::{Kind, QuarantinedRow, quarantine_batch, quarantine_table_spec};
use cdplake_zones::raw::{self, Delivery, raw_table_spec};
use cdplake_zones::reader::{format_of, read_records};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{QUARANTINE, app_ids};

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    Ingested,
    /// The same object (URI and ETag) was ingested before: nothing written.
    AlreadyIngested,
    /// No data rows: nothing written.
    Empty,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    pub source: String,
    pub uri: String,
    pub etag: String,
    pub status: IngestStatus,
    pub batch_id: Option<String>,
    /// Data rows in the file.
    pub rows_in: u64,
    /// Rows appended to the raw table.
    pub rows_written: u64,
    /// Unreadable rows sent to `clean._quarantine`.
    pub rows_rejected: u64,
    /// Rows dropped because they carry an erased person's identifier (the suppression list).
    #[serde(default)]
    pub rows_suppressed: u64,
    /// Columns the contract does not know: kept in raw, ignored by clean.
    pub unknown_columns: Vec<String>,
    pub raw_version: Option<u64>,
}

impl cdplake_core::audit::JobReport for IngestReport {
    fn row_counts(&self) -> cdplake_core::audit::RowCounts {
        cdplake_core::audit::RowCounts { read: self.rows_in, written: self.rows_written }
    }
}

/// Where a source's files land when no path is given: `<root>/landing/<source>/`.
pub fn landing_prefix(workspace: &Workspace, source: &Source) -> String {
    workspace.lake().location().join(&format!("landing/{}/", source.name)).to_string()
}

/// Ingest `locations` (paths or URIs), or everything under the source's landing prefix.
pub async fn ingest(
    workspace: &Workspace,
    source: &Source,
    locations: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<IngestReport>> {
    let locations = if locations.is_empty() {
        workspace.lake().list_objects(&landing_prefix(workspace, source)).await?
    } else {
        locations.to_vec()
    };
    let mut reports = Vec::with_capacity(locations.len());
    for location in &locations {
        reports.push(ingest_object(workspace, source, location, now).await?);
    }
    Ok(reports)
}

/// Ingest one object.
pub async fn ingest_object(
    workspace: &Workspace,
    source: &Source,
    location: &str,
    now: DateTime<Utc>,
) -> Result<IngestReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let object = lake.fetch_object(location).await?;
    let etag = object.etag.clone().unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&object.bytes))));
    let app = app_ids::ingested_object(&object.uri, &etag);
    let mut report = IngestReport {
        source: source.name.clone(),
        uri: object.uri.clone(),
        etag: etag.clone(),
        status: IngestStatus::AlreadyIngested,
        batch_id: None,
        rows_in: 0,
        rows_written: 0,
        rows_rejected: 0,
        rows_suppressed: 0,
        unknown_columns: Vec::new(),
        raw_version: None,
    };

    let spec = raw_table_spec(source);
    let raw_id = spec.id.clone();
    let mut meta = TableMeta::default().with_pii_columns(raw_pii_columns(source, &spec));
    if let Some(days) = workspace.config.retention.raw_days {
        meta = meta.with_retention_days(days as i32);
    }
    let (table, _) = workspace.catalog.ensure_table(&spec, &meta).await?;
    if applied_version(&table, &raw_id.to_string(), &app).await?.is_some() {
        return Ok(report);
    }

    let format = format_of(&object.uri, source.format);
    let mut records =
        read_records(&object.uri, &object.bytes, format).map_err(|e| JobError::Rejected(e.to_string()))?;
    report.rows_in = records.rows_in();
    // Erased persons stay erased: their rows are dropped before anything is written.
    let suppressions = crate::privacy::Suppressions::load(workspace).await?;
    if !suppressions.is_empty() {
        let before = records.rows.len() + records.unreadable.len();
        records.rows.retain(|(_, values)| !suppressions.row_matches(values.iter().map(|v| v.as_deref())));
        records.unreadable.retain(|u| !suppressions.matches(&u.text));
        report.rows_suppressed = (before - records.rows.len() - records.unreadable.len()) as u64;
    }
    if records.columns.is_empty() || records.rows_in() == 0 {
        report.status = IngestStatus::Empty;
        return Ok(report);
    }
    // A file without a required column is rejected whole, before anything is written.
    Contract::new(source, None)
        .layout(&records.columns)
        .map_err(|reason| JobError::Rejected(format!("{}: {reason}", object.uri)))?;
    report.unknown_columns = unknown_columns(source, &records.columns);
    for column in &report.unknown_columns {
        tracing::warn!(source = %source.name, uri = %object.uri, column, "unknown column: kept in raw, ignored by clean");
    }

    let batch_id = uuid::Uuid::new_v4().to_string();
    let delivery = Delivery { uri: object.uri.clone(), etag, batch_id: batch_id.clone(), ingested_at: now };
    add_new_columns(workspace, &raw_id, &records.columns).await?;

    // Unreadable rows go to the quarantine first, under the same identity, so a crash between
    // the two commits neither loses them nor writes them twice.
    if !records.unreadable.is_empty() {
        let rows: Vec<QuarantinedRow> = records
            .unreadable
            .iter()
            .map(|u| QuarantinedRow {
                source: source.name.clone(),
                stage: "ingest",
                kind: Kind::Rejected,
                batch_id: batch_id.clone(),
                source_uri: object.uri.clone(),
                source_row: u.row as i64,
                field: String::new(),
                rule: "unreadable".into(),
                reason: format!("row {} {}", u.row, u.reason),
                raw_values: u.text.clone(),
            })
            .collect();
        let (quarantine, _) = workspace.catalog.ensure_table(&quarantine_table_spec(), &TableMeta::default()).await?;
        if applied_version(&quarantine, "clean._quarantine", &app).await?.is_none() {
            let batch = quarantine_batch(&rows, now).map_err(|e| JobError::arrow("quarantine rows", e))?;
            lake.append_with(&QUARANTINE.id(), vec![batch], once(&app)).await?;
        }
        report.rows_rejected = rows.len() as u64;
    }

    let batches =
        raw::raw_batches(&records, &delivery).map_err(|e| JobError::arrow(format!("{}: raw rows", object.uri), e))?;
    // Check and append on one snapshot: a replay committed since makes this commit conflict.
    let table = lake.table(&raw_id).await?;
    if applied_version(&table, &raw_id.to_string(), &app).await?.is_some() {
        return Ok(report);
    }
    match lake.append_to(table, &raw_id, batches, once(&app)).await {
        Ok(table) => {
            report.status = IngestStatus::Ingested;
            report.batch_id = Some(batch_id);
            report.rows_written = records.rows.len() as u64;
            report.raw_version = table.version();
        }
        // A concurrent replay of the same object committed first.
        Err(e) if e.is_commit_conflict() => {
            let table = lake.table(&raw_id).await?;
            if applied_version(&table, &raw_id.to_string(), &app).await?.is_none() {
                return Err(e.into());
            }
        }
        Err(e) => return Err(e.into()),
    }
    if report.status == IngestStatus::Ingested
        && report.rows_in != report.rows_written + report.rows_rejected + report.rows_suppressed
    {
        return Err(JobError::Reconciliation(format!(
            "{}: {} rows in != {} written + {} rejected + {} suppressed",
            report.uri, report.rows_in, report.rows_written, report.rows_rejected, report.rows_suppressed
        )));
    }
    Ok(report)
}

/// Commit properties recording `app_id` as done, in the data's commit.
fn once(app_id: &str) -> CommitProperties {
    CommitProperties::default().with_application_transaction(Transaction::new(app_id, 1))
}

fn raw_pii_columns(source: &Source, spec: &cdplake_engine::TableSpec) -> Vec<String> {
    source
        .columns
        .iter()
        .filter(|c| c.pii.is_some())
        .flat_map(|c| c.raw_names())
        .filter(|n| spec.schema.field_with_name(n).is_ok())
        .collect()
}

fn unknown_columns(source: &Source, columns: &[String]) -> Vec<String> {
    let known: Vec<String> = source.columns.iter().flat_map(|c| c.raw_names()).collect();
    columns.iter().filter(|c| !known.contains(c) && !["op", "before", "after"].contains(&c.as_str())).cloned().collect()
}

/// Add the file's columns the raw table does not have yet (all strings).
async fn add_new_columns(workspace: &Workspace, raw_id: &cdplake_engine::TableId, columns: &[String]) -> Result<()> {
    let table = workspace.lake().table(raw_id).await?;
    let schema = cdplake_engine::lake::table_arrow_schema(&table, raw_id)?;
    let new: Vec<Field> = columns
        .iter()
        .filter(|c| schema.field_with_name(c).is_err())
        .map(|c| Field::new(c, DataType::Utf8, true))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    match workspace.catalog.add_columns(raw_id, &new).await {
        Ok(_) => Ok(()),
        // Another ingest added them first.
        Err(cdplake_catalog::CatalogError::Engine(e))
            if e.is_commit_conflict() || matches!(e, EngineError::InvalidName { .. }) =>
        {
            workspace.catalog.refresh(raw_id).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Totals over several reports, for printing.
pub fn summarize(reports: &[IngestReport]) -> BTreeMap<&'static str, u64> {
    let mut totals = BTreeMap::new();
    for r in reports {
        *totals.entry("files").or_default() += 1;
        *totals
            .entry(match r.status {
                IngestStatus::Ingested => "ingested",
                IngestStatus::AlreadyIngested => "already_ingested",
                IngestStatus::Empty => "empty",
            })
            .or_default() += 1;
        *totals.entry("rows_in").or_default() += r.rows_in;
        *totals.entry("rows_written").or_default() += r.rows_written;
        *totals.entry("rows_rejected").or_default() += r.rows_rejected;
        *totals.entry("rows_suppressed").or_default() += r.rows_suppressed;
    }
    totals
}
