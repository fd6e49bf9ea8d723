//! Shared test fixtures: lakes on a temp dir or on the local S3 server, and small tables.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use cdplake_engine::arrow::array::{Array, AsArray, Float64Array, Int64Array, RecordBatch, StringArray};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use cdplake_engine::datafusion::prelude::DataFrame;
use cdplake_engine::{Lake, TableId};

/// The repository root (the tests crate lives in `<repo>/tests`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The AWS_* settings of the local S3 server, starting it (and installing it) if needed.
pub fn s3_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let script = repo_root().join("infra/s3/seaweedfs.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} env failed:\n{}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix("export "))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

/// The S3 settings as delta-rs storage options (lower-case keys).
pub fn s3_options() -> HashMap<String, String> {
    s3_env().iter().filter(|(k, _)| k.starts_with("AWS_")).map(|(k, v)| (k.to_lowercase(), v.clone())).collect()
}

/// Where a test lake lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

/// A fresh, empty lake; the temp dir (local) lives as long as the returned guard.
pub struct TestLake {
    pub lake: Lake,
    pub root: String,
    _dir: Option<Arc<tempfile::TempDir>>,
}

impl TestLake {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Local => {
                let dir = tempfile::tempdir().expect("temp dir");
                let root = dir.path().join("lake").display().to_string();
                let lake = Lake::open(&root).await.expect("open local lake");
                Self { lake, root, _dir: Some(Arc::new(dir)) }
            }
            Backend::S3 => {
                let bucket = s3_env().get("CDPLAKE_S3_BUCKET").cloned().unwrap_or_else(|| "lake".into());
                let root = format!("s3://{bucket}/test-{}", uuid::Uuid::new_v4());
                let lake = Lake::open_with_options(&root, s3_options()).await.expect("open S3 lake");
                Self { lake, root, _dir: None }
            }
        }
    }
}

pub fn id(name: &str) -> TableId {
    name.parse().expect("valid table id")
}

/// `events(event_id string, customer_id string, amount double, dt string)`.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("dt", DataType::Utf8, true),
    ]))
}

/// Rows `(event_id, customer_id, amount, dt)` as a batch of [`events_schema`].
pub fn events(rows: &[(&str, &str, f64, &str)]) -> RecordBatch {
    RecordBatch::try_new(
        events_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
        ],
    )
    .expect("events batch")
}

/// Collect a DataFrame; a test failure message otherwise.
pub async fn collect(df: DataFrame) -> Vec<RecordBatch> {
    df.collect().await.expect("collect")
}

pub async fn count(df: DataFrame) -> usize {
    df.count().await.expect("count")
}

/// Rows of `(event_id, customer_id, amount, dt)`, sorted by event_id.
pub async fn event_rows(df: DataFrame) -> Vec<(String, String, f64, String)> {
    let mut rows = Vec::new();
    for batch in collect(df).await {
        let text = |name: &str| cast(batch.column_by_name(name).expect(name), &DataType::Utf8).expect("cast");
        let (ids, customers, dts) = (text("event_id"), text("customer_id"), text("dt"));
        let amounts = cast(batch.column_by_name("amount").expect("amount"), &DataType::Float64).expect("cast");
        let amounts = amounts.as_primitive::<cdplake_engine::arrow::datatypes::Float64Type>();
        for i in 0..batch.num_rows() {
            let s = |a: &Arc<dyn Array>| {
                if a.is_null(i) { String::new() } else { a.as_string::<i32>().value(i).to_string() }
            };
            rows.push((s(&ids), s(&customers), amounts.value(i), s(&dts)));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// The single Int64 value of a one-row, one-column result.
pub fn single_i64(batches: &[RecordBatch]) -> i64 {
    let column = cast(batches[0].column(0), &DataType::Int64).expect("cast");
    let column: &Int64Array = column.as_primitive::<Int64Type>();
    column.value(0)
}

/// Each listed `async fn NAME(backend: Backend)` becomes two tests, `local::NAME` and
/// `s3::NAME`: the same test on a local-directory lake and on the S3 server.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test($crate::support::Backend::Local).await })*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test($crate::support::Backend::S3).await })*
        }
    };
}
pub(crate) use on_every_backend;

/// Land files under `landing/<source>/`, then ingest and clean every source that got one.
pub async fn land_ingest_clean(
    ws: &cdplake_core::Workspace,
    files: &[(&str, String, String)],
    now: chrono::DateTime<chrono::Utc>,
) {
    let mut sources = Vec::new();
    for (source, name, content) in files {
        let location = ws.lake().location().join(&format!("landing/{source}/{name}")).to_string();
        ws.lake().put_object(&location, content.clone().into()).await.unwrap();
        if !sources.contains(source) {
            sources.push(*source);
        }
    }
    for name in sources {
        let source = ws.config.source(name).unwrap();
        cdplake_ingest::ingest::ingest(ws, &source, &[], now).await.unwrap();
        cdplake_ingest::clean::clean(ws, &source, now).await.unwrap();
    }
}

/// Every row of every registered table (and the catalog), as `column=value|...` text, per table.
pub async fn lake_rows(ws: &cdplake_core::Workspace) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in ws.catalog.list().await.unwrap() {
        let table: TableId = entry.name.parse().unwrap();
        if !ws.lake().table_exists(&table).await.unwrap() {
            continue;
        }
        let mut rows = Vec::new();
        for batch in collect(ws.lake().read(&table).await.unwrap()).await {
            let schema = batch.schema();
            let columns: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| match c.data_type() {
                    DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                        let bytes = cast(c, &DataType::Binary).unwrap();
                        let hex: StringArray = bytes
                            .as_binary::<i32>()
                            .iter()
                            .map(|b| b.map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>()))
                            .collect();
                        Arc::new(hex) as Arc<dyn Array>
                    }
                    _ => cast(c, &DataType::Utf8).unwrap(),
                })
                .collect();
            for r in 0..batch.num_rows() {
                let row: Vec<String> = schema
                    .fields()
                    .iter()
                    .zip(&columns)
                    .map(|(f, c)| {
                        let v =
                            if c.is_null(r) { "∅".to_string() } else { c.as_string::<i32>().value(r).to_string() };
                        format!("{}={v}", f.name())
                    })
                    .collect();
                rows.push(row.join("|") + "|");
            }
        }
        rows.sort();
        out.insert(entry.name.clone(), rows);
    }
    out
}

/// The rows of query results as text values.
pub fn lake_rows_of(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch.columns().iter().map(|c| cast(c, &DataType::Utf8).unwrap()).collect();
        for r in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| if c.is_null(r) { String::new() } else { c.as_string::<i32>().value(r).to_string() })
                    .collect(),
            );
        }
    }
    out
}
