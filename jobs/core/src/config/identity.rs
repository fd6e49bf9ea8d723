//! `[identity]`: the guards of identity stitching (placeholders, blocklist, limits and
//! priorities per id type, identifiers carried only by some events).

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[identity]`: the guards of identity stitching.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// More values that never identify anyone, besides the built-in placeholder rules
    /// (compared trimmed and lower-cased; their SHA-256 / keyed hashes are matched too).
    pub junk_values: Vec<String>,
    /// The built-in placeholder rules (`guest`, `N/A`, `test@test.com`, all-zero ids, their
    /// hashes, ...); on by default.
    pub placeholder_rules: bool,
    /// More values to keep out of stitching (`"device_id:KIOSK-01"` or a bare value).
    pub blocklist: Vec<String>,
    /// Per id type: the most values one person may hold and the priority of its links
    /// (`[identity.types.email_hash] limit = 5, priority = 4`). An identifier linked to more
    /// values of a type than its limit is a hub; a merge that would give a person more is
    /// refused. Types not listed have no limit and the lowest priority.
    pub types: BTreeMap<String, IdTypeRule>,
    /// Rows that carry an identifier only on some events: `source`, `when_column` =
    /// `equals` → `column` holds an `id_type` (the app's login event carries the member id).
    pub conditional_ids: Vec<ConditionalId>,
}

/// The rule of one id type (`[identity.types.NAME]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdTypeRule {
    /// The most values of this type one person may hold (member_id: 1).
    pub limit: u32,
    /// 1 is the strongest: links through higher-priority identifiers are applied first, so
    /// when two claims conflict the stronger one wins and the weaker link is refused.
    pub priority: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConditionalId {
    pub source: String,
    pub when_column: String,
    pub equals: String,
    pub column: String,
    pub id_type: String,
}

/// The built-in id type rules: person-unique keys first, then contact points, then devices.
pub const DEFAULT_ID_TYPES: &[(&str, u32, u32)] = &[
    ("member_id", 1, 1),
    ("customer_id", 1, 2),
    ("retail_customer_id", 1, 3),
    ("email_hash", 5, 4),
    ("mobile_hash", 3, 5),
    ("union_id", 5, 6),
    ("device_id", 10, 7),
    ("open_id", 10, 8),
];

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            junk_values: Vec::new(),
            placeholder_rules: true,
            blocklist: Vec::new(),
            types: DEFAULT_ID_TYPES
                .iter()
                .map(|(name, limit, priority)| (name.to_string(), IdTypeRule { limit: *limit, priority: *priority }))
                .collect(),
            conditional_ids: vec![ConditionalId {
                source: "app_events".into(),
                when_column: "event_type".into(),
                equals: "login".into(),
                column: "page_name".into(),
                id_type: "member_id".into(),
            }],
        }
    }
}

impl IdentityConfig {
    /// Id types of which a person holds at most one value (member_id, customer_id).
    pub fn unique_types(&self) -> Vec<String> {
        self.types.iter().filter(|(_, rule)| rule.limit == 1).map(|(name, _)| name.clone()).collect()
    }

    /// Id types with a rule, strongest first (ties by name).
    pub fn priority_order(&self) -> Vec<String> {
        let mut types: Vec<(&String, &IdTypeRule)> = self.types.iter().collect();
        types.sort_by(|a, b| (a.1.priority, a.0).cmp(&(b.1.priority, b.0)));
        types.into_iter().map(|(name, _)| name.clone()).collect()
    }

    /// Check what serde cannot: limits of at least 1.
    pub fn validate(&self) -> Result<(), String> {
        match self.types.iter().find(|(_, rule)| rule.limit == 0) {
            Some((name, _)) => Err(format!("[identity.types.{name}] limit must be at least 1")),
            None => Ok(()),
        }
    }
}
