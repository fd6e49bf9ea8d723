//! Data-quality gates (seed 000's three rules): checked on a job's candidate output before it
//! commits. A failed rule blocks the publish unless the job is forced; every result goes to
//! `_quality.results`.

use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_core::config::Check;
use cdplake_engine::arrow::array::{Array, AsArray, BooleanArray, Float64Array, RecordBatch};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::sql::{quote_ident, quote_literal};
use cdplake_engine::{SqlSession, TableId, TableSpec, timestamp_type};
use chrono::{DateTime, Utc};

use cdplake_core::columns::{micros, strings};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{ERASURES, MERGE_HISTORY, QUALITY_RESULTS};

/// One rule's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct QualityResult {
    pub table: String,
    pub rule: String,
    pub value: f64,
    pub threshold: f64,
    pub passed: bool,
}

pub fn results_spec() -> TableSpec {
    TableSpec::new(
        QUALITY_RESULTS.id(),
        Arc::new(Schema::new(vec![
            Field::new("table", DataType::Utf8, false),
            Field::new("rule", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
            Field::new("threshold", DataType::Float64, false),
            Field::new("passed", DataType::Boolean, false),
            Field::new("job", DataType::Utf8, false),
            Field::new("at", timestamp_type(), false),
        ])),
    )
    .with_description("Every data-quality rule checked before a job published: value, threshold, passed.")
}

/// Check the rules of `table` on `candidate` (a table name registered in `session`).
pub async fn check(
    workspace: &Workspace,
    session: &SqlSession,
    table: &TableId,
    candidate: &str,
) -> Result<Vec<QualityResult>> {
    let label = table.to_string();
    let mut results = Vec::new();
    for rule in workspace.config.quality.rules.iter().filter(|r| r.table == label) {
        let filter = rule.filter.as_deref().map(|f| format!(" WHERE {f}")).unwrap_or_default();
        let column = || {
            rule.column.as_deref().map(quote_ident).ok_or_else(|| {
                JobError::bad_input(format!("quality rule {} on {label}", rule.name()), "needs a column")
            })
        };
        // For row counts the value is the row count and the threshold the minimum it had to
        // reach (`threshold` × the trailing average), so the history averages row counts.
        let (value, threshold) = match rule.check {
            Check::RowCountRatio => {
                let rows =
                    scalar(session, &format!("SELECT CAST(count(*) AS DOUBLE) FROM {candidate}{filter}")).await?;
                let average = trailing_average(workspace, session, &label, &rule.name(), rule.window).await?;
                let departed =
                    if rule.counts_departed_persons() { departed_persons(workspace, session).await? } else { 0.0 };
                row_count_gate(rows.unwrap_or(0.0), average, departed, rule.threshold)
            }
            Check::NullRate => {
                let c = column()?;
                let sql = format!("SELECT avg(CASE WHEN {c} IS NULL THEN 1.0 ELSE 0.0 END) FROM {candidate}{filter}");
                (scalar(session, &sql).await?.unwrap_or(0.0), rule.threshold)
            }
            Check::Unique => {
                let c = column()?;
                let sql = format!("SELECT CAST(count(*) - count(DISTINCT {c}) AS DOUBLE) FROM {candidate}{filter}");
                (scalar(session, &sql).await?.unwrap_or(0.0), rule.threshold)
            }
        };
        let passed = match rule.check {
            Check::RowCountRatio => value >= threshold,
            Check::NullRate | Check::Unique => value <= threshold,
        };
        results.push(QualityResult { table: label.clone(), rule: rule.name(), value, threshold, passed });
    }
    Ok(results)
}

/// Persons that have left the profiles so far on purpose: one_ids absorbed by a merge or retired
/// because every identifier they had became a hub (`curated.id_merge_history`; a hub found
/// after a burst of concurrent runs published the person), and persons erased (`_audit.erasures`,
/// where one was found).
/// Cumulative, so that a run's recorded count stays comparable with every later run whatever
/// their clocks say. Approximate in two ways, both small beside the rule's margin: a merge of two
/// persons never published counts, and erasing a person formed by k merges erases those k rows
/// of the merge history with them.
async fn departed_persons(workspace: &Workspace, session: &SqlSession) -> Result<f64> {
    let mut departed = 0.0;
    let ledgers =
        [(MERGE_HISTORY.id(), " WHERE action IN ('merge', 'retire')"), (ERASURES.id(), " WHERE identifiers > 0")];
    for (ledger, filter) in ledgers {
        let Some(table) = workspace.lake().table_if_exists(&ledger).await? else { continue };
        session.register_loaded(ledger.zone(), ledger.name(), &table).await?;
        let sql = format!("SELECT CAST(count(*) AS DOUBLE) FROM {}.{}{filter}", ledger.zone(), ledger.name());
        departed += scalar(session, &sql).await?.unwrap_or(0.0);
    }
    Ok(departed)
}

/// `(value, threshold)` of a row-count rule. A person table counts its departed persons as still
/// there: the recorded value is `rows + departed`, and each earlier run's value, less the persons
/// that departed since (today's `departed` less its own), is what that run's rows would be now.
/// So `rows ≥ ratio × (average − departed)`, written as `value ≥ threshold`. For other tables
/// `departed` is 0 and this is `rows ≥ ratio × average`.
fn row_count_gate(rows: f64, average: Option<f64>, departed: f64, ratio: f64) -> (f64, f64) {
    let baseline = (average.unwrap_or(0.0) - departed).max(0.0);
    (rows + departed, ratio * baseline + departed)
}

/// Average value of the last `window` passed results of a row-count rule.
///
/// Results are appended a file per check, so the table gains a file per job run. The newest
/// `window` files that may hold the table's results (by their statistics) bound the read to
/// results since the oldest of them: when that read finds `window` results, they are the newest
/// ones; otherwise (failed results, other rules) every file is read.
async fn trailing_average(
    workspace: &Workspace,
    session: &SqlSession,
    table: &str,
    rule: &str,
    window: usize,
) -> Result<Option<f64>> {
    let Some(results) = workspace.lake().table_if_exists(&QUALITY_RESULTS.id()).await? else {
        return Ok(None);
    };
    session.register_loaded(QUALITY_RESULTS.id().zone(), QUALITY_RESULTS.id().name(), &results).await?;
    let newest = |since: &str| {
        format!(
            "SELECT CAST(count(*) AS DOUBLE) AS n, avg(value) AS average FROM (SELECT value FROM {QUALITY_RESULTS} \
             WHERE \"table\" = {} AND rule = {} AND passed{since} ORDER BY at DESC LIMIT {window})",
            quote_literal(table),
            quote_literal(rule)
        )
    };
    if let Some(since) = newest_files_since(&results, table, window) {
        let bounded = newest(&format!(" AND at >= TIMESTAMP {}", quote_literal(&since)));
        match count_and_average(session, &bounded).await {
            Ok((n, average)) if n as usize >= window => return Ok(average),
            Ok(_) => {}
            Err(e) => tracing::info!(error = %e, "reading the newest quality results failed: reading all"),
        }
    }
    Ok(count_and_average(session, &newest("")).await?.1)
}

/// (rows, average) of a [`trailing_average`] query.
async fn count_and_average(session: &SqlSession, sql: &str) -> Result<(f64, Option<f64>)> {
    let rows = session.rows(sql).await?;
    let Some(batch) = rows.iter().find(|b| b.num_rows() > 0) else { return Ok((0.0, None)) };
    let column = |i: usize| -> Result<Option<f64>> {
        let values = cdplake_engine::arrow::compute::cast(batch.column(i), &DataType::Float64)
            .map_err(|e| JobError::arrow("quality results", e))?;
        let values = values.as_primitive::<cdplake_engine::arrow::datatypes::Float64Type>();
        Ok(values.is_valid(0).then(|| values.value(0)))
    };
    Ok((column(0)?.unwrap_or(0.0), column(1)?))
}

/// The earliest `at` (RFC 3339) of the newest `window` files whose statistics say they may hold
/// results of `table`; None when there are fewer such files or a file has no statistics.
fn newest_files_since(results: &DeltaTable, table: &str, window: usize) -> Option<String> {
    let snapshot = results.snapshot().ok()?;
    let instant = |value: &serde_json::Value| DateTime::parse_from_rfc3339(value.as_str()?).ok();
    // (newest, earliest) result of each file.
    let mut files = Vec::new();
    for file in snapshot.log_data().iter() {
        let stats: serde_json::Value = serde_json::from_str(&file.stats()?).ok()?;
        let (min, max) = (&stats["minValues"], &stats["maxValues"]);
        let holds = min["table"].as_str()? <= table && table <= max["table"].as_str()?;
        if holds {
            files.push((instant(&max["at"])?, instant(&min["at"])?));
        }
    }
    if files.len() < window {
        return None;
    }
    files.sort_by(|a, b| b.0.cmp(&a.0));
    let since = files.into_iter().take(window).map(|(_, earliest)| earliest).min()?;
    Some(since.with_timezone(&Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

async fn scalar(session: &SqlSession, sql: &str) -> Result<Option<f64>> {
    Ok(session.first_f64(sql).await?)
}

/// Append results to `_quality.results`.
pub async fn record(workspace: &Workspace, results: &[QualityResult], job: &str, now: DateTime<Utc>) -> Result<()> {
    if results.is_empty() {
        return Ok(());
    }
    let spec = results_spec();
    workspace.catalog.ensure_table(&spec, &TableMeta::default()).await?;
    let batch = RecordBatch::try_new(
        spec.normalized_schema()?,
        vec![
            strings(results.iter().map(|r| r.table.as_str())),
            strings(results.iter().map(|r| r.rule.as_str())),
            Arc::new(Float64Array::from_iter_values(results.iter().map(|r| r.value))),
            Arc::new(Float64Array::from_iter_values(results.iter().map(|r| r.threshold))),
            Arc::new(BooleanArray::from_iter(results.iter().map(|r| Some(r.passed)))),
            strings(results.iter().map(|_| job)),
            micros(results.iter().map(|_| now.timestamp_micros())),
        ],
    )
    .map_err(|e| JobError::arrow("quality results", e))?;
    workspace.lake().append(&spec.id, vec![batch]).await?;
    Ok(())
}

/// The failed results as lines for people.
pub fn describe_failures(results: &[QualityResult]) -> String {
    results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{} {}: {:.4} (threshold {})", r.table, r.rule, r.value, r.threshold))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::row_count_gate;
    use cdplake_core::config::{QualityConfig, QualityRule};

    #[test]
    fn only_an_unfiltered_row_count_of_the_profiles_counts_departed_persons() {
        let default = QualityConfig::default().rules.remove(0);
        assert!(default.counts_departed_persons());
        assert_eq!(default.name(), "row_count_ratio(persons)");
        let filtered = QualityRule { filter: Some("customer_id IS NOT NULL".into()), ..default.clone() };
        assert!(!filtered.counts_departed_persons());
        assert_eq!(filtered.name(), "row_count_ratio");
        let events = QualityRule { table: "curated.user_events".into(), ..default };
        assert!(!events.counts_departed_persons());
    }

    fn passes(gate: (f64, f64)) -> bool {
        gate.0 >= gate.1
    }

    #[test]
    fn persons_merged_away_are_not_a_loss_but_lost_rows_still_are() {
        // Seven runs published 100 persons with none departed; 30 of them were then merged into
        // others: 70 rows with 30 departed is everyone still there.
        assert!(passes(row_count_gate(70.0, Some(100.0), 30.0, 0.8)));
        assert_eq!(row_count_gate(70.0, Some(100.0), 30.0, 0.8), (100.0, 86.0));
        // The same 70 rows with nobody departed lost 30% of the persons.
        assert!(!passes(row_count_gate(70.0, Some(100.0), 0.0, 0.8)));
        // Earlier runs recorded their own departed count: 100 rows + 30 departed then, 10 more
        // merged since. 90 rows are everyone; 60 rows lost a third of them.
        assert!(passes(row_count_gate(90.0, Some(130.0), 40.0, 0.8)));
        assert!(!passes(row_count_gate(60.0, Some(130.0), 40.0, 0.8)));
        // The first run has no history to compare with.
        assert!(passes(row_count_gate(5.0, None, 0.0, 0.8)));
    }
}
