//! Building and reading Arrow columns by name: the small helpers every job uses to turn its typed
//! rows into a table's batch and back.

use std::sync::Arc;

use cdplake_engine::TableSpec;
use cdplake_engine::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;

use crate::error::{JobError, Result};

/// Timestamps (microseconds, UTC), the type every timestamp column of the lake has.
pub fn micros(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

/// Non-null strings.
pub fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<StringArray>())
}

/// A batch of `spec`'s table from its columns, in the schema's order.
pub fn batch_for(spec: &TableSpec, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let schema = spec.normalized_schema()?;
    RecordBatch::try_new(schema, columns).map_err(|e| JobError::arrow(format!("rows for {}", spec.id), e))
}

/// The column `name` of `batch`; an error naming the column when the batch has none.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    let index = batch.schema_ref().index_of(name).map_err(|e| JobError::arrow(format!("column {name}"), e))?;
    Ok(batch.column(index))
}

/// The column `name` of `batch` cast to `data_type`; an error naming the column when the batch
/// has none or its values do not cast.
pub fn column_as(batch: &RecordBatch, name: &str, data_type: &DataType) -> Result<ArrayRef> {
    cast(column(batch, name)?, data_type).map_err(|e| JobError::arrow(format!("column {name}"), e))
}

/// The column `name` as strings (Utf8), whatever string type it was read as; None if absent.
pub fn text(batch: &RecordBatch, name: &str) -> Option<ArrayRef> {
    batch.column_by_name(name).and_then(|c| cast(c, &DataType::Utf8).ok())
}
