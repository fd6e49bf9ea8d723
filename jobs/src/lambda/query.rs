//! The query handler: one read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN of a
//! query), its rows returned inline, or, past `max_inline_rows`, written to
//! `output_location` (default `<lake>/_query_results/`) with only the location returned, as
//! Athena does.

use cdplake_engine::datafusion::sql::sqlparser::ast::Statement;
use cdplake_engine::datafusion::sql::sqlparser::dialect::GenericDialect;
use cdplake_engine::datafusion::sql::sqlparser::parser::Parser;
use chrono::Utc;
use serde_json::Value;

use crate::error::{JobError, Result};
use crate::output::{Format, format_batches};
use crate::workspace::Workspace;

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

/// Refuse anything but one read-only statement.
pub fn check_read_only(sql: &str) -> Result<()> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| JobError::Invalid(format!("the query does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(JobError::Invalid(format!("send exactly one statement, not {}", statements.len())));
    }
    match &statements[0] {
        Statement::Query(_)
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ExplainTable { .. } => Ok(()),
        Statement::Explain { statement, analyze: false, .. } if matches!(**statement, Statement::Query(_)) => Ok(()),
        other => {
            let kind = other.to_string().split_whitespace().next().unwrap_or("").to_uppercase();
            Err(JobError::Invalid(format!(
                "only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN run here; refused a {kind} statement"
            )))
        }
    }
}

pub async fn handle(workspace: &Workspace, request: QueryRequest) -> Result<QueryOutcome> {
    check_read_only(&request.sql)?;
    let format = match request.format.to_ascii_lowercase().as_str() {
        "json" => Format::Json,
        "csv" => Format::Csv,
        other => return Err(JobError::Invalid(format!("format {other:?}: use json or csv"))),
    };
    let batches = crate::query::run_query(workspace, &request.sql).await?;
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
        outcome.rows = Some(serde_json::from_str(&text).map_err(|e| JobError::Invalid(format!("result rows: {e}")))?);
    } else {
        outcome.csv = Some(text);
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_pass() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "SHOW TABLES",
            "DESCRIBE curated.customer_profiles",
            "EXPLAIN SELECT 1",
        ] {
            assert!(check_read_only(ok).is_ok(), "{ok}");
        }
        for refused in [
            "DROP TABLE curated.customer_profiles",
            "INSERT INTO t VALUES (1)",
            "DELETE FROM curated.id_mapping",
            "CREATE TABLE x AS SELECT 1",
            "SELECT 1; DROP TABLE t",
        ] {
            assert!(check_read_only(refused).is_err(), "{refused}");
        }
    }
}
