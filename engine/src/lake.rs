//! The lake: Delta tables at `<root>/<zone>/<table>`, on a local disk or on S3.
//!
//! Every write is one Delta commit. On S3 the lake refuses to write at all unless the server
//! passed the conditional-write probe (see [`crate::probe`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use deltalake::arrow::datatypes::{Field, SchemaRef};
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use deltalake::delta_datafusion::DeltaSessionContext;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::delete::DeleteMetrics;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use url::Url;

use crate::error::{EngineError, Result};
use crate::location::LakeLocation;
use crate::naming::TableId;
use crate::open_tables::OpenTables;
use crate::probe::{WriteAccess, check_conditional_writes};
use crate::requests::{Counters, CountingStore, RequestCounts};
use crate::spec::{TableSpec, delta_columns};

/// How often a commit that lost a race to a non-conflicting writer is retried by delta-rs.
/// Appends never conflict logically; with many writers on one table, 15 (the default) can
/// run out.
pub(crate) const COMMIT_RETRIES: usize = 100;

/// A point in a table's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeTravel {
    Version(u64),
    /// The newest version committed at or before this instant.
    Timestamp(DateTime<Utc>),
}

/// One entry of a table's history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Commit {
    pub version: u64,
    pub timestamp: Option<DateTime<Utc>>,
    pub operation: String,
    pub parameters: serde_json::Value,
    pub metrics: serde_json::Value,
}

/// An open lake.
#[derive(Debug, Clone)]
pub struct Lake {
    location: LakeLocation,
    access: WriteAccess,
    /// On S3: the bucket's object store, built once and shared by every table opened through
    /// this lake (and its clones). delta-rs builds a store per table otherwise, and each build
    /// loads the system's TLS root certificates and starts a new connection pool: a profile of
    /// the S3 micro-batch benchmark showed certificate parsing among its top symbols.
    shared_root: Arc<OnceLock<Arc<dyn object_store::ObjectStore>>>,
    /// Calls into the shared store (S3 only; see [`Lake::storage_requests`]).
    requests: Arc<Counters>,
    /// Tables opened through this lake (and its clones), updated on the next open.
    open_tables: Arc<OpenTables>,
}

impl Lake {
    /// Open the lake at `root` with storage options from the environment.
    pub async fn open(root: &str) -> Result<Self> {
        Self::open_with_options(root, HashMap::new()).await
    }

    /// Open the lake at `root`; `storage_options` (from `cdplake.toml`) win over the environment.
    ///
    /// On S3 this probes the server's conditional writes once per process and endpoint.
    pub async fn open_with_options(root: &str, storage_options: HashMap<String, String>) -> Result<Self> {
        let location = LakeLocation::parse(root, storage_options)?;
        let shared_root = Arc::new(OnceLock::new());
        let requests = Arc::new(Counters::new(location.root().path()));
        let access = if location.is_s3() {
            let log_store = DeltaTableBuilder::from_url(location.root().clone())
                .and_then(|b| b.with_storage_options(location.storage_options().clone()).build_storage())
                .map_err(|e| EngineError::InvalidLocation { root: root.to_string(), reason: e.to_string() })?;
            let counting = CountingStore::new(log_store.root_object_store(None), requests.clone());
            let _ = shared_root.set(Arc::new(counting) as Arc<dyn object_store::ObjectStore>);
            check_conditional_writes(&location.endpoint(), log_store.object_store(None)).await
        } else {
            WriteAccess::Allowed
        };
        Ok(Self { location, access, shared_root, requests, open_tables: Arc::default() })
    }

    /// Requests made through this lake's tables since it was opened, by kind (S3 lakes; a
    /// local lake counts none).
    pub fn storage_requests(&self) -> RequestCounts {
        self.requests.snapshot()
    }

    /// Reads since the lake was opened by what they read (`curated/id_mapping log`,
    /// `raw/crm_members data`, ...; S3 lakes).
    pub fn storage_reads_by_target(&self) -> HashMap<String, u64> {
        self.requests.gets_by_target()
    }

    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    pub fn write_access(&self) -> &WriteAccess {
        &self.access
    }

