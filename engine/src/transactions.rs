//! Delta application transactions (`txn` actions): how cdplake records "this batch is applied"
//! in the same commit as the batch's data, so that "already done?" and "do it" are one atomic
//! step (one per ingested object, per cleaned batch, per batch a downstream job applied).

use std::collections::{HashMap, HashSet};

use delta_kernel::Snapshot as KernelSnapshot;
use delta_kernel::actions::LOG_TXN_SCHEMA;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use deltalake::arrow::array::{Array, AsArray, StructArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Int64Type};
use deltalake::{DeltaTable, DeltaTableError};

use crate::error::{EngineError, Result};

/// The table property that lets application transactions expire; the kernel's one-id look-up
/// applies it, [`applied_versions`] leaves such tables to that look-up.
const TXN_RETENTION: &str = "delta.setTransactionRetentionDuration";

/// The version an application recorded on the table with an application transaction, if any.
/// Each call replays the log (the checkpoint and the commits after it): to ask about many ids,
/// use [`applied_versions`].
pub async fn applied_version(table: &DeltaTable, label: &str, app_id: &str) -> Result<Option<i64>> {
    let log_store = table.log_store();
    snapshot_error(label, table.snapshot())?
        .transaction_version(log_store.as_ref(), app_id)
        .await
        .map_err(|e| EngineError::delta(label, "read application transactions", e))
}

/// The versions recorded for each of `app_ids` (in their order), from one replay of the log.
/// A job that asked id by id about every upstream batch ever ingested replayed the log once per
/// batch: reads that grew with the lake's age whatever maintenance did.
pub async fn applied_versions(table: &DeltaTable, label: &str, app_ids: &[String]) -> Result<Vec<Option<i64>>> {
    if app_ids.len() <= 1 || expiring(table, label)? {
        let mut versions = Vec::with_capacity(app_ids.len());
        for app_id in app_ids {
            versions.push(applied_version(table, label, app_id).await?);
        }
        return Ok(versions);
    }
    let wanted: HashSet<String> = app_ids.iter().cloned().collect();
    let found = read_transactions(table, label, wanted).await?;
    Ok(app_ids.iter().map(|id| found.get(id).copied()).collect())
}

fn snapshot_error<T>(label: &str, result: std::result::Result<T, DeltaTableError>) -> Result<T> {
    result.map_err(|e| EngineError::delta(label, "read application transactions", e))
}

/// Does the table let application transactions expire?
fn expiring(table: &DeltaTable, label: &str) -> Result<bool> {
    Ok(snapshot_error(label, table.snapshot())?.metadata().configuration().contains_key(TXN_RETENTION))
}

/// The newest `txn` version of each wanted app id at the table's loaded version: the kernel's
/// log replay (commits newest first, then the checkpoint), one pass for every id.
async fn read_transactions(table: &DeltaTable, label: &str, wanted: HashSet<String>) -> Result<HashMap<String, i64>> {
    let Some(version) = table.version() else { return Ok(HashMap::new()) };
    let log_store = table.log_store();
    let engine = log_store.engine(None);
    let root = log_store.root_url().clone();
    let replay = move || -> std::result::Result<HashMap<String, i64>, DeltaTableError> {
        let snapshot = KernelSnapshot::builder_for(root).at_version(version as u64).build(engine.as_ref())?;
        let mut found = HashMap::new();
        for actions in snapshot.log_segment().read_actions(engine.as_ref(), LOG_TXN_SCHEMA.clone())? {
            let batch = ArrowEngineData::try_from_engine_data(actions?.actions)?;
            newest_first(batch.record_batch(), &wanted, &mut found)?;
        }
        Ok(found)
    };
    tokio::task::spawn_blocking(replay)
        .await
        .map_err(|e| {
            EngineError::delta(label, "read application transactions", DeltaTableError::Generic(e.to_string()))
        })?
        .map_err(|e| EngineError::delta(label, "read application transactions", e))
}

/// Record the `txn` actions of one batch of the replay; an id seen already keeps its newer
/// version (the replay reads the newest commits first).
fn newest_first(
    batch: &deltalake::arrow::array::RecordBatch,
    wanted: &HashSet<String>,
    found: &mut HashMap<String, i64>,
) -> std::result::Result<(), DeltaTableError> {
    let malformed = || DeltaTableError::Generic("a txn action without appId or version".into());
    let Some(txn) = batch.column_by_name("txn").and_then(|c| c.as_struct_opt()) else { return Err(malformed()) };
    // Cast to the types the default engine reads, whatever string or integer type an engine
    // gives (Utf8View, LargeUtf8, Int32).
    let column = |txn: &StructArray, name: &str, to: &DataType| {
        let array = txn.column_by_name(name).ok_or_else(malformed)?;
        cast(array, to).map_err(|e| DeltaTableError::Generic(format!("txn.{name}: {e}")))
    };
    let app_ids = column(txn, "appId", &DataType::Utf8)?;
    let versions = column(txn, "version", &DataType::Int64)?;
    let (Some(app_ids), Some(versions)) = (app_ids.as_string_opt::<i32>(), versions.as_primitive_opt::<Int64Type>())
    else {
        return Err(malformed());
    };
    for row in 0..txn.len() {
        if txn.is_null(row) || app_ids.is_null(row) || versions.is_null(row) {
            continue;
        }
        let app_id = app_ids.value(row);
        if wanted.contains(app_id) && !found.contains_key(app_id) {
            found.insert(app_id.to_string(), versions.value(row));
        }
    }
    Ok(())
}
