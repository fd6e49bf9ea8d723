//! Which batches of an upstream table a job has not applied yet.
//!
//! Jobs record each batch they apply as a Delta application transaction in the commit of their
//! output (see `cdplake_engine::applied_version`); this lists the upstream batch ids (the
//! `_batch_id` column raw and clean tables share) whose transaction the output lacks.

use cdplake_engine::arrow::array::AsArray;
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_engine::datafusion::functions_aggregate::expr_fn::min;
use cdplake_engine::datafusion::prelude::col;
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::{TableId, applied_versions};
use cdplake_zones::raw::{BATCH_ID, INGESTED_AT};

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
pub async fn batch_ids(workspace: &Workspace, upstream: &TableId) -> Result<Vec<String>> {
    let context = format!("listing the batches of {upstream}");
    let batches = workspace
        .lake()
        .read(upstream)
        .await?
        .aggregate(vec![col(BATCH_ID)], vec![min(col(INGESTED_AT)).alias("first")])
        .and_then(|df| df.sort(vec![col("first").sort(true, false), col(BATCH_ID).sort(true, false)]))
        .map_err(|e| JobError::query(context.clone(), e))?
        .collect()
        .await
        .map_err(|e| JobError::query(context.clone(), e))?;
    let mut all = Vec::new();
    for batch in &batches {
        let ids = cast(batch.column(0), &DataType::Utf8).map_err(|e| JobError::arrow("batch ids", e))?;
        all.extend(ids.as_string::<i32>().iter().flatten().map(String::from));
    }
    Ok(all)
}
