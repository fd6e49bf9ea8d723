//! Unified events and customer profiles: incremental refresh equals a full rebuild, quality
//! gates block a bad batch, the seeds' queries run, and RFM on the real Online Retail data
//! agrees with an independent DuckDB computation of the same rules; [`reference`]: the seeds'
//! own SQL run by DuckDB gives the profiles, column by column.

mod reference;

use std::collections::HashMap;
use std::process::Command;

use cdplake_core::{Config, JobError, Workspace};
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_engine::arrow::util::display::{ArrayFormatter, FormatOptions};
use cdplake_profiles::{ProfilesReport, RefreshOptions, refresh};
use chrono::{NaiveDate, TimeZone, Utc};

use crate::support::{Backend, TestLake, repo_root, s3_options, single_i64};

fn at(day: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, day, 6, 0, 0).unwrap()
}

async fn workspace(t: &TestLake, backend: Backend) -> Workspace {
    let mut config = Config::default();
    if backend == Backend::S3 {
        config.lake.storage = s3_options();
    }
    Workspace::open_with(config, Some(&t.root)).await.unwrap()
}

/// Land files, ingest and clean every source that got one, then resolve identities.
async fn load(ws: &Workspace, files: &[(&str, String, String)], day: u32) {
    crate::support::land_ingest_clean(ws, files, at(day)).await;
    cdplake_identity::resolve(ws, at(day)).await.unwrap();
}

fn as_of(date: &str) -> NaiveDate {
    date.parse().unwrap()
}

async fn profiles(ws: &Workspace, date: &str, full: bool) -> Result<ProfilesReport, JobError> {
    refresh(ws, &RefreshOptions { as_of: as_of(date), full, force: false }, at(20)).await
}

