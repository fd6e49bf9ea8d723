//! The crate's SQL as named statements: what each computes, over which session tables, as the
//! jobs run it. `tests/slt/*.slt` pins each one's result on small inputs (`{{name}}` in a golden
//! file stands for the statement's text), so a change of a statement shows as a changed answer.

use cdplake_core::config::ProfilesConfig;
use chrono::NaiveDate;

use crate::audience::export::ExportIds;
use crate::build::ProfileSql;

/// One statement: its name in the golden files, what it answers, and its SQL.
pub struct NamedStatement {
    pub name: &'static str,
    pub about: &'static str,
    pub sql: String,
}

/// The as-of date the golden files compute at.
pub const GOLDEN_AS_OF: (i32, u32, u32) = (2024, 12, 31);

/// The statements as the jobs build them under the default configuration, as of
/// [`GOLDEN_AS_OF`], over the session tables each one's documentation names.
pub fn golden() -> Vec<NamedStatement> {
    let (y, m, d) = GOLDEN_AS_OF;
    let as_of = NaiveDate::from_ymd_opt(y, m, d).expect("a valid date");
    let defaults = ProfilesConfig::default();
    let zeros = ProfilesConfig { zero_without_rows: true, ..ProfilesConfig::default() };
    vec![
        NamedStatement {
            name: "profile",
            about: "One row per person of `ids` (one_id, id_type, id_value, first_seen): the seeds' metrics \
                    over `events` (user_events columns) and their segment CASEs, as of the date.",
            sql: profile_sql(&defaults, as_of),
        },
        NamedStatement {
            name: "profile_zero_without_rows",
            about: "`profile` with [profiles] zero_without_rows = true: counts and sums of a person \
                    without rows are 0, not NULL.",
            sql: profile_sql(&zeros, as_of),
        },
        NamedStatement {
            name: "segments",
            about: "Every segment's row (segment_tag, bitmap, cardinality, definition, as_of) as of the date: \
                    all persons, one segment per value of each segment column, `channel_<channel>` per \
                    purchase channel, and the custom segment `big_spenders` (total_revenue >= 100); reads \
                    customer_profiles_daily, id_mapping and user_events.",
            sql: segments_sql(as_of),
        },
        NamedStatement {
            name: "audience_export_one_id",
            about: "What `cdplake audience export win_back` writes with --ids one_id: the members of the \
                    audience's build as of the date (audience_packages), sorted.",
            sql: export_sql(ExportIds::OneId, as_of),
        },
        NamedStatement {
            name: "audience_export_email_hash",
            about: "The same export with --ids email_hash: each member's active email hashes \
                    (id_mapping), distinct and sorted; members without one drop out.",
            sql: export_sql(ExportIds::EmailHash, as_of),
        },
    ]
}

/// The segments query as of `as_of`, with one custom segment.
pub fn segments_sql(as_of: NaiveDate) -> String {
    let custom = [("big_spenders".to_string(), "total_revenue >= 100".to_string())];
    crate::segments::segments_sql(custom.iter().map(|(t, p)| (t, p)), &as_of.to_string())
}

/// The export of the audience `win_back` as of `as_of`.
pub fn export_sql(ids: ExportIds, as_of: NaiveDate) -> String {
    crate::audience::export::export_sql("win_back", &as_of.to_string(), ids)
}

/// The profile query over the session tables `ids` and `events`, everyone, no attribute sources.
pub fn profile_sql(config: &ProfilesConfig, as_of: NaiveDate) -> String {
    ProfileSql {
        config,
        as_of,
        ids: "ids",
        events: "events",
        attributes: &[],
        attribute_columns: &[],
        persons: None,
        key_types: &[],
    }
    .sql()
}
