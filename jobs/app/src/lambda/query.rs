//! The query handler: one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN of a
//! query), its rows returned inline, or, past `max_inline_rows`, written to
//! `output_location` (default `<lake>/_query_results/`) with only the location returned, as
//! Athena does.

use chrono::Utc;
use serde_json::Value;

use cdplake_core::error::{JobError, Result};
use cdplake_core::output::{Format, format_batches};
use cdplake_core::workspace::Workspace;

#[derive(Debug, Clone, serde::Deserialize)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default = "default_format")]
    pub format: String,
    /// Where large results go (a directory, local or `s3://`).
    pub output_location: Option<String>,
    #[serde(default = "default_max_inline_rows")]
    pub max_inline_rows: usize,
}

fn default_format() -> String {
    "json".into()
}

fn default_max_inline_rows() -> usize {
    1_000
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryOutcome {
    pub row_count: usize,
    /// JSON rows (format json) or CSV text (format csv), when small enough.
    pub rows: Option<Value>,
    pub csv: Option<String>,
    /// Where the result was written, when it was too large to return.
    pub output_location: Option<String>,
}

pub async fn handle(workspace: &Workspace, request: QueryRequest) -> Result<QueryOutcome> {
    let format = match request.format.to_ascii_lowercase().as_str() {
        "json" => Format::Json,
        "csv" => Format::Csv,
        other => return Err(JobError::bad_input(format!("format {other:?}"), "use json or csv")),
    };
    let batches = cdplake_core::query::run_read_only(workspace, &request.sql).await?;
    let row_count = batches.iter().map(|b| b.num_rows()).sum();
    let text = format_batches(&batches, format).map_err(|e| JobError::arrow("formatting the result", e))?;
    let mut outcome = QueryOutcome { row_count, rows: None, csv: None, output_location: None };
    if row_count > request.max_inline_rows {
        let extension = if format == Format::Json { "json" } else { "csv" };
        let directory = match &request.output_location {
            Some(d) => d.trim_end_matches('/').to_string(),
            None => workspace.lake().location().join("_query_results").to_string().trim_end_matches('/').to_string(),
        };
        let name = format!("{}-{}.{extension}", Utc::now().format("%Y%m%dT%H%M%S"), uuid::Uuid::new_v4());
        let location = workspace.lake().put_object(&format!("{directory}/{name}"), text.into_bytes().into()).await?;
        outcome.output_location = Some(location);
    } else if format == Format::Json {
        outcome.rows = Some(serde_json::from_str(&text).map_err(|e| JobError::encoding("the result rows", e))?);
    } else {
        outcome.csv = Some(text);
    }
    Ok(outcome)
}