async fn sql(ws: &Workspace, query: &str) -> Vec<RecordBatch> {
    cdplake_core::query::run_query(ws, query).await.unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Every row as text, sorted: two tables with equal rows give equal vectors.
fn rows_as_text(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("∅");
    let mut rows = Vec::new();
    for b in batches {
        let formatters: Vec<_> =
            b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
        for r in 0..b.num_rows() {
            let fields: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .zip(&formatters)
                .map(|(f, fmt)| format!("{}={}", f.name(), fmt.value(r)))
                .collect();
            rows.push(fields.join("|"));
        }
    }
    rows.sort();
    rows
}

fn texts(batch: &RecordBatch, name: &str) -> Vec<String> {
    let c = cast(batch.column_by_name(name).unwrap(), &DataType::Utf8).unwrap();
    let c = c.as_string::<i32>();
    (0..c.len()).map(|i| if c.is_null(i) { String::new() } else { c.value(i).to_string() }).collect()
}

async fn version(ws: &Workspace, table: &str) -> Option<u64> {
    ws.lake().table(&table.parse().unwrap()).await.unwrap().version()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_refresh_equals_a_full_rebuild_on_the_local_lake() {
    incremental_refresh_equals_a_full_rebuild(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_refresh_equals_a_full_rebuild_on_s3() {
    incremental_refresh_equals_a_full_rebuild(Backend::S3).await;
}

async fn incremental_refresh_equals_a_full_rebuild(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let (files, _) = cdplake_generate::generate(200, 5);
    let files: Vec<_> = files.into_iter().map(|f| (f.source, f.name, f.content)).collect();
    load(&ws, &files, 1).await;
    let first = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert!(first.full_rebuild && first.published, "{first:?}");
    let persons = single_i64(&sql(&ws, "SELECT count(DISTINCT one_id) FROM curated.id_mapping WHERE is_active").await);
    assert_eq!(first.profiles as i64, persons, "one profile per person");

    // Nothing new: no new version of anything.
    let profiles_version = version(&ws, "curated.customer_profiles").await;
    let again = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert_eq!((again.full_rebuild, again.events_written, again.persons_touched), (false, 0, 0), "{again:?}");
    assert_eq!(version(&ws, "curated.customer_profiles").await, profiles_version);

    // Day 2: an anonymous device browses and buys; a known customer orders again.
    let customer = texts(
        &sql(&ws, "SELECT customer_id FROM clean.customers ORDER BY customer_id LIMIT 1").await[0],
        "customer_id",
    )
    .remove(0);
    let member =
        texts(&sql(&ws, "SELECT member_id FROM clean.crm_members ORDER BY member_id LIMIT 1").await[0], "member_id")
            .remove(0);
    let app = [
        r#"{"event_id":"LATE1","device_id":"DEV-LATE","event_type":"product_view","page_name":"p","event_time":"2024-12-20 09:00:00","session_id":"s-late"}"#,
        r#"{"event_id":"LATE2","device_id":"DEV-LATE","event_type":"purchase","item_id":"SKU9","item_price":420.0,"channel":"app","platform":"ios","event_time":"2024-12-21 10:00:00","session_id":"s-late"}"#,
    ]
    .join("\n");
    let order = format!(
        "order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at\n\
         LATE-ORDER,{customer},delivered,1500.00,3,web,2024-12-30 12:00:00,2024-12-30 12:00:00\n"
    );
    load(&ws, &[("app_events", "late.json".into(), app + "\n"), ("orders", "late.csv".into(), order)], 2).await;
    let second = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert!(!second.full_rebuild, "{second:?}");
    assert_eq!((second.events_written, second.anonymous_events_written), (3, 0), "{second:?}");
    assert!(second.persons_touched >= 2 && second.persons_touched < 10, "{second:?}");
    let device_person = "SELECT p.one_id, p.total_orders, p.total_revenue, p.lifecycle_stage FROM curated.customer_profiles p \
         JOIN curated.id_mapping m ON m.one_id = p.one_id AND m.id_type = 'device_id' AND m.id_value = 'DEV-LATE'";
    let device = sql(&ws, device_person).await;
    assert_eq!(texts(&device[0], "total_orders"), ["1"]);
    assert_eq!(texts(&device[0], "lifecycle_stage"), ["active"]);
    let device_one_id = texts(&device[0], "one_id").remove(0);

    // Day 3: the device logs in as a member: its person is absorbed into the member's (older)
    // one, its row is retired and its purchase counts for the member.
    let login = format!(
        r#"{{"event_id":"LATE3","device_id":"DEV-LATE","event_type":"login","page_name":"{member}","event_time":"2024-12-22 08:00:00"}}"#
    );
    load(&ws, &[("app_events", "login.json".into(), login + "\n")], 3).await;
    let third = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert!(third.profiles_retired >= 1, "{third:?}");
    let gone =
        sql(&ws, &format!("SELECT count(*) FROM curated.customer_profiles WHERE one_id = '{device_one_id}'")).await;
    assert_eq!(single_i64(&gone), 0, "the absorbed one_id has no profile");
    let unique = sql(&ws, "SELECT count(*) - count(DISTINCT one_id) FROM curated.customer_profiles").await;
    assert_eq!(single_i64(&unique), 0);
    // The as-of date's daily partition (a copy of the profile files) holds the same rows.
    let incremental = rows_as_text(&sql(&ws, "SELECT * FROM curated.customer_profiles ORDER BY one_id").await);
    let snapshot = rows_as_text(
        &sql(&ws, "SELECT * EXCLUDE (dt) FROM curated.customer_profiles_daily WHERE dt = '2024-12-31' ORDER BY one_id")
            .await,
    );
    assert_eq!(snapshot, incremental, "the daily snapshot is the profiles as of the date");

    // The same lake rebuilt in full has exactly the same rows.
    let incremental = rows_as_text(&sql(&ws, "SELECT * FROM curated.customer_profiles").await);
    let full = profiles(&ws, "2024-12-31", true).await.unwrap();
    assert!(full.full_rebuild);
    let rebuilt = rows_as_text(&sql(&ws, "SELECT * FROM curated.customer_profiles").await);
    assert_eq!(incremental.len(), rebuilt.len());
    for (a, b) in incremental.iter().zip(&rebuilt) {
        assert_eq!(a, b, "incremental and full rebuild differ");
    }

    // Columns whose SQL avoids DataFusion's slow shapes (count(DISTINCT) per group, ordered
    // string_agg / first_value) equal those shapes computed directly from the events and ids.
    let plain = "WITH e AS (SELECT * FROM curated.user_events WHERE one_id IS NOT NULL AND event_date <= DATE '2024-12-31'), \
         orders AS (SELECT one_id, count(DISTINCT order_id) AS n FROM e WHERE event_type = 'purchase' GROUP BY one_id), \
         days AS (SELECT one_id, count(DISTINCT event_date) AS n FROM e WHERE event_type = 'purchase' GROUP BY one_id), \
         sessions AS (SELECT one_id, count(DISTINCT session_id) AS n FROM e \
           WHERE kind = 'behavior' AND event_date > DATE '2024-12-01' GROUP BY one_id), \
         last AS (SELECT one_id, first_value(status ORDER BY event_time DESC, event_id DESC, event_key DESC, source DESC) \
           AS status FROM e WHERE order_id IS NOT NULL GROUP BY one_id), \
         ids AS (SELECT one_id, string_agg(concat(id_type, ':', CAST(n AS VARCHAR)), ',' ORDER BY id_type) AS counts \
           FROM (SELECT one_id, id_type, count(*) AS n FROM curated.id_mapping m WHERE is_active AND NOT EXISTS \
             (SELECT 1 FROM curated.identity_hubs h WHERE h.id_type = m.id_type AND h.id_value = m.id_value \
               AND h.linked_type = '*') \
           GROUP BY one_id, id_type) GROUP BY one_id) \
         SELECT count(*) FROM curated.customer_profiles p LEFT JOIN orders o ON o.one_id = p.one_id \
           LEFT JOIN days d ON d.one_id = p.one_id LEFT JOIN sessions s ON s.one_id = p.one_id \
           LEFT JOIN last l ON l.one_id = p.one_id LEFT JOIN ids i ON i.one_id = p.one_id \
         WHERE (p.total_orders IS DISTINCT FROM o.n) OR (p.frequency IS DISTINCT FROM d.n) \
           OR p.sessions_last_30d <> coalesce(s.n, 0) OR (p.last_order_status IS DISTINCT FROM l.status) \
           OR (p.identifier_counts IS DISTINCT FROM i.counts)";
    assert_eq!(single_i64(&sql(&ws, plain).await), 0, "profiles differ from the plain definitions");
    let checked =
        sql(&ws, "SELECT count(*) FROM curated.customer_profiles WHERE total_orders > 1 AND sessions_last_30d > 0")
            .await;
    assert!(single_i64(&checked) > 0, "the comparison covers persons with several orders and recent sessions");

    // Seed 000's segment queries and seed 001's RFM summary run unmodified but for table names.
    let bizdate = "2024-12-31";
    for query in seed_queries() {
        let query = query.replace("${bizdate}", bizdate);
        sql(&ws, &query).await;
    }
    let win_back = sql(
        &ws,
        &seed_queries()[0]
            .replace("${bizdate}", bizdate)
            .replace("SELECT customer_id, email, first_name, last_purchase_date", "SELECT count(*)")
            .replace("ORDER BY days_since_last_purchase ASC", ""),
    )
    .await;
    let expected = sql(
        &ws,
        "SELECT count(*) FROM curated.customer_profiles WHERE total_revenue >= 1000 AND \
         days_since_last_purchase > 30 AND days_since_last_purchase <= 180",
    )
    .await;
    assert_eq!(single_i64(&win_back), single_i64(&expected));

    // A new as-of date recomputes the date-dependent columns of everyone; the daily snapshot
    // keeps both dates.
    let later = profiles(&ws, "2025-03-31", false).await.unwrap();
    assert!(later.full_rebuild, "{later:?}");
    let daily = sql(&ws, "SELECT dt, count(*) AS n FROM curated.customer_profiles_daily GROUP BY dt ORDER BY dt").await;
    assert_eq!(texts(&daily[0], "dt"), ["2024-12-31", "2025-03-31"]);
    let moved = sql(
        &ws,
        "SELECT count(*) FROM curated.customer_profiles_daily a JOIN curated.customer_profiles_daily b \
         ON a.one_id = b.one_id AND a.dt = '2024-12-31' AND b.dt = '2025-03-31' \
         WHERE a.last_purchase_date = b.last_purchase_date AND b.recency_days <> a.recency_days + 90",
    )
    .await;
    assert_eq!(single_i64(&moved), 0, "recency moves with the as-of date");
}

/// Seed 000's segment queries and seed 001's RFM summary, with only the table names changed.
fn seed_queries() -> Vec<String> {
    [
        "SELECT customer_id, email, first_name, last_purchase_date
FROM curated.customer_profiles_daily
WHERE dt = '${bizdate}'
AND monetary_segment = 'High Value'
AND recency_segment IN ('At Risk', 'Lapsed')
ORDER BY days_since_last_purchase ASC",
        "SELECT customer_id, email, first_name, total_page_views
FROM curated.customer_profiles_daily
WHERE dt = '${bizdate}'
AND total_orders = 0
AND engagement_segment = 'Highly Engaged'
AND DATEDIFF('${bizdate}', signup_date) <= 14
ORDER BY total_page_views DESC",
        "SELECT customer_id, email, first_name, total_orders, total_revenue
FROM curated.customer_profiles_daily
WHERE dt = '${bizdate}'
AND frequency_segment = 'Medium'
AND total_revenue BETWEEN 200 AND 999
AND recency_segment = 'Active'
ORDER BY total_revenue DESC",
        "SELECT
rfm_segment,
COUNT(*) AS user_count,
ROUND(AVG(monetary), 2) AS avg_monetary,
ROUND(AVG(frequency), 1) AS avg_frequency,
ROUND(AVG(recency_days), 0) AS avg_recency_days
FROM curated.customer_profiles
GROUP BY rfm_segment
ORDER BY avg_monetary DESC",
    ]
    .map(String::from)
    .to_vec()
}

/// The row-count rule compares with the average of the newest `window` passed results of its
/// own table and rule, however many results there are (its read is bounded to the newest
/// result files when they hold enough, else reads all): hand-computed averages over twelve runs
/// with a failed one and another table's results between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_row_count_rule_averages_the_newest_passed_results() {
    use cdplake_core::config::{Check, QualityRule};
    use cdplake_engine::arrow::array::Int64Array;
    use cdplake_engine::arrow::datatypes::{Field, Schema};
    use cdplake_profiles::quality::{QualityResult, check, record};
    let t = TestLake::new(Backend::Local).await;
    let ws = workspace(&t, Backend::Local).await;
    let result = |table: &str, value: f64, passed: bool| QualityResult {
        table: table.into(),
        rule: "row_count_ratio".into(),
        value,
        threshold: 0.0,
        passed,
    };
    for run in 0..12u32 {
        let value = 100.0 + 10.0 * run as f64;
        // Some times with milliseconds: statistics write those with a fraction, others without.
        let when = at(run + 1) + chrono::Duration::milliseconds(250 * (run % 3) as i64);
        record(&ws, &[result("clean.orders", value, run != 5)], "test", when).await.unwrap();
        record(&ws, &[result("clean.other", 5.0, true)], "test", at(run + 1) + chrono::Duration::minutes(1))
            .await
            .unwrap();
    }
    let session = cdplake_engine::SqlSession::new().unwrap();
    let schema = std::sync::Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    let rows =
        RecordBatch::try_new(schema.clone(), vec![std::sync::Arc::new(Int64Array::from_iter_values(0..500))]).unwrap();
    session.register_rows("candidate", schema, vec![rows]).unwrap();
    let table: cdplake_engine::TableId = "clean.orders".parse().unwrap();
    let threshold = |window: usize| {
        let mut ws = ws.clone();
        ws.config.quality.rules = vec![QualityRule {
            table: "clean.orders".into(),
            check: Check::RowCountRatio,
            column: None,
            filter: None,
            threshold: 1.0,
            window,
        }];
        let (session, table) = (&session, &table);
        async move { check(&ws, session, table, "candidate").await.unwrap()[0].threshold }
    };
    // Runs 11, 10, 9: the newest three files hold them.
    assert!((threshold(3).await - 600.0 / 3.0).abs() < 1e-9);
    // Runs 11 to 6 and 4 (run 5 failed): the newest seven files hold six.
    assert!((threshold(7).await - 1250.0 / 7.0).abs() < 1e-9);
    // Every passed run: 100 + 110 + ... + 210 less the failed 150.
    assert!((threshold(20).await - (1860.0 - 150.0) / 11.0).abs() < 1e-9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_quality_rule_blocks_the_publish() {
    let t = TestLake::new(Backend::Local).await;
    let ws = workspace(&t, Backend::Local).await;
    let (files, _) = cdplake_generate::generate(100, 3);
    let files: Vec<_> = files.into_iter().map(|f| (f.source, f.name, f.content)).collect();
    load(&ws, &files, 1).await;
    let first = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert!(first.quality.iter().all(|q| q.passed), "{:?}", first.quality);
    let published = version(&ws, "curated.customer_profiles").await;

    // A broken CRM export: 40 new customers, none with an email.
    let mut customers = "customer_id,email,phone,first_name,last_name,country,signup_date,updated_at\n".to_string();
    for i in 0..40 {
        customers.push_str(&format!("NOEMAIL{i},,,Anon,Ymous,GB,2024-12-01,2024-12-01 00:00:00\n"));
    }
    load(&ws, &[("customers", "broken.csv".into(), customers)], 2).await;
    let err = profiles(&ws, "2024-12-31", false).await.unwrap_err();
    assert!(matches!(&err, JobError::QualityGate { failures, .. } if failures.contains("null_rate(email)")), "{err}");
    assert_eq!(version(&ws, "curated.customer_profiles").await, published, "nothing published");
    let failed = sql(&ws, "SELECT count(*) FROM _quality.results WHERE NOT passed AND rule = 'null_rate(email)'").await;
    assert_eq!(single_i64(&failed), 1);

    // --force publishes, and still records the failure.
    let forced =
        refresh(&ws, &RefreshOptions { as_of: as_of("2024-12-31"), full: false, force: true }, at(3)).await.unwrap();
    assert!(forced.published && forced.quality.iter().any(|q| !q.passed));
    let new_rows = sql(&ws, "SELECT count(*) FROM curated.customer_profiles WHERE customer_id LIKE 'NOEMAIL%'").await;
    assert_eq!(single_i64(&new_rows), 40);
}

/// Identity merges shrink the profiles on purpose: thirty customers and thirty app devices are
/// sixty persons until a link file says each device is one customer's; the thirty left must not
/// fail the row-count rule (80% of the trailing average), which counts merged persons as there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persons_merged_by_identity_do_not_fail_the_row_count_rule() {
    let t = TestLake::new(Backend::Local).await;
    let ws = workspace(&t, Backend::Local).await;
    let mut customers = "customer_id,email,phone,first_name,last_name,country,signup_date,updated_at\n".to_string();
    let mut events = String::new();
    let mut links = "id_type_a,id_value_a,id_type_b,id_value_b,source\n".to_string();
    for i in 0..30 {
        customers.push_str(&format!("C{i:03},c{i}@example.org,,A,B,GB,2024-01-01,2024-01-01 00:00:00\n"));
        events.push_str(&format!(
            "{{\"event_id\":\"E{i}\",\"device_id\":\"DEV{i:03}\",\"event_type\":\"app_open\",\"event_time\":\"2024-06-01 10:00:00\"}}\n"
        ));
        links.push_str(&format!("customer_id,C{i:03},device_id,DEV{i:03},crm\n"));
    }
    let first = [("customers", "customers.csv".to_string(), customers), ("app_events", "events.jsonl".into(), events)];
    load(&ws, &first, 1).await;
    let before = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert!(before.quality.iter().all(|q| q.passed), "{:?}", before.quality);
    assert_eq!(single_i64(&sql(&ws, "SELECT count(*) FROM curated.customer_profiles").await), 60);

    load(&ws, &[("identity_links", "links.csv".into(), links)], 2).await;
    let merged = sql(&ws, "SELECT count(*) FROM curated.id_merge_history WHERE action = 'merge'").await;
    assert_eq!(single_i64(&merged), 30, "each device's person merged into its customer's");
    let after = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert!(after.published && after.quality.iter().all(|q| q.passed), "{:?}", after.quality);
    assert_eq!(single_i64(&sql(&ws, "SELECT count(*) FROM curated.customer_profiles").await), 30);
    let recorded = sql(
        &ws,
        "SELECT CAST(min(value) AS BIGINT) FROM _quality.results WHERE rule = 'row_count_ratio(persons)' AND passed",
    )
    .await;
    assert_eq!(single_i64(&recorded), 60, "60 rows, then 30 rows and 30 persons merged away");
}

/// A device seen alone is a person of its own until it turns out to be shared by two customers
/// (more customer_ids than one person may hold): a hub, linked to nobody, so that person is
/// retired. Retired persons left on purpose, like merged ones: the row-count rule must not block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persons_retired_by_a_hub_do_not_fail_the_row_count_rule() {
    let t = TestLake::new(Backend::Local).await;
    let ws = workspace(&t, Backend::Local).await;
    let mut customers = "customer_id,email,phone,first_name,last_name,country,signup_date,updated_at\n".to_string();
    let mut events = String::new();
    let mut links = "id_type_a,id_value_a,id_type_b,id_value_b,source\n".to_string();
    for i in 0..60 {
        customers.push_str(&format!("C{i:03},c{i}@example.org,,A,B,GB,2024-01-01,2024-01-01 00:00:00\n"));
    }
    for d in 0..30 {
        events.push_str(&format!(
            "{{\"event_id\":\"E{d}\",\"device_id\":\"DEV{d:03}\",\"event_type\":\"app_open\",\"event_time\":\"2024-06-01 10:00:00\"}}\n"
        ));
        for c in [2 * d, 2 * d + 1] {
            links.push_str(&format!("device_id,DEV{d:03},customer_id,C{c:03},store\n"));
        }
    }
    let first = [("customers", "customers.csv".to_string(), customers), ("app_events", "events.jsonl".into(), events)];
    load(&ws, &first, 1).await;
    let before = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert!(before.quality.iter().all(|q| q.passed), "{:?}", before.quality);
    assert_eq!(single_i64(&sql(&ws, "SELECT count(*) FROM curated.customer_profiles").await), 90);

    load(&ws, &[("identity_links", "links.csv".into(), links)], 2).await;
    let retired = sql(&ws, "SELECT count(*) FROM curated.id_merge_history WHERE action = 'retire'").await;
    assert_eq!(single_i64(&retired), 30, "each shared device's own person is gone");
    let active_devices =
        sql(&ws, "SELECT count(*) FROM curated.id_mapping WHERE id_type = 'device_id' AND is_active").await;
    assert_eq!(single_i64(&active_devices), 0);
    let after = profiles(&ws, "2024-12-31", false).await.unwrap();
    assert!(after.published && after.quality.iter().all(|q| q.passed), "{:?}", after.quality);
    assert_eq!(single_i64(&sql(&ws, "SELECT count(*) FROM curated.customer_profiles").await), 60);
    let recorded = sql(
        &ws,
        "SELECT CAST(max(value) AS BIGINT) FROM _quality.results WHERE rule = 'row_count_ratio(persons)' AND passed",
    )
    .await;
    assert_eq!(single_i64(&recorded), 90, "60 rows and 30 persons retired");
}

const DUCKDB_RFM: &str = r#"
import json, sys, duckdb
path, as_of = sys.argv[1], sys.argv[2]
rows = duckdb.sql(f"""
WITH lines AS (
  SELECT DISTINCT * FROM read_csv('{path}', header = true, all_varchar = true)
), typed AS (
  SELECT InvoiceNo AS invoice, CAST(Quantity AS BIGINT) AS quantity, CAST(UnitPrice AS DOUBLE) AS price,
         CAST(CAST(InvoiceDate AS TIMESTAMP) AS DATE) AS day, trim(CustomerID) AS customer
  FROM lines WHERE CustomerID IS NOT NULL AND trim(CustomerID) <> '' AND CAST(UnitPrice AS DOUBLE) >= 0
), marked AS (
  SELECT *, NOT (invoice LIKE 'C%' OR quantity < 0) AS purchase, round(price * quantity, 2) AS revenue FROM typed
), rfm AS (
  SELECT customer,
         DATE '{as_of}' - max(day) FILTER (WHERE purchase) AS recency_days,
         count(DISTINCT day) FILTER (WHERE purchase) AS frequency,
         round(sum(revenue), 2) AS monetary
  FROM marked GROUP BY customer HAVING bool_or(purchase)
)
SELECT customer, recency_days, frequency, monetary,
  CASE WHEN recency_days <= 200 AND frequency >= 2 AND monetary >= 300 THEN 'Champions'
       WHEN recency_days <= 600 AND frequency >= 2 THEN 'Loyal Customers'
       WHEN recency_days <= 600 THEN 'At Risk'
       WHEN recency_days <= 2000 THEN 'Hibernating'
       ELSE 'Lost' END AS rfm_segment
FROM rfm
""").fetchall()
print(json.dumps([[str(c) for c in r] for r in rows]))
sys.stdout.flush()
import os
os._exit(0)
"#;

/// The real Online Retail file as of 2011-12-10: every customer's recency, frequency, monetary
/// and rfm_segment equal DuckDB's computation of the same rules on the raw CSV.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_retail_rfm_agrees_with_duckdb() {
    let file = repo_root().join("../shared/data/online_retail.csv");
    let t = TestLake::new(Backend::Local).await;
    let ws = workspace(&t, Backend::Local).await;
    let source = ws.config.source("retail_transactions").unwrap();
    let path = file.display().to_string();
    cdplake_ingest::ingest::ingest(&ws, &source, std::slice::from_ref(&path), at(1)).await.unwrap();
    cdplake_ingest::clean::clean(&ws, &source, at(1)).await.unwrap();
    cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    let report = profiles(&ws, "2011-12-10", false).await.unwrap();
    assert_eq!(report.profiles, 4_372, "{report:?}");

    let python = std::env::var("CDPLAKE_TEST_PYTHON")
        .unwrap_or_else(|_| repo_root().join(".cache/py/bin/python").display().to_string());
    let output = Command::new(&python).args(["-c", DUCKDB_RFM, &path, "2011-12-10"]).output().unwrap();
    assert!(output.status.success(), "duckdb: {}", String::from_utf8_lossy(&output.stderr));
    let expected: Vec<Vec<String>> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(expected.len() > 4_000, "{} customers with purchases", expected.len());

    let ours = sql(
        &ws,
        "SELECT m.id_value AS customer, p.recency_days, p.frequency, p.monetary, p.rfm_segment \
         FROM curated.customer_profiles p JOIN curated.id_mapping m ON m.one_id = p.one_id \
         AND m.id_type = 'retail_customer_id' WHERE p.rfm_segment IS NOT NULL",
    )
    .await;
    let mut by_customer: HashMap<String, (String, String, f64, String)> = HashMap::new();
    for b in &ours {
        let (c, r, f, m, s) = (
            texts(b, "customer"),
            texts(b, "recency_days"),
            texts(b, "frequency"),
            texts(b, "monetary"),
            texts(b, "rfm_segment"),
        );
        for i in 0..c.len() {
            by_customer.insert(c[i].clone(), (r[i].clone(), f[i].clone(), m[i].parse().unwrap(), s[i].clone()));
        }
    }
    assert_eq!(by_customer.len(), expected.len(), "the same customers have purchases");
    for row in &expected {
        let (r, f, m, s) = by_customer.get(&row[0]).unwrap_or_else(|| panic!("customer {} has no profile", row[0]));
        assert_eq!(
            (r.as_str(), f.as_str(), s.as_str()),
            (row[1].as_str(), row[2].as_str(), row[4].as_str()),
            "customer {}",
            row[0]
        );
        let theirs: f64 = row[3].parse().unwrap();
        assert!((m - theirs).abs() < 0.015, "customer {}: monetary {m} vs {theirs}", row[0]);
    }
    let segments = sql(&ws, "SELECT count(DISTINCT rfm_segment) FROM curated.customer_profiles").await;
    assert!(single_i64(&segments) >= 3, "the data spans several segments");
}
