//! `[segments]`: segments of the user's own, as SQL predicates over the profiles.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[segments]`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentsConfig {
    /// Segment tag → SQL predicate over `curated.customer_profiles` columns.
    pub custom: BTreeMap<String, String>,
}
