//! `cdplake ingest`: append source files to `raw.<source>` exactly as received, with lineage.
//!
//! Replay safety: each object is identified by its URI and ETag (or content SHA-256 locally).
//! The append commits a Delta application transaction for that identity, so "already
//! ingested?" and the append are one atomic commit: of two concurrent replays one commits and
//! the other fails its commit and reports the object as already ingested.

use std::collections::BTreeMap;
use std::io::Read;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::datatypes::{DataType, Field};
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::{EngineError, OpenedObject, StagedAppend, TableId, applied_version};
use cdplake_zones::Source;
use cdplake_zones::contract::Contract;
use cdplake_zones::quarantine::{Kind, QuarantinedRow, quarantine_batch, quarantine_table_spec};
use cdplake_zones::raw::{self, Delivery, raw_table_spec};
use cdplake_zones::reader::{Input, RawRecords, ReadError, RecordReader, UnreadableRow, format_of, ndjson_keys};
use cdplake_zones::source::FileFormat;
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

/// Ingest one object, streamed: it is read in chunks and each chunk written as it is read, so
/// memory holds a chunk, not the file; the rows are committed once, with the object's identity.
pub async fn ingest_object(
    workspace: &Workspace,
    source: &Source,
    location: &str,
    now: DateTime<Utc>,
) -> Result<IngestReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let object = lake.open_object(location).await?;
    let etag = etag_of(&object).await?;
    let app = app_ids::ingested_object(&object.uri, &etag);
    let mut report = IngestReport::already_ingested(source, &object.uri, &etag);
    let (raw_id, table) = ensure_raw_table(workspace, source).await?;
    if applied_version(&table, &raw_id.to_string(), &app).await?.is_some() {
        return Ok(report);
    }
    let batch_id = uuid::Uuid::new_v4().to_string();
    let delivery = Delivery { uri: object.uri.clone(), etag, batch_id, ingested_at: now };
    let arrival = Arrival { raw_id, app, delivery };
    let mut chunks = open_chunks(source, &object).await?;
    let first = match first_rows(&mut chunks, &mut report).await? {
        FirstRows::Rows(first) => first,
        FirstRows::None { columns } => {
            // No rows, but a header must still be one this source can read.
            if !columns.is_empty() {
                check_layout(source, &object.uri, &columns, &mut report)?;
            }
            report.status = IngestStatus::Empty;
            return Ok(report);
        }
    };
    check_layout(source, &object.uri, &first.columns, &mut report)?;
    add_new_columns(workspace, &arrival.raw_id, &first.columns).await?;
    let Some(staged) = stage_rows(workspace, &arrival, first, &mut chunks, &mut report).await? else {
        return Ok(report);
    };
    if !staged.unreadable.is_empty() {
        report.rows_rejected = quarantine_unreadable(workspace, source, &arrival, &staged.unreadable).await?;
    }
    commit_raw(workspace, &arrival, staged.append, &mut report).await?;
    check_reconciled(&report)?;
    Ok(report)
}

/// The chunks of an object, read on a blocking thread while the one before is written.
type Chunks = tokio::sync::mpsc::Receiver<std::result::Result<RawRecords, ReadError>>;

/// Start reading `object` in chunks (NDJSON: after a first pass for its keys; Parquet: from a
/// local file, downloaded first when remote).
async fn open_chunks(source: &Source, object: &OpenedObject) -> Result<Chunks> {
    let format = format_of(&object.uri, source.format);
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    if object.size == 0 {
        return Ok(receiver);
    }
    let uri = object.uri.clone();
    let keys_input = match format {
        FileFormat::Ndjson => Some(Input::Stream(object.reader().await?)),
        _ => None,
    };
    let (input, copy) = match format {
        FileFormat::Parquet => {
            let copy = object.local_file(&cdplake_engine::memory::spill_dir()).await?;
            let file = std::fs::File::open(&copy.path).map_err(|e| JobError::Io {
                doing: format!("reading {uri} from"),
                path: copy.path.display().to_string(),
                source: e,
            })?;
            (Input::File(file), Some(copy))
        }
        _ => (Input::Stream(object.reader().await?), None),
    };
    tokio::task::spawn_blocking(move || {
        let _copy = copy;
        let keys = match keys_input.map(|input| ndjson_keys(&uri, input)).transpose() {
            Ok(keys) => keys,
            Err(e) => return drop(sender.blocking_send(Err(e))),
        };
        let mut reader = match RecordReader::open(&uri, input, format, keys) {
            Ok(reader) => reader,
            Err(e) => return drop(sender.blocking_send(Err(e))),
        };
        let mut first = true;
        loop {
            let chunk = match reader.next_chunk().transpose() {
                // A file of a header only still shows its columns, so that a wrong header is
                // refused even without rows.
                None if first => Some(Ok(header_only(&reader))),
                chunk => chunk,
            };
            first = false;
            let last = !matches!(chunk, Some(Ok(_)));
            if let Some(chunk) = chunk
                && sender.blocking_send(chunk).is_err()
            {
                return;
            }
            if last {
                return;
            }
        }
    });
    Ok(receiver)
}

/// An empty chunk with the file's columns.
fn header_only(reader: &RecordReader) -> RawRecords {
    RawRecords {
        columns: reader.columns().to_vec(),
        original_columns: reader.original_columns().to_vec(),
        rows: Vec::new(),
        unreadable: Vec::new(),
    }
}

