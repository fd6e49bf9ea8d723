//! The catalog's error type.

use cdplake_engine::EngineError;
use cdplake_engine::deltalake::DeltaTableError;

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(transparent)]
    Engine(#[from] EngineError),

    #[error("table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<DeltaTableError>,
    },

    #[error("table {table} is not in the catalog; `cdplake tables` lists the registered tables")]
    NotRegistered { table: String },

    #[error("table {table} has no column '{column}' (named as a key or PII column)")]
    UnknownColumn { table: String, column: String },

    #[error("the catalog table _catalog.tables is damaged: {reason}")]
    Corrupt { reason: String },

    #[error(
        "Athena reads tables from S3, and this lake is at {root}; pass --location-root s3://BUCKET/PREFIX \
         naming where the lake is (or will be) copied to"
    )]
    NotOnS3 { root: String },
}
