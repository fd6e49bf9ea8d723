//! The catalog: a Delta table at `<root>/_catalog/tables`, one row per registered table.
//!
//! Being a Delta table itself, the registry is transactional (a table and its entry appear
//! together or not at all for readers of the registry) and versioned (`cdplake history
//! _catalog.tables`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cdplake_engine::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, ListArray, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::{EngineError, Lake, SqlSession, TableId, TableSpec, retry_on_conflict, timestamp_type};
use chrono::{DateTime, Utc};

use crate::entry::{TableEntry, TableMeta};
use crate::error::{CatalogError, Result};

const CATALOG_ZONE: &str = "_catalog";
const CATALOG_TABLE: &str = "tables";
const CONFLICT_ATTEMPTS: usize = 20;

/// The table registry of one lake.
#[derive(Debug, Clone)]
pub struct Catalog {
    lake: Lake,
    /// Entries this process has seen registered with their current definition. Every job
    /// ensures its tables on every run (a Lambda tens of times per invocation); for an entry
    /// known to be current, `ensure_table` skips reading the registry. A table created anew, or
    /// dropped through this catalog, is registered again.
    known_current: Arc<Mutex<HashMap<String, TableEntry>>>,
}

/// The id of the registry table itself: `_catalog.tables`.
pub fn catalog_table_id() -> TableId {
    TableId::new(CATALOG_ZONE, CATALOG_TABLE).expect("static name is valid")
}

fn registry_schema() -> SchemaRef {
    let list = || DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)));
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("zone", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("location", DataType::Utf8, false),
        Field::new("schema_json", DataType::Utf8, false),
        Field::new("partition_columns", list(), true),
        Field::new("primary_key", list(), true),
        Field::new("pii_columns", list(), true),
        Field::new("retention_days", DataType::Int32, true),
        Field::new("description", DataType::Utf8, true),
        Field::new("created_at", timestamp_type(), false),
        Field::new("updated_at", timestamp_type(), false),
    ]))
}