/// The next chunk; a file that cannot be read is rejected whole, naming the file (and the row
/// and field when one value was at fault).
async fn next_chunk(chunks: &mut Chunks) -> Result<Option<RawRecords>> {
    match chunks.recv().await {
        None => Ok(None),
        Some(Ok(chunk)) => Ok(Some(chunk)),
        Some(Err(e)) => {
            let (file, reason) = file_and_reason(e);
            Err(JobError::Rejected { file, reason })
        }
    }
}

/// The start of a file: its first chunk with rows, or the columns of a file without data rows.
enum FirstRows {
    Rows(RawRecords),
    None { columns: Vec<String> },
}

/// The first chunk with rows (counted on the report).
async fn first_rows(chunks: &mut Chunks, report: &mut IngestReport) -> Result<FirstRows> {
    let mut columns = Vec::new();
    while let Some(chunk) = next_chunk(chunks).await? {
        report.rows_in += chunk.rows_in();
        if !chunk.columns.is_empty() && chunk.rows_in() > 0 {
            return Ok(FirstRows::Rows(chunk));
        }
        columns = chunk.columns;
    }
    Ok(FirstRows::None { columns })
}

/// A file without a required column is rejected whole, before anything is written; columns the
/// contract does not know are kept, with a warning.
fn check_layout(source: &Source, uri: &str, columns: &[String], report: &mut IngestReport) -> Result<()> {
    Contract::new(source, None)
        .layout(columns)
        .map_err(|reason| JobError::Rejected { file: uri.to_string(), reason })?;
    report.unknown_columns = unknown_columns(source, columns);
    for column in &report.unknown_columns {
        tracing::warn!(source = %source.name, uri, column, "unknown column: kept in raw, ignored by clean");
    }
    Ok(())
}

/// The object's rows written to data files of `raw.<source>` (not committed yet), and the rows
/// that could not be read. `None` (nothing to do) when a replay committed the object since.
struct Staged {
    append: StagedAppend,
    unreadable: Vec<UnreadableRow>,
}

/// Write every chunk, without the rows of erased persons, counting them on the report.
async fn stage_rows(
    workspace: &Workspace,
    arrival: &Arrival,
    first: RawRecords,
    chunks: &mut Chunks,
    report: &mut IngestReport,
) -> Result<Option<Staged>> {
    let lake = workspace.lake();
    let Arrival { raw_id, app, delivery } = arrival;
    // Check and append on one snapshot: a replay committed since makes the commit conflict.
    let table = lake.table(raw_id).await?;
    if applied_version(&table, &raw_id.to_string(), app).await?.is_some() {
        return Ok(None);
    }
    let suppressions = crate::privacy::Suppressions::load(workspace).await?;
    let mut staged = Staged { append: lake.stage_append(table, raw_id)?, unreadable: Vec::new() };
    let mut chunk = Some(first);
    while let Some(mut records) = chunk {
        report.rows_suppressed += drop_suppressed(&suppressions, &mut records);
        let batches = raw::raw_batches(&records, delivery)
            .map_err(|e| JobError::arrow(format!("{}: raw rows", delivery.uri), e))?;
        if let Err(e) = staged.append.write(batches).await {
            staged.append.abort();
            return Err(e.into());
        }
        staged.unreadable.append(&mut records.unreadable);
        chunk = next_chunk(chunks).await?;
        if let Some(next) = &chunk {
            report.rows_in += next.rows_in();
        }
    }
    Ok(Some(staged))
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
/// the store has none (local files; read as a stream, on a blocking thread).
async fn etag_of(object: &OpenedObject) -> Result<String> {
    if let Some(etag) = &object.etag {
        return Ok(etag.clone());
    }
    let mut reader = object.reader().await?;
    let uri = object.uri.clone();
    let digest = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            match reader.read(&mut buffer)? {
                0 => return Ok::<_, std::io::Error>(hasher.finalize()),
                n => hasher.update(&buffer[..n]),
            }
        }
    })
    .await
    .map_err(|e| JobError::Io { doing: "hashing".into(), path: uri.clone(), source: std::io::Error::other(e) })?
    .map_err(|e| JobError::Io { doing: "hashing".into(), path: object.uri.clone(), source: e })?;
    Ok(format!("sha256:{}", hex::encode(digest)))
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

/// Erased persons stay erased: drop the chunk's rows carrying an identifier of the suppression
/// list before anything is written. Returns how many rows were dropped.
fn drop_suppressed(suppressions: &crate::privacy::Suppressions, records: &mut RawRecords) -> u64 {
    if suppressions.is_empty() {
        return 0;
    }
    let before = records.rows.len() + records.unreadable.len();
    records.rows.retain(|(_, values)| !suppressions.row_matches(values.iter().map(|v| v.as_deref())));
    records.unreadable.retain(|u| !suppressions.matches(&u.text));
    (before - records.rows.len() - records.unreadable.len()) as u64
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

/// Commit the staged rows to `raw.<source>`, recording the object as ingested in the same
/// commit; the report says ingested when this run's commit wrote them.
async fn commit_raw(
    workspace: &Workspace,
    arrival: &Arrival,
    append: StagedAppend,
    report: &mut IngestReport,
) -> Result<()> {
    let lake = workspace.lake();
    let Arrival { raw_id, app, delivery } = arrival;
    let rows = append.rows();
    match append.commit(lake, once(app)).await {
        Ok(table) => {
            report.status = IngestStatus::Ingested;
            report.batch_id = Some(delivery.batch_id.clone());
            report.rows_written = rows;
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
