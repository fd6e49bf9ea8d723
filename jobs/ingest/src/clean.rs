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
use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::datafusion::prelude::{DataFrame, col, lit};
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::upsert::Upsert;
use cdplake_engine::{StagedAppend, TableId, TableSpec, applied_version, applied_versions};
use cdplake_zones::Source;
use cdplake_zones::contract::{self, Contract};
use cdplake_zones::quarantine::{Kind, QuarantinedRow, quarantine_batch, quarantine_table_spec};
use chrono::{DateTime, Utc};

use cdplake_core::stopwatch::Stopwatch;

use crate::ranking::{DuplicateOf, RankedRows, TypedStaging};
use crate::typing::{PartTyped, TypingJob, read_raw, type_on_every_core};
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
    /// Valid rows that are deletes, of any rank.
    deletes: u64,
}

/// Read the raw rows of `batches`, type them on every core, and rank each key's versions;
/// counts go on the report, which must reconcile.
async fn type_batches(
    workspace: &Workspace,
    source: &Source,
    contract: &Contract<'_>,
    batches: &[String],
    report: &mut CleanReport,
) -> Result<Typed> {
    let job = TypingJob {
        source: Arc::new(source.clone()),
        pii_key: contract.pii_key().map(<[u8]>::to_vec),
        suppressions: Arc::new(crate::privacy::Suppressions::load(workspace).await?),
    };
    let mut watch = Stopwatch::start("clean");
    let staging = TypedStaging::create()?;
    let streams = read_raw(workspace, &raw_table(source), batches).await?;
    let PartTyped { counts, rejected, staged } = type_on_every_core(job, streams, &staging).await?;
    report.rows_read = counts.rows_read;
    report.suppressed = counts.suppressed;
    report.quarantined_by_reason = counts.quarantined_by_reason;
    report.warnings = counts.warnings;
    watch.lap(&format!("{}: raw rows typed and staged", source.name));
    let ranked = staging.rank(workspace.lake(), staged).await?;
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
    Ok(Typed { ranked, rejected, deletes: counts.deletes })
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
    let Typed { ranked, rejected, deletes: typed_deletes } =
        type_batches(workspace, source, &contract, &pending, &mut report).await?;
    let txns: Vec<Transaction> = pending.iter().map(|b| Transaction::new(app_ids::cleaned_batch(b), 1)).collect();
    let mut watch = Stopwatch::start("clean");
    write_quarantine(workspace, source, &pending, rejected, &ranked, now).await?;
    watch.lap(&format!("{}: quarantine written", source.name));

    let (version, metrics) = match ranked.winners().await? {
        Some(winners) if report.kept > 0 && is_empty(&clean_table, &clean_id)? => {
            // Nothing to merge with: the upserts are appended (a MERGE would join every row
            // with an empty table and write the same files), deletes change nothing.
            let Upserts { rows, count } = upserts_of(winners, report.kept, typed_deletes).await?;
            report.inserted = count;
            let commit = CommitProperties::default().with_application_transactions(txns);
            (lake.append_frame(clean_table, &clean_id, rows, commit).await?.version(), None)
        }
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
    let Typed { ranked, rejected, deletes: typed_deletes } =
        type_batches(workspace, source, &contract, &batches, &mut report).await?;
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
            let Upserts { rows, count } = upserts_of(winners, report.kept, typed_deletes).await?;
            report.deleted = report.kept - count;
            report.inserted = count;
            Some(rows)
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

/// The winners that are upserts, without the operation column, and how many there are.
struct Upserts {
    rows: DataFrame,
    count: u64,
}

/// `kept` are the winners; when no staged row is a delete, they are all upserts and are not
/// counted again (that would rank them twice).
async fn upserts_of(winners: DataFrame, kept: u64, deletes: u64) -> Result<Upserts> {
    let query = |e| JobError::query("clean: the latest version of each key", e);
    let upserts = winners.filter(col(contract::OP).eq(lit("upsert"))).map_err(query)?;
    let count = if deletes == 0 { kept } else { upserts.clone().count().await.map_err(query)? as u64 };
    let columns: Vec<String> =
        upserts.schema().fields().iter().map(|f| f.name().clone()).filter(|n| n != contract::OP).collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    Ok(Upserts { rows: upserts.select_columns(&columns).map_err(query)?, count })
}

/// Whether a loaded table holds no data file (a first clean).
fn is_empty(table: &cdplake_engine::deltalake::DeltaTable, id: &TableId) -> Result<bool> {
    let snapshot = table.snapshot().map_err(|e| cdplake_engine::EngineError::delta(id, "reading the snapshot", e))?;
    Ok(snapshot.log_data().iter().next().is_none())
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