impl Catalog {
    /// The catalog of `lake`, creating its registry table on first use.
    pub async fn open(lake: &Lake) -> Result<Self> {
        let catalog = Self { lake: lake.clone(), known_current: Arc::default() };
        if !lake.table_exists(&catalog_table_id()).await? {
            let spec = TableSpec::new(catalog_table_id(), registry_schema())
                .with_description("The cdplake table registry: one row per table in the lake.");
            lake.ensure_table(&spec).await?;
        }
        Ok(catalog)
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Create a table and register it; if it exists, make sure its entry is current.
    /// Returns the table and whether it was created now.
    pub async fn ensure_table(&self, spec: &TableSpec, meta: &TableMeta) -> Result<(DeltaTable, bool)> {
        let (table, created) = self.lake.ensure_table(spec).await?;
        let entry = self.entry_for(spec, meta, &table)?;
        if created || !self.known_to_be_current(&entry) {
            self.register(entry).await?;
        }
        Ok((table, created))
    }

    /// Create a table and register it; fails if the table exists.
    pub async fn create_table(&self, spec: &TableSpec, meta: &TableMeta) -> Result<DeltaTable> {
        let table = self.lake.create_table(spec).await?;
        let entry = self.entry_for(spec, meta, &table)?;
        self.register(entry).await?;
        Ok(table)
    }

    fn entry_for(&self, spec: &TableSpec, meta: &TableMeta, table: &DeltaTable) -> Result<TableEntry> {
        for column in meta.primary_key.iter().chain(&meta.pii_columns) {
            if spec.schema.field_with_name(column).is_err() {
                return Err(CatalogError::UnknownColumn { table: spec.id.to_string(), column: column.clone() });
            }
        }
        let snapshot =
            table.snapshot().map_err(|e| CatalogError::Delta { table: spec.id.to_string(), source: Box::new(e) })?;
        let schema_json = serde_json::to_string(snapshot.schema().as_ref()).map_err(|e| CatalogError::Corrupt {
            reason: format!("cannot serialise the schema of {}: {e}", spec.id),
        })?;
        let now = Utc::now();
        Ok(TableEntry {
            name: spec.id.to_string(),
            zone: spec.id.zone().to_string(),
            table_name: spec.id.name().to_string(),
            location: spec.id.relative_path(),
            schema_json,
            partition_columns: snapshot.metadata().partition_columns().to_vec(),
            primary_key: meta.primary_key.clone(),
            pii_columns: meta.pii_columns.clone(),
            retention_days: meta.retention_days,
            description: spec.description.clone().unwrap_or_default(),
            created_at: now,
            updated_at: now,
        })
    }

    /// Add nullable columns to a registered table and record its new schema.
    pub async fn add_columns(&self, id: &TableId, fields: &[Field]) -> Result<TableEntry> {
        self.describe(id).await?;
        self.lake.add_columns(id, fields).await?;
        self.refresh(id).await
    }

    /// Re-read a registered table's schema and partitioning from its Delta log (after a schema
    /// change by cdplake or any other writer) and update its entry if they changed.
    pub async fn refresh(&self, id: &TableId) -> Result<TableEntry> {
        let existing = self.describe(id).await?;
        let table = self.lake.table(id).await?;
        let snapshot =
            table.snapshot().map_err(|e| CatalogError::Delta { table: id.to_string(), source: Box::new(e) })?;
        let schema_json = serde_json::to_string(snapshot.schema().as_ref())
            .map_err(|e| CatalogError::Corrupt { reason: format!("cannot serialise the schema of {id}: {e}") })?;
        let entry = TableEntry {
            schema_json,
            partition_columns: snapshot.metadata().partition_columns().to_vec(),
            updated_at: Utc::now(),
            ..existing
        };
        self.register(entry.clone()).await?;
        self.describe(id).await
    }

    /// Insert or update an entry (by name). An unchanged definition writes nothing; a changed
    /// one keeps its `created_at` and gets a new `updated_at`.
    ///
    /// The registry is rewritten whole, as one small file, on the snapshot its entries were read
    /// from: it never grows a file per update, and two concurrent updates conflict (both remove
    /// the same file) and the loser reruns on the winner's version.
    pub async fn register(&self, entry: TableEntry) -> Result<()> {
        let current = entry.clone();
        self.rewrite(move |entries| {
            if let Some(existing) = entries.iter().find(|e| e.name == entry.name)
                && existing.same_definition(&entry)
            {
                return false;
            }
            entries.retain(|e| e.name != entry.name);
            entries.push(entry.clone());
            true
        })
        .await?;
        self.known().insert(current.name.clone(), current);
        Ok(())
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, TableEntry>> {
        self.known_current.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn known_to_be_current(&self, entry: &TableEntry) -> bool {
        self.known().get(&entry.name).is_some_and(|known| known.same_definition(entry))
    }

    /// Remove a table from the registry; with `purge`, delete its files too.
    pub async fn drop_table(&self, id: &TableId, purge: bool) -> Result<()> {
        if self.find(&id.to_string()).await?.is_none() {
            return Err(CatalogError::NotRegistered { table: id.to_string() });
        }
        let name = id.to_string();
        self.known().remove(&name);
        self.rewrite(move |entries| {
            let before = entries.len();
            entries.retain(|e| e.name != name);
            entries.len() != before
        })
        .await?;
        if purge {
            self.lake.purge_table_files(id).await?;
        }
        Ok(())
    }

    /// Read every entry, let `change` edit them (it says whether anything changed), and write
    /// them back as one file in one commit on the same snapshot; rerun on a conflict.
    async fn rewrite(&self, change: impl Fn(&mut Vec<TableEntry>) -> bool) -> Result<()> {
        let id = catalog_table_id();
        let change = &change;
        retry_on_conflict(CONFLICT_ATTEMPTS, || {
            let id = id.clone();
            async move {
                let table = self.lake.table(&id).await?;
                let mut entries = self.entries_of(&table).await.map_err(into_engine)?;
                if !change(&mut entries) {
                    return Ok(());
                }
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                let batch = entries_to_batch(&entries).map_err(into_engine)?;
                self.lake.overwrite_table(table, &id, vec![batch]).await?;
                Ok(())
            }
        })
        .await?;
        Ok(())
    }

    /// The entries of a loaded registry table (one per name: the latest `updated_at` wins).
    async fn entries_of(&self, table: &DeltaTable) -> Result<Vec<TableEntry>> {
        let id = catalog_table_id();
        let batches = self
            .lake
            .read_table(&id, table, &self.lake.session())
            .await?
            .collect()
            .await
            .map_err(|e| EngineError::query("catalog: list", e))?;
        let mut entries: Vec<TableEntry> = Vec::new();
        for batch in &batches {
            entries.extend(batch_to_entries(batch)?);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name).then(b.updated_at.cmp(&a.updated_at)));
        entries.dedup_by(|later, first| later.name == first.name);
        Ok(entries)
    }

    /// Every registered table, sorted by name.
    pub async fn list(&self) -> Result<Vec<TableEntry>> {
        let table = self.lake.table(&catalog_table_id()).await?;
        self.entries_of(&table).await
    }

    async fn find(&self, name: &str) -> Result<Option<TableEntry>> {
        Ok(self.list().await?.into_iter().find(|e| e.name == name))
    }

    /// One table's entry.
    pub async fn describe(&self, id: &TableId) -> Result<TableEntry> {
        self.find(&id.to_string()).await?.ok_or_else(|| CatalogError::NotRegistered { table: id.to_string() })
    }

    /// A SQL session with every registered table as `zone.table`, plus `_catalog.tables`.
    pub async fn sql_session(&self) -> Result<SqlSession> {
        let session = SqlSession::new()?;
        session.register(&self.lake, &catalog_table_id()).await?;
        for entry in self.list().await? {
            let id = TableId::new(&entry.zone, &entry.table_name)?;
            match session.register(&self.lake, &id).await {
                Ok(()) => {}
                // Registered but gone (dropped by hand): leave it out rather than fail every query.
                Err(EngineError::TableNotFound { .. }) => {
                    tracing::warn!(table = %id, "registered table has no data; skipped")
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(session)
    }
}

/// A catalog error inside an engine retry loop (the loop reruns only engine conflicts).
fn into_engine(e: CatalogError) -> EngineError {
    match e {
        CatalogError::Engine(e) => e,
        other => EngineError::Io { context: "catalog".into(), source: std::io::Error::other(other.to_string()) },
    }
}

fn list_array(values: impl Iterator<Item = Vec<String>>) -> ArrayRef {
    let mut builder = ListBuilder::new(StringBuilder::new()).with_field(Field::new("element", DataType::Utf8, true));
    for list in values {
        for v in list {
            builder.values().append_value(v);
        }
        builder.append(true);
    }
    Arc::new(builder.finish())
}

fn timestamps(values: impl Iterator<Item = DateTime<Utc>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values.map(|t| t.timestamp_micros())).with_timezone("UTC"))
}

fn entries_to_batch(entries: &[TableEntry]) -> Result<RecordBatch> {
    let strings =
        |f: fn(&TableEntry) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(entries.iter().map(f))) };
    let columns: Vec<ArrayRef> = vec![
        strings(|e| &e.name),
        strings(|e| &e.zone),
        strings(|e| &e.table_name),
        strings(|e| &e.location),
        strings(|e| &e.schema_json),
        list_array(entries.iter().map(|e| e.partition_columns.clone())),
        list_array(entries.iter().map(|e| e.primary_key.clone())),
        list_array(entries.iter().map(|e| e.pii_columns.clone())),
        Arc::new(Int32Array::from_iter(entries.iter().map(|e| e.retention_days))),
        strings(|e| &e.description),
        timestamps(entries.iter().map(|e| e.created_at)),
        timestamps(entries.iter().map(|e| e.updated_at)),
    ];
    RecordBatch::try_new(registry_schema(), columns)
        .map_err(|e| CatalogError::Corrupt { reason: format!("cannot build a registry row: {e}") })
}

/// A column of `batch` cast to `to` (Delta reads may hand back view or large types).
fn column_as(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| CatalogError::Corrupt { reason: format!("the registry has no column {name}") })?;
    cast(column, to).map_err(|e| CatalogError::Corrupt { reason: format!("registry column {name}: {e}") })
}

