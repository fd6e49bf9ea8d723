//! `clean._quarantine`: every row that did not make it into a clean table, with the reason.
//!
//! Nothing is dropped silently: unreadable rows (at ingest), rows the contract rejects, and
//! duplicates (at clean) all land here with the raw values as JSON.

use std::sync::Arc;

use crate::tables::QUARANTINE;
use cdplake_engine::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::arrow::error::ArrowError;
use cdplake_engine::{TableSpec, timestamp_type};
use chrono::{DateTime, Utc};

/// Why a row is in the quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Unreadable or refused by the contract.
    Rejected,
    /// Another row with the same key won (an exact repeat, or an older version in one run).
    Duplicate,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Rejected => "rejected",
            Kind::Duplicate => "duplicate",
        }
    }
}

/// One quarantined row.
#[derive(Debug, Clone)]
pub struct QuarantinedRow {
    pub source: String,
    /// `ingest` or `clean`.
    pub stage: &'static str,
    pub kind: Kind,
    pub batch_id: String,
    pub source_uri: String,
    pub source_row: i64,
    pub field: String,
    /// Short rule name (`negative`, `not_a_date`, `duplicate`, `unreadable`, ...).
    pub rule: String,
    pub reason: String,
    /// The raw values as a JSON object (or the unreadable text).
    pub raw_values: String,
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("stage", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("batch_id", DataType::Utf8, false),
        Field::new("_source_uri", DataType::Utf8, false),
        Field::new("_source_row", DataType::Int64, false),
        Field::new("field", DataType::Utf8, true),
        Field::new("rule", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw_values", DataType::Utf8, true),
        Field::new("quarantined_at", timestamp_type(), false),
    ]))
}

pub fn quarantine_table_spec() -> TableSpec {
    TableSpec::new(QUARANTINE.id(), schema())
        .partitioned_by(["source"])
        .with_description("Rows that did not reach a clean table: source, batch, file, row, field, reason, raw values.")
}

pub fn quarantine_batch(rows: &[QuarantinedRow], at: DateTime<Utc>) -> Result<RecordBatch, ArrowError> {
    let text = |f: fn(&QuarantinedRow) -> &str| -> ArrayRef {
        Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
    };
    RecordBatch::try_new(
        schema(),
        vec![
            text(|r| &r.source),
            text(|r| r.stage),
            text(|r| r.kind.as_str()),
            text(|r| &r.batch_id),
            text(|r| &r.source_uri),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.source_row))),
            text(|r| &r.field),
            text(|r| &r.rule),
            text(|r| &r.reason),
            text(|r| &r.raw_values),
            Arc::new(TimestampMicrosecondArray::from(vec![at.timestamp_micros(); rows.len()]).with_timezone("UTC")),
        ],
    )
}
