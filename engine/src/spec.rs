//! What a table is: its id, Arrow schema, partitioning and properties, normalised so that
//! every engine that reads Delta (Athena engine v3 first of all) can read it.
//!
//! Athena reads Delta tables with protocol reader 1 / writer 2, no deletion vectors, no column
//! mapping, lower-case names, and timestamps as `timestamp` (microseconds, UTC). Arrow
//! timestamps without a time zone would become Delta `timestamp_ntz`, which needs writer
//! version 7, so every timestamp is stored as microseconds UTC.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryFromArrow;

use crate::error::{EngineError, Result};
use crate::naming::{TableId, validate_name};

/// The Arrow type every timestamp column is stored as.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Commits between two checkpoints of every cdplake table (Delta's default is 100). Opening a
/// table reads its last checkpoint and then every commit after it, one storage request each: on
/// S3 a lake fed by micro-batches paid up to 100 requests per table open, and a job opens tens of
/// tables. A checkpoint of a table of a few hundred files is one small Parquet file.
pub const CHECKPOINT_INTERVAL: u64 = 10;

/// The properties every table gets unless its spec says otherwise (also set on existing tables
/// by `cdplake maintain`).
pub fn default_properties() -> HashMap<String, String> {
    HashMap::from([("delta.checkpointInterval".to_string(), CHECKPOINT_INTERVAL.to_string())])
}

/// Everything needed to create a table.
#[derive(Debug, Clone)]
pub struct TableSpec {
    pub id: TableId,
    pub schema: SchemaRef,
    pub partition_columns: Vec<String>,
    /// Delta table properties (`delta.appendOnly`, ...).
    pub properties: HashMap<String, String>,
    pub description: Option<String>,
}

impl TableSpec {
    pub fn new(id: TableId, schema: SchemaRef) -> Self {
        Self { id, schema, partition_columns: Vec::new(), properties: default_properties(), description: None }
    }

    pub fn partitioned_by(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.partition_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// The schema as it will be stored: names checked, timestamps as µs UTC, partition
    /// columns present.
    pub fn normalized_schema(&self) -> Result<SchemaRef> {
        let fields = normalize_fields(&self.id, self.schema.fields())?;
        for column in &self.partition_columns {
            let field = fields.iter().find(|f| f.name() == column).ok_or_else(|| EngineError::InvalidName {
                what: "partition column",
                name: column.clone(),
                reason: format!("table {} has no such column", self.id),
            })?;
            if !is_partition_type(field.data_type()) {
                return Err(unsupported(
                    &self.id,
                    column,
                    field.data_type(),
                    "cannot be a partition column; partition by a string, integer, date or boolean column",
                ));
            }
        }
        Ok(Arc::new(Schema::new_with_metadata(fields, self.schema.metadata().clone())))
    }

    /// The normalised schema as Delta's kernel type.
    pub fn delta_schema(&self) -> Result<StructType> {
        let schema = self.normalized_schema()?;
        StructType::try_from_arrow(schema.as_ref()).map_err(|e| EngineError::Arrow {
            context: format!("table {}: converting the schema to Delta", self.id),
            source: e,
        })
    }
}

/// New nullable columns for an existing table, checked and converted like a table's schema.
/// (Delta can only add nullable columns: old files have no values for them.)
pub fn delta_columns(table: &TableId, fields: &[Field]) -> Result<StructType> {
    if let Some(required) = fields.iter().find(|f| !f.is_nullable()) {
        return Err(unsupported(
            table,
            required.name(),
            required.data_type(),
            "is not nullable; a column added to an existing table must be nullable",
        ));
    }
    let fields = normalize_fields(table, &Fields::from(fields.to_vec()))?;
    StructType::try_from_arrow(&Schema::new(fields)).map_err(|e| EngineError::Arrow {
        context: format!("table {table}: converting new columns to Delta"),
        source: e,
    })
}

fn is_partition_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Date32
            | DataType::Boolean
    )
}

fn unsupported(table: &TableId, column: &str, t: &DataType, reason: &str) -> EngineError {
    EngineError::UnsupportedType {
        table: table.to_string(),
        column: column.to_string(),
        data_type: t.to_string(),
        reason: reason.to_string(),
    }
}

fn normalize_fields(table: &TableId, fields: &Fields) -> Result<Vec<Field>> {
    fields
        .iter()
        .map(|f| {
            validate_name("column", f.name()).map_err(|e| match e {
                EngineError::InvalidName { what, name, reason } => {
                    EngineError::InvalidName { what, name, reason: format!("{reason} (table {table})") }
                }
                other => other,
            })?;
            let data_type = normalize_type(table, f.name(), f.data_type())?;
            Ok(Field::new(f.name(), data_type, f.is_nullable()).with_metadata(f.metadata().clone()))
        })
        .collect()
}

fn normalize_type(table: &TableId, column: &str, t: &DataType) -> Result<DataType> {
    Ok(match t {
        DataType::Timestamp(_, _) => timestamp_type(),
        DataType::Struct(fields) => DataType::Struct(normalize_fields(table, fields)?.into()),
        DataType::List(item) | DataType::LargeList(item) => {
            let item_type = normalize_type(table, column, item.data_type())?;
            DataType::List(Arc::new(Field::new(item.name(), item_type, item.is_nullable())))
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(unsupported(table, column, t, "is a map without key/value entries"));
            };
            let kv: Vec<Field> = kv
                .iter()
                .map(|f| Ok(Field::new(f.name(), normalize_type(table, column, f.data_type())?, f.is_nullable())))
                .collect::<Result<_>>()?;
            DataType::Map(Arc::new(Field::new(entries.name(), DataType::Struct(kv.into()), false)), *sorted)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            return Err(unsupported(
                table,
                column,
                t,
                "Delta has no unsigned integers; use a signed integer (Int64 for ids)",
            ));
        }
        DataType::Float16
        | DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Duration(_)
        | DataType::Interval(_)
        | DataType::FixedSizeBinary(_) => {
            return Err(unsupported(table, column, t, "Delta/Athena cannot store; use a supported type"));
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> TableId {
        TableId::new("raw", "t").unwrap()
    }

    #[test]
    fn timestamps_become_microseconds_utc() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Timestamp(TimeUnit::Millisecond, None), true))),
                true,
            ),
        ]));
        let spec = TableSpec::new(id(), schema);
        let normalized = spec.normalized_schema().unwrap();
        assert_eq!(normalized.field(0).data_type(), &timestamp_type());
        let DataType::List(item) = normalized.field(1).data_type() else { panic!() };
        assert_eq!(item.data_type(), &timestamp_type());
        spec.delta_schema().unwrap();
    }

    #[test]
    fn rejects_bad_columns_and_partitions() {
        let upper = Arc::new(Schema::new(vec![Field::new("CustomerID", DataType::Utf8, true)]));
        let err = TableSpec::new(id(), upper).normalized_schema().unwrap_err().to_string();
        assert!(err.contains("CustomerID") && err.contains("customer_id") && err.contains("raw.t"), "{err}");

        let unsigned = Arc::new(Schema::new(vec![Field::new("n", DataType::UInt64, true)]));
        assert!(TableSpec::new(id(), unsigned).normalized_schema().is_err());

        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let err = TableSpec::new(id(), schema).partitioned_by(["dt"]).normalized_schema().unwrap_err();
        assert!(err.to_string().contains("dt"), "{err}");
    }
}
