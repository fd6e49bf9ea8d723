//! SQL over every catalog table, registered as `zone.table`: the read-only path that
//! `cdplake query`, the profile server and the query handler share (a user's statement), and the
//! plain runner jobs and tests use (statements of our own).

use cdplake_engine::arrow::array::RecordBatch;
use cdplake_engine::datafusion::sql::parser::{DFParser, Statement as DFStatement};
use cdplake_engine::datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement};

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

/// Refuse anything but one read-only statement. Parsed by DataFusion's own parser, so that
/// its extensions (`COPY ... TO`, `CREATE EXTERNAL TABLE`) are recognised and refused by name.
pub fn check_read_only(sql: &str) -> Result<()> {
    let statements =
        DFParser::parse_sql(sql).map_err(|e| JobError::bad_input("the query", format!("does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(JobError::bad_input("the query", format!("send exactly one statement, not {}", statements.len())));
    }
    check_statement(&statements[0])
}

fn check_statement(statement: &DFStatement) -> Result<()> {
    match statement {
        DFStatement::Statement(statement) => check_sql_statement(statement, &statement.to_string()),
        DFStatement::Explain(explain) if !explain.options.analyze => check_statement(&explain.statement),
        other => Err(refused(&other.to_string())),
    }
}

fn check_sql_statement(statement: &Statement, text: &str) -> Result<()> {
    match statement {
        Statement::Query(query) if creates_a_table(query) => Err(JobError::bad_input(
            "the query",
            "SELECT ... INTO makes a table; only reads run here (write results with --out)",
        )),
        Statement::Query(_)
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ExplainTable { .. } => Ok(()),
        Statement::Explain { statement, analyze: false, .. } => check_sql_statement(statement, text),
        _ => Err(refused(text)),
    }
}

/// The refusal of a statement that is not a read, named by its first word.
fn refused(text: &str) -> JobError {
    let kind = text.split_whitespace().next().unwrap_or("").to_uppercase();
    JobError::bad_input(
        "the query",
        format!("only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN run here; refused a {kind} statement"),
    )
}

/// `SELECT ... INTO t`, however deep in parentheses or set operations: a read that creates a
/// table.
fn creates_a_table(query: &Query) -> bool {
    fn in_body(body: &SetExpr) -> bool {
        match body {
            SetExpr::Select(select) => select.into.is_some(),
            SetExpr::Query(query) => creates_a_table(query),
            SetExpr::SetOperation { left, right, .. } => in_body(left) || in_body(right),
            _ => false,
        }
    }
    in_body(&query.body)
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
            "EXPLAIN VERBOSE SELECT 1",
        ] {
            assert!(check_read_only(ok).is_ok(), "{ok}");
        }
        for refused in [
            "DROP TABLE curated.customer_profiles",
            "INSERT INTO t VALUES (1)",
            "DELETE FROM curated.id_mapping",
            "CREATE TABLE x AS SELECT 1",
            "SELECT 1; DROP TABLE t",
            "COPY (SELECT 1 AS a) TO '/tmp/x.csv' STORED AS CSV",
            "CREATE EXTERNAL TABLE p (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
            "SELECT 1 AS a INTO made",
            "(SELECT 1 AS a INTO made)",
            "SELECT 1 UNION ALL (SELECT 2 INTO made)",
            "SET datafusion.execution.batch_size = 1",
            "EXPLAIN ANALYZE SELECT 1",
            "EXPLAIN COPY (SELECT 1) TO 'x.csv'",
            "EXPLAIN INSERT INTO t VALUES (1)",
        ] {
            assert!(matches!(check_read_only(refused), Err(JobError::BadInput { .. })), "{refused}");
        }
    }
}
