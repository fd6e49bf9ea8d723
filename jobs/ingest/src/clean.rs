//! `cdplake clean`: raw batches not yet cleaned → typed, normalised, deduplicated rows upserted
//! into `clean.<source>` by key; everything else into `clean._quarantine` with the reason.
//!
//! The watermark is per raw batch: the clean MERGE commits one Delta application transaction
//! per batch it applied, so the write and "this batch is done" are one commit, and a second
//! run (or a concurrent one) finds nothing to do.
//!
//! Rules, documented for users:
//! * the row with the latest `order_by` value (e.g. `updated_at`) wins, also across runs and
//!   when batches arrive out of order; ties go to the later ingest;
//! * within one run, rows with the same key collapse first: the losers are *duplicates* and
//!   are kept in the quarantine (`kind = 'duplicate'`), so nothing is lost and counts add up;
//! * sources without a key (Online Retail lines) use all the row's values as its identity:
//!   an exact repeat of a line is a duplicate, reported, not silently merged;
//! * CDC deletes remove the row; a delete of an unknown key changes nothing (counted);
//! * a row the contract accepts can still break a rule over two of its columns
//!   ([`cdplake_zones::row_rules`]: a `completed` transaction with a negative amount) and is
//!   quarantined with the reason;
//! * rows read = kept + duplicates + quarantined, checked by the job itself.

use std::collections::{BTreeMap, HashSet};

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use cdplake_engine::datafusion::execution::SendableRecordBatchStream;
use cdplake_engine::datafusion::prelude::{DataFrame, col, lit};
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::upsert::Upsert;
use cdplake_engine::{StagedAppend, TableId, TableSpec, applied_version, applied_versions};
use cdplake_zones::contract::{self, CleanRow, Contract, Lineage, RawLayout, Warning};
use cdplake_zones::quarantine::{Kind, QuarantinedRow, quarantine_batch, quarantine_table_spec};
use cdplake_zones::raw;
use cdplake_zones::row_rules::RowRule;
use cdplake_zones::{Dedupe, Source};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use cdplake_core::columns::{column, column_as};
use cdplake_core::stopwatch::Stopwatch;

use crate::ranking::{DuplicateOf, RankedRows, TypedStaging};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{QUARANTINE, app_ids, clean_table, raw_table};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CleanReport {
    pub source: String,
    /// Raw batches processed in this run.
    pub batches: usize,
    pub rows_read: u64,
    /// Valid rows after collapsing duplicates (applied to the clean table).
    pub kept: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// Rows dropped because they carry an erased person's identifier (the suppression list).
    pub suppressed: u64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Kept rows that changed nothing: older than the stored version, or deletes of unknown keys.
    pub unchanged: u64,
    /// Quarantined rows by `field: rule`.
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// Values kept as null because they could not be normalised, by `field: reason`.
    pub warnings: BTreeMap<String, u64>,
    pub clean_version: Option<u64>,
    /// Rebuilt from every raw batch (`clean --reprocess`) rather than the new batches only.
    pub reprocessed: bool,
}

impl cdplake_core::audit::JobReport for CleanReport {
    fn row_counts(&self) -> cdplake_core::audit::RowCounts {
        cdplake_core::audit::RowCounts { read: self.rows_read, written: self.inserted + self.updated + self.deleted }
    }
}

impl CleanReport {
    /// Every row of the batches read went to the quarantine: nothing usable came out, which is
    /// a contract to fix (a date format, a type), not a result.
    pub fn all_quarantined(&self) -> bool {
        self.rows_read > 0 && self.kept == 0 && self.quarantined > 0
    }
}

/// The clean table's contract: schema, catalog entry, and the table as loaded.
struct Target {
    clean_id: TableId,
    table: cdplake_engine::deltalake::DeltaTable,
}

async fn ensure_clean_table(workspace: &Workspace, source: &Source, contract: &Contract<'_>) -> Result<Target> {
    let clean_id = clean_table(source);
    let spec = TableSpec::new(clean_id.clone(), contract.clean_schema()).with_description(format!(
        "Clean {}: typed, normalised, PII hashed, one row per key. {}",
        source.name, source.description
    ));
    let key =
        if source.primary_key.is_empty() { vec![contract::ROW_KEY.to_string()] } else { source.primary_key.clone() };
    let meta = TableMeta::default().with_primary_key(key).with_pii_columns(contract.pii_columns());
    let (table, _) = workspace.catalog.ensure_table(&spec, &meta).await?;
    Ok(Target { clean_id, table })
}

