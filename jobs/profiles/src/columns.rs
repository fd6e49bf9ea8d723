//! Reading the columns of a query's batch by name, with an error naming the column.
//! (Local to profiles: `cdplake_core::columns::text` gives no error for an absent column.)

use cdplake_engine::arrow::array::{ArrayRef, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;

use cdplake_core::error::{JobError, Result};

/// The column `name` of `batch`.
pub(crate) fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| JobError::Invalid(format!("profiles: no column {name}")))
}

/// The column `name` of `batch` cast to `data_type` (a query may hand out view or dictionary
/// types); a failed cast is reported with `context`.
pub(crate) fn column_as(batch: &RecordBatch, name: &str, data_type: &DataType, context: &str) -> Result<ArrayRef> {
    cast(column(batch, name)?, data_type).map_err(|e| JobError::arrow(context, e))
}
