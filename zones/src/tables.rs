//! The names of the lake's tables, in one place: every job, test and SQL statement names a table
//! through these constants (`format!("SELECT ... FROM {ID_MAPPING}")`), never as a literal.
//!
//! Tables of a source (`raw.<source>`, `clean.<source>`) are named by the source's own name:
//! [`raw_table`] and [`clean_table`].

use std::fmt;

use cdplake_engine::TableId;

use crate::source::Source;

/// The zones of a lake: the three data zones and the system zones beside them.
pub mod zone {
    pub const RAW: &str = "raw";
    pub const CLEAN: &str = "clean";
    pub const CURATED: &str = "curated";
    /// Who ran which job, and erasures (the audit trail).
    pub const AUDIT: &str = "_audit";
    /// Results of the data-quality gates.
    pub const QUALITY: &str = "_quality";
    /// The catalog's own table.
    pub const CATALOG: &str = "_catalog";
}

/// A table's name known when the program is built: `zone.table`. Displays as `zone.table`, the
/// name SQL uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    zone: &'static str,
    table: &'static str,
}

impl TableName {
    pub const fn new(zone: &'static str, table: &'static str) -> Self {
        Self { zone, table }
    }

    pub const fn zone(&self) -> &'static str {
        self.zone
    }

    pub const fn table(&self) -> &'static str {
        self.table
    }

    /// The table's id. Every name here is checked by this module's tests.
    pub fn id(&self) -> TableId {
        TableId::new(self.zone, self.table).expect("the names of the table registry are valid")
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.zone, self.table)
    }
}

impl PartialEq<TableName> for TableId {
    fn eq(&self, other: &TableName) -> bool {
        self.zone() == other.zone && self.name() == other.table
    }
}

/// Rows the clean job refused or dropped as duplicates, with the reason.
pub const QUARANTINE: TableName = TableName::new(zone::CLEAN, "_quarantine");

/// One active row per identifier: its person (`one_id`, `user_int_id`).
pub const ID_MAPPING: TableName = TableName::new(zone::CURATED, "id_mapping");
/// Every link observed between two identifiers, with the row it came from.
pub const IDENTITY_LINKS: TableName = TableName::new(zone::CURATED, "identity_links");
/// Merges, splits and retirements of persons.
pub const MERGE_HISTORY: TableName = TableName::new(zone::CURATED, "id_merge_history");
/// Links refused because they would break an id type's limit.
pub const IDENTITY_CONFLICTS: TableName = TableName::new(zone::CURATED, "identity_conflicts");
/// Identifiers linked to more values of a type than one person may hold.
pub const IDENTITY_HUBS: TableName = TableName::new(zone::CURATED, "identity_hubs");
/// Values kept out of stitching by a rule (placeholders, blocklist).
pub const IDENTITY_SKIPPED: TableName = TableName::new(zone::CURATED, "identity_skipped");
/// Links a user undid (`cdplake identity unlink`).
pub const IDENTITY_UNLINKS: TableName = TableName::new(zone::CURATED, "identity_unlinks");

/// Every event of every source, mapped to its person.
pub const USER_EVENTS: TableName = TableName::new(zone::CURATED, "user_events");
/// One row per person.
pub const CUSTOMER_PROFILES: TableName = TableName::new(zone::CURATED, "customer_profiles");
/// The profiles as of each date, partitioned by `dt`.
pub const CUSTOMER_PROFILES_DAILY: TableName = TableName::new(zone::CURATED, "customer_profiles_daily");
/// One bitmap of persons per segment and as-of date.
pub const SEGMENT_BITMAPS: TableName = TableName::new(zone::CURATED, "segment_bitmaps");
/// Seed 001's bitmap table: the last build's segments.
pub const ADS_USER_BITMAP: TableName = TableName::new(zone::CURATED, "ads_user_bitmap");
/// The members of each audience build.
pub const AUDIENCE_PACKAGES: TableName = TableName::new(zone::CURATED, "audience_packages");
/// Who entered or left an audience between two builds.
pub const AUDIENCE_CHANGES: TableName = TableName::new(zone::CURATED, "audience_changes");

