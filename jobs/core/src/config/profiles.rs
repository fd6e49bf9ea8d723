//! `[profiles]` in `cdplake.toml`: how clean rows become unified events and profiles, and every
//! segment threshold. The defaults are the seed documents' rules, NULLs included (README,
//! "Profiles", says which seed each column follows); cdplake's own readings are options.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[profiles]`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ProfilesConfig {
    /// Seed 000's recency_segment: the first band whose `days` ≥ days since the last purchase.
    pub recency_segments: Vec<Band>,
    pub recency_else: String,
    /// Seed 000's frequency_segment over total_orders: the first band whose `min` ≤ the value.
    pub frequency_segments: Vec<Floor>,
    pub frequency_else: String,
    /// Seed 000's monetary_segment over total_revenue.
    pub monetary_segments: Vec<Floor>,
    pub monetary_else: String,
    /// Seed 000's engagement_segment over total_page_views.
    pub engagement_segments: Vec<Floor>,
    pub engagement_else: String,
    /// Seed 001's rfm_segment rules, first match wins (buyers only).
    pub rfm_segments: Vec<RfmRule>,
    pub rfm_else: String,
    /// Seed 002's lifecycle_stage: the first band whose `days` reach back past the last order
    /// (`last_order_date > NOW() - INTERVAL 'days DAYS'`, NOW() being the end of the as-of date).
    pub lifecycle_stages: Vec<Band>,
    /// The stage of a person with an order older than every band ...
    pub lifecycle_else: String,
    /// ... and of a person without any order.
    pub lifecycle_prospect: String,
    /// The window of seed 002's `*_last_30d` columns, in days back from the end of the as-of date.
    pub activity_window_days: i64,
    /// Event types counted in total_page_views. Empty (the default): every behaviour event, as
    /// seed 000's `COUNT(event_id)` over every web event; `["page_view"]` counts page views only.
    pub page_view_types: Vec<String>,
    /// Event types counted in product_views_last_30d (seed 002: `product_view`).
    pub product_view_types: Vec<String>,
    /// Support ticket statuses that count as open: seed 002's `status = 'open'`;
    /// `["open", "escalated"]` also counts escalated tickets.
    pub open_ticket_statuses: Vec<String>,
    /// Seed 000's LEFT JOINs leave total_orders, total_revenue, avg_order_value and
    /// total_page_views NULL for a person without such rows, and seed 001 has no RFM row (NULL
    /// frequency and monetary) for a person without purchases. `true` gives 0 instead (seed
    /// 002's COALESCE reading).
    pub zero_without_rows: bool,
    /// How a clean source becomes unified events (`[profiles.events.SOURCE]`); replaces the
    /// built-in mapping of a source of the same name.
    pub events: BTreeMap<String, EventMapping>,
    /// Profile attribute sources (`[[profiles.attributes]]`), earlier ones win when both have a value.
    pub attributes: Vec<AttributeSource>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Band {
    pub days: i64,
    pub label: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Floor {
    pub min: f64,
    pub label: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RfmRule {
    pub label: String,
    pub max_recency_days: Option<i64>,
    pub min_frequency: Option<i64>,
    pub min_monetary: Option<f64>,
}

/// What kind of activity a source's events are; profile columns are computed per kind.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Purchases, orders, cancellations: orders, revenue, RFM, lifecycle.
    Transaction,
    /// Page and product views, app events: engagement.
    Behavior,
    /// Support tickets.
    Support,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Transaction => "transaction",
            EventKind::Behavior => "behavior",
            EventKind::Support => "support",
        }
    }
}

/// SQL expressions over a clean table's columns, one per `curated.user_events` column; an
/// absent one is NULL. What counts: `purchase` rows are seed 000's orders (counted by distinct
/// `order_id`), `cancellation` rows subtract their (negative) revenue, and every row with an
/// `order_id`, whatever its status, is one of seed 002's orders.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventMapping {
    pub kind: EventKind,
    pub event_id: String,
    pub event_type: String,
    pub event_time: String,
    pub channel: Option<String>,
    pub platform: Option<String>,
    pub item_id: Option<String>,
    pub item_price: Option<String>,
    pub quantity: Option<String>,
    pub revenue: Option<String>,
    pub status: Option<String>,
    pub order_id: Option<String>,
    pub session_id: Option<String>,
}

