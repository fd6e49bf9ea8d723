//! Typing a clean run's raw rows on every core: the raw rows are read as one stream per core,
//! and each stream is typed by the contract, checked by the row rules and the suppression list,
//! and staged by a worker of its own. Typing (phones above all) is most of a clean run's work.

use std::collections::BTreeMap;
use std::sync::Arc;

use cdplake_engine::TableId;
use cdplake_engine::arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use cdplake_engine::datafusion::execution::SendableRecordBatchStream;
use cdplake_engine::datafusion::logical_expr::Partitioning;
use cdplake_engine::datafusion::prelude::{col, lit};
use cdplake_zones::contract::{self, CleanRow, Contract, Lineage, RawLayout, Warning};
use cdplake_zones::quarantine::{Kind, QuarantinedRow};
use cdplake_zones::raw;
use cdplake_zones::row_rules::RowRule;
use cdplake_zones::{Dedupe, Source};
use futures::TryStreamExt;

use cdplake_core::columns::{column, column_as};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;

use crate::privacy::Suppressions;
use crate::ranking::{StagingPart, TypedStaging};

/// The raw rows of the pending batches as one stream per core (in no particular order: the
/// rank decides).
pub(crate) async fn read_raw(
    workspace: &Workspace,
    raw_id: &TableId,
    pending: &[String],
) -> Result<Vec<SendableRecordBatchStream>> {
    let filter = col(raw::BATCH_ID).in_list(pending.iter().map(|b| lit(b.clone())).collect(), false);
    let query = |e| JobError::query("clean: reading raw rows", e);
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let df = workspace.lake().read(raw_id).await?.filter(filter).map_err(query)?;
    let df = df.repartition(Partitioning::RoundRobinBatch(cores)).map_err(query)?;
    df.execute_stream_partitioned().await.map_err(query)
}

/// Counts of typing, for the clean report.
#[derive(Debug, Default)]
pub(crate) struct TypingCounts {
    pub rows_read: u64,
    /// Rows of erased persons, dropped.
    pub suppressed: u64,
    /// Refused rows by `field: rule`.
    pub quarantined_by_reason: BTreeMap<String, u64>,
    /// Values kept as null by `field: reason`.
    pub warnings: BTreeMap<String, u64>,
}

impl TypingCounts {
    pub(crate) fn add(&mut self, other: TypingCounts) {
        self.rows_read += other.rows_read;
        self.suppressed += other.suppressed;
        for (reason, n) in other.quarantined_by_reason {
            *self.quarantined_by_reason.entry(reason).or_default() += n;
        }
        for (reason, n) in other.warnings {
            *self.warnings.entry(reason).or_default() += n;
        }
    }
}

/// What one worker did: its counts and the rows it refused (the rows it kept are staged).
#[derive(Default)]
pub(crate) struct PartTyped {
    pub counts: TypingCounts,
    pub rejected: Vec<QuarantinedRow>,
    /// Rows staged for ranking.
    pub staged: u64,
}

impl PartTyped {
    fn add(&mut self, other: PartTyped) {
        self.counts.add(other.counts);
        self.rejected.extend(other.rejected);
        self.staged += other.staged;
    }
}

/// Type each of `streams` on a worker of its own (a task of the runtime, so on every core),
/// staging the valid rows in a file per worker; what they did, summed in stream order, so that a
/// run's refused rows come in the same order each time. A failed worker fails the run (the
/// others are stopped with it).
pub(crate) async fn type_on_every_core(
    job: TypingJob,
    streams: Vec<SendableRecordBatchStream>,
    staging: &TypedStaging,
) -> Result<PartTyped> {
    let mut workers = tokio::task::JoinSet::new();
    for (n, raw) in streams.into_iter().enumerate() {
        let (job, part) = (job.clone(), staging.part(n));
        workers.spawn(async move { (n, job.run(raw, part).await) });
    }
    let mut parts = Vec::new();
    while let Some(done) = workers.join_next().await {
        let (n, typed) = done.map_err(|e| JobError::service("clean: a typing worker", e))?;
        parts.push((n, typed?));
    }
    parts.sort_by_key(|(n, _)| *n);
    let mut all = PartTyped::default();
    for (_, part) in parts {
        all.add(part);
    }
    Ok(all)
}

/// What a worker needs to type raw rows, owned so that it can run on any thread.
#[derive(Clone)]
pub(crate) struct TypingJob {
    pub source: Arc<Source>,
    pub pii_key: Option<Vec<u8>>,
    pub suppressions: Arc<Suppressions>,
}

impl TypingJob {
    /// Type every raw batch of `raw` and stage the valid rows in `part`.
    pub(crate) async fn run(self, mut raw: SendableRecordBatchStream, mut part: StagingPart) -> Result<PartTyped> {
        let contract = Contract::new(&self.source, self.pii_key.clone());
        let rules = cdplake_zones::row_rules::row_rules(&self.source);
        let checks = RowChecks { contract: &contract, rules: &rules, suppressions: &self.suppressions };
        let keyless_lines = self.source.primary_key.is_empty() && self.source.dedupe == Dedupe::None;
        let mut typed = PartTyped::default();
        while let Some(batch) = raw.try_next().await.map_err(|e| JobError::query("clean: reading raw rows", e))? {
            let mut outcomes = Outcomes::default();
            apply_contract(&checks, &batch, &mut outcomes, &mut typed.counts)?;
            let Outcomes { mut valid, quarantine, warnings } = outcomes;
            for w in warnings {
                *typed.counts.warnings.entry(format!("{}: {}", w.field, w.reason)).or_default() += 1;
            }
            typed.rejected.extend(quarantine);
            if keyless_lines {
                // Every line is a row of its own: its place in its file is part of its identity.
                for (row, lineage) in &mut valid {
                    row.key = format!("{}\u{1f}{}\u{1f}{}", row.key, lineage.source_uri, lineage.source_row);
                }
            }
            part.write(&contract, &valid)?;
        }
        typed.staged = part.close()?;
        Ok(typed)
    }
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
    report: &mut TypingCounts,
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
