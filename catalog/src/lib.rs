//! The cdplake catalog: the registry of every table in a lake, kept in the lake itself as the
//! Delta table `_catalog.tables` (name, zone, location, schema, partitioning, primary key, PII
//! columns, retention, description, created/updated), and its export as Athena DDL.

pub mod athena;
pub mod entry;
pub mod error;
pub mod registry;

pub use athena::{athena_ddl, athena_table_name, glue_table_resources};
pub use entry::{TableEntry, TableMeta};
pub use error::{CatalogError, Result};
pub use registry::{Catalog, catalog_table_id};