/// One row per job run.
pub const JOB_RUNS: TableName = TableName::new(zone::AUDIT, "job_runs");
/// One row per erasure (keyed hashes only).
pub const ERASURES: TableName = TableName::new(zone::AUDIT, "erasures");
/// Keyed hashes of erased identifiers, which ingest and clean refuse.
pub const SUPPRESSIONS: TableName = TableName::new(zone::AUDIT, "suppressions");
/// One row per quality rule checked.
pub const QUALITY_RESULTS: TableName = TableName::new(zone::QUALITY, "results");

/// Every table of the registry above (not the tables of a source, nor the catalog's own
/// `_catalog.tables`, which `cdplake_catalog::catalog_table_id` names).
pub const ALL: &[TableName] = &[
    QUARANTINE,
    ID_MAPPING,
    IDENTITY_LINKS,
    MERGE_HISTORY,
    IDENTITY_CONFLICTS,
    IDENTITY_HUBS,
    IDENTITY_SKIPPED,
    IDENTITY_UNLINKS,
    USER_EVENTS,
    CUSTOMER_PROFILES,
    CUSTOMER_PROFILES_DAILY,
    SEGMENT_BITMAPS,
    ADS_USER_BITMAP,
    AUDIENCE_PACKAGES,
    AUDIENCE_CHANGES,
    JOB_RUNS,
    ERASURES,
    SUPPRESSIONS,
    QUALITY_RESULTS,
];

/// `raw.<source>`: the source's files as received.
pub fn raw_table(source: &Source) -> TableId {
    TableId::new(zone::RAW, &source.name).expect("source names are validated")
}

/// `clean.<source>`: the source's typed rows, one per key.
pub fn clean_table(source: &Source) -> TableId {
    TableId::new(zone::CLEAN, &source.name).expect("source names are validated")
}

/// The application transactions (Delta `txn` actions) by which a table's commits record what they
/// applied: the jobs' watermarks. A commit of a job's output carries one per upstream batch it
/// applied, so a rerun skips what a commit already holds. Changing a name here makes every
/// existing lake look unprocessed.
pub mod app_ids {
    /// On `raw.<source>`: the object (uri and etag) a commit ingested.
    pub fn ingested_object(uri: &str, etag: &str) -> String {
        use sha2::{Digest, Sha256};
        format!("cdplake-ingest-{}", &hex::encode(Sha256::digest(format!("{uri}\n{etag}")))[..40])
    }

    /// On `clean.<source>`: a raw batch cleaned.
    pub fn cleaned_batch(batch: &str) -> String {
        format!("cdplake-clean-{batch}")
    }

    /// On `clean.<source>`: how many times the source was reprocessed (the version is the count).
    pub fn clean_generation(source: &str) -> String {
        format!("cdplake-clean-generation-{source}")
    }

    /// A downstream watermark of a batch at the source's reprocess generation: a reprocess makes
    /// every batch pending again downstream.
    pub fn at_generation(app_id: String, generation: u64) -> String {
        if generation == 0 { app_id } else { format!("{app_id}-g{generation}") }
    }

    /// On `curated.id_mapping`: a clean batch whose identifiers were stitched.
    pub fn stitched_batch(source: &str, batch: &str) -> String {
        format!("cdplake-identity-{source}-{batch}")
    }

    /// On `curated.user_events`: a clean batch whose events were mapped to persons.
    pub fn events_batch(source: &str, batch: &str) -> String {
        format!("cdplake-events-{source}-{batch}")
    }

    /// On `curated.user_events`: the source's reprocess generation the events were built at.
    pub fn events_generation(source: &str) -> String {
        format!("cdplake-profiles-events-generation-{source}")
    }

    /// On `curated.user_events`: the id_mapping version its rows were resolved against.
    pub const EVENTS_MAPPING_VERSION: &str = "cdplake-events-id-mapping";

    /// On `curated.customer_profiles`: a CRM batch whose attributes the profiles hold.
    pub fn profiled_batch(source: &str, batch: &str) -> String {
        format!("cdplake-profiles-{source}-{batch}")
    }

    /// On `curated.customer_profiles`: the id_mapping version the profiles were built against.
    pub const PROFILES_MAPPING_VERSION: &str = "cdplake-profiles-id-mapping";

    /// On `curated.customer_profiles`: the user_events version the profiles were built from.
    pub const PROFILES_EVENTS_VERSION: &str = "cdplake-profiles-user-events";

    /// On `curated.customer_profiles`: the as-of date (days since 1970-01-01).
    pub const PROFILES_AS_OF: &str = "cdplake-profiles-as-of";
}
