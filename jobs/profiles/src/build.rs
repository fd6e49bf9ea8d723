//! The SQL of `curated.customer_profiles`: one row per person as of a business date, each column
//! as its seed's SQL computes it, NULLs included (README, "Profiles", names the seed of every
//! column and which rule applies to which source).
//!
//! * Seed 000 (`dws_customer_profiles`): total_orders, total_revenue, avg_order_value, first/
//!   last_purchase_date, days_since_last_purchase over purchases; total_page_views
//!   (`COUNT(event_id)` of every behaviour event) and last_session_date (`MAX(event_time)`);
//!   the recency/frequency/monetary/engagement CASEs, whose ELSE also catches NULL.
//! * Seed 001 (`dws_user_rfm`, `dws_user_segment`): recency_days, frequency (distinct purchase
//!   days), monetary, rfm_segment, for persons with a purchase.
//! * Seed 002 (`customer_360`): every order whatever its status (first/last_order_date,
//!   lifetime_value, last_order_status, preferred_channel, lifecycle_stage), tickets, and the
//!   30-day behaviour columns; its `NOW()` is the end of the as-of date.
//!
//! Money is summed in whole cents, so the result does not depend on the order rows are added in.
//! Two steps, so an incremental refresh and a full rebuild compute the same rows: [`ProfileSql`]
//! computes everything that depends on one person's data only (for all persons or just the
//! touched ones); [`super::scores`] adds the r/f/m quintile scores, which rank each buyer
//! against all buyers and so are computed over the whole table every time.

use cdplake_engine::sql::{in_list, quote_ident, quote_literal};
use chrono::{Duration, NaiveDate, NaiveDateTime};

use cdplake_core::config::profiles::{Band, Floor, ProfilesConfig};

/// The end of the as-of date (the midnight after it, UTC): profiles as of a date describe the
/// whole date, and `profile_updated_at` is this instant.
pub fn end_of(as_of: NaiveDate) -> NaiveDateTime {
    (as_of + Duration::days(1)).and_hms_opt(0, 0, 0).unwrap_or_default()
}

/// The first instant of a window of `days` whole days that ends with the as-of date: seed 002's
/// `x > NOW() - INTERVAL '30 DAYS'` evaluated during the as-of day keeps whatever happened on
/// that day or the 29 before it, so `x >= window_start(as_of, 30)` (docs/DESIGN.md, "Dates").
fn window_start(as_of: NaiveDate, days: i64) -> NaiveDateTime {
    end_of(as_of) - Duration::days(days)
}

fn date(d: NaiveDate) -> String {
    format!("DATE '{}'", d.format("%Y-%m-%d"))
}

fn timestamp(t: NaiveDateTime) -> String {
    format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S"))
}

/// `CASE WHEN value <= days THEN label ... ELSE otherwise END`: seed 000's CASE, whose ELSE
/// also takes a NULL value.
fn band_case(value: &str, bands: &[Band], otherwise: &str) -> String {
    let whens: String =
        bands.iter().map(|b| format!(" WHEN {value} <= {} THEN {}", b.days, quote_literal(&b.label))).collect();
    format!("CASE{whens} ELSE {} END", quote_literal(otherwise))
}

/// `CASE WHEN value >= min THEN label ... ELSE otherwise END`.
fn floor_case(value: &str, floors: &[Floor], otherwise: &str) -> String {
    let whens: String =
        floors.iter().map(|f| format!(" WHEN {value} >= {} THEN {}", f.min, quote_literal(&f.label))).collect();
    format!("CASE{whens} ELSE {} END", quote_literal(otherwise))
}

/// Seed 001's dws_user_segment CASE, for persons with a purchase (seed 001 has no row for others).
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
            format!(" WHEN {} THEN {}", conditions.join(" AND "), quote_literal(&r.label))
        })
        .collect();
    format!("CASE WHEN last_purchase_date IS NULL THEN NULL{whens} ELSE {} END", quote_literal(&config.rfm_else))
}

/// Seed 002's lifecycle CASE: `last_order_date > NOW() - INTERVAL 'days DAYS'` per band (an order
/// within the band's whole days, see [`window_start`]), then the stage of any other order, then
/// the stage of a person without one.
fn lifecycle_case(config: &ProfilesConfig, as_of: NaiveDate) -> String {
    let whens: String = config
        .lifecycle_stages
        .iter()
        .map(|b| {
            let since = timestamp(window_start(as_of, b.days));
            format!(" WHEN last_order_date >= {since} THEN {}", quote_literal(&b.label))
        })
        .collect();
    format!(
        "CASE{whens} WHEN last_order_date IS NOT NULL THEN {} ELSE {} END",
        quote_literal(&config.lifecycle_else),
        quote_literal(&config.lifecycle_prospect)
    )
}

