//! Which batches of an upstream table a job has not applied yet.
//!
//! Jobs record each batch they apply as a Delta application transaction in the commit of their
//! output (see `cdplake_engine::applied_version`); this lists the upstream batch ids (the
//! `_batch_id` column raw and clean tables share) whose transaction the output lacks.

use std::collections::HashMap;

use cdplake_engine::arrow::array::AsArray;
use cdplake_engine::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use cdplake_engine::datafusion::functions_aggregate::expr_fn::min;
use cdplake_engine::datafusion::prelude::col;
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::{EngineError, TableId, applied_version, applied_versions};
use cdplake_zones::Source;
use cdplake_zones::raw::{BATCH_ID, INGESTED_AT};
use cdplake_zones::tables::{app_ids, clean_table};

use crate::columns::column_as;
use crate::error::{JobError, Result};
use crate::workspace::Workspace;

/// Batch ids of `upstream` not recorded on `output` under `app_id(batch)`, oldest ingest first.
pub async fn pending_batches(
    workspace: &Workspace,
    upstream: &TableId,
    output: &DeltaTable,
    output_label: &str,
    app_id: impl Fn(&str) -> String,
) -> Result<Vec<String>> {
    let ids = batch_ids(workspace, upstream).await?;
    let app_ids: Vec<String> = ids.iter().map(|id| app_id(id)).collect();
    let applied = applied_versions(output, output_label, &app_ids).await?;
    Ok(ids.into_iter().zip(applied).filter(|(_, applied)| applied.is_none()).map(|(id, _)| id).collect())
}

/// Every batch id of `upstream`, oldest ingest first.
///
/// A file that holds one batch names it in its statistics (`_batch_id` min = max; a truncated
/// string statistic never has min = max, the max is rounded up), so only files holding several
/// batches (compacted ones) or lacking statistics are read: an appended micro-batch costs no
/// data read here, where a scan of every file grew with the table. Ingest times are compared to
/// the millisecond, as statistics keep them: batches ingested within the same millisecond,
/// necessarily concurrently, are ordered by id.
pub async fn batch_ids(workspace: &Workspace, upstream: &TableId) -> Result<Vec<String>> {
    let lake = workspace.lake();
    let table = lake.table(upstream).await?;
    let from_stats = batches_in_statistics(&table, upstream)?;
    let mut first_ingest = from_stats.first_ingest;
    if !from_stats.files_to_read.is_empty() {
        let scanned = match scan_batches(workspace, &table, upstream, Some(from_stats.files_to_read)).await {
            Ok(scanned) => scanned,
            Err(e) => {
                tracing::info!(table = %upstream, error = %e, "reading the batches of some files failed: reading all");
                scan_batches(workspace, &table, upstream, None).await?
            }
        };
        for (id, first) in scanned {
            note_ingest(&mut first_ingest, id, first);
        }
    }
    // Batches without an ingest time last, as the scan's ascending sort put them.
    let mut ids: Vec<(bool, Option<i64>, String)> =
        first_ingest.into_iter().map(|(id, first)| (first.is_none(), first, id)).collect();
    ids.sort();
    Ok(ids.into_iter().map(|(_, _, id)| id).collect())
}

/// What the files' statistics tell of the batches in a table.
struct BatchesInStatistics {
    /// Batch id → its earliest `_ingested_at` (Unix milliseconds), from files holding one batch.
    first_ingest: HashMap<String, Option<i64>>,
    /// Files whose batches the statistics do not tell.
    files_to_read: Vec<String>,
}

fn batches_in_statistics(table: &DeltaTable, id: &TableId) -> Result<BatchesInStatistics> {
    let snapshot = table.snapshot().map_err(|e| EngineError::delta(id, "read file statistics", e))?;
    let mut found = BatchesInStatistics { first_ingest: HashMap::new(), files_to_read: Vec::new() };
    for file in snapshot.log_data().iter() {
        match file.stats().and_then(|stats| single_batch(&stats)) {
            Some((batch, first)) => note_ingest(&mut found.first_ingest, batch, first),
            None if file.num_records() == Some(0) => {}
            None => found.files_to_read.push(file.path().to_string()),
        }
    }
    Ok(found)
}

