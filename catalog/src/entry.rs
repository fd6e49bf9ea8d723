//! One row of the catalog: what a table is, where it lives, and how it must be treated.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Catalog-only facts about a table, beyond what Delta stores in its own log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableMeta {
    /// Business key: one row per value of these columns.
    pub primary_key: Vec<String>,
    /// Columns holding personal data (hashed or not); erase and export rules use them.
    pub pii_columns: Vec<String>,
    /// How long rows are kept; `None` = forever.
    pub retention_days: Option<i32>,
}

impl TableMeta {
    pub fn with_primary_key(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.primary_key = columns.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_pii_columns(mut self, columns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.pii_columns = columns.into_iter().map(Into::into).collect();
        self
    }

    pub fn with_retention_days(mut self, days: i32) -> Self {
        self.retention_days = Some(days);
        self
    }
}

/// A registered table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableEntry {
    /// `zone.table`
    pub name: String,
    pub zone: String,
    pub table_name: String,
    /// Relative to the lake root, e.g. `curated/customer_profiles`.
    pub location: String,
    /// The Delta schema as JSON (the `schemaString` of the Delta log).
    pub schema_json: String,
    pub partition_columns: Vec<String>,
    pub primary_key: Vec<String>,
    pub pii_columns: Vec<String>,
    pub retention_days: Option<i32>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TableEntry {
    /// Same table definition, ignoring timestamps.
    pub fn same_definition(&self, other: &TableEntry) -> bool {
        let strip = |e: &TableEntry| TableEntry {
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            ..e.clone()
        };
        strip(self) == strip(other)
    }

    /// The columns and their Delta types, parsed from the schema JSON.
    pub fn columns(&self) -> Vec<(String, String, bool)> {
        let Ok(schema) = serde_json::from_str::<serde_json::Value>(&self.schema_json) else {
            return Vec::new();
        };
        schema["fields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .map(|f| {
                        let t = match &f["type"] {
                            serde_json::Value::String(s) => s.clone(),
                            other => other["type"].as_str().unwrap_or("struct").to_string(),
                        };
                        (f["name"].as_str().unwrap_or_default().to_string(), t, f["nullable"].as_bool().unwrap_or(true))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