/// A clean source of profile attributes: its rows belong to the person of `key_column`
/// (an identifier of type `key_id_type`); the latest row by `order_by` gives the values.
#[derive(Debug, Clone, Deserialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttributeSource {
    pub source: String,
    pub key_column: String,
    pub key_id_type: String,
    pub order_by: String,
    /// Profile column → SQL expression over the clean table.
    pub columns: BTreeMap<String, String>,
}

fn bands(items: &[(i64, &str)]) -> Vec<Band> {
    items.iter().map(|(days, label)| Band { days: *days, label: label.to_string() }).collect()
}

fn floors(items: &[(f64, &str)]) -> Vec<Floor> {
    items.iter().map(|(min, label)| Floor { min: *min, label: label.to_string() }).collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        let rfm = |label: &str, r: Option<i64>, f: Option<i64>, m: Option<f64>| RfmRule {
            label: label.into(),
            max_recency_days: r,
            min_frequency: f,
            min_monetary: m,
        };
        Self {
            recency_segments: bands(&[(30, "Active"), (90, "At Risk"), (180, "Lapsed")]),
            recency_else: "Churned".into(),
            frequency_segments: floors(&[(10.0, "High"), (3.0, "Medium")]),
            frequency_else: "Low".into(),
            monetary_segments: floors(&[(1000.0, "High Value"), (200.0, "Mid Value")]),
            monetary_else: "Low Value".into(),
            engagement_segments: floors(&[(20.0, "Highly Engaged"), (5.0, "Moderately Engaged")]),
            engagement_else: "Low Engagement".into(),
            rfm_segments: vec![
                rfm("Champions", Some(200), Some(2), Some(300.0)),
                rfm("Loyal Customers", Some(600), Some(2), None),
                rfm("At Risk", Some(600), None, None),
                rfm("Hibernating", Some(2000), None, None),
            ],
            rfm_else: "Lost".into(),
            lifecycle_stages: bands(&[(30, "active"), (90, "at_risk"), (365, "lapsing")]),
            lifecycle_else: "churned".into(),
            lifecycle_prospect: "prospect".into(),
            activity_window_days: 30,
            page_view_types: Vec::new(),
            product_view_types: strings(&["product_view"]),
            open_ticket_statuses: strings(&["open"]),
            zero_without_rows: false,
            events: BTreeMap::new(),
            attributes: default_attributes(),
        }
    }
}

impl ProfilesConfig {
    /// The event mapping of every source that has one: built-in, then `[profiles.events]`.
    pub fn event_mappings(&self) -> BTreeMap<String, EventMapping> {
        let mut all = default_event_mappings();
        all.extend(self.events.clone());
        all
    }
}

fn opt(s: &str) -> Option<String> {
    Some(s.to_string())
}

