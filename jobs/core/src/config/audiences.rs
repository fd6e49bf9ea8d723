//! `[audiences]`: export floor and the audiences the daily schedule rebuilds.

use serde::Deserialize;

/// `[audiences]`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AudiencesConfig {
    /// Exports of audiences smaller than this are refused, so they cannot single people out.
    pub min_export_size: u64,
    /// Audiences the daily schedule rebuilds: name → expression.
    pub packages: std::collections::BTreeMap<String, String>,
}

impl Default for AudiencesConfig {
    fn default() -> Self {
        Self { min_export_size: 100, packages: Default::default() }
    }
}
