//! The engine's error type: every variant says what failed, on which table, and what to do.

use deltalake::DeltaTableError;
use deltalake::datafusion::error::DataFusionError;

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The lake root could not be understood.
    #[error("invalid lake location '{root}': {reason}")]
    InvalidLocation { root: String, reason: String },

    /// A zone, table or column name breaks the lake's naming rules.
    #[error("invalid {what} name '{name}': {reason}")]
    InvalidName { what: &'static str, name: String, reason: String },

    /// A schema uses a type that Athena engine v3 cannot read from Delta.
    #[error("table {table}: column '{column}' has type {data_type}, which {reason}")]
    UnsupportedType { table: String, column: String, data_type: String, reason: String },

    /// The table does not exist (yet).
    #[error("table {table} does not exist at {location}; create it first (cdplake init creates the built-in tables)")]
    TableNotFound { table: String, location: String },

    /// The table exists already and was asked to be created.
    #[error("table {table} already exists at {location}")]
    TableExists { table: String, location: String },

    /// The store cannot be written safely; nothing was written.
    #[error(
        "refusing to write to {endpoint}: {reason}. Concurrent Delta commits on this server could \
         silently overwrite each other. Use an S3 server that honours conditional writes \
         (AWS S3, MinIO, SeaweedFS: infra/s3/seaweedfs.sh)"
    )]
    UnsafeStore { endpoint: String, reason: String },

    /// A Delta operation failed.
    #[error("table {table}: {operation} failed: {source}")]
    Delta {
        table: String,
        operation: &'static str,
        /// Boxed: delta-rs's error is large, and every `Result` would carry its size.
        #[source]
        source: Box<DeltaTableError>,
    },

    /// A query or expression failed.
    #[error("{context}: {source}")]
    Query {
        context: String,
        #[source]
        source: Box<DataFusionError>,
    },

    /// Talking to the object store failed.
    #[error("{context}: {source}")]
    Store {
        context: String,
        #[source]
        source: Box<deltalake::ObjectStoreError>,
    },

    /// Arrow-level failure while shaping data.
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: deltalake::arrow::error::ArrowError,
    },

    /// Local file-system failure.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub fn delta(table: impl ToString, operation: &'static str, source: DeltaTableError) -> Self {
        EngineError::Delta { table: table.to_string(), operation, source: Box::new(source) }
    }

    pub fn query(context: impl Into<String>, source: DataFusionError) -> Self {
        EngineError::Query { context: context.into(), source: Box::new(source) }
    }

    /// True when a commit lost a race with another writer and the operation may be rerun.
    pub fn is_commit_conflict(&self) -> bool {
        use deltalake::kernel::transaction::TransactionError;
        match self {
            EngineError::Delta { source, .. } => matches!(
                source.as_ref(),
                DeltaTableError::VersionAlreadyExists(_)
                    | DeltaTableError::Transaction {
                        source: TransactionError::CommitConflict(_)
                            | TransactionError::VersionAlreadyExists(_)
                            | TransactionError::MaxCommitAttempts(_)
                    }
            ),
            _ => false,
        }
    }
}
