//! Golden tests of cdplake's SQL: every `tests/slt/*.slt` file runs through the `sqllogictest`
//! runner (the format DataFusion pins its own behaviour with) on a fresh cdplake SQL session, with
//! the Athena/Trino and bitmap functions registered.
//!
//! A file may name one of the jobs' statements as `{{name}}` (see
//! `cdplake_profiles::statements`): the text of the statement as the job runs it is put in its
//! place, so the file pins what the job computes on the small tables the file creates. A
//! statement whose SQL changes is caught here by its results, not by its text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cdplake_engine::arrow::array::RecordBatch;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_engine::arrow::util::display::{ArrayFormatter, FormatOptions};
use cdplake_engine::{EngineError, SqlSession};
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

/// A cdplake SQL session as the golden runner's database.
struct LakeSql {
    session: SqlSession,
}

#[async_trait::async_trait]
impl AsyncDB for LakeSql {
    type Error = EngineError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let (schema, batches) = self.session.rows_with_schema(sql).await?;
        if is_statement(sql) {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema.fields().iter().map(|f| column_type(f.data_type())).collect();
        Ok(DBOutput::Rows { types, rows: text_rows(&batches) })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "cdplake"
    }
}

/// DDL and DML answer with a count, not rows.
fn is_statement(sql: &str) -> bool {
    let first = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    matches!(first.as_str(), "CREATE" | "DROP" | "INSERT" | "SET")
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    match data_type {
        t if t.is_integer() => DefaultColumnType::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => DefaultColumnType::FloatingPoint,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DefaultColumnType::Text,
        _ => DefaultColumnType::Any,
    }
}

/// Every value as text, `NULL` for null, as DataFusion's own golden files write them.
fn text_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> =
            batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for row in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(row).to_string()).collect());
        }
    }
    rows
}

fn golden_files() -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

/// The file's text with each `{{name}}` replaced by the named statement.
fn with_statements(path: &Path, text: &str, statements: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").map(|e| start + e).expect("a {{name}} is closed");
        let name = rest[start + 2..end].trim();
        let sql = statements.get(name).unwrap_or_else(|| {
            panic!("{}: no statement {name:?}; known: {:?}", path.display(), statements.keys().collect::<Vec<_>>())
        });
        out.push_str(&rest[..start]);
        out.push_str(&sql.split_whitespace().collect::<Vec<_>>().join(" "));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

fn statements() -> BTreeMap<String, String> {
    cdplake_profiles::statements::golden().into_iter().map(|s| (s.name.to_string(), s.sql)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_golden_file_gives_its_pinned_results() {
    let statements = statements();
    let files = golden_files();
    assert!(files.len() >= 4, "golden files found: {files:?}");
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let script = with_statements(path, &text, &statements);
        let mut runner = sqllogictest::Runner::new(|| async { Ok(LakeSql { session: SqlSession::new()? }) });
        if let Err(e) = runner.run_script_with_name_async(&script, path.display().to_string()).await {
            failures.push(format!("{}:\n{e}", path.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every named statement is pinned by some golden file.
#[test]
fn every_named_statement_has_a_golden_file() {
    let texts: String = golden_files().iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    for name in statements().keys() {
        assert!(texts.contains(&format!("{{{{{name}}}}}")), "no golden file uses {{{{{name}}}}}");
    }
}

/// The runner fails on a wrong pinned result: it cannot pass by accident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_result_fails() {
    let mut runner = sqllogictest::Runner::new(|| async { Ok(LakeSql { session: SqlSession::new()? }) });
    let wrong = "query I\nSELECT 1 + 1\n----\n3\n";
    assert!(runner.run_script_async(wrong).await.is_err());
    let right = "query I\nSELECT 1 + 1\n----\n2\n";
    runner.run_script_async(right).await.unwrap();
}