/// How each built-in event source maps to `curated.user_events`, with each source's seed rule:
/// a transaction is a purchase when `completed` (seed 000) and an order whatever its status;
/// every order is a purchase and an order whatever its status (seed 002 counts them all); an
/// Online Retail line whose invoice starts with `C` (or whose quantity is negative) is a
/// cancellation.
pub fn default_event_mappings() -> BTreeMap<String, EventMapping> {
    let base = |kind, event_id: &str, event_type: &str, event_time: &str| EventMapping {
        kind,
        event_id: event_id.into(),
        event_type: event_type.into(),
        event_time: event_time.into(),
        channel: None,
        platform: None,
        item_id: None,
        item_price: None,
        quantity: None,
        revenue: None,
        status: None,
        order_id: None,
        session_id: None,
    };
    let mut m = BTreeMap::new();
    m.insert(
        "transactions".into(),
        EventMapping {
            // Seed 000's transactions name no channel.
            platform: opt("'web'"),
            item_id: opt("product_id"),
            item_price: opt("amount"),
            quantity: opt("1"),
            revenue: opt("amount"),
            status: opt("status"),
            order_id: opt("transaction_id"),
            ..base(
                EventKind::Transaction,
                "transaction_id",
                "CASE WHEN status IS NULL OR status = 'completed' THEN 'purchase' ELSE concat('transaction_', status) END",
                "transaction_date",
            )
        },
    );
    m.insert(
        "orders".into(),
        EventMapping {
            channel: opt("channel"),
            quantity: opt("item_count"),
            revenue: opt("total_amount"),
            status: opt("order_status"),
            order_id: opt("order_id"),
            ..base(EventKind::Transaction, "order_id", "'purchase'", "coalesce(created_at, updated_at)")
        },
    );
    m.insert(
        "retail_transactions".into(),
        EventMapping {
            channel: opt("'online_retail'"),
            platform: opt("'web'"),
            item_id: opt("stock_code"),
            item_price: opt("price"),
            quantity: opt("quantity"),
            revenue: opt("round(price * quantity, 2)"),
            order_id: opt("invoice"),
            session_id: opt("invoice"),
            ..base(
                EventKind::Transaction,
                "concat('ORT-', invoice, '-', stock_code)",
                "CASE WHEN invoice LIKE 'C%' OR quantity < 0 THEN 'cancellation' ELSE 'purchase' END",
                "invoice_date",
            )
        },
    );
    m.insert(
        "app_events".into(),
        EventMapping {
            channel: opt("channel"),
            platform: opt("platform"),
            item_id: opt("item_id"),
            item_price: opt("item_price"),
            quantity: opt("CASE WHEN event_type = 'purchase' THEN 1 END"),
            revenue: opt("CASE WHEN event_type = 'purchase' THEN item_price END"),
            order_id: opt("CASE WHEN event_type = 'purchase' THEN event_id END"),
            session_id: opt("session_id"),
            ..base(EventKind::Behavior, "event_id", "coalesce(event_type, 'event')", "event_time")
        },
    );
    m.insert(
        "web_events".into(),
        EventMapping {
            channel: opt("'web'"),
            platform: opt("'web'"),
            ..base(EventKind::Behavior, "event_id", "coalesce(event_type, 'page_view')", "event_time")
        },
    );
    m.insert(
        "behavioral_events".into(),
        EventMapping {
            channel: opt("'web'"),
            item_id: opt("product_id"),
            session_id: opt("session_id"),
            ..base(EventKind::Behavior, "event_id", "coalesce(event_type, 'event')", "event_time")
        },
    );
    m.insert(
        "support_tickets".into(),
        EventMapping {
            channel: opt("'support'"),
            status: opt("status"),
            ..base(EventKind::Support, "ticket_id", "'support_ticket'", "created_at")
        },
    );
    m
}

/// The CRM sources of seeds 000/002 (`customers`) and 001 (`crm_members`).
pub fn default_attributes() -> Vec<AttributeSource> {
    let columns = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    vec![
        AttributeSource {
            source: "customers".into(),
            key_column: "customer_id".into(),
            key_id_type: "customer_id".into(),
            order_by: "updated_at".into(),
            columns: columns(&[
                ("customer_id", "customer_id"),
                ("email", "email_hash"),
                ("mobile", "phone_hash"),
                ("first_name", "first_name"),
                ("last_name", "last_name"),
                ("full_name", "concat_ws(' ', first_name, last_name)"),
                ("country", "country"),
                ("country_code", "country_code(country)"),
                ("signup_date", "signup_date"),
                ("acquisition_channel", "acquisition_channel"),
                ("loyalty_tier", "loyalty_tier"),
            ]),
        },
        AttributeSource {
            source: "crm_members".into(),
            key_column: "member_id".into(),
            key_id_type: "member_id".into(),
            order_by: "updated_at".into(),
            columns: columns(&[
                ("member_id", "member_id"),
                ("email", "email_hash"),
                ("mobile", "mobile_hash"),
                ("full_name", "real_name"),
                ("gender", "gender"),
                ("birthday", "birthday"),
                ("signup_date", "register_date"),
                ("acquisition_channel", "channel"),
                ("loyalty_tier", "level"),
                ("total_points", "total_points"),
            ]),
        },
    ]
}
