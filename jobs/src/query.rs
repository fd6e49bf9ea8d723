//! `cdplake query`: SQL over every catalog table, registered as `zone.table`.

use cdplake_engine::arrow::array::RecordBatch;

use crate::error::{JobError, Result};
use crate::workspace::Workspace;

/// Run one SQL statement and collect its rows.
pub async fn run_query(workspace: &Workspace, sql: &str) -> Result<Vec<RecordBatch>> {
    let session = workspace.catalog.sql_session().await?;
    session.sql(sql).await?.collect().await.map_err(|e| JobError::query("query", e))
}