/// Keep the earliest ingest time seen of a batch (its rows may be in several files; a time
/// beats none).
fn note_ingest(first_ingest: &mut HashMap<String, Option<i64>>, batch: String, at: Option<i64>) {
    let known = first_ingest.entry(batch).or_insert(at);
    *known = match (*known, at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}

/// The one batch a file's statistics JSON names, with its earliest ingest time (milliseconds,
/// as statistics keep it; none when every row of the file has none).
fn single_batch(stats: &str) -> Option<(String, Option<i64>)> {
    let stats: serde_json::Value = serde_json::from_str(stats).ok()?;
    let min = stats["minValues"][BATCH_ID].as_str()?;
    let max = stats["maxValues"][BATCH_ID].as_str()?;
    if min != max {
        return None;
    }
    let first = match stats["minValues"][INGESTED_AT].as_str() {
        Some(first) => Some(chrono::DateTime::parse_from_rfc3339(first).ok()?.timestamp_millis()),
        // No minimum: every row's is null, or the column has no statistics (then read the file).
        None if stats["nullCount"][INGESTED_AT].as_i64()? == stats["numRecords"].as_i64()? => None,
        None => return None,
    };
    Some((min.to_string(), first))
}

/// The earliest `_ingested_at` of a batch, as [`scan_batches`] names it in its aggregate.
const FIRST_INGESTED_AT: &str = "first";

/// (batch id, earliest `_ingested_at` in milliseconds, as statistics have it) of the rows of
/// `files` (None: all).
async fn scan_batches(
    workspace: &Workspace,
    table: &DeltaTable,
    upstream: &TableId,
    files: Option<Vec<String>>,
) -> Result<Vec<(String, Option<i64>)>> {
    let context = format!("listing the batches of {upstream}");
    let query_error = |e| JobError::query(context.clone(), e);
    let ctx = workspace.lake().session();
    table.update_datafusion_session(&ctx.state()).map_err(|e| EngineError::delta(upstream, "read", e))?;
    let provider = match files {
        // The paths as delta-rs's own selection by Add action spells them.
        Some(files) => table
            .table_provider()
            .with_file_paths(files.iter().map(|f| cdplake_engine::deltalake::Path::from(f.as_str()).to_string())),
        None => table.table_provider(),
    }
    .await
    .map_err(query_error)?;
    let batches = ctx
        .read_table(provider)
        .and_then(|df| df.aggregate(vec![col(BATCH_ID)], vec![min(col(INGESTED_AT)).alias(FIRST_INGESTED_AT)]))
        .map_err(query_error)?
        .collect()
        .await
        .map_err(query_error)?;
    let mut found = Vec::new();
    for batch in &batches {
        let ids = column_as(batch, &context, BATCH_ID, &DataType::Utf8)?;
        let firsts = column_as(batch, &context, FIRST_INGESTED_AT, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
        let firsts = firsts.as_primitive::<TimestampMicrosecondType>();
        for (id, first) in ids.as_string::<i32>().iter().zip(firsts.iter()) {
            if let Some(id) = id {
                found.push((id.to_string(), first.map(|micros| micros.div_euclid(1000))));
            }
        }
    }
    Ok(found)
}

/// How many times `source` was reprocessed (0: never): the version of its generation transaction
/// on `clean.<source>`. Jobs downstream (identity, profiles) fold it into their watermarks
/// ([`app_ids::at_generation`]), so a reprocess makes them read the source's batches again.
pub async fn clean_generation(workspace: &Workspace, source: &Source) -> Result<u64> {
    let clean_id = clean_table(source);
    if !workspace.lake().table_exists(&clean_id).await? {
        return Ok(0);
    }
    let table = workspace.lake().table(&clean_id).await?;
    let applied = applied_version(&table, &clean_id.to_string(), &app_ids::clean_generation(&source.name)).await?;
    Ok(applied.unwrap_or(0).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::single_batch;

    #[test]
    fn a_file_names_its_batch_only_when_its_statistics_hold_one_value() {
        let stats = |min: &str, max: &str| {
            format!(
                r#"{{"numRecords":3,"minValues":{{"_batch_id":"{min}","_ingested_at":"2024-12-30T12:00:00.123Z"}},
                   "maxValues":{{"_batch_id":"{max}","_ingested_at":"2024-12-30T12:00:01.000Z"}}}}"#
            )
        };
        let id = "5f0c7f5e-3a55-4d7b-9c0e-0b6f3c1d2e4f";
        assert_eq!(single_batch(&stats(id, id)), Some((id.to_string(), Some(1_735_560_000_123))));
        let no_time = format!(
            r#"{{"numRecords":2,"minValues":{{"_batch_id":"{id}"}},"maxValues":{{"_batch_id":"{id}"}},
               "nullCount":{{"_batch_id":0,"_ingested_at":2}}}}"#
        );
        assert_eq!(single_batch(&no_time), Some((id.to_string(), None)));
        // Two batches compacted into one file, or a truncated statistic (its max rounded up).
        assert_eq!(single_batch(&stats(id, "9a1b2c3d-0000-4000-8000-000000000000")), None);
        assert_eq!(single_batch(&stats("5f0c7f5e", "5f0c7f5f")), None);
        // No statistics for the lineage columns.
        assert_eq!(single_batch(r#"{"numRecords":3,"minValues":{},"maxValues":{}}"#), None);
        assert_eq!(single_batch("not json"), None);
    }
}