/// The clean-stage quarantine rows of a run, staged: written as they are found, committed
/// before the clean MERGE, recorded under each batch's id, so a crash between the two commits
/// neither loses these rows nor writes them twice. Batches whose rows a crashed run wrote already
/// are skipped one by one: a batch ingested since then is pending beside them and its rows are
/// still to write.
struct QuarantineSink {
    append: StagedAppend,
    /// Batches whose quarantine rows are still to write.
    to_write: HashSet<String>,
    now: DateTime<Utc>,
}

impl QuarantineSink {
    async fn open(workspace: &Workspace, pending: &[String], now: DateTime<Utc>) -> Result<Self> {
        let (table, _) = workspace.catalog.ensure_table(&quarantine_table_spec(), &TableMeta::default()).await?;
        let app_ids: Vec<String> = pending.iter().map(|b| app_ids::cleaned_batch(b)).collect();
        let applied = applied_versions(&table, &QUARANTINE.to_string(), &app_ids).await?;
        let to_write =
            pending.iter().zip(&applied).filter(|(_, applied)| applied.is_none()).map(|(b, _)| b.clone()).collect();
        let append = workspace.lake().stage_append(table, &QUARANTINE.id())?;
        Ok(Self { append, to_write, now })
    }

    async fn write(&mut self, rows: Vec<QuarantinedRow>) -> Result<()> {
        let rows: Vec<QuarantinedRow> =
            rows.into_iter().filter(|row| self.to_write.contains(row.batch_id.as_str())).collect();
        if rows.is_empty() {
            return Ok(());
        }
        let batch = quarantine_batch(&rows, self.now).map_err(|e| JobError::arrow("quarantine rows", e))?;
        Ok(self.append.write(vec![batch]).await?)
    }

    /// Commit the rows written (nothing when there are none).
    async fn commit(self, workspace: &Workspace) -> Result<()> {
        if self.append.rows() == 0 {
            self.append.abort();
            return Ok(());
        }
        let txns = self.to_write.iter().map(|b| Transaction::new(app_ids::cleaned_batch(b), 1)).collect();
        let commit = CommitProperties::default().with_application_transactions(txns);
        self.append.commit(workspace.lake(), commit).await?;
        Ok(())
    }
}

/// Raw rows typed by the contract and ranked within their key, and the rows refused.
struct Typed {
    ranked: RankedRows,
    rejected: Vec<QuarantinedRow>,
}

/// Read the raw rows of `batches` as a stream, type them, and rank each key's versions; counts
/// go on the report, which must reconcile.
async fn type_batches(
    workspace: &Workspace,
    source: &Source,
    contract: &Contract<'_>,
    batches: &[String],
    report: &mut CleanReport,
) -> Result<Typed> {
    let rules = cdplake_zones::row_rules::row_rules(source);
    let suppressions = crate::privacy::Suppressions::load(workspace).await?;
    let checks = RowChecks { contract, rules: &rules, suppressions: &suppressions };
    let mut watch = Stopwatch::start("clean");
    let mut staging = TypedStaging::create()?;
    let mut rejected = Vec::new();
    let mut raw_rows = read_raw(workspace, &raw_table(source), batches).await?;
    while let Some(batch) = raw_rows.try_next().await.map_err(|e| JobError::query("clean: reading raw rows", e))? {
        let mut outcomes = Outcomes::default();
        apply_contract(&checks, &batch, &mut outcomes, report)?;
        let Outcomes { mut valid, quarantine, warnings } = outcomes;
        for w in warnings {
            *report.warnings.entry(format!("{}: {}", w.field, w.reason)).or_default() += 1;
        }
        rejected.extend(quarantine);
        if source.primary_key.is_empty() && source.dedupe == Dedupe::None {
            // Every line is a row of its own: its place in its file is part of its identity.
            for (row, lineage) in &mut valid {
                row.key = format!("{}\u{1f}{}\u{1f}{}", row.key, lineage.source_uri, lineage.source_row);
            }
        }
        staging.write(contract, &valid)?;
    }
    watch.lap(&format!("{}: raw rows typed and staged", source.name));
    let ranked = staging.rank(workspace.lake()).await?;
    watch.lap(&format!("{}: versions ranked", source.name));
    let counts = ranked.counts().await?;
    watch.lap(&format!("{}: counted", source.name));
    report.kept = counts.kept;
    report.duplicates = counts.duplicates;
    report.quarantined = rejected.len() as u64;
    if report.rows_read != report.kept + report.duplicates + report.quarantined + report.suppressed {
        return Err(JobError::Reconciliation {
            what: source.name.clone(),
            got: format!("{} rows read", report.rows_read),
            expected: format!(
                "{} kept + {} duplicates + {} quarantined + {} suppressed",
                report.kept, report.duplicates, report.quarantined, report.suppressed
            ),
        });
    }
    Ok(Typed { ranked, rejected })
}