    /// Fails with [`EngineError::UnsafeStore`] when this lake must not be written.
    pub fn ensure_writable(&self) -> Result<()> {
        match &self.access {
            WriteAccess::Allowed => Ok(()),
            WriteAccess::Refused { reason } => {
                Err(EngineError::UnsafeStore { endpoint: self.location.endpoint(), reason: reason.clone() })
            }
        }
    }

    fn builder(&self, url: &Url) -> Result<DeltaTableBuilder> {
        let builder = DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| EngineError::InvalidLocation { root: url.to_string(), reason: e.to_string() })?
            .with_storage_options(self.location.storage_options().clone());
        // The table's log store wraps the shared bucket store exactly as it would wrap its own
        // (delta-rs prefixes the root store per table either way).
        Ok(match self.shared_root.get() {
            Some(root) => builder.with_storage_backend(root.clone(), url.clone()),
            None => builder,
        })
    }

    /// Open any Delta table under the root by its relative location (`_catalog/tables`).
    /// The latest version: a table opened before through this lake is updated with the commits
    /// made since (see [`crate::open_tables`]), any other is loaded.
    pub async fn table_at_path(&self, relative: &str, label: &str) -> Result<DeltaTable> {
        let path = relative.trim_end_matches('/');
        if let Some(table) = self.open_tables.updated(path).await {
            tracing::debug!(table = label, version = table.version(), "table updated");
            return Ok(table);
        }
        tracing::debug!(table = label, "loading table");
        let url = self.location.join(&format!("{path}/"));
        match self.builder(&url)?.load().await {
            Ok(table) => {
                self.open_tables.remember(path, &table).await;
                Ok(table)
            }
            Err(e) if is_not_a_table(&e) => {
                Err(EngineError::TableNotFound { table: label.to_string(), location: url.to_string() })
            }
            Err(e) => Err(EngineError::delta(label, "open", e)),
        }
    }

    /// The latest version of a table.
    pub async fn table(&self, id: &TableId) -> Result<DeltaTable> {
        self.table_at_path(&id.relative_path(), &id.to_string()).await
    }

    /// A table as it was at a version or instant.
    pub async fn table_as_of(&self, id: &TableId, at: TimeTravel) -> Result<DeltaTable> {
        let url = self.location.table_url(id);
        let builder = self.builder(&url)?;
        let builder = match at {
            TimeTravel::Version(v) => builder.with_version(v),
            TimeTravel::Timestamp(ts) => builder.with_timestamp(ts),
        };
        builder.load().await.map_err(|e| match e {
            e if is_not_a_table(&e) => EngineError::TableNotFound { table: id.to_string(), location: url.to_string() },
            e => EngineError::delta(id, "time travel", e),
        })
    }

    /// The table, or `None` when there is none (one open, where `table_exists` and then `table`
    /// would read the log twice).
    pub async fn table_if_exists(&self, id: &TableId) -> Result<Option<DeltaTable>> {
        match self.table(id).await {
            Ok(table) => Ok(Some(table)),
            Err(EngineError::TableNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The table as a DataFrame, or `None` when there is none.
    pub async fn read_if_exists(&self, id: &TableId) -> Result<Option<DataFrame>> {
        match self.table_if_exists(id).await? {
            Some(table) => Ok(Some(self.read_table(id, &table, &self.session()).await?)),
            None => Ok(None),
        }
    }

    pub async fn table_exists(&self, id: &TableId) -> Result<bool> {
        Ok(self.table_if_exists(id).await?.is_some())
    }

    /// Create a table; fails with [`EngineError::TableExists`] if it is there already.
    pub async fn create_table(&self, spec: &TableSpec) -> Result<DeltaTable> {
        self.ensure_writable()?;
        let url = self.location.table_url(&spec.id);
        let schema = spec.delta_schema()?;
        if self.table_exists(&spec.id).await? {
            return Err(EngineError::TableExists { table: spec.id.to_string(), location: url.to_string() });
        }
        if let Some(dir) = self.location.local_dir() {
            let dir = dir.join(spec.id.relative_path());
            std::fs::create_dir_all(&dir).map_err(|e| EngineError::Io {
                context: format!("table {}: creating {}", spec.id, dir.display()),
                source: e,
            })?;
        }
        let table = self.builder(&url)?.build().map_err(|e| EngineError::delta(&spec.id, "create", e))?;
        let mut create = table
            .create()
            .with_table_name(spec.id.to_string())
            .with_columns(schema.fields().cloned())
            .with_partition_columns(spec.partition_columns.clone())
            .with_configuration(spec.properties.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
            .with_save_mode(SaveMode::ErrorIfExists);
        if let Some(description) = &spec.description {
            create = create.with_comment(description.clone());
        }
        match create.await {
            Ok(table) => Ok(table),
            // Lost a race with another creator of the same table (delta-rs reports it in several
            // shapes): the table is there now.
            Err(e) => {
                if self.table_exists(&spec.id).await.unwrap_or(false) {
                    Err(EngineError::TableExists { table: spec.id.to_string(), location: url.to_string() })
                } else {
                    Err(EngineError::delta(&spec.id, "create", e))
                }
            }
        }
    }

    /// Create the table unless it exists; returns the table and whether it was created.
    pub async fn ensure_table(&self, spec: &TableSpec) -> Result<(DeltaTable, bool)> {
        // Jobs ensure tables that exist nearly always: open first (one log read), create after.
        if let Some(table) = self.table_if_exists(&spec.id).await? {
            return Ok((table, false));
        }
        match self.create_table(spec).await {
            Ok(table) => Ok((table, true)),
            Err(EngineError::TableExists { .. }) => Ok((self.table(&spec.id).await?, false)),
            Err(e) => Err(e),
        }
    }

    /// Add nullable columns to a table's schema, in one commit (existing rows read them as null).
    pub async fn add_columns(&self, id: &TableId, fields: &[Field]) -> Result<DeltaTable> {
        self.ensure_writable()?;
        let columns = delta_columns(id, fields)?;
        let table = self.table(id).await?;
        let schema = table_arrow_schema(&table, id)?;
        if let Some(existing) = fields.iter().find(|f| schema.field_with_name(f.name()).is_ok()) {
            return Err(EngineError::InvalidName {
                what: "column",
                name: existing.name().clone(),
                reason: format!("table {id} already has this column"),
            });
        }
        table
            .add_columns()
            .with_fields(columns.fields().cloned().collect::<Vec<_>>())
            .with_commit_properties(CommitProperties::default().with_max_retries(COMMIT_RETRIES))
            .await
            .map_err(|e| EngineError::delta(id, "add columns", e))
    }

    /// Delete the rows matching a SQL predicate, in one commit.
    pub async fn delete(&self, id: &TableId, predicate: &str) -> Result<(DeltaTable, DeleteMetrics)> {
        self.ensure_writable()?;
        let table = self.table(id).await?;
        table
            .delete()
            .with_session_state(self.session_state())
            .with_predicate(predicate.to_string())
            .with_commit_properties(CommitProperties::default().with_max_retries(COMMIT_RETRIES))
            .await
            .map_err(|e| EngineError::delta(id, "delete", e))
    }

    /// A DataFusion session configured for Delta on the process's shared runtime (its memory
    /// budget and spill directory, [`crate::memory`]), for merge sources, writes and reads.
    pub fn session(&self) -> SessionContext {
        let ctx = DeltaSessionContext::with_runtime_env(crate::memory::runtime()).into_inner();
        crate::functions::register_functions(&ctx);
        ctx
    }

    /// The session state delta-rs operations run their plans in: without one they make their
    /// own session with an unbounded pool.
    pub(crate) fn session_state(&self) -> Arc<dyn deltalake::datafusion::catalog::Session> {
        Arc::new(self.session().state())
    }

    /// The latest version of a table as a DataFrame.
    pub async fn read(&self, id: &TableId) -> Result<DataFrame> {
        let table = self.table(id).await?;
        self.read_table(id, &table, &self.session()).await
    }

    /// A table at a version or instant as a DataFrame.
    pub async fn read_as_of(&self, id: &TableId, at: TimeTravel) -> Result<DataFrame> {
        let table = self.table_as_of(id, at).await?;
        self.read_table(id, &table, &self.session()).await
    }

    /// A loaded table as a DataFrame in `ctx`.
    pub async fn read_table(
        &self,
        label: impl ToString,
        table: &DeltaTable,
        ctx: &SessionContext,
    ) -> Result<DataFrame> {
        let label = label.to_string();
        table.update_datafusion_session(&ctx.state()).map_err(|e| EngineError::delta(&label, "read", e))?;
        let provider =
            table.table_provider().await.map_err(|e| EngineError::query(format!("table {label}: read"), e))?;
        ctx.read_table(provider).map_err(|e| EngineError::query(format!("table {label}: read"), e))
    }

    /// The table's commits, newest first.
    pub async fn history(&self, id: &TableId, limit: Option<usize>) -> Result<Vec<Commit>> {
        let table = self.table(id).await?;
        let latest = table.version().unwrap_or_default();
        let infos: Vec<_> =
            table.history(limit).try_collect().await.map_err(|e| EngineError::delta(id, "history", e))?;
        Ok(infos
            .into_iter()
            .enumerate()
            .map(|(i, info)| Commit {
                version: (latest as u64).saturating_sub(i as u64),
                timestamp: info.timestamp.and_then(DateTime::from_timestamp_millis),
                operation: info.operation.unwrap_or_default(),
                parameters: serde_json::to_value(info.operation_parameters.unwrap_or_default()).unwrap_or_default(),
                metrics: info.info.get("operationMetrics").cloned().unwrap_or(serde_json::Value::Null),
            })
            .collect())
    }
}

/// Does `error` mean "there is no Delta table here"? delta-rs says so in two ways: its own
/// `NotATable`, and the kernel's invalid-location error for a missing directory.
fn is_not_a_table(error: &DeltaTableError) -> bool {
    use delta_kernel::Error as KernelError;
    matches!(
        error,
        DeltaTableError::NotATable(_)
            | DeltaTableError::KernelError(KernelError::InvalidTableLocation(_) | KernelError::FileNotFound(_))
    )
}

/// The table's schema as Arrow.
pub fn table_arrow_schema(table: &DeltaTable, id: &TableId) -> Result<SchemaRef> {
    Ok(table.snapshot().map_err(|e| EngineError::delta(id, "read schema", e))?.snapshot().arrow_schema())
}

impl Lake {
    /// Delete every file of a table (after it was dropped from the catalog).
    pub async fn purge_table_files(&self, id: &TableId) -> Result<usize> {
        use object_store::ObjectStoreExt;
        self.ensure_writable()?;
        self.open_tables.forget(id.relative_path().trim_end_matches('/'));
        let url = self.location.table_url(id);
        let store =
            self.builder(&url)?.build_storage().map_err(|e| EngineError::delta(id, "purge", e))?.object_store(None);
        let paths: Vec<_> = store.list(None).map_ok(|meta| meta.location).try_collect().await.map_err(|e| {
            EngineError::Store { context: format!("table {id}: listing files to purge"), source: Box::new(e) }
        })?;
        for path in &paths {
            store.delete(path).await.map_err(|e| EngineError::Store {
                context: format!("table {id}: deleting {path}"),
                source: Box::new(e),
            })?;
        }
        if let Some(dir) = self.location.local_dir() {
            // Local stores leave empty directories behind.
            let _ = std::fs::remove_dir_all(dir.join(id.relative_path()));
        }
        Ok(paths.len())
    }
}
