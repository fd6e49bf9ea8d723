//! The contracts of the three zones of a cdplake lake.
//!
//! * **raw** — every source file appended exactly as received (values as strings, unknown
//!   columns kept) plus lineage columns (`_source_uri`, `_source_etag`, `_source_row`,
//!   `_ingested_at`, `_batch_id`); replaying the same object is a no-op.
//! * **clean** — one typed contract per source kind: required fields, normalisation (emails,
//!   E.164 phones, ISO countries), PII hashing, upsert by primary key; rejected rows go to
//!   `clean._quarantine` with the reason, so rows in = rows kept + duplicates + quarantined.
//! * **curated** — the schemas of the identity graph, unified events, profiles, segments and
//!   audiences.
//!
//! This crate holds the table definitions and validation rules; the jobs that move data
//! between zones live in the job crates under `jobs/`.

pub mod contract;
pub mod curated;
pub mod normalize;
pub mod placeholders;
pub mod presets;
pub mod quarantine;
pub mod raw;
pub mod reader;
pub mod row_rules;
pub mod source;
pub mod tables;
pub mod types;

pub use presets::{preset, presets};
pub use source::{CdcStyle, ColumnDef, ColumnType, Dedupe, FileFormat, Normalize, PiiTreatment, Source};