/// The quarantine row of a duplicate: a row of a key that has a later version in this run.
fn duplicate_row(source: &Source, duplicate: &DuplicateOf) -> QuarantinedRow {
    let reason = if source.primary_key.is_empty() {
        format!(
            "repeats row {} of {} exactly (lines have no id; dedupe = \"none\" keeps repeats)",
            duplicate.winner_row, duplicate.winner_uri
        )
    } else {
        format!(
            "key {:?} has a later version in this run (row {} of {})",
            duplicate.key.replace('\u{1f}', ","),
            duplicate.winner_row,
            duplicate.winner_uri
        )
    };
    QuarantinedRow {
        source: source.name.clone(),
        stage: "clean",
        kind: Kind::Duplicate,
        batch_id: duplicate.batch_id.clone(),
        source_uri: duplicate.source_uri.clone(),
        source_row: duplicate.source_row,
        field: String::new(),
        rule: "duplicate".into(),
        reason,
        raw_values: String::new(),
    }
}

/// Clean every raw batch of `source` not cleaned yet.
pub async fn clean(workspace: &Workspace, source: &Source, now: DateTime<Utc>) -> Result<CleanReport> {
    let lake = workspace.lake();
    let mut report = CleanReport { source: source.name.clone(), ..Default::default() };
    let raw_id = raw_table(source);
    if !lake.table_exists(&raw_id).await? {
        return Ok(report);
    }
    lake.ensure_writable()?;
    let contract = Contract::new(source, cdplake_zones::normalize::pii_key_from_env());
    let Target { clean_id, table: clean_table } = ensure_clean_table(workspace, source, &contract).await?;
    let pending = cdplake_core::batches::pending_batches(
        workspace,
        &raw_id,
        &clean_table,
        &clean_id.to_string(),
        app_ids::cleaned_batch,
    )
    .await?;
    if pending.is_empty() {
        return Ok(report);
    }
    report.batches = pending.len();
    let Typed { ranked, rejected } = type_batches(workspace, source, &contract, &pending, &mut report).await?;
    let txns: Vec<Transaction> = pending.iter().map(|b| Transaction::new(app_ids::cleaned_batch(b), 1)).collect();
    let mut watch = Stopwatch::start("clean");
    write_quarantine(workspace, source, &pending, rejected, &ranked, now).await?;
    watch.lap(&format!("{}: quarantine written", source.name));

    let (version, metrics) = match ranked.winners().await? {
        Some(winners) if report.kept > 0 => merge(workspace, source, clean_table, &clean_id, winners, txns).await?,
        _ => {
            let commit = CommitProperties::default().with_application_transactions(txns);
            (lake.record_transactions(&clean_id, commit).await?.version(), None)
        }
    };
    watch.lap(&format!("{}: merged", source.name));
    report.clean_version = version;
    if let Some(m) = metrics {
        report.inserted = m.num_target_rows_inserted as u64;
        report.updated = m.num_target_rows_updated as u64;
        report.deleted = m.num_target_rows_deleted as u64;
    }
    report.unchanged = report.kept.saturating_sub(report.inserted + report.updated + report.deleted);
    Ok(report)
}

/// The run's quarantine rows (refused, then duplicates, streamed), committed before the clean
/// MERGE; see [`QuarantineSink`].
async fn write_quarantine(
    workspace: &Workspace,
    source: &Source,
    pending: &[String],
    rejected: Vec<QuarantinedRow>,
    ranked: &RankedRows,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut sink = QuarantineSink::open(workspace, pending, now).await?;
    sink.write(rejected).await?;
    if let Some(mut duplicates) = ranked.duplicates().await? {
        while let Some(batch) = duplicates.next().await? {
            sink.write(batch.iter().map(|d| duplicate_row(source, d)).collect()).await?;
        }
    }
    sink.commit(workspace).await
}

