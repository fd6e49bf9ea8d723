//! What a job can fail with. Each variant says what failed; the CLI adds what to do.

use crate::config::ConfigError;

pub type Result<T, E = JobError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] cdplake_engine::EngineError),
    #[error(transparent)]
    Catalog(#[from] cdplake_catalog::CatalogError),
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: cdplake_engine::arrow::error::ArrowError,
    },
    #[error("{context}: {source}")]
    Query {
        context: String,
        #[source]
        source: Box<cdplake_engine::datafusion::error::DataFusionError>,
    },
    /// An engine error with what the job was doing when it happened.
    #[error("{context}: {source}")]
    Step {
        context: String,
        #[source]
        source: Box<cdplake_engine::EngineError>,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// A whole file refused (unreadable, a required column missing); nothing was written.
    #[error("file rejected, nothing written: {0}")]
    Rejected(String),
    /// A data-quality rule failed: the job published nothing.
    #[error("quality gate failed: {0}")]
    QualityGate(String),
    /// The job ran but nothing usable came out (an export of no rows): a script must not take
    /// it for success. The CLI exits with code 3.
    #[error("nothing came out: {0}")]
    Empty(String),
    /// Counts that must add up did not: a bug, reported rather than hidden.
    #[error("counts do not reconcile: {0}")]
    Reconciliation(String),
}

impl JobError {
    pub fn arrow(context: impl Into<String>, source: cdplake_engine::arrow::error::ArrowError) -> Self {
        Self::Arrow { context: context.into(), source }
    }

    pub fn query(context: impl Into<String>, source: cdplake_engine::datafusion::error::DataFusionError) -> Self {
        Self::Query { context: context.into(), source: Box::new(source) }
    }
}

/// What kind of failure an error is: the one thing a caller decides on (the CLI's exit code and
/// hint, a handler's answer). [`JobError::kind`] is the one map from errors to kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// cdplake.toml is wrong; the message names the key.
    Config,
    /// An argument, a file, an event or a request is not usable as given.
    BadInput,
    /// Something the job needs is not there yet (a table, a snapshot, a person); the message says
    /// which job makes it.
    NotFound,
    /// A table the lake does not have.
    MissingTable,
    /// SQL that does not resolve (a table or column name).
    BadQuery,
    /// The object store does not honour conditional writes, so racing commits could be lost.
    UnsafeStore,
    /// A whole file refused; nothing was written.
    Rejected,
    /// A data-quality rule failed; nothing was published.
    QualityGate,
    /// The job ran but nothing usable came out: a script must not take it for success.
    NoOutput,
    /// Counts that must add up did not: a bug, reported rather than hidden.
    Bug,
    /// Storage, Arrow or the query engine failed underneath.
    Internal,
}

impl ErrorKind {
    /// The process exit code of a command that failed this way (2, wrong usage, is clap's).
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::NoOutput => 3,
            _ => 1,
        }
    }

    /// What the user can do about it, when the message alone does not say.
    pub const fn hint(self) -> Option<&'static str> {
        match self {
            Self::MissingTable => Some("`cdplake tables` lists the tables in this lake; check --lake"),
            Self::UnsafeStore => Some(
                "use an S3 server that honours If-None-Match (AWS S3, SeaweedFS: `bash infra/s3/seaweedfs.sh start`)",
            ),
            Self::BadQuery => Some("tables are named zone.table; `cdplake tables` lists them"),
            _ => None,
        }
    }

    /// The kind of an engine failure.
    pub fn of_engine(err: &cdplake_engine::EngineError) -> Self {
        use cdplake_engine::EngineError as E;
        match err {
            E::TableNotFound { .. } => Self::MissingTable,
            E::UnsafeStore { .. } => Self::UnsafeStore,
            E::Query { .. } => Self::BadQuery,
            E::InvalidLocation { .. } | E::InvalidName { .. } => Self::BadInput,
            _ => Self::Internal,
        }
    }
}

impl JobError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Config(_) => ErrorKind::Config,
            Self::Engine(e) => ErrorKind::of_engine(e),
            Self::Step { source, .. } => ErrorKind::of_engine(source),
            Self::Catalog(_) | Self::Arrow { .. } | Self::Query { .. } => ErrorKind::Internal,
            Self::Invalid(_) => ErrorKind::BadInput,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Rejected(_) => ErrorKind::Rejected,
            Self::QualityGate(_) => ErrorKind::QualityGate,
            Self::Empty(_) => ErrorKind::NoOutput,
            Self::Reconciliation(_) => ErrorKind::Bug,
        }
    }
}
