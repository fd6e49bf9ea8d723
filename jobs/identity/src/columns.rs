//! Reading the columns of a query's batch by name, with an error naming the column.
//! (Local to identity: `cdplake_core::columns::text` gives no error for an absent column.)

use cdplake_engine::arrow::array::{ArrayRef, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;

use cdplake_core::error::{JobError, Result};

/// The column `name` of `batch`.
pub(crate) fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| JobError::Invalid(format!("identity: no column {name}")))
}

/// The column `name` of `batch` as strings (Utf8).
pub(crate) fn utf8(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    cast(column(batch, name)?, &DataType::Utf8).map_err(|e| JobError::arrow(name.to_string(), e))
}

/// The column `name` of `batch` as Int64.
pub(crate) fn int64(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    cast(column(batch, name)?, &DataType::Int64).map_err(|e| JobError::arrow(name.to_string(), e))
}