/// Every quarantine row of a run, in memory (`--reprocess`, which replaces them in one commit).
async fn all_quarantine_rows(
    source: &Source,
    mut rows: Vec<QuarantinedRow>,
    ranked: &RankedRows,
) -> Result<Vec<QuarantinedRow>> {
    if let Some(mut duplicates) = ranked.duplicates().await? {
        while let Some(batch) = duplicates.next().await? {
            rows.extend(batch.iter().map(|d| duplicate_row(source, d)));
        }
    }
    Ok(rows)
}

/// `cdplake clean --reprocess SOURCE`: rebuild `clean.<source>` and the source's quarantine rows
/// from every raw batch under the current contract (after `cdplake.toml` changed), so kept +
/// duplicates + quarantined count every raw row once. The quarantine rows are replaced first,
/// then the clean table in one commit that also bumps the source's generation; a stop between
/// the two is repaired by running the reprocess again. `cdplake identity` and `cdplake profiles`
/// read the source again afterwards.
pub async fn reprocess(workspace: &Workspace, source: &Source, now: DateTime<Utc>) -> Result<CleanReport> {
    let lake = workspace.lake();
    let mut report = CleanReport { source: source.name.clone(), ..Default::default() };
    let raw_id = raw_table(source);
    if !lake.table_exists(&raw_id).await? {
        return Err(JobError::not_found(
            format!("raw.{} does not exist", source.name),
            format!("ingest files first (`cdplake ingest --source {} FILE`)", source.name),
        ));
    }
    lake.ensure_writable()?;
    let contract = Contract::new(source, cdplake_zones::normalize::pii_key_from_env());
    let clean_id = clean_table(source);
    if lake.table_exists(&clean_id).await? && !same_schema(workspace, &clean_id, &contract).await? {
        // The contract's columns changed: the table is created again with the new schema.
        workspace.catalog.drop_table(&clean_id, true).await?;
    }
    let Target { clean_id, table } = ensure_clean_table(workspace, source, &contract).await?;
    let applied = applied_version(&table, &clean_id.to_string(), &app_ids::clean_generation(&source.name)).await?;
    let generation = applied.unwrap_or(0) + 1;
    let batches = cdplake_core::batches::batch_ids(workspace, &raw_id).await?;
    report.batches = batches.len();
    let Typed { ranked, rejected } = type_batches(workspace, source, &contract, &batches, &mut report).await?;
    let quarantine = all_quarantine_rows(source, rejected, &ranked).await?;

    // The source's clean-stage quarantine rows, replaced (rows ingest refused stay).
    workspace.catalog.ensure_table(&quarantine_table_spec(), &TableMeta::default()).await?;
    let rows = quarantine_batch(&quarantine, now).map_err(|e| JobError::arrow("quarantine rows", e))?;
    let predicate = format!("source = {} AND stage = 'clean'", cdplake_engine::sql::quote_literal(&source.name));
    lake.overwrite_partition(&QUARANTINE.id(), &predicate, vec![rows]).await?;

    let mut txns: Vec<Transaction> = batches.iter().map(|b| Transaction::new(app_ids::cleaned_batch(b), 1)).collect();
    txns.push(Transaction::new(app_ids::clean_generation(&source.name), generation));
    let commit = CommitProperties::default().with_application_transactions(txns);
    let upserts = match ranked.winners().await? {
        Some(winners) => {
            let query = |e| JobError::query("clean: the latest version of each key", e);
            let upserts = winners.filter(col(contract::OP).eq(lit("upsert"))).map_err(query)?;
            let inserted = upserts.clone().count().await.map_err(query)? as u64;
            report.deleted = report.kept - inserted;
            report.inserted = inserted;
            let columns: Vec<String> =
                upserts.schema().fields().iter().map(|f| f.name().clone()).filter(|n| n != contract::OP).collect();
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            Some(upserts.select_columns(&columns).map_err(query)?)
        }
        None => None,
    };
    let table = lake.table(&clean_id).await?;
    let upserts = match upserts {
        Some(rows) => rows,
        None => lake.frame_of_batches(cdplake_engine::lake::table_arrow_schema(&table, &clean_id)?, Vec::new())?,
    };
    let table = lake.overwrite_frame(table, &clean_id, upserts, None, commit).await?;
    report.clean_version = table.version();
    report.reprocessed = true;
    Ok(report)
}

