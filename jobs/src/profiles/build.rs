//! The SQL of `curated.customer_profiles`: one row per person as of a business date.
//!
//! Money is summed in whole cents, so the result does not depend on the order rows are added in.
//! Two steps, so an incremental refresh and a full rebuild compute the same rows:
//! [`base_sql`] computes everything that depends on one person's data only (for all persons or
//! just the touched ones); [`super::scores`] adds the r/f/m quintile scores, which rank each
//! buyer against all buyers and so are computed over the whole table every time.

use chrono::{Duration, NaiveDate};

use super::config::{Band, Floor, ProfilesConfig};

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `'a', 'b'` (SQL string literals), or `NULL` for none.
pub(crate) fn list(values: &[String]) -> String {
    if values.is_empty() {
        return "NULL".into();
    }
    values.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

/// `CASE WHEN value <= days THEN label ... ELSE otherwise END` (`strict`: `<`).
fn band_case(value: &str, bands: &[Band], strict: bool, otherwise: &str) -> String {
    let op = if strict { "<" } else { "<=" };
    let whens: String =
        bands.iter().map(|b| format!(" WHEN {value} {op} {} THEN {}", b.days, quote(&b.label))).collect();
    format!("CASE{whens} ELSE {} END", quote(otherwise))
}

/// `CASE WHEN value >= min THEN label ... ELSE otherwise END`.
fn floor_case(value: &str, floors: &[Floor], otherwise: &str) -> String {
    let whens: String = floors.iter().map(|f| format!(" WHEN {value} >= {} THEN {}", f.min, quote(&f.label))).collect();
    format!("CASE{whens} ELSE {} END", quote(otherwise))
}

fn rfm_case(config: &ProfilesConfig) -> String {
    let whens: String = config
        .rfm_segments
        .iter()
        .map(|r| {
            let mut conditions = vec!["TRUE".to_string()];
            if let Some(d) = r.max_recency_days {
                conditions.push(format!("recency_days <= {d}"));
            }
            if let Some(f) = r.min_frequency {
                conditions.push(format!("frequency >= {f}"));
            }
            if let Some(m) = r.min_monetary {
                conditions.push(format!("monetary >= {m}"));
            }
            format!(" WHEN {} THEN {}", conditions.join(" AND "), quote(&r.label))
        })
        .collect();
    format!("CASE WHEN last_purchase_date IS NULL THEN NULL{whens} ELSE {} END", quote(&config.rfm_else))
}

/// `name AS (...)`: `columns` of each person's first row of `from` in `order`. A window rather
/// than `first_value(x ORDER BY ...)` aggregates: DataFusion's ordered aggregates keep per-group
/// state row by row and took 2.4 times as long and twice the memory (BENCHMARKS.md).
/// `columns` are (expression, name) pairs; `from` is a table or a parenthesised query.
fn latest_per_person(name: &str, columns: &[(&str, &str)], from: &str, order: &str) -> String {
    let inner: Vec<String> = columns.iter().map(|(expr, alias)| format!("{expr} AS \"{alias}\"")).collect();
    let outer: Vec<String> = columns.iter().map(|(_, alias)| format!("\"{alias}\"")).collect();
    format!(
        "{name} AS (SELECT one_id, {outer} FROM (SELECT one_id, {inner}, \
         row_number() OVER (PARTITION BY one_id ORDER BY {order}) AS __rank FROM {from} latest) WHERE __rank = 1)",
        outer = outer.join(", "),
        inner = inner.join(", "),
    )
}

/// `name AS (one_id, n)`: the number of distinct non-null `column` values per person in the
/// events matching `filter`.
fn distinct_count(name: &str, column: &str, filter: &str) -> String {
    format!(
        "{name} AS (SELECT one_id, count(*) AS n FROM (SELECT DISTINCT one_id, {column} FROM ev \
         WHERE {filter} AND {column} IS NOT NULL) GROUP BY one_id)"
    )
}

/// One attribute source, registered as a clean table: its latest values per person.
pub struct AttributeInput {
    pub table: String,
    pub key_column: String,
    pub key_id_type: String,
    pub order_by: String,
    pub columns: Vec<(String, String)>,
}

/// Per-person columns for the persons in `persons_filter` (a SQL predicate on `one_id`, or none
/// for everyone), from `ids` (active identifiers) and `events` (curated.user_events).
pub fn base_sql(
    config: &ProfilesConfig,
    as_of: NaiveDate,
    ids: &str,
    events: &str,
    attributes: &[AttributeInput],
    attribute_columns: &[String],
    persons_filter: Option<&str>,
) -> String {
    let only = |alias: &str| persons_filter.map(|f| format!(" AND {alias}.one_id {f}")).unwrap_or_default();
    let window_start = as_of - Duration::days(config.activity_window_days);
    let mut ctes = vec![
        format!(
            "persons AS (SELECT one_id, count(*) AS identifier_count, min(first_seen) AS first_seen_at \
             FROM {ids} i WHERE TRUE{} GROUP BY one_id)",
            only("i")
        ),
        format!(
            // Sorting the unordered array_agg, not string_agg(... ORDER BY id_type): DataFusion's
            // ordered aggregate took 19 s instead of 0.5 s at 190,000 persons (BENCHMARKS.md).
            "id_counts AS (SELECT one_id, \
             array_to_string(array_sort(array_agg(concat(id_type, ':', CAST(n AS VARCHAR)))), ',') \
             AS identifier_counts FROM (SELECT one_id, id_type, count(*) AS n FROM {ids} i WHERE TRUE{} \
             GROUP BY one_id, id_type) GROUP BY one_id)",
            only("i")
        ),
        format!(
            "ev AS (SELECT * FROM {events} e WHERE e.one_id IS NOT NULL AND e.event_date <= {}{})",
            date(as_of),
            only("e")
        ),
        // Distinct counts as counts of distinct (one_id, value) pairs, joined back: DataFusion keeps a
        // hash set per group for count(DISTINCT ...), which took 5 GB at 190,000 persons.
        distinct_count("purchase_orders", "order_id", "event_type = 'purchase'"),
        distinct_count("purchase_days", "event_date", "event_type = 'purchase'"),
        "tx AS (SELECT t.one_id, coalesce(o.n, 0) AS total_orders, t.net_cents, t.first_purchase_date, \
           t.last_purchase_date, coalesce(d.n, 0) AS frequency FROM (SELECT one_id, \
           sum(CASE WHEN event_type IN ('purchase', 'cancellation') THEN CAST(round(revenue * 100) AS BIGINT) END) \
             AS net_cents, \
           min(CASE WHEN event_type = 'purchase' THEN event_date END) AS first_purchase_date, \
           max(CASE WHEN event_type = 'purchase' THEN event_date END) AS last_purchase_date \
         FROM ev WHERE event_type IN ('purchase', 'cancellation') GROUP BY one_id) t \
         LEFT JOIN purchase_orders o ON o.one_id = t.one_id LEFT JOIN purchase_days d ON d.one_id = t.one_id)"
            .into(),
        latest_per_person(
            "last_order",
            &[("status", "last_order_status")],
            "(SELECT one_id, status, event_time, event_id, event_key, source FROM ev WHERE order_id IS NOT NULL)",
            "event_time DESC, event_id DESC, event_key DESC, source DESC",
        ),
        latest_per_person(
            "channels",
            &[("channel", "preferred_channel")],
            "(SELECT one_id, channel, count(*) AS n FROM ev WHERE event_type = 'purchase' AND channel IS NOT NULL \
             GROUP BY one_id, channel)",
            "n DESC, channel ASC",
        ),
        distinct_count(
            "recent_sessions",
            "session_id",
            &format!("kind = 'behavior' AND event_date > {}", date(window_start)),
        ),
        format!(
            "behavior AS (SELECT b.*, coalesce(r.n, 0) AS sessions_last_30d FROM (SELECT one_id, \
               sum(CASE WHEN event_type IN ({page_views}) THEN 1 ELSE 0 END) AS total_page_views, \
               max(event_time) AS last_active_at, \
               sum(CASE WHEN event_date > {start} THEN 1 ELSE 0 END) AS events_last_30d, \
               sum(CASE WHEN event_date > {start} AND event_type IN ({product_views}) THEN 1 ELSE 0 END) \
                 AS product_views_last_30d \
             FROM ev WHERE kind = 'behavior' GROUP BY one_id) b LEFT JOIN recent_sessions r ON r.one_id = b.one_id)",
            page_views = list(&config.page_view_types),
            product_views = list(&config.product_view_types),
            start = date(window_start),
        ),
        format!(
            "support AS (SELECT one_id, \
               sum(CASE WHEN status IN ({open}) THEN 1 ELSE 0 END) AS open_support_tickets, \
               count(*) AS total_support_tickets, max(event_time) AS last_ticket_at \
             FROM ev WHERE kind = 'support' GROUP BY one_id)",
            open = list(&config.open_ticket_statuses),
        ),
    ];
    for (n, a) in attributes.iter().enumerate() {
        let values: Vec<(&str, &str)> = a.columns.iter().map(|(name, expr)| (expr.as_str(), name.as_str())).collect();
        ctes.push(latest_per_person(
            &format!("attr{n}"),
            &values,
            &format!(
                "(SELECT i.one_id, s.* FROM {table} s JOIN {ids} i ON i.id_type = {t} \
                 AND i.id_value = trim(CAST(s.\"{key}\" AS VARCHAR)) WHERE TRUE{only})",
                table = a.table,
                t = quote(&a.key_id_type),
                key = a.key_column,
                only = only("i"),
            ),
            &format!("\"{}\" DESC NULLS LAST, _row_key DESC", a.order_by),
        ));
    }
    let attribute_select: String = attribute_columns
        .iter()
        .map(|name| {
            let sources: Vec<String> = attributes
                .iter()
                .enumerate()
                .filter(|(_, a)| a.columns.iter().any(|(c, _)| c == name))
                .map(|(n, _)| format!("attr{n}.\"{name}\""))
                .collect();
            let value =
                if sources.len() == 1 { sources[0].clone() } else { format!("coalesce({})", sources.join(", ")) };
            format!("{value} AS \"{name}\", ")
        })
        .collect();
    let attribute_joins: String =
        (0..attributes.len()).map(|n| format!(" LEFT JOIN attr{n} ON attr{n}.one_id = p.one_id")).collect();
    let metrics = format!(
        "SELECT p.one_id, {attribute_select}\
           p.identifier_count, id_counts.identifier_counts, p.first_seen_at, \
           coalesce(tx.total_orders, 0) AS total_orders, \
           coalesce(tx.net_cents, 0) / 100.0 AS total_revenue, \
           CASE WHEN tx.total_orders > 0 THEN round(tx.net_cents / 100.0 / tx.total_orders, 2) END AS avg_order_value, \
           tx.first_purchase_date, tx.last_purchase_date, \
           datediff({as_of}, tx.last_purchase_date) AS days_since_last_purchase, \
           last_order.last_order_status, channels.preferred_channel, \
           datediff({as_of}, tx.last_purchase_date) AS recency_days, \
           coalesce(tx.frequency, 0) AS frequency, \
           coalesce(tx.net_cents, 0) / 100.0 AS monetary, \
           coalesce(behavior.total_page_views, 0) AS total_page_views, \
           CAST(behavior.last_active_at AS DATE) AS last_session_date, \
           coalesce(behavior.events_last_30d, 0) AS events_last_30d, \
           coalesce(behavior.product_views_last_30d, 0) AS product_views_last_30d, \
           coalesce(behavior.sessions_last_30d, 0) AS sessions_last_30d, \
           behavior.last_active_at, \
           coalesce(support.open_support_tickets, 0) AS open_support_tickets, \
           coalesce(support.total_support_tickets, 0) AS total_support_tickets, \
           support.last_ticket_at \
         FROM persons p LEFT JOIN id_counts ON id_counts.one_id = p.one_id{attribute_joins} \
           LEFT JOIN tx ON tx.one_id = p.one_id LEFT JOIN last_order ON last_order.one_id = p.one_id \
           LEFT JOIN channels ON channels.one_id = p.one_id LEFT JOIN behavior ON behavior.one_id = p.one_id \
           LEFT JOIN support ON support.one_id = p.one_id",
        as_of = date(as_of),
    );
    let recency = format!(
        "CASE WHEN last_purchase_date IS NULL THEN NULL ELSE {} END",
        band_case("recency_days", &config.recency_segments, false, &config.recency_else)
    );
    let lifecycle = format!(
        "CASE WHEN last_purchase_date IS NULL THEN {} ELSE {} END",
        quote(&config.lifecycle_prospect),
        band_case("recency_days", &config.lifecycle_stages, true, &config.lifecycle_else)
    );
    format!(
        "WITH {ctes}, metrics AS ({metrics}) \
         SELECT metrics.*, \
           {recency} AS recency_segment, \
           {frequency} AS frequency_segment, \
           {monetary} AS monetary_segment, \
           {rfm} AS rfm_segment, \
           {engagement} AS engagement_segment, \
           open_support_tickets > 0 AS has_open_support_issue, \
           {lifecycle} AS lifecycle_stage, \
           {as_of} AS profile_updated_at \
         FROM metrics",
        ctes = ctes.join(", "),
        frequency = floor_case("total_orders", &config.frequency_segments, &config.frequency_else),
        monetary = floor_case("total_revenue", &config.monetary_segments, &config.monetary_else),
        rfm = rfm_case(config),
        engagement = floor_case("total_page_views", &config.engagement_segments, &config.engagement_else),
        as_of = date(as_of),
    )
}
