//! The raw zone: every file appended exactly as received (values as strings) plus lineage.

use std::sync::Arc;

use cdplake_engine::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::arrow::error::ArrowError;
use cdplake_engine::{TableSpec, timestamp_type};
use chrono::{DateTime, Utc};

use crate::reader::RawRecords;
use crate::source::Source;
use crate::tables::raw_table;

pub const SOURCE_URI: &str = "_source_uri";
pub const SOURCE_ETAG: &str = "_source_etag";
pub const SOURCE_ROW: &str = "_source_row";
pub const INGESTED_AT: &str = "_ingested_at";
pub const BATCH_ID: &str = "_batch_id";
/// The partition column: the UTC date of the ingest.
pub const INGEST_DATE: &str = "_ingest_date";

/// Rows per Arrow batch written.
const CHUNK: usize = 65_536;

/// Is this one of the lineage columns cdplake adds?
pub fn is_lineage(column: &str) -> bool {
    [SOURCE_URI, SOURCE_ETAG, SOURCE_ROW, INGESTED_AT, BATCH_ID, INGEST_DATE].contains(&column)
}

fn lineage_fields() -> Vec<Field> {
    vec![
        Field::new(SOURCE_URI, DataType::Utf8, false),
        Field::new(SOURCE_ETAG, DataType::Utf8, false),
        Field::new(SOURCE_ROW, DataType::Int64, false),
        Field::new(INGESTED_AT, timestamp_type(), false),
        Field::new(BATCH_ID, DataType::Utf8, false),
        Field::new(INGEST_DATE, DataType::Utf8, false),
    ]
}

/// The raw table of a source: the columns of its contract as strings, plus lineage; more
/// columns are added as files bring them.
pub fn raw_table_spec(source: &Source) -> TableSpec {
    let mut fields: Vec<Field> = Vec::new();
    for column in &source.columns {
        let name = column.raw_names().into_iter().next().unwrap_or_else(|| column.name.clone());
        if !fields.iter().any(|f| f.name() == &name) {
            fields.push(Field::new(name, DataType::Utf8, true));
        }
    }
    fields.extend(lineage_fields());
    TableSpec::new(raw_table(source), Arc::new(Schema::new(fields)))
        .partitioned_by([INGEST_DATE])
        .with_property("delta.appendOnly", "true")
        .with_description(format!(
            "Raw {} files exactly as received (values as strings) with lineage. {}",
            source.name, source.description
        ))
}

/// The identity of one delivered object.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub uri: String,
    /// The S3 ETag, or `sha256:<hex>` of the content.
    pub etag: String,
    pub batch_id: String,
    pub ingested_at: DateTime<Utc>,
}

/// The file's rows as raw batches (its own columns, then lineage).
pub fn raw_batches(records: &RawRecords, delivery: &Delivery) -> Result<Vec<RecordBatch>, ArrowError> {
    let mut fields: Vec<Field> = records.columns.iter().map(|c| Field::new(c, DataType::Utf8, true)).collect();
    fields.extend(lineage_fields());
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let date = delivery.ingested_at.format("%Y-%m-%d").to_string();
    records
        .rows
        .chunks(CHUNK)
        .map(|rows| {
            let mut columns: Vec<ArrayRef> = (0..records.columns.len())
                .map(|i| Arc::new(rows.iter().map(|(_, v)| v[i].as_deref()).collect::<StringArray>()) as ArrayRef)
                .collect();
            let n = rows.len();
            columns.push(Arc::new(StringArray::from(vec![delivery.uri.as_str(); n])));
            columns.push(Arc::new(StringArray::from(vec![delivery.etag.as_str(); n])));
            columns.push(Arc::new(Int64Array::from_iter_values(rows.iter().map(|(r, _)| *r as i64))));
            columns.push(Arc::new(
                TimestampMicrosecondArray::from(vec![delivery.ingested_at.timestamp_micros(); n]).with_timezone("UTC"),
            ));
            columns.push(Arc::new(StringArray::from(vec![delivery.batch_id.as_str(); n])));
            columns.push(Arc::new(StringArray::from(vec![date.as_str(); n])));
            RecordBatch::try_new(Arc::clone(&schema), columns)
        })
        .collect()
}