/// Whether the clean table's columns are the contract's (names and types).
async fn same_schema(workspace: &Workspace, clean_id: &TableId, contract: &Contract<'_>) -> Result<bool> {
    let table = workspace.lake().table(clean_id).await?;
    let stored = cdplake_engine::lake::table_arrow_schema(&table, clean_id)?;
    let wanted = contract.clean_schema();
    let shape = |s: &cdplake_engine::arrow::datatypes::Schema| -> Vec<(String, String)> {
        s.fields().iter().map(|f| (f.name().clone(), f.data_type().to_string())).collect()
    };
    Ok(shape(&stored) == shape(&wanted))
}

/// The report as a few lines for people.
pub fn describe_report(r: &CleanReport) -> String {
    let mut text = format!(
        "clean.{}: {} batches, {} rows read = {} kept + {} duplicates + {} quarantined{}; \
         {} inserted, {} updated, {} deleted, {} unchanged",
        r.source,
        r.batches,
        r.rows_read,
        r.kept,
        r.duplicates,
        r.quarantined,
        if r.suppressed > 0 { format!(" + {} suppressed (erased persons)", r.suppressed) } else { String::new() },
        r.inserted,
        r.updated,
        r.deleted,
        r.unchanged
    );
    for (reason, n) in &r.quarantined_by_reason {
        text.push_str(&format!("\n  quarantined {n}: {reason}"));
    }
    for (reason, n) in &r.warnings {
        text.push_str(&format!("\n  kept as null {n}: {reason}"));
    }
    text
}

/// The raw rows of the pending batches, streamed (in no particular order: the rank decides).
async fn read_raw(workspace: &Workspace, raw_id: &TableId, pending: &[String]) -> Result<SendableRecordBatchStream> {
    let filter = col(raw::BATCH_ID).in_list(pending.iter().map(|b| lit(b.clone())).collect(), false);
    let query = |e| JobError::query("clean: reading raw rows", e);
    let df = workspace.lake().read(raw_id).await?.filter(filter).map_err(query)?;
    df.execute_stream().await.map_err(query)
}

/// What typing raw rows gives: the rows kept with their lineage, the rows refused, and the values
/// kept as null.
#[derive(Default)]
struct Outcomes {
    valid: Vec<(CleanRow, Lineage)>,
    quarantine: Vec<QuarantinedRow>,
    warnings: Vec<Warning>,
}

/// What a raw row is typed and checked by.
struct RowChecks<'a, 's> {
    contract: &'a Contract<'s>,
    rules: &'a [RowRule],
    suppressions: &'a crate::privacy::Suppressions,
}

impl RowChecks<'_, '_> {
    /// The row typed by the contract and checked by the rules over several columns.
    fn type_row(
        &self,
        layout: &std::result::Result<RawLayout, String>,
        values: &[Option<&str>],
        warnings: &mut Vec<Warning>,
    ) -> std::result::Result<CleanRow, contract::Rejection> {
        let contract = self.contract;
        match layout {
            Ok(layout) => contract.apply(layout, values, warnings),
            Err(reason) => {
                Err(contract::Rejection { field: String::new(), rule: "missing_column", reason: reason.clone() })
            }
        }
        .and_then(|row| self.rules.iter().try_for_each(|rule| rule.check(contract, &row)).map(|()| row))
    }
}

/// A raw batch's columns: its data columns as strings with their names, and its lineage.
struct RawColumns {
    names: Vec<String>,
    data: Vec<StringArray>,
    uris: StringArray,
    batch_ids: StringArray,
    rows: Int64Array,
    ingested: TimestampMicrosecondArray,
}

