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
