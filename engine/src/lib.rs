//! The cdplake engine: the lake itself.
//!
//! * [`Lake`] — a lake rooted at a local directory or an S3 prefix, holding Delta tables at
//!   `<root>/<zone>/<table>`: create, append, overwrite a partition, MERGE (delta-rs's builder),
//!   delete, read as a DataFrame, time travel, history.
//! * [`TableSpec`] — what a table is, normalised so Athena engine v3 can read it.
//! * Tables opened through a lake are kept and updated on the next open (`open_tables`).
//! * [`SqlSession`] — DataFusion with lake tables registered as `zone.table`.
//! * [`functions`] — SQL functions users' warehouse SQL needs (`datediff`), on every session.
//! * [`upsert`] — the one MERGE of the engine: rows by key, the watermark in the same commit,
//!   retries owned here.
//! * [`writes`] — every write streams a DataFusion plan into the Delta write, on the shared
//!   runtime of [`memory`] (its budget and spill directory).
//! * [`maintenance`] — compaction, Z-order, vacuum (change data too), checkpoints, log cleanup.
//! * [`scan`] — every object under the root searched for strings (the erasure proof).
//! * [`probe`] — the conditional-write probe that keeps racing commits safe on S3.
//!
//! One arrow / datafusion / parquet in the tree: use the re-exports below.

pub mod bitmap;
pub mod error;
pub mod functions;
pub mod lake;
pub mod location;
pub mod maintenance;
pub mod memory;
pub mod naming;
pub mod objects;
mod open_tables;
pub mod partition_copy;
pub mod probe;
pub mod requests;
pub mod retry;
pub mod scan;
pub mod spec;
pub mod sql;
pub mod staged;
pub mod transactions;
pub mod trino;
pub mod upsert;
pub mod writes;

pub use deltalake;
pub use deltalake::arrow;
pub use deltalake::datafusion;
pub use deltalake::parquet;

pub use error::{EngineError, Result};
pub use lake::{Commit, Lake, TimeTravel};
pub use location::LakeLocation;
pub use maintenance::{Footprint, MaintainOptions, TableMaintenance};
pub use memory::MemoryBudget;
pub use naming::{TableId, validate_name};
pub use objects::{BlockingRead, FetchedObject, LocalCopy, OpenedObject};
pub use probe::WriteAccess;
pub use requests::RequestCounts;
pub use retry::retry_on_conflict;
pub use scan::{ScanMatch, ScanReport};
pub use spec::{TableSpec, timestamp_type};
pub use sql::SqlSession;
pub use staged::StagedAppend;
pub use transactions::{applied_version, applied_versions};
pub use upsert::{RetryPolicy, Upsert, UpsertOutcome};
pub use writes::WriteMode;