impl RawColumns {
    fn read(batch: &RecordBatch) -> Result<Self> {
        let mut names = Vec::new();
        let mut data = Vec::new();
        for (field, values) in batch.schema().fields().iter().zip(batch.columns()) {
            if !raw::is_lineage(field.name()) {
                names.push(field.name().clone());
                let values = cast(values, &DataType::Utf8).map_err(|e| JobError::arrow("raw column", e))?;
                data.push(values.as_string::<i32>().clone());
            }
        }
        Ok(RawColumns {
            names,
            data,
            uris: column_as(batch, "the raw table", raw::SOURCE_URI, &DataType::Utf8)?.as_string::<i32>().clone(),
            batch_ids: column_as(batch, "the raw table", raw::BATCH_ID, &DataType::Utf8)?.as_string::<i32>().clone(),
            rows: column_as(batch, "the raw table", raw::SOURCE_ROW, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone(),
            ingested: column(batch, "the raw table", raw::INGESTED_AT)?
                .as_primitive::<TimestampMicrosecondType>()
                .clone(),
        })
    }

    /// Row `r`'s data values, into `values` (one per data column).
    fn values_of<'a>(&'a self, r: usize, values: &mut [Option<&'a str>]) {
        for (v, column) in values.iter_mut().zip(&self.data) {
            *v = (!column.is_null(r)).then(|| column.value(r));
        }
    }

    fn lineage(&self, r: usize) -> Lineage {
        Lineage {
            source_uri: self.uris.value(r).to_string(),
            source_row: self.rows.value(r),
            batch_id: self.batch_ids.value(r).to_string(),
            ingested_at: self.ingested.value(r),
        }
    }
}

/// Type and check the rows of one raw batch, counting them on the report; rows of erased
/// persons are dropped.
fn apply_contract(
    checks: &RowChecks<'_, '_>,
    batch: &RecordBatch,
    outcomes: &mut Outcomes,
    report: &mut CleanReport,
) -> Result<()> {
    let columns = RawColumns::read(batch)?;
    // Only the columns this batch's rows actually have values in count for the layout: the raw
    // table holds the union of every file's columns.
    let layout = checks.contract.layout(&columns.names);
    let mut values: Vec<Option<&str>> = vec![None; columns.data.len()];
    for r in 0..batch.num_rows() {
        report.rows_read += 1;
        columns.values_of(r, &mut values);
        if checks.suppressions.row_matches(values.iter().copied()) {
            report.suppressed += 1;
            continue;
        }
        let lineage = columns.lineage(r);
        match checks.type_row(&layout, &values, &mut outcomes.warnings) {
            Ok(row) => outcomes.valid.push((row, lineage)),
            Err(rejection) => {
                *report.quarantined_by_reason.entry(format!("{}: {}", rejection.field, rejection.rule)).or_default() +=
                    1;
                let source = checks.contract.source();
                outcomes.quarantine.push(rejected_row(source, &columns.names, &values, lineage, rejection));
            }
        }
    }
    Ok(())
}

/// The quarantine row of a raw row the contract or a rule refused, with its values by column.
fn rejected_row(
    source: &Source,
    names: &[String],
    values: &[Option<&str>],
    lineage: Lineage,
    rejection: contract::Rejection,
) -> QuarantinedRow {
    let raw_values: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(values)
        .filter_map(|(n, v)| v.map(|v| (n.clone(), serde_json::Value::String(v.to_string()))))
        .collect();
    QuarantinedRow {
        source: source.name.clone(),
        stage: "clean",
        kind: Kind::Rejected,
        batch_id: lineage.batch_id,
        source_uri: lineage.source_uri.clone(),
        source_row: lineage.source_row,
        field: rejection.field.clone(),
        rule: rejection.rule.into(),
        reason: format!(
            "{} row {}, field {}: {}",
            lineage.source_uri, lineage.source_row, rejection.field, rejection.reason
        ),
        raw_values: serde_json::Value::Object(raw_values).to_string(),
    }
}

/// Upsert the kept rows by key (latest `order_by` wins), apply deletes, and record the batches
/// as done, in one commit (the watermark alone when no row changed). The rows are a plan the
/// MERGE streams.
async fn merge(
    workspace: &Workspace,
    source: &Source,
    clean_table: cdplake_engine::deltalake::DeltaTable,
    clean_id: &TableId,
    winners: DataFrame,
    txns: Vec<Transaction>,
) -> Result<(Option<u64>, Option<cdplake_engine::deltalake::operations::merge::MergeMetrics>)> {
    let columns: Vec<String> =
        winners.schema().fields().iter().map(|f| f.name().clone()).filter(|n| n != contract::OP).collect();
    let newer = match &source.order_by {
        Some(order) => format!("(target.{order} IS NULL OR source.{order} >= target.{order})"),
        None => "TRUE".to_string(),
    };
    let op = contract::OP;
    // On the snapshot the pending batches were read from: a concurrent clean of the same
    // batches committed since makes this commit conflict instead of applying them twice.
    let outcome = workspace
        .lake()
        .upsert_frame(clean_id, winners)
        .on_snapshot(clean_table)
        .on_columns(&[contract::ROW_KEY])
        .with_transactions(txns)
        .delete(Some(format!("source.{op} = 'delete' AND {newer}")))
        .update(Some(format!("source.{op} = 'upsert' AND {newer}")), Upsert::from_source(&columns))
        .insert(Some(format!("source.{op} = 'upsert'")), Upsert::from_source(&columns))
        .await?;
    Ok((outcome.table.version(), outcome.metrics))
}