/// `name AS (...)`: `columns` of each person's first row of `from` in `order`. A window rather
/// than `first_value(x ORDER BY ...)` aggregates: DataFusion's ordered aggregates keep per-group
/// state row by row and took 2.4 times as long and twice the memory (BENCHMARKS.md).
/// `columns` are (expression, name) pairs; `from` is a table or a parenthesised query.
fn latest_per_person(name: &str, columns: &[(&str, &str)], from: &str, order: &str) -> String {
    let inner: Vec<String> = columns.iter().map(|(expr, alias)| format!("{expr} AS {}", quote_ident(alias))).collect();
    let outer: Vec<String> = columns.iter().map(|(_, alias)| quote_ident(alias)).collect();
    format!(
        "{name} AS (SELECT one_id, {outer} FROM (SELECT one_id, {inner}, \
         row_number() OVER (PARTITION BY one_id ORDER BY {order}) AS __rank FROM {from} latest) WHERE __rank = 1)",
        outer = outer.join(", "),
        inner = inner.join(", "),
    )
}

/// `name AS (one_id, n)`: the number of distinct non-null `column` values per person in the
/// events matching `filter`. Distinct counts as counts of distinct (one_id, value) pairs, joined
/// back: DataFusion keeps a hash set per group for count(DISTINCT ...), which took 5 GB at
/// 190,000 persons.
fn distinct_count(name: &str, column: &str, filter: &str) -> String {
    format!(
        "{name} AS (SELECT one_id, count(*) AS n FROM (SELECT DISTINCT one_id, {column} FROM ev \
         WHERE {filter} AND {column} IS NOT NULL) GROUP BY one_id)"
    )
}

/// One attribute source, registered as a clean table: its latest values per person.
pub struct AttributeInput {
    pub table: String,
    /// The clean column holding the identifier, and its id type.
    pub key_column: String,
    pub key_id_type: String,
    /// The clean column whose latest value wins.
    pub order_by: String,
    /// Profile column → SQL expression over the clean table.
    pub columns: Vec<(String, String)>,
}

impl AttributeInput {
    /// `(SELECT i.one_id, s.* ...)`: the source's rows with the person of their key.
    fn rows_with_person(&self, ids: &str, only: &str) -> String {
        format!(
            "(SELECT i.one_id, s.* FROM {table} s JOIN {ids} i ON i.id_type = {t} \
             AND i.id_value = trim(CAST(s.{key} AS VARCHAR)) WHERE TRUE{only})",
            table = self.table,
            t = quote_literal(&self.key_id_type),
            key = quote_ident(&self.key_column),
        )
    }
}

/// The per-person profile query (everything but the scores).
pub struct ProfileSql<'a> {
    pub config: &'a ProfilesConfig,
    pub as_of: NaiveDate,
    /// Active identifiers (one_id, id_type, id_value, first_seen).
    pub ids: &'a str,
    /// `curated.user_events` or a part of it holding the persons computed.
    pub events: &'a str,
    pub attributes: &'a [AttributeInput],
    /// Every attribute column, in output order.
    pub attribute_columns: &'a [String],
    /// A SQL predicate on `one_id` (`IN (...)`) limiting the persons, or none for everyone.
    pub persons: Option<&'a str>,
    /// Person keys the profile carries as columns of their own (id types of which a person holds
    /// one value, `limit = 1`, that no attribute source already names: `retail_customer_id`, a
    /// custom source's key).
    pub key_types: &'a [String],
}

/// The person-key columns of the profile: id types with `limit = 1` that no attribute column
/// already carries, in name order.
pub fn key_types(identity: &cdplake_core::config::IdentityConfig, attribute_columns: &[String]) -> Vec<String> {
    identity.unique_types().into_iter().filter(|t| !attribute_columns.contains(t)).collect()
}

