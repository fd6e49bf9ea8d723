//! Building and reading Arrow columns by name: the small helpers every job uses to turn its typed
//! rows into a table's batch and back. This is the one home of "read a column by name or fail
//! naming it": a batch without the column gives [`JobError::MissingColumn`] naming where the
//! batch came from (`from`: a table, or the step that read it) and the column.

use std::sync::Arc;

use cdplake_engine::TableSpec;
use cdplake_engine::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
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

/// The column `name` of `batch`, read from `from`; [`JobError::MissingColumn`] when it has none.
pub fn column<'a>(batch: &'a RecordBatch, from: &str, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| JobError::missing_column(from, name))
}

/// The column `name` of `batch` cast to `data_type` (a query may hand out view or dictionary
/// types); an error naming `from` and the column when the batch has none or its values do not cast.
pub fn column_as(batch: &RecordBatch, from: &str, name: &str, data_type: &DataType) -> Result<ArrayRef> {
    cast(column(batch, from, name)?, data_type).map_err(|e| JobError::arrow(format!("{from}: column {name}"), e))
}

/// The column `name` of `batch` as strings (Utf8).
pub fn utf8(batch: &RecordBatch, from: &str, name: &str) -> Result<ArrayRef> {
    column_as(batch, from, name, &DataType::Utf8)
}

/// The column `name` of `batch` as Int64.
pub fn int64(batch: &RecordBatch, from: &str, name: &str) -> Result<ArrayRef> {
    column_as(batch, from, name, &DataType::Int64)
}

/// The columns `names` of `batches` as text rows (None for a null), in that order; a batch
/// without one of them gives [`JobError::MissingColumn`] naming `from`.
pub fn text_rows<const N: usize>(
    batches: &[RecordBatch],
    from: &str,
    names: [&str; N],
) -> Result<Vec<[Option<String>; N]>> {
    let mut rows = Vec::new();
    for b in batches {
        let columns = names.iter().map(|name| utf8(b, from, name)).collect::<Result<Vec<_>>>()?;
        for r in 0..b.num_rows() {
            rows.push(std::array::from_fn(|i| {
                let c = columns[i].as_string::<i32>();
                if c.is_null(r) { None } else { Some(c.value(r).to_string()) }
            }));
        }
    }
    Ok(rows)
}

/// The column `name` as strings (Utf8), whatever string type it was read as; None if absent (for
/// columns a table may lack, e.g. one written by an older version).
pub fn text(batch: &RecordBatch, name: &str) -> Option<ArrayRef> {
    batch.column_by_name(name).and_then(|c| cast(c, &DataType::Utf8).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdplake_engine::arrow::array::Int32Array;
    use cdplake_engine::arrow::datatypes::{Field, Schema};

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2]))]).unwrap()
    }

    #[test]
    fn an_absent_column_is_named_with_where_it_was_read() {
        let err = column(&batch(), "identity", "one_id").unwrap_err();
        assert!(
            matches!(&err, JobError::MissingColumn { table, column } if table == "identity" && column == "one_id"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "identity: no column one_id");
    }

    #[test]
    fn present_columns_are_read_and_cast() {
        assert_eq!(int64(&batch(), "t", "n").unwrap().data_type(), &DataType::Int64);
        assert_eq!(utf8(&batch(), "t", "n").unwrap().data_type(), &DataType::Utf8);
        assert!(text(&batch(), "absent").is_none());
        assert_eq!(text_rows(&[batch()], "t", ["n"]).unwrap(), vec![[Some("1".to_string())], [Some("2".to_string())]]);
        assert!(matches!(text_rows(&[batch()], "t", ["n", "m"]), Err(JobError::MissingColumn { .. })));
    }
}
