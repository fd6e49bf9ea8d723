//! Catalog entries and table history as Arrow batches, so every listing prints as a table,
//! CSV or JSON through the same formatter as query results.

use std::sync::Arc;

use cdplake_catalog::TableEntry;
use cdplake_engine::Commit;
use cdplake_engine::arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, UInt64Array};
use cdplake_engine::arrow::datatypes::{Field, Schema};

use cdplake_core::error::{JobError, Result};

fn batch(fields: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let schema = Schema::new(
        fields.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), true)).collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), fields.into_iter().map(|(_, a)| a).collect())
        .map_err(|e| JobError::arrow("building a listing", e))
}

fn strings<T>(rows: &[T], f: impl Fn(&T) -> String) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
}

/// `cdplake tables`: one row per registered table.
pub fn tables_batch(entries: &[TableEntry]) -> Result<RecordBatch> {
    batch(vec![
        ("table", strings(entries, |e| e.name.clone())),
        ("location", strings(entries, |e| e.location.clone())),
        ("partitioned_by", strings(entries, |e| e.partition_columns.join(", "))),
        ("primary_key", strings(entries, |e| e.primary_key.join(", "))),
        ("updated_at", strings(entries, |e| e.updated_at.to_rfc3339())),
        ("description", strings(entries, |e| e.description.clone())),
    ])
}

/// `cdplake describe`: the table's properties, one per row.
pub fn entry_batch(entry: &TableEntry) -> Result<RecordBatch> {
    let retention = entry.retention_days.map(|d| d.to_string()).unwrap_or_default();
    let properties = [
        ("table", entry.name.clone()),
        ("location", entry.location.clone()),
        ("description", entry.description.clone()),
        ("partitioned_by", entry.partition_columns.join(", ")),
        ("primary_key", entry.primary_key.join(", ")),
        ("pii_columns", entry.pii_columns.join(", ")),
        ("retention_days", retention),
        ("created_at", entry.created_at.to_rfc3339()),
        ("updated_at", entry.updated_at.to_rfc3339()),
    ];
    batch(vec![
        ("property", strings(&properties, |p| p.0.to_string())),
        ("value", strings(&properties, |p| p.1.clone())),
    ])
}

/// `cdplake describe`: the table's columns.
pub fn columns_batch(entry: &TableEntry) -> Result<RecordBatch> {
    let columns = entry.columns();
    let flag = |f: fn(&(String, String, bool)) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from_iter(columns.iter().map(|c| Some(f(c)))))
    };
    batch(vec![
        ("position", Arc::new(Int32Array::from_iter_values(1..=columns.len() as i32)) as ArrayRef),
        ("column", strings(&columns, |c| c.0.clone())),
        ("type", strings(&columns, |c| c.1.clone())),
        ("nullable", flag(|c| c.2)),
        ("partition", {
            let parts = &entry.partition_columns;
            Arc::new(BooleanArray::from_iter(columns.iter().map(|c| Some(parts.contains(&c.0))))) as ArrayRef
        }),
        ("pii", {
            let pii = &entry.pii_columns;
            Arc::new(BooleanArray::from_iter(columns.iter().map(|c| Some(pii.contains(&c.0))))) as ArrayRef
        }),
    ])
}

/// `cdplake history`: one row per commit, newest first.
pub fn history_batch(commits: &[Commit]) -> Result<RecordBatch> {
    let json = |v: &serde_json::Value| if v.is_null() { String::new() } else { v.to_string() };
    batch(vec![
        ("version", Arc::new(UInt64Array::from_iter_values(commits.iter().map(|c| c.version))) as ArrayRef),
        ("timestamp", strings(commits, |c| c.timestamp.map(|t| t.to_rfc3339()).unwrap_or_default())),
        ("operation", strings(commits, |c| c.operation.clone())),
        ("parameters", strings(commits, |c| json(&c.parameters))),
        ("metrics", strings(commits, |c| json(&c.metrics))),
    ])
}

/// `cdplake sources`: one row per source.
pub fn sources_batch(sources: &[cdplake_zones::Source]) -> Result<RecordBatch> {
    let ids = |s: &cdplake_zones::Source| {
        s.columns
            .iter()
            .filter_map(|c| c.id_type.as_ref().map(|t| format!("{}→{t}", c.name)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    batch(vec![
        ("source", strings(sources, |s| s.name.clone())),
        ("format", strings(sources, |s| format!("{:?}", s.format).to_lowercase())),
        ("key", strings(sources, |s| s.primary_key.join(", "))),
        ("order_by", strings(sources, |s| s.order_by.clone().unwrap_or_default())),
        ("identifiers", strings(sources, ids)),
        ("columns", strings(sources, |s| s.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "))),
    ])
}