fn batch_to_entries(batch: &RecordBatch) -> Result<Vec<TableEntry>> {
    let list_type = DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)));
    let text = |name| column_as(batch, name, &DataType::Utf8);
    let (name, zone, table_name, location, schema_json, description) = (
        text("name")?,
        text("zone")?,
        text("table_name")?,
        text("location")?,
        text("schema_json")?,
        text("description")?,
    );
    let lists = |name| column_as(batch, name, &list_type);
    let (partition_columns, primary_key, pii_columns) =
        (lists("partition_columns")?, lists("primary_key")?, lists("pii_columns")?);
    let retention = column_as(batch, "retention_days", &DataType::Int32)?;
    let created = column_as(batch, "created_at", &timestamp_type())?;
    let updated = column_as(batch, "updated_at", &timestamp_type())?;

    let s = |a: &ArrayRef, i: usize| a.as_string::<i32>().value(i).to_string();
    let l = |a: &ArrayRef, i: usize| -> Vec<String> {
        let list: &ListArray = a.as_list::<i32>();
        if list.is_null(i) {
            return Vec::new();
        }
        let values = list.value(i);
        let values = values.as_string::<i32>();
        (0..values.len()).map(|j| values.value(j).to_string()).collect()
    };
    let t = |a: &ArrayRef, i: usize| {
        let ts = a.as_primitive::<cdplake_engine::arrow::datatypes::TimestampMicrosecondType>();
        DateTime::from_timestamp_micros(ts.value(i)).unwrap_or_default()
    };
    let retention = retention.as_primitive::<cdplake_engine::arrow::datatypes::Int32Type>();
    Ok((0..batch.num_rows())
        .map(|i| TableEntry {
            name: s(&name, i),
            zone: s(&zone, i),
            table_name: s(&table_name, i),
            location: s(&location, i),
            schema_json: s(&schema_json, i),
            partition_columns: l(&partition_columns, i),
            primary_key: l(&primary_key, i),
            pii_columns: l(&pii_columns, i),
            retention_days: (!retention.is_null(i)).then(|| retention.value(i)),
            description: if description.is_null(i) { String::new() } else { s(&description, i) },
            created_at: t(&created, i),
            updated_at: t(&updated, i),
        })
        .collect())
}
