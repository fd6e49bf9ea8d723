//! `[retention]` and `[maintenance]`: history and rows kept per zone, archival, compaction and
//! Z-order.

use std::collections::BTreeMap;

use cdplake_zones::tables::{CUSTOMER_PROFILES, ID_MAPPING, TableName};
use serde::Deserialize;

/// `[retention]`: how long each zone keeps history and rows, and when raw is archived.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days of history (time travel) kept per zone before vacuum deletes replaced files.
    pub history_days: BTreeMap<String, u32>,
    /// Days raw rows are kept (by ingest date); none: forever. Written into the catalog's
    /// `retention_days` of every raw table.
    pub raw_days: Option<u32>,
    /// Raw objects move to S3 Standard-IA after this many days, and to Glacier Instant
    /// Retrieval after `raw_archive_days`.
    pub raw_infrequent_access_days: u32,
    pub raw_archive_days: u32,
    /// Query results written by the query handler expire after this many days.
    pub query_results_days: u32,
    /// Old versions of objects (a versioned bucket keeps them) expire after this many days.
    pub noncurrent_days: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            history_days: [("raw", 30), ("clean", 7), ("curated", 7)].map(|(z, d)| (z.to_string(), d)).into(),
            raw_days: None,
            raw_infrequent_access_days: 30,
            raw_archive_days: 90,
            query_results_days: 7,
            noncurrent_days: 1,
        }
    }
}

impl RetentionConfig {
    /// The history a zone keeps (7 days for zones not listed: `_catalog`, `_audit`, `_quality`).
    pub fn history(&self, zone: &str) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.history_days.get(zone).copied().unwrap_or(7)))
    }
}

/// `[maintenance]`.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Compaction's target file size.
    pub target_file_mb: u64,
    /// Z-order columns per table (`"curated.user_events" = ["one_id"]`), beside the built-in
    /// (`curated.id_mapping` on id_value, `curated.customer_profiles` on one_id); `[]` turns one off.
    pub zorder: BTreeMap<String, Vec<String>>,
    /// The daily schedule's DAG ends with `maintain` (every table).
    pub daily: bool,
    /// Untracked files (change data, orphans) and log entries younger than this stay whatever
    /// the history: a job that listed them a moment before still reads them. Lower it only where
    /// no job runs beside maintenance (a benchmark compressing days into minutes).
    pub min_age_minutes: u64,
}

/// The columns the jobs look rows up by, Z-ordered unless `[maintenance.zorder]` says otherwise.
const BUILT_IN_ZORDER: [(TableName, &str); 2] = [(ID_MAPPING, "id_value"), (CUSTOMER_PROFILES, "one_id")];

impl MaintenanceConfig {
    /// The Z-order columns of a table: the configured ones, else the built-in (empty: none).
    pub fn zorder_of(&self, table: &str) -> Vec<String> {
        match self.zorder.get(table) {
            Some(columns) => columns.clone(),
            None => {
                BUILT_IN_ZORDER.iter().filter(|(t, _)| t.to_string() == table).map(|(_, c)| c.to_string()).collect()
            }
        }
    }
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self { target_file_mb: 128, zorder: BTreeMap::new(), daily: true, min_age_minutes: 60 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_keep_their_history() {
        let r = RetentionConfig::default();
        assert_eq!(r.history("raw").num_days(), 30);
        assert_eq!(r.history("curated").num_days(), 7);
        assert_eq!(r.history("_audit").num_days(), 7);
    }
}