impl ProfileSql<'_> {
    /// ` AND alias.one_id <persons>`, or nothing for everyone.
    fn only(&self, alias: &str) -> String {
        self.persons.map(|f| format!(" AND {alias}.one_id {f}")).unwrap_or_default()
    }

    /// Seed 000's and seed 001's aggregates are NULL without rows unless `zero_without_rows`.
    fn counted(&self, expr: &str) -> String {
        if self.config.zero_without_rows { format!("coalesce({expr}, 0)") } else { expr.to_string() }
    }

    fn identity_ctes(&self) -> Vec<String> {
        vec![
            format!(
                "persons AS (SELECT one_id, count(*) AS identifier_count, min(first_seen) AS first_seen_at \
                 FROM {ids} i WHERE TRUE{only} GROUP BY one_id)",
                ids = self.ids,
                only = self.only("i")
            ),
            // Sorting the unordered array_agg, not string_agg(... ORDER BY id_type): DataFusion's
            // ordered aggregate took 19 s instead of 0.5 s at 190,000 persons (BENCHMARKS.md).
            format!(
                "id_counts AS (SELECT one_id, \
                 array_to_string(array_sort(array_agg(concat(id_type, ':', CAST(n AS VARCHAR)))), ',') \
                 AS identifier_counts FROM (SELECT one_id, id_type, count(*) AS n FROM {ids} i WHERE TRUE{only} \
                 GROUP BY one_id, id_type) GROUP BY one_id)",
                ids = self.ids,
                only = self.only("i")
            ),
            // A person holds one value of a key type (limit 1); `min` picks it without an
            // ordered aggregate (and the smallest, should a person ever hold two).
            format!(
                "person_keys AS (SELECT one_id{columns} FROM {ids} i WHERE id_type IN {types}{only} GROUP BY one_id)",
                columns = self
                    .key_types
                    .iter()
                    .map(|t| format!(
                        ", min(CASE WHEN id_type = {} THEN id_value END) AS {}",
                        quote_literal(t),
                        quote_ident(t)
                    ))
                    .collect::<String>(),
                ids = self.ids,
                types = in_list(self.key_types.iter().map(String::as_str)),
                only = self.only("i")
            ),
        ]
    }

    /// The person's events up to the as-of date; rows without a time (a ticket with no
    /// created_at) are kept, as the seeds' aggregates keep them.
    fn events_cte(&self) -> String {
        format!(
            "ev AS (SELECT * FROM {events} e WHERE e.one_id IS NOT NULL \
             AND (e.event_date IS NULL OR e.event_date <= {as_of}){only})",
            events = self.events,
            as_of = date(self.as_of),
            only = self.only("e")
        )
    }

    /// Purchases (seed 000 / 001) and orders of any status (seed 002) in one pass over the
    /// transaction rows.
    fn transaction_ctes(&self) -> Vec<String> {
        let purchase = "event_type = 'purchase'";
        let netted = "event_type IN ('purchase', 'cancellation')";
        let order = "order_id IS NOT NULL";
        vec![
            distinct_count("purchase_orders", "order_id", purchase),
            distinct_count("purchase_days", "event_date", purchase),
            format!(
                "tx AS (SELECT t.*, o.n AS total_orders, d.n AS frequency FROM (SELECT one_id, \
                   sum(CASE WHEN {netted} THEN cents END) AS net_cents, \
                   sum(CASE WHEN {purchase} THEN cents END) AS purchase_cents, \
                   count(CASE WHEN {purchase} THEN cents END) AS priced_purchases, \
                   min(CASE WHEN {purchase} THEN event_date END) AS first_purchase_date, \
                   max(CASE WHEN {purchase} THEN event_date END) AS last_purchase_date, \
                   min(CASE WHEN {order} THEN event_time END) AS first_order_date, \
                   max(CASE WHEN {order} THEN event_time END) AS last_order_date, \
                   sum(CASE WHEN {order} THEN cents END) AS order_cents \
                 FROM (SELECT one_id, event_type, order_id, event_date, event_time, \
                   CAST(round(revenue * 100) AS BIGINT) AS cents FROM ev WHERE {netted} OR {order}) \
                 GROUP BY one_id) t \
                 LEFT JOIN purchase_orders o ON o.one_id = t.one_id LEFT JOIN purchase_days d ON d.one_id = t.one_id)"
            ),
            latest_per_person(
                "last_order",
                &[("status", "last_order_status")],
                &format!("(SELECT one_id, status, event_time, event_id, event_key, source FROM ev WHERE {order})"),
                "event_time DESC, event_id DESC, event_key DESC, source DESC",
            ),
            // Seed 002's MODE() WITHIN GROUP (ORDER BY channel): the most frequent, then the first.
            latest_per_person(
                "channels",
                &[("channel", "preferred_channel")],
                &format!(
                    "(SELECT one_id, channel, count(*) AS n FROM ev WHERE {order} AND channel IS NOT NULL \
                     GROUP BY one_id, channel)"
                ),
                "n DESC, channel ASC",
            ),
        ]
    }

    /// Seed 000's page views and last session, seed 002's 30-day columns and last activity.
    fn behavior_ctes(&self) -> Vec<String> {
        let window = format!("event_time >= {}", timestamp(window_start(self.as_of, self.config.activity_window_days)));
        let page_views = if self.config.page_view_types.is_empty() {
            "count(event_id)".to_string()
        } else {
            format!(
                "count(CASE WHEN event_type IN {} THEN event_id END)",
                in_list(self.config.page_view_types.iter().map(String::as_str))
            )
        };
        let product_views = in_list(self.config.product_view_types.iter().map(String::as_str));
        vec![
            distinct_count("recent_sessions", "session_id", &format!("kind = 'behavior' AND {window}")),
            format!(
                "behavior AS (SELECT b.*, r.n AS recent_sessions FROM (SELECT one_id, \
                   {page_views} AS page_views, max(event_time) AS last_active_at, \
                   count(CASE WHEN {window} THEN 1 END) AS recent_events, \
                   count(CASE WHEN {window} AND event_type IN {product_views} THEN 1 END) AS recent_product_views \
                 FROM ev WHERE kind = 'behavior' GROUP BY one_id) b LEFT JOIN recent_sessions r ON r.one_id = b.one_id)"
            ),
        ]
    }

    fn support_cte(&self) -> String {
        format!(
            "support AS (SELECT one_id, count(CASE WHEN status IN {open} THEN 1 END) AS open_tickets, \
               count(*) AS tickets, max(event_time) AS last_ticket_at \
             FROM ev WHERE kind = 'support' GROUP BY one_id)",
            open = in_list(self.config.open_ticket_statuses.iter().map(String::as_str)),
        )
    }

    fn attribute_ctes(&self) -> Vec<String> {
        self.attributes
            .iter()
            .enumerate()
            .map(|(n, a)| {
                let values: Vec<(&str, &str)> =
                    a.columns.iter().map(|(name, expr)| (expr.as_str(), name.as_str())).collect();
                latest_per_person(
                    &format!("attr{n}"),
                    &values,
                    &a.rows_with_person(self.ids, &self.only("i")),
                    &format!("{} DESC NULLS LAST, _row_key DESC", quote_ident(&a.order_by)),
                )
            })
            .collect()
    }

    /// `attrN."column" AS "column", ...`: the first attribute source with a value wins.
    fn attribute_select(&self) -> String {
        self.attribute_columns
            .iter()
            .map(|name| {
                let sources: Vec<String> = self
                    .attributes
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.columns.iter().any(|(c, _)| c == name))
                    .map(|(n, _)| format!("attr{n}.{}", quote_ident(name)))
                    .collect();
                let value =
                    if sources.len() == 1 { sources[0].clone() } else { format!("coalesce({})", sources.join(", ")) };
                format!("{value} AS {}, ", quote_ident(name))
            })
            .collect()
    }

    /// One row per person: the aggregates with the seeds' names and NULLs.
    fn metrics(&self) -> String {
        let as_of = date(self.as_of);
        let attribute_joins: String =
            (0..self.attributes.len()).map(|n| format!(" LEFT JOIN attr{n} ON attr{n}.one_id = p.one_id")).collect();
        format!(
            "SELECT p.one_id, {attributes}{keys}\
               p.identifier_count, id_counts.identifier_counts, p.first_seen_at, \
               {total_orders} AS total_orders, \
               {total_revenue} AS total_revenue, \
               {avg_order_value} AS avg_order_value, \
               tx.first_purchase_date, tx.last_purchase_date, \
               datediff({as_of}, tx.last_purchase_date) AS days_since_last_purchase, \
               tx.first_order_date, tx.last_order_date, \
               coalesce(tx.order_cents, 0) / 100.0 AS lifetime_value, \
               last_order.last_order_status, channels.preferred_channel, \
               datediff({as_of}, tx.last_purchase_date) AS recency_days, \
               {frequency} AS frequency, \
               {monetary} AS monetary, \
               {page_views} AS total_page_views, \
               behavior.last_active_at AS last_session_date, \
               coalesce(behavior.recent_events, 0) AS events_last_30d, \
               coalesce(behavior.recent_product_views, 0) AS product_views_last_30d, \
               coalesce(behavior.recent_sessions, 0) AS sessions_last_30d, \
               behavior.last_active_at, \
               coalesce(support.open_tickets, 0) AS open_support_tickets, \
               coalesce(support.tickets, 0) AS total_support_tickets, \
               support.last_ticket_at \
             FROM persons p LEFT JOIN id_counts ON id_counts.one_id = p.one_id \
               LEFT JOIN person_keys ON person_keys.one_id = p.one_id{attribute_joins} \
               LEFT JOIN tx ON tx.one_id = p.one_id LEFT JOIN last_order ON last_order.one_id = p.one_id \
               LEFT JOIN channels ON channels.one_id = p.one_id LEFT JOIN behavior ON behavior.one_id = p.one_id \
               LEFT JOIN support ON support.one_id = p.one_id",
            attributes = self.attribute_select(),
            keys = self
                .key_types
                .iter()
                .map(|t| format!("person_keys.{t} AS {t}, ", t = quote_ident(t)))
                .collect::<String>(),
            total_orders = self.counted("tx.total_orders"),
            total_revenue = self.counted("tx.net_cents / 100.0"),
            avg_order_value =
                self.counted("CAST(tx.purchase_cents AS DOUBLE) / nullif(tx.priced_purchases, 0) / 100.0"),
            frequency = self.counted("tx.frequency"),
            monetary = self.counted("CASE WHEN tx.last_purchase_date IS NOT NULL THEN tx.net_cents / 100.0 END"),
            page_views = self.counted("behavior.page_views"),
        )
    }

    /// The query: the metrics and the seeds' segment CASEs over them.
    pub fn sql(&self) -> String {
        let config = self.config;
        let mut ctes = self.identity_ctes();
        ctes.push(self.events_cte());
        ctes.extend(self.transaction_ctes());
        ctes.extend(self.behavior_ctes());
        ctes.push(self.support_cte());
        ctes.extend(self.attribute_ctes());
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
               {now} AS profile_updated_at \
             FROM metrics",
            ctes = ctes.join(", "),
            metrics = self.metrics(),
            recency = band_case("recency_days", &config.recency_segments, &config.recency_else),
            frequency = floor_case("total_orders", &config.frequency_segments, &config.frequency_else),
            monetary = floor_case("total_revenue", &config.monetary_segments, &config.monetary_else),
            rfm = rfm_case(config),
            engagement = floor_case("total_page_views", &config.engagement_segments, &config.engagement_else),
            lifecycle = lifecycle_case(config, self.as_of),
            now = timestamp(end_of(self.as_of)),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use cdplake_engine::arrow::array::{
        Array, ArrayRef, AsArray, Date32Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    };
    use cdplake_engine::arrow::compute::cast;
    use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
    use cdplake_engine::{SqlSession, timestamp_type};

    use super::*;

    /// (one_id, kind, event_type, order_id, status, revenue, time)
    type Event<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>, Option<f64>, Option<&'a str>);

    fn text(values: Vec<Option<String>>) -> ArrayRef {
        Arc::new(StringArray::from(values))
    }

    fn session(events: &[Event]) -> SqlSession {
        let session = SqlSession::new().unwrap();
        let persons = ["nobody", "buyer", "edge", "late"];
        let ids = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("one_id", DataType::Utf8, true),
                Field::new("id_type", DataType::Utf8, true),
                Field::new("id_value", DataType::Utf8, true),
                Field::new("first_seen", timestamp_type(), true),
            ])),
            vec![
                text(persons.iter().map(|p| Some(p.to_string())).collect()),
                text(persons.iter().map(|_| Some("customer_id".into())).collect()),
                text(persons.iter().map(|p| Some(format!("C-{p}"))).collect()),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(0); persons.len()]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        session.register_rows("ids", ids.schema(), vec![ids]).unwrap();
        let time = |t: &Option<&str>| {
            t.map(|t| NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp_micros())
        };
        let schema = Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, true),
            Field::new("event_key", DataType::Utf8, true),
            Field::new("event_id", DataType::Utf8, true),
            Field::new("one_id", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, true),
            Field::new("event_type", DataType::Utf8, true),
            Field::new("order_id", DataType::Utf8, true),
            Field::new("status", DataType::Utf8, true),
            Field::new("channel", DataType::Utf8, true),
            Field::new("session_id", DataType::Utf8, true),
            Field::new("revenue", DataType::Float64, true),
            Field::new("event_time", timestamp_type(), true),
            Field::new("event_date", DataType::Date32, true),
        ]));
        let owned = |f: &dyn for<'a> Fn(&'a Event<'a>) -> Option<&'a str>| {
            text(events.iter().map(|e| f(e).map(String::from)).collect())
        };
        let keys: Vec<Option<String>> = (0..events.len()).map(|i| Some(format!("e{i}"))).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                owned(&|_| Some("s")),
                text(keys.clone()),
                text(keys),
                owned(&|e| Some(e.0)),
                owned(&|e| Some(e.1)),
                owned(&|e| Some(e.2)),
                owned(&|e| e.3),
                owned(&|e| e.4),
                owned(&|_| None),
                owned(&|_| None),
                Arc::new(Float64Array::from(events.iter().map(|e| e.5).collect::<Vec<_>>())),
                Arc::new(
                    TimestampMicrosecondArray::from(events.iter().map(|e| time(&e.6)).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
                Arc::new(Date32Array::from(
                    events.iter().map(|e| time(&e.6).map(|t| t.div_euclid(86_400_000_000) as i32)).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        session.register_rows("events", schema, vec![batch]).unwrap();
        session
    }

    /// Each person's columns as text ("∅" for NULL).
    async fn profiles(config: &ProfilesConfig, events: &[Event<'_>]) -> HashMap<String, HashMap<String, String>> {
        let session = session(events);
        let sql = crate::statements::profile_sql(config, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap());
        let mut out = HashMap::new();
        for batch in session.rows(&sql).await.unwrap() {
            let columns: Vec<(String, ArrayRef)> = batch
                .schema()
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| (f.name().clone(), cast(c, &DataType::Utf8).unwrap()))
                .collect();
            for row in 0..batch.num_rows() {
                let values: HashMap<String, String> = columns
                    .iter()
                    .map(|(name, c)| {
                        let v = if c.is_null(row) {
                            "∅".to_string()
                        } else {
                            c.as_string::<i32>().value(row).to_string()
                        };
                        (name.clone(), v)
                    })
                    .collect();
                out.insert(values["one_id"].clone(), values);
            }
        }
        out
    }

    fn events() -> Vec<Event<'static>> {
        let t = "transaction";
        vec![
            ("buyer", t, "purchase", Some("o1"), Some("completed"), Some(10.00), Some("2024-12-01 10:00:00")),
            ("buyer", t, "purchase", Some("o2"), Some("completed"), Some(10.01), Some("2024-12-02 10:00:00")),
            ("buyer", t, "transaction_refunded", Some("o3"), Some("refunded"), Some(5.0), Some("2024-12-20 10:00:00")),
            // Seed 002's 30-day window is 30 whole days ending with the as-of date: from 2024-12-02 00:00.
            ("buyer", "behavior", "search", None, None, None, Some("2024-12-02 00:00:00")),
            ("buyer", "behavior", "product_view", None, None, None, Some("2024-12-02 00:00:01")),
            ("buyer", "behavior", "page_view", None, None, None, Some("2024-06-01 08:00:00")),
            ("buyer", "support", "support_ticket", None, Some("open"), None, Some("2024-12-03 08:00:00")),
            ("buyer", "support", "support_ticket", None, Some("escalated"), None, Some("2024-12-04 08:00:00")),
            ("buyer", "support", "support_ticket", None, Some("resolved"), None, Some("2024-12-05 08:00:00")),
            ("buyer", "support", "support_ticket", None, Some("resolved"), None, None),
            ("edge", t, "transaction_failed", Some("o4"), Some("failed"), Some(1.0), Some("2024-12-02 00:00:00")),
            ("late", t, "purchase", Some("o5"), Some("completed"), Some(99.0), Some("2025-01-05 10:00:00")),
        ]
    }

    #[tokio::test]
    async fn columns_follow_the_seeds_nulls_included() {
        let all = profiles(&ProfilesConfig::default(), &events()).await;
        let (buyer, nobody, edge, late) = (&all["buyer"], &all["nobody"], &all["edge"], &all["late"]);
        let check = |row: &HashMap<String, String>, expected: &[(&str, &str)]| {
            for (column, value) in expected {
                assert_eq!((column, row[*column].as_str()), (column, *value), "{}", row["one_id"]);
            }
        };
        check(
            buyer,
            &[
                // Seed 000: completed purchases; AVG(amount) not rounded.
                ("total_orders", "2"),
                ("total_revenue", "20.01"),
                ("avg_order_value", "10.005"),
                ("last_purchase_date", "2024-12-02"),
                ("days_since_last_purchase", "29"),
                ("recency_segment", "Active"),
                // Every behaviour event, whatever its type; the last one's time.
                ("total_page_views", "3"),
                ("last_session_date", "2024-12-02T00:00:01Z"),
                // Seed 001.
                ("frequency", "2"),
                ("monetary", "20.01"),
                ("rfm_segment", "Loyal Customers"),
                // Seed 002: every order whatever its status, open = 'open' only, a ticket without a time counts.
                ("lifetime_value", "25.01"),
                ("last_order_status", "refunded"),
                ("last_order_date", "2024-12-20T10:00:00Z"),
                ("lifecycle_stage", "active"),
                // The search at the first instant of the 30 days (29 days before the as-of date) counts.
                ("events_last_30d", "2"),
                ("product_views_last_30d", "1"),
                ("open_support_tickets", "1"),
                ("total_support_tickets", "4"),
                ("has_open_support_issue", "true"),
                ("profile_updated_at", "2025-01-01T00:00:00"),
            ],
        );
        let never = [
            ("total_orders", "∅"),
            ("total_revenue", "∅"),
            ("avg_order_value", "∅"),
            ("total_page_views", "∅"),
            ("frequency", "∅"),
            ("monetary", "∅"),
            ("recency_segment", "Churned"),
            ("frequency_segment", "Low"),
            ("monetary_segment", "Low Value"),
            ("engagement_segment", "Low Engagement"),
            ("rfm_segment", "∅"),
            ("lifetime_value", "0.0"),
            ("has_open_support_issue", "false"),
        ];
        check(nobody, &never);
        check(nobody, &[("lifecycle_stage", "prospect")]);
        // A purchase after the as-of date does not count; a failed transaction is an order.
        check(late, &never);
        // An order 29 days before the as-of date, at midnight, is active (seed 002's NOW() is a time
        // of the as-of day).
        check(edge, &[("total_orders", "∅"), ("lifecycle_stage", "active"), ("last_order_status", "failed")]);
    }

    #[tokio::test]
    async fn options_give_cdplakes_readings() {
        let config = ProfilesConfig {
            zero_without_rows: true,
            page_view_types: vec!["page_view".into(), "product_view".into()],
            open_ticket_statuses: vec!["open".into(), "escalated".into()],
            ..ProfilesConfig::default()
        };
        let all = profiles(&config, &events()).await;
        for (column, value) in
            [("total_orders", "0"), ("total_page_views", "0"), ("monetary", "0.0"), ("avg_order_value", "0.0")]
        {
            assert_eq!(all["nobody"][column], value, "{column}");
        }
        assert_eq!(all["buyer"]["total_page_views"], "2");
        assert_eq!(all["buyer"]["open_support_tickets"], "2");
    }

    #[test]
    fn configured_names_are_quoted() {
        let config = ProfilesConfig::default();
        let attributes = [AttributeInput {
            table: "clean.crm".into(),
            key_column: "member \"id\"".into(),
            key_id_type: "member's id".into(),
            order_by: "updated at".into(),
            columns: vec![("full name".into(), "real_name".into())],
        }];
        let columns = ["full name".to_string()];
        let sql = ProfileSql {
            config: &config,
            as_of: NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(),
            ids: "ids",
            events: "events",
            attributes: &attributes,
            attribute_columns: &columns,
            persons: None,
            key_types: &["loyalty id".to_string()],
        }
        .sql();
        for expected in [
            r#"trim(CAST(s."member ""id""" AS VARCHAR))"#,
            "i.id_type = 'member''s id'",
            r#""updated at" DESC NULLS LAST"#,
            r#"attr0."full name" AS "full name""#,
            r#"min(CASE WHEN id_type = 'loyalty id' THEN id_value END) AS "loyalty id""#,
            "WHEN last_order_date >= TIMESTAMP '2024-12-02 00:00:00' THEN 'active'",
            "event_time >= TIMESTAMP '2024-12-02 00:00:00'",
            "status IN ('open')",
        ] {
            assert!(sql.contains(expected), "{expected} not in {sql}");
        }
    }
}
