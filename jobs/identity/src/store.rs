//! The identity tables a run reads and writes beside its stitching: `curated.id_mapping` rows by
//! identifier, the next `user_int_id`, merge history, and appends made once per run.

use std::collections::HashMap;

use cdplake_core::columns::{batch_for, micros, strings};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_engine::applied_version;
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::datatypes::Int64Type;
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::upsert::Upsert;
use cdplake_zones::curated::{self, IdMappingRow};
use chrono::{DateTime, Utc};

use crate::union_find::Identifier;
use cdplake_core::columns::int64;
use cdplake_zones::tables::ID_MAPPING;

/// One row of `curated.id_merge_history`: a one_id that was absorbed, split or retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    /// `merge` (absorbed into `surviving`), `split` (a part left `absorbed` as `surviving`), or
    /// `retire` (the person is gone: every identifier it had is a hub; `surviving` is empty).
    pub action: &'static str,
    pub absorbed: String,
    pub surviving: String,
    pub cause: String,
}

impl HistoryEntry {
    pub(crate) fn new(action: &'static str, absorbed: &str, surviving: &str, cause: String) -> Self {
        Self { action, absorbed: absorbed.to_string(), surviving: surviving.to_string(), cause }
    }

    /// A person none of whose identifiers may link any more: it leaves the profiles.
    pub(crate) fn retire(one_id: &str, cause: &str) -> Self {
        Self::new("retire", one_id, "", cause.to_string())
    }
}

/// `curated.id_mapping` rows by identifier.
pub(crate) fn parse_mapping(batches: &[RecordBatch]) -> Result<HashMap<Identifier, IdMappingRow>> {
    let mut out = HashMap::new();
    for batch in batches {
        for row in IdMappingRow::from_batch(batch).map_err(|e| JobError::arrow("curated.id_mapping rows", e))? {
            out.insert((row.id_type.clone(), row.id_value.clone()), row);
        }
    }
    Ok(out)
}

/// The largest user_int_id ever assigned (0: none yet), in the latest version. Read from the
/// files' statistics, which every file delta-rs writes carries, so no data is read; by a scan
/// when a file has none.
pub(crate) async fn max_user_int_id(workspace: &Workspace) -> Result<i64> {
    let mapping_table = &workspace.lake().table(&ID_MAPPING.id()).await?;
    if let Some(max) = max_user_int_id_from_stats(mapping_table)? {
        return Ok(max);
    }
    let session = cdplake_engine::SqlSession::new()?;
    session.register_loaded(ID_MAPPING.zone(), ID_MAPPING.table(), mapping_table).await?;
    let batches = session
        .sql(&format!("SELECT max(user_int_id) AS max_user_int_id FROM {ID_MAPPING}"))
        .await?
        .collect()
        .await
        .map_err(|e| JobError::query("identity: next user_int_id", e))?;
    let column = int64(&batches[0], "identity", "max_user_int_id")?;
    let column = column.as_primitive::<Int64Type>();
    Ok(if column.is_null(0) { 0 } else { column.value(0) })
}

/// The largest `maxValues.user_int_id` over the live files; None when a file with rows lacks it.
fn max_user_int_id_from_stats(mapping_table: &DeltaTable) -> Result<Option<i64>> {
    let snapshot = mapping_table
        .snapshot()
        .map_err(|e| cdplake_engine::EngineError::delta(&ID_MAPPING.id(), "read file statistics", e))?;
    let mut max = 0;
    for file in snapshot.log_data().iter() {
        let Some(stats) = file.stats() else { return Ok(None) };
        let Ok(stats) = serde_json::from_str::<serde_json::Value>(&stats) else { return Ok(None) };
        if stats["numRecords"].as_i64() == Some(0) {
            continue;
        }
        match stats["maxValues"]["user_int_id"].as_i64() {
            Some(value) => max = max.max(value),
            None => return Ok(None),
        }
    }
    Ok(Some(max))
}

pub(crate) async fn append_history(
    workspace: &Workspace,
    history: &[HistoryEntry],
    txns: &[Transaction],
    now: DateTime<Utc>,
) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    let spec = curated::merge_history_spec();
    let batch = batch_for(
        &spec,
        vec![
            strings(history.iter().map(|h| h.action)),
            strings(history.iter().map(|h| h.absorbed.as_str())),
            strings(history.iter().map(|h| h.surviving.as_str())),
            strings(history.iter().map(|h| h.cause.as_str())),
            micros(history.iter().map(|_| now.timestamp_micros())),
        ],
    )?;
    append_once(workspace, &spec.id, batch, txns).await?;
    Ok(())
}

/// Append rows to a side table once per run: the run's batch ids go in the commit, and a rerun
/// after a crash (same batches) finds them there and skips the append.
pub(crate) async fn append_once(
    workspace: &Workspace,
    id: &cdplake_engine::TableId,
    batch: RecordBatch,
    txns: &[Transaction],
) -> Result<()> {
    let lake = workspace.lake();
    let table = lake.table(id).await?;
    if let Some(first) = txns.first()
        && applied_version(&table, &id.to_string(), &first.app_id).await?.is_some()
    {
        return Ok(());
    }
    let commit = CommitProperties::default().with_application_transactions(txns.to_vec());
    lake.append_to(table, id, vec![batch], commit).await?;
    Ok(())
}

/// MERGE the changed rows into `curated.id_mapping` by (id_type, id_value).
pub(crate) async fn merge_mapping(
    workspace: &Workspace,
    table: DeltaTable,
    rows: &[IdMappingRow],
    transactions: Vec<Transaction>,
) -> Result<DeltaTable> {
    let spec = curated::id_mapping_spec();
    let batch = IdMappingRow::to_batch(rows).map_err(|e| JobError::arrow("curated.id_mapping rows", e))?;
    let names: Vec<String> = spec.schema.fields().iter().map(|f| f.name().clone()).collect();
    // The bucket in the predicate lets delta-rs skip every partition the rows do not touch.
    let outcome = workspace
        .lake()
        .upsert(&spec.id, vec![batch])
        .on_snapshot(table)
        .on_columns(&[curated::ID_BUCKET, "id_type", "id_value"])
        .with_transactions(transactions)
        .update(None, Upsert::from_source(&names))
        .insert(None, Upsert::from_source(&names))
        .await?;
    Ok(outcome.table)
}
