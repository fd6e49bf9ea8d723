//! Athena / Glue DDL for the registered tables.
//!
//! Athena engine v3 reads a Delta table's schema and partitions from its `_delta_log`, so the
//! DDL names only the location and `table_type`; a column list would be rejected. Athena has
//! one level of database, so `zone.table` becomes the table `zone_table` in the given database.

use crate::entry::TableEntry;

/// Athena's name for a lake table: `curated.customer_profiles` → `curated_customer_profiles`.
pub fn athena_table_name(entry: &TableEntry) -> String {
    format!("{}_{}", entry.zone.trim_start_matches('_'), entry.table_name)
}

/// One `CREATE EXTERNAL TABLE` statement per entry, for tables stored under `s3_root`
/// (`s3://bucket/prefix`, with or without a trailing slash).
pub fn athena_ddl(database: &str, s3_root: &str, entries: &[TableEntry]) -> String {
    let root = s3_root.trim_end_matches('/');
    let mut out = format!("CREATE DATABASE IF NOT EXISTS `{database}`;\n");
    for entry in entries {
        out.push('\n');
        if !entry.description.is_empty() {
            out.push_str(&format!("-- {}: {}\n", entry.name, entry.description.replace('\n', " ")));
        }
        out.push_str(&format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS `{database}`.`{}`\nLOCATION '{root}/{}/'\nTBLPROPERTIES ('table_type' = 'DELTA');\n",
            athena_table_name(entry),
            entry.location,
        ));
    }
    out
}
