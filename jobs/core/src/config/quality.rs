//! `[quality]`: the data-quality rules checked before a job publishes.

use cdplake_zones::tables::CUSTOMER_PROFILES;
use serde::Deserialize;

/// `[quality]`: rules per table.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QualityConfig {
    pub rules: Vec<QualityRule>,
}

/// What a rule measures.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// Rows now ≥ `threshold` × the average rows of the trailing `window` passed runs. Unfiltered
    /// on the profiles table, persons merged away or erased count as rows (they left on purpose).
    RowCountRatio,
    /// Share of rows (matching `filter`) where `column` is null ≤ `threshold`.
    NullRate,
    /// Rows sharing a value of `column` ≤ `threshold` (default 0).
    Unique,
}

#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QualityRule {
    /// `zone.table` the rule guards.
    pub table: String,
    pub check: Check,
    pub column: Option<String>,
    /// SQL predicate: only these rows are measured (null rate among CRM-known persons).
    pub filter: Option<String>,
    #[serde(default)]
    pub threshold: f64,
    #[serde(default = "default_window")]
    pub window: usize,
}

fn default_window() -> usize {
    7
}

impl Default for QualityConfig {
    fn default() -> Self {
        let profiles = CUSTOMER_PROFILES.to_string();
        Self {
            rules: vec![
                QualityRule {
                    table: profiles.clone(),
                    check: Check::RowCountRatio,
                    column: None,
                    filter: None,
                    threshold: 0.8,
                    window: 7,
                },
                QualityRule {
                    table: profiles.clone(),
                    check: Check::NullRate,
                    column: Some("email".into()),
                    filter: Some("customer_id IS NOT NULL OR member_id IS NOT NULL".into()),
                    threshold: 0.05,
                    window: 7,
                },
                QualityRule {
                    table: profiles,
                    check: Check::Unique,
                    column: Some("one_id".into()),
                    filter: None,
                    threshold: 0.0,
                    window: 7,
                },
            ],
        }
    }
}

impl QualityRule {
    /// The rule's name in results: `null_rate(email)`. A row count that counts departed persons
    /// (see [`Self::counts_departed_persons`]) is `row_count_ratio(persons)`: its values are not
    /// comparable with plain row counts recorded before, so its history starts anew.
    pub fn name(&self) -> String {
        let check = match self.check {
            Check::RowCountRatio => "row_count_ratio",
            Check::NullRate => "null_rate",
            Check::Unique => "unique",
        };
        match &self.column {
            Some(c) => format!("{check}({c})"),
            None if self.counts_departed_persons() => format!("{check}(persons)"),
            None => check.to_string(),
        }
    }

    /// An unfiltered row count of the profiles table, one row per person: persons merged into
    /// another or erased left it on purpose and count as still there. (With a filter, the persons
    /// who departed need not have matched it.)
    pub fn counts_departed_persons(&self) -> bool {
        self.check == Check::RowCountRatio && self.filter.is_none() && self.table == CUSTOMER_PROFILES.to_string()
    }
}
