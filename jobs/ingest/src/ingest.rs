//! `cdplake ingest`: append source files to `raw.<source>` exactly as received, with lineage.
//!
//! Replay safety: each object is identified by its URI and ETag (or content SHA-256 locally).
//! The append commits a Delta application transaction for that identity, so "already
//! ingested?" and the append are one atomic commit: of two concurrent replays one commits and
//! the other fails its commit and reports the object as already ingested.

use std::collections::BTreeMap;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::datatypes::{DataType, Field};
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::{EngineError, FetchedObject, TableId, applied_version};
use cdplake_zones::Source;
use cdplake_zones::contract::Contract;
use cdplake_zones::quarantine::{Kind, QuarantinedRow, quarantine_batch, quarantine_table_spec};
use cdplake_zones::raw::{self, Delivery, raw_table_spec};
use cdplake_zones::reader::{RawRecords, ReadError, UnreadableRow, format_of, read_records};
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
    let etag = etag_of(&object);
    let app = app_ids::ingested_object(&object.uri, &etag);
    let mut report = IngestReport::already_ingested(source, &object.uri, &etag);
    let (raw_id, table) = ensure_raw_table(workspace, source).await?;
    if applied_version(&table, &raw_id.to_string(), &app).await?.is_some() {
        return Ok(report);
    }
    let Some(records) = read_object(workspace, source, &object, &mut report).await? else {
        return Ok(report);
    };
    let batch_id = uuid::Uuid::new_v4().to_string();
    let delivery = Delivery { uri: object.uri.clone(), etag, batch_id, ingested_at: now };
    add_new_columns(workspace, &raw_id, &records.columns).await?;
    let arrival = Arrival { raw_id, app, delivery };
    if !records.unreadable.is_empty() {
        report.rows_rejected = quarantine_unreadable(workspace, source, &arrival, &records.unreadable).await?;
    }
    append_raw(workspace, &arrival, &records, &mut report).await?;
    check_reconciled(&report)?;
    Ok(report)
}

impl IngestReport {
    /// The report of an object found ingested before: nothing read, nothing written.
    fn already_ingested(source: &Source, uri: &str, etag: &str) -> Self {
        IngestReport {
            source: source.name.clone(),
            uri: uri.to_string(),
            etag: etag.to_string(),
            status: IngestStatus::AlreadyIngested,
            batch_id: None,
            rows_in: 0,
            rows_written: 0,
            rows_rejected: 0,
            rows_suppressed: 0,
            unknown_columns: Vec::new(),
            raw_version: None,
        }
    }
}

/// The object's identity beside its URI: the store's ETag, or the SHA-256 of its content where
/// the store has none (local files).
fn etag_of(object: &FetchedObject) -> String {
    object.etag.clone().unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(&object.bytes))))
}

/// `raw.<source>` with its catalog entry (PII columns, retention), created if missing.
async fn ensure_raw_table(workspace: &Workspace, source: &Source) -> Result<(TableId, DeltaTable)> {
    let spec = raw_table_spec(source);
    let mut meta = TableMeta::default().with_pii_columns(raw_pii_columns(source, &spec));
    if let Some(days) = workspace.config.retention.raw_days {
        meta = meta.with_retention_days(days as i32);
    }
    let (table, _) = workspace.catalog.ensure_table(&spec, &meta).await?;
    Ok((spec.id, table))
}

/// The object's records, counted on the report, without the rows of erased persons; None (the
/// report says empty) when no data row is left. A file without a required column is rejected
/// whole, before anything is written.
async fn read_object(
    workspace: &Workspace,
    source: &Source,
    object: &FetchedObject,
    report: &mut IngestReport,
) -> Result<Option<RawRecords>> {
    let format = format_of(&object.uri, source.format);
    let mut records = read_records(&object.uri, &object.bytes, format).map_err(|e| {
        let (file, reason) = file_and_reason(e);
        JobError::Rejected { file, reason }
    })?;
    report.rows_in = records.rows_in();
    report.rows_suppressed = drop_suppressed(workspace, &mut records).await?;
    if records.columns.is_empty() || records.rows_in() == 0 {
        report.status = IngestStatus::Empty;
        return Ok(None);
    }
    Contract::new(source, None)
        .layout(&records.columns)
        .map_err(|reason| JobError::Rejected { file: object.uri.clone(), reason })?;
    report.unknown_columns = unknown_columns(source, &records.columns);
    for column in &report.unknown_columns {
        tracing::warn!(source = %source.name, uri = %object.uri, column, "unknown column: kept in raw, ignored by clean");
    }
    Ok(Some(records))
}

