//! `cdplake demo`: the main job on built-in sample data.
//!
//! Today it lands a small customer table in the clean zone with two MERGE upserts (an initial
//! load, then a day of changes: two customers updated, one new) and asks the lake a question
//! in SQL. Later zones grow this into the whole raw → clean → curated pipeline.

use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{Date32Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::datafusion::prelude::col;
use cdplake_engine::{TableId, TableSpec, timestamp_type};
use chrono::{NaiveDate, NaiveDateTime};

use crate::error::{JobError, Result};
use crate::workspace::Workspace;

/// The question the demo asks once the data is in.
pub const DEMO_QUERY: &str = "SELECT country, count(*) AS customers, round(sum(lifetime_value), 2) AS lifetime_value \
     FROM clean.demo_customers GROUP BY country ORDER BY lifetime_value DESC, country";

#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    pub table: String,
    pub inserted: usize,
    pub updated: usize,
    pub version: u64,
    #[serde(skip)]
    pub answer: Vec<RecordBatch>,
}

pub fn demo_table_id() -> TableId {
    TableId::new("clean", "demo_customers").expect("static name is valid")
}

fn demo_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("first_name", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
        Field::new("tier", DataType::Utf8, true),
        Field::new("lifetime_value", DataType::Float64, true),
        Field::new("signup_date", DataType::Date32, true),
        Field::new("updated_at", timestamp_type(), false),
    ]))
}

/// (customer_id, first_name, country, tier, lifetime_value, signup_date, updated_at)
type Row = (&'static str, &'static str, &'static str, &'static str, f64, &'static str, &'static str);

const INITIAL_LOAD: &[Row] = &[
    ("C001", "Ava", "GB", "gold", 1820.50, "2023-01-14", "2024-05-01 08:00:00"),
    ("C002", "Liam", "GB", "silver", 640.00, "2023-03-02", "2024-05-01 08:00:00"),
    ("C003", "Mia", "FR", "bronze", 95.90, "2023-06-20", "2024-05-01 08:00:00"),
    ("C004", "Noah", "DE", "gold", 2210.00, "2022-11-08", "2024-05-01 08:00:00"),
    ("C005", "Emma", "DE", "silver", 410.25, "2024-01-30", "2024-05-01 08:00:00"),
    ("C006", "Lucas", "NL", "bronze", 60.00, "2024-02-11", "2024-05-01 08:00:00"),
    ("C007", "Sofia", "ES", "silver", 780.40, "2023-09-09", "2024-05-01 08:00:00"),
    ("C008", "Hugo", "FR", "gold", 1505.75, "2022-07-17", "2024-05-01 08:00:00"),
];

/// A day later: C002 and C006 bought more, C009 signed up.
const CHANGES: &[Row] = &[
    ("C002", "Liam", "GB", "gold", 1040.00, "2023-03-02", "2024-05-02 09:30:00"),
    ("C006", "Lucas", "NL", "silver", 310.00, "2024-02-11", "2024-05-02 11:05:00"),
    ("C009", "Olivia", "IE", "bronze", 120.00, "2024-05-02", "2024-05-02 12:45:00"),
];

fn rows_to_batch(rows: &[Row]) -> Result<RecordBatch> {
    let epoch = chrono::DateTime::UNIX_EPOCH.date_naive();
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").map(|d| (d - epoch).num_days() as i32);
    let mut dates = Vec::with_capacity(rows.len());
    let mut stamps = Vec::with_capacity(rows.len());
    for row in rows {
        dates.push(date(row.5).map_err(|e| JobError::Invalid(format!("demo row {}: signup_date: {e}", row.0)))?);
        let ts = NaiveDateTime::parse_from_str(row.6, "%Y-%m-%d %H:%M:%S")
            .map_err(|e| JobError::Invalid(format!("demo row {}: updated_at: {e}", row.0)))?;
        stamps.push(ts.and_utc().timestamp_micros());
    }
    RecordBatch::try_new(
        demo_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.4))),
            Arc::new(Date32Array::from(dates)),
            Arc::new(TimestampMicrosecondArray::from(stamps).with_timezone("UTC")),
        ],
    )
    .map_err(|e| JobError::arrow("demo rows", e))
}

/// Upsert rows by customer_id; a row only replaces an older version of itself, so replaying
/// a batch changes nothing.
async fn upsert(workspace: &Workspace, batch: RecordBatch) -> Result<(usize, usize, u64)> {
    let lake = workspace.lake();
    let id = demo_table_id();
    let source = lake
        .session()
        .read_batch(batch)
        .map_err(|e| JobError::query("demo: merge source", e))?;
    let columns: Vec<String> = demo_schema().fields().iter().map(|f| f.name().clone()).collect();
    let (table, metrics) = lake
        .merge(&id, source, col("target.customer_id").eq(col("source.customer_id")))
        .await?
        .with_source_alias("source")
        .with_target_alias("target")
        .when_matched_update(|update| {
            columns.iter().fold(
                update.predicate("source.updated_at > target.updated_at"),
                |update, c| update.update(c.as_str(), format!("source.{c}")),
            )
        })
        .and_then(|merge| {
            merge.when_not_matched_insert(|insert| {
                columns
                    .iter()
                    .fold(insert, |insert, c| insert.set(c.as_str(), format!("source.{c}")))
            })
        })
        .map_err(|e| cdplake_engine::EngineError::delta(&id, "merge", e))?
        .await
        .map_err(|e| cdplake_engine::EngineError::delta(&id, "merge", e))?;
    Ok((
        metrics.num_target_rows_inserted,
        metrics.num_target_rows_updated,
        table.version().unwrap_or_default(),
    ))
}

/// Run the demo: create the table (first run), upsert both batches, query.
pub async fn run_demo(workspace: &Workspace) -> Result<DemoReport> {
    let spec = TableSpec::new(demo_table_id(), demo_schema())
        .with_description("Demo customers, upserted by customer_id (built-in sample data).");
    let meta = TableMeta::default().with_primary_key(["customer_id"]);
    workspace.catalog.ensure_table(&spec, &meta).await?;

    let (mut inserted, mut updated, mut version) = (0, 0, 0);
    for rows in [INITIAL_LOAD, CHANGES] {
        let (i, u, v) = upsert(workspace, rows_to_batch(rows)?).await?;
        inserted += i;
        updated += u;
        version = v;
    }
    let answer = workspace
        .catalog
        .sql_session()
        .await?
        .sql(DEMO_QUERY)
        .await?
        .collect()
        .await
        .map_err(|e| JobError::query("demo: query", e))?;
    Ok(DemoReport {
        table: demo_table_id().to_string(),
        inserted,
        updated,
        version,
        answer,
    })
}
