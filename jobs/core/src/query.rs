//! SQL over every catalog table, registered as `zone.table`: the read-only path that
//! `cdplake query`, the profile server and the query handler share, and the plain runner jobs use.

use cdplake_engine::arrow::array::RecordBatch;
use cdplake_engine::datafusion::sql::sqlparser::ast::Statement;
use cdplake_engine::datafusion::sql::sqlparser::dialect::GenericDialect;
use cdplake_engine::datafusion::sql::sqlparser::parser::Parser;

use crate::error::{JobError, Result};
use crate::workspace::Workspace;

/// Run one SQL statement and collect its rows.
pub async fn run_query(workspace: &Workspace, sql: &str) -> Result<Vec<RecordBatch>> {
    let session = workspace.catalog.sql_session().await?;
    session.sql(sql).await?.collect().await.map_err(|e| JobError::query("query", e))
}

/// Run one statement a user sent, after [`check_read_only`].
pub async fn run_read_only(workspace: &Workspace, sql: &str) -> Result<Vec<RecordBatch>> {
    check_read_only(sql)?;
    run_query(workspace, sql).await
}

/// Refuse anything but one read-only statement.
pub fn check_read_only(sql: &str) -> Result<()> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| JobError::bad_input("the query", format!("does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(JobError::bad_input("the query", format!("send exactly one statement, not {}", statements.len())));
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
            Err(JobError::bad_input(
                "the query",
                format!("only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN run here; refused a {kind} statement"),
            ))
        }
    }
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
            assert!(matches!(check_read_only(refused), Err(JobError::BadInput { .. })), "{refused}");
        }
    }
}