/// Erased persons stay erased: drop the rows carrying an identifier of the suppression list
/// before anything is written. Returns how many rows were dropped.
async fn drop_suppressed(workspace: &Workspace, records: &mut RawRecords) -> Result<u64> {
    let suppressions = crate::privacy::Suppressions::load(workspace).await?;
    if suppressions.is_empty() {
        return Ok(0);
    }
    let before = records.rows.len() + records.unreadable.len();
    records.rows.retain(|(_, values)| !suppressions.row_matches(values.iter().map(|v| v.as_deref())));
    records.unreadable.retain(|u| !suppressions.matches(&u.text));
    Ok((before - records.rows.len() - records.unreadable.len()) as u64)
}

/// An object on its way into `raw.<source>`: the table, the application id its commits record,
/// and the lineage its rows carry.
struct Arrival {
    raw_id: TableId,
    app: String,
    delivery: Delivery,
}

/// Unreadable rows go to the quarantine first, under the same identity, so a crash between the
/// two commits neither loses them nor writes them twice. Returns how many rows were rejected.
async fn quarantine_unreadable(
    workspace: &Workspace,
    source: &Source,
    arrival: &Arrival,
    unreadable: &[UnreadableRow],
) -> Result<u64> {
    let rows: Vec<QuarantinedRow> = unreadable.iter().map(|u| unreadable_row(source, &arrival.delivery, u)).collect();
    let (quarantine, _) = workspace.catalog.ensure_table(&quarantine_table_spec(), &TableMeta::default()).await?;
    if applied_version(&quarantine, &QUARANTINE.to_string(), &arrival.app).await?.is_none() {
        let batch =
            quarantine_batch(&rows, arrival.delivery.ingested_at).map_err(|e| JobError::arrow("quarantine rows", e))?;
        workspace.lake().append_with(&QUARANTINE.id(), vec![batch], once(&arrival.app)).await?;
    }
    Ok(rows.len() as u64)
}

/// The quarantine row of a row the reader could not read.
fn unreadable_row(source: &Source, delivery: &Delivery, u: &UnreadableRow) -> QuarantinedRow {
    QuarantinedRow {
        source: source.name.clone(),
        stage: "ingest",
        kind: Kind::Rejected,
        batch_id: delivery.batch_id.clone(),
        source_uri: delivery.uri.clone(),
        source_row: u.row as i64,
        field: String::new(),
        rule: "unreadable".into(),
        reason: format!("row {} {}", u.row, u.reason),
        raw_values: u.text.clone(),
    }
}

/// Append the readable rows to `raw.<source>`, recording the object as ingested in the same
/// commit; the report says ingested when this run's commit wrote them.
async fn append_raw(
    workspace: &Workspace,
    arrival: &Arrival,
    records: &RawRecords,
    report: &mut IngestReport,
) -> Result<()> {
    let lake = workspace.lake();
    let Arrival { raw_id, app, delivery } = arrival;
    let batches =
        raw::raw_batches(records, delivery).map_err(|e| JobError::arrow(format!("{}: raw rows", delivery.uri), e))?;
    // Check and append on one snapshot: a replay committed since makes this commit conflict.
    let table = lake.table(raw_id).await?;
    if applied_version(&table, &raw_id.to_string(), app).await?.is_some() {
        return Ok(());
    }
    match lake.append_to(table, raw_id, batches, once(app)).await {
        Ok(table) => {
            report.status = IngestStatus::Ingested;
            report.batch_id = Some(delivery.batch_id.clone());
            report.rows_written = records.rows.len() as u64;
            report.raw_version = table.version();
            Ok(())
        }
        // A concurrent replay of the same object committed first.
        Err(e) if e.is_commit_conflict() => {
            let table = lake.table(raw_id).await?;
            if applied_version(&table, &raw_id.to_string(), app).await?.is_none() {
                return Err(e.into());
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The file a read failed on and why (with the row and field when one value was at fault), as
/// the read error's message has them.
pub(crate) fn file_and_reason(error: ReadError) -> (String, String) {
    match error {
        ReadError::Unreadable { file, reason } => (file, reason),
        ReadError::Field { file, row, field, reason } => (file, format!("row {row}, field {field}: {reason}")),
    }
}

/// An ingested object's rows add up: rows in = written + rejected + suppressed.
fn check_reconciled(report: &IngestReport) -> Result<()> {
    if report.status == IngestStatus::Ingested
        && report.rows_in != report.rows_written + report.rows_rejected + report.rows_suppressed
    {
        return Err(JobError::Reconciliation {
            what: report.uri.clone(),
            got: format!("{} rows in", report.rows_in),
            expected: format!(
                "{} written + {} rejected + {} suppressed",
                report.rows_written, report.rows_rejected, report.rows_suppressed
            ),
        });
    }
    Ok(())
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
async fn add_new_columns(workspace: &Workspace, raw_id: &TableId, columns: &[String]) -> Result<()> {
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
