//! What a job can fail with. Each variant says what failed, with the facts as fields (which
//! file, table, column, service); the CLI adds what to do.
//!
//! The rule: callers decide on [`JobError::kind`] (or match a variant and its fields), never on
//! the message text. [`JobError::kind`] is the one map from an error to its [`ErrorKind`];
//! [`ErrorKind::exit_code`] and [`ErrorKind::hint`] give the CLI's exit code and hint. The
//! messages are for people and may be reworded; tests match variants, not text.

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
    /// An argument, a file, an event, a request or an expression not usable as given: `what`
    /// names it (a file, `[profiles.events.x]`, the query), `reason` says what is wrong with it.
    #[error("{what}: {reason}")]
    BadInput { what: String, reason: String },
    /// A column a job reads is absent from what it read: `table` is the table or the step that
    /// read it (`identity`, `profile index: curated.id_mapping`).
    #[error("{table}: no column {column}")]
    MissingColumn { table: String, column: String },
    /// A local file or directory could not be made or written.
    #[error("{doing} {path}: {source}")]
    Io {
        doing: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A service refused or failed: the HTTP listener, an S3 API, PostgreSQL.
    #[error("{service}: {detail}")]
    Service { service: String, detail: String },
    /// Output could not be encoded or rendered (JSON, CSV, Parquet, a chart).
    #[error("encoding {what}: {detail}")]
    Encoding { what: String, detail: String },
    /// Something the job needs is not there yet: `what` says what is missing, `remedy` which
    /// command makes it (or what to do instead).
    #[error("{what}: {remedy}")]
    NotFound { what: String, remedy: String },
    /// A whole file refused (unreadable, a required column missing); nothing was written.
    #[error("file rejected, nothing written: {file}: {reason}")]
    Rejected { file: String, reason: String },
    /// A data-quality rule failed: `table` was not published; `failures` lists the failed rules
    /// with their values and thresholds.
    #[error(
        "quality gate failed: {table} not published (it keeps its previous version): {failures}; fix the input or \
         rerun with --force"
    )]
    QualityGate { table: String, failures: String },
    /// The job ran but nothing usable came out (an export of no rows): a script must not take
    /// it for success. The CLI exits with code 3.
    #[error("nothing came out: {what}: {detail}")]
    Empty { what: String, detail: String },
    /// Counts that must add up did not (`got` != `expected`): a bug, reported rather than hidden.
    #[error("counts do not reconcile: {what}: {got} != {expected}")]
    Reconciliation { what: String, expected: String, got: String },
    /// A concurrent run already published `table` from newer input than this run read (`detail`
    /// says which): publishing would go back in time, so the run stops and may be rerun.
    #[error("{table}: a concurrent run published it from newer input: {detail}")]
    Superseded { table: String, detail: String },
}

impl JobError {
    pub fn arrow(context: impl Into<String>, source: cdplake_engine::arrow::error::ArrowError) -> Self {
        Self::Arrow { context: context.into(), source }
    }

    pub fn query(context: impl Into<String>, source: cdplake_engine::datafusion::error::DataFusionError) -> Self {
        Self::Query { context: context.into(), source: Box::new(source) }
    }

    /// [`JobError::BadInput`]: `what` is not usable because of `reason`.
    pub fn bad_input(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::BadInput { what: what.into(), reason: reason.into() }
    }

    /// [`JobError::NotFound`]: `what` is missing; `remedy` says what makes it.
    pub fn not_found(what: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self::NotFound { what: what.into(), remedy: remedy.into() }
    }

    /// [`JobError::MissingColumn`]: what `table` gave has no `column`.
    pub fn missing_column(table: impl Into<String>, column: impl Into<String>) -> Self {
        Self::MissingColumn { table: table.into(), column: column.into() }
    }

    /// [`JobError::Service`]: `service` refused or failed, as `detail` says.
    pub fn service(service: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Service { service: service.into(), detail: detail.to_string() }
    }

    /// [`JobError::Encoding`]: `what` could not be encoded, as `detail` says.
    pub fn encoding(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Self::Encoding { what: what.into(), detail: detail.to_string() }
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
    /// An operator needed more memory than the budget holds and could not spill.
    OutOfMemory,
    /// A whole file refused; nothing was written.
    Rejected,
    /// A data-quality rule failed; nothing was published.
    QualityGate,
    /// The job ran but nothing usable came out: a script must not take it for success.
    NoOutput,
    /// Counts that must add up did not: a bug, reported rather than hidden.
    Bug,
    /// A concurrent run got there first with newer input; nothing was committed, a rerun (the
    /// runners' own retry) starts from what it published.
    LostRace,
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
            Self::LostRace => Some("rerun: the rerun starts from what the concurrent run published"),
            Self::OutOfMemory => Some(
                "give the job more memory: --memory-limit SIZE (CDPLAKE_MEMORY_LIMIT, [engine] memory_limit); \
                 the failed step committed nothing, a rerun picks up from the last committed one",
            ),
            _ => None,
        }
    }

    /// The kind of an engine failure.
    pub fn of_engine(err: &cdplake_engine::EngineError) -> Self {
        use cdplake_engine::EngineError as E;
        match err {
            E::TableNotFound { .. } => Self::MissingTable,
            E::UnsafeStore { .. } => Self::UnsafeStore,
            E::Query { source, .. } if cdplake_engine::memory::is_out_of_memory(source) => Self::OutOfMemory,
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
            Self::Query { source, .. } if cdplake_engine::memory::is_out_of_memory(source) => ErrorKind::OutOfMemory,
            Self::Catalog(_) | Self::Arrow { .. } | Self::Query { .. } => ErrorKind::Internal,
            Self::BadInput { .. } | Self::MissingColumn { .. } => ErrorKind::BadInput,
            Self::Io { .. } | Self::Service { .. } | Self::Encoding { .. } => ErrorKind::Internal,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::Rejected { .. } => ErrorKind::Rejected,
            Self::QualityGate { .. } => ErrorKind::QualityGate,
            Self::Empty { .. } => ErrorKind::NoOutput,
            Self::Reconciliation { .. } => ErrorKind::Bug,
            Self::Superseded { .. } => ErrorKind::LostRace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        s.to_string()
    }

    fn io() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied")
    }

    #[test]
    fn every_variant_maps_to_its_kind() {
        let cases = [
            (JobError::bad_input("the query", "does not parse"), ErrorKind::BadInput),
            (JobError::missing_column("identity", "one_id"), ErrorKind::BadInput),
            (JobError::Io { doing: text("creating"), path: text("/out"), source: io() }, ErrorKind::Internal),
            (JobError::service("HTTP server", "cannot listen"), ErrorKind::Internal),
            (JobError::encoding("the export", "bad"), ErrorKind::Internal),
            (JobError::not_found("no profiles yet", "run `cdplake profiles`"), ErrorKind::NotFound),
            (JobError::Rejected { file: text("a.csv"), reason: text("no column amount") }, ErrorKind::Rejected),
            (
                JobError::QualityGate { table: text("curated.x"), failures: text("null_rate(email)") },
                ErrorKind::QualityGate,
            ),
            (JobError::Empty { what: text("audience \"a\""), detail: text("no rows") }, ErrorKind::NoOutput),
            (JobError::Reconciliation { what: text("s"), expected: text("2"), got: text("3") }, ErrorKind::Bug),
            (JobError::Superseded { table: text("curated.x"), detail: text("v7 > v5") }, ErrorKind::LostRace),
            (
                JobError::arrow("x", cdplake_engine::arrow::error::ArrowError::ComputeError(text("c"))),
                ErrorKind::Internal,
            ),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind, "{err:?}");
        }
    }

    #[test]
    fn only_no_output_exits_with_3() {
        assert_eq!(JobError::Empty { what: text("w"), detail: text("d") }.kind().exit_code(), 3);
        assert_eq!(ErrorKind::NoOutput.exit_code(), 3);
        for kind in [ErrorKind::BadInput, ErrorKind::NotFound, ErrorKind::Bug, ErrorKind::Internal] {
            assert_eq!(kind.exit_code(), 1, "{kind:?}");
        }
    }

    #[test]
    fn missing_tables_unsafe_stores_and_bad_queries_have_hints() {
        assert!(ErrorKind::MissingTable.hint().is_some_and(|h| h.contains("cdplake tables")));
        assert!(ErrorKind::UnsafeStore.hint().is_some_and(|h| h.contains("If-None-Match")));
        assert!(ErrorKind::BadQuery.hint().is_some_and(|h| h.contains("zone.table")));
        assert_eq!(ErrorKind::BadInput.hint(), None);
    }

    #[test]
    fn running_out_of_the_memory_budget_is_its_own_kind() {
        use cdplake_engine::datafusion::error::DataFusionError;
        let exhausted = || DataFusionError::ResourcesExhausted("Failed to allocate 1 KB for ExternalSorter[0]".into());
        let wrapped = DataFusionError::Context("sorting".into(), Box::new(exhausted()));
        assert_eq!(JobError::query("profiles", wrapped).kind(), ErrorKind::OutOfMemory);
        let engine = cdplake_engine::EngineError::query("segments", exhausted());
        assert_eq!(JobError::Engine(engine).kind(), ErrorKind::OutOfMemory);
        assert!(ErrorKind::OutOfMemory.hint().is_some_and(|h| h.contains("--memory-limit")));
        let other = cdplake_engine::EngineError::query("q", DataFusionError::Plan("no table".into()));
        assert_eq!(JobError::Engine(other).kind(), ErrorKind::BadQuery);
    }

    #[test]
    fn messages_keep_the_facts() {
        let err = JobError::Reconciliation { what: text("crm"), expected: text("1 kept"), got: text("2 rows read") };
        assert_eq!(err.to_string(), "counts do not reconcile: crm: 2 rows read != 1 kept");
        let err = JobError::Rejected { file: text("a.csv"), reason: text("no column amount") };
        assert_eq!(err.to_string(), "file rejected, nothing written: a.csv: no column amount");
    }
}
