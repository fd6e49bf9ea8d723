//! Segments as Roaring bitmaps, seed 001's bitmap SQL, audiences, their changes and exports.

use std::collections::BTreeSet;

use cdplake_core::{Config, Workspace};
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_profiles::audience::export::{ExportFormat, ExportIds, ExportRequest, export_audience};
use cdplake_profiles::audience::{build_audience, evaluate};
use cdplake_profiles::segments::build_segments;
use cdplake_profiles::{RefreshOptions, refresh};
use chrono::{NaiveDate, TimeZone, Utc};

use crate::support::{Backend, TestLake, single_i64};

fn at(day: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, day, 6, 0, 0).unwrap()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

async fn sql(ws: &Workspace, query: &str) -> Vec<RecordBatch> {
    cdplake_core::query::run_query(ws, query).await.unwrap_or_else(|e| panic!("{query}: {e}"))
}

fn texts(batch: &RecordBatch, column: usize) -> Vec<String> {
    let c = cast(batch.column(column), &DataType::Utf8).unwrap();
    let c = c.as_string::<i32>();
    (0..c.len()).map(|i| if c.is_null(i) { String::new() } else { c.value(i).to_string() }).collect()
}

/// A generated lake with identities and profiles as of `as_of`.
async fn lake_with_profiles(t: &TestLake, persons: u64, as_of: &str) -> Workspace {
    let ws = Workspace::open_with(Config::default(), Some(&t.root)).await.unwrap();
    let (files, _) = cdplake_generate::generate(persons, 9);
    let files: Vec<_> = files.into_iter().map(|f| (f.source, f.name, f.content)).collect();
    crate::support::land_ingest_clean(&ws, &files, at(1)).await;
    cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    refresh(&ws, &RefreshOptions { as_of: date(as_of), full: false, force: false }, at(1)).await.unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitmap_set_operations_agree_with_sql_joins_and_seed_statements_run() {
    let t = TestLake::new(Backend::Local).await;
    let ws = lake_with_profiles(&t, 300, "2024-12-31").await;
    let first = build_segments(&ws, None, at(2)).await.unwrap();
    assert_eq!(first.as_of, "2024-12-31");
    let version = |ws: &Workspace| {
        let ws = ws.clone();
        async move { ws.lake().table(&"curated.segment_bitmaps".parse().unwrap()).await.unwrap().version() }
    };
    let before = version(&ws).await;
    let again = build_segments(&ws, None, at(3)).await.unwrap();
    assert_eq!(first.segments, again.segments);
    assert_eq!(version(&ws).await, before, "rebuilding the same bitmaps commits nothing");
    let duplicates = sql(
        &ws,
        "SELECT count(*) FROM (SELECT segment_tag, as_of, count(*) AS n FROM curated.segment_bitmaps \
         GROUP BY segment_tag, as_of) WHERE n > 1",
    )
    .await;
    assert_eq!(single_i64(&duplicates), 0, "rebuilding leaves one row per tag and date");

    // Each expression on bitmaps counts what the equivalent SQL over profiles counts.
    let session = cdplake_engine::SqlSession::new().unwrap();
    let cases = [
        ("Champions AND lapsing", "rfm_segment = 'Champions' AND lifecycle_stage = 'lapsing'"),
        ("Champions OR \"High Value\"", "rfm_segment = 'Champions' OR monetary_segment = 'High Value'"),
        ("\"High Value\" AND NOT active", "monetary_segment = 'High Value' AND lifecycle_stage <> 'active'"),
        (
            "NOT (prospect OR \"Low Engagement\")",
            "lifecycle_stage <> 'prospect' AND engagement_segment <> 'Low Engagement'",
        ),
    ];
    for (expr, predicate) in cases {
        let (_, members, _) = evaluate(&ws, &session, expr, None).await.unwrap();
        let expected = sql(&ws, &format!("SELECT count(*) FROM curated.customer_profiles WHERE {predicate}")).await;
        assert_eq!(members.len() as i64, single_i64(&expected), "{expr}");
        assert!(!members.is_empty(), "{expr} selects someone");
    }
    // Channels come from purchases: an anti-join on events.
    let (_, app_not_web, _) = evaluate(&ws, &session, "channel_app AND NOT channel_web", None).await.unwrap();
    let expected = sql(
        &ws,
        "SELECT count(DISTINCT one_id) FROM curated.user_events WHERE event_type = 'purchase' AND channel = 'app' \
         AND event_date <= DATE '2024-12-31' AND one_id NOT IN (SELECT one_id FROM curated.user_events \
         WHERE event_type = 'purchase' AND channel = 'web' AND event_date <= DATE '2024-12-31' AND one_id IS NOT NULL)",
    )
    .await;
    assert_eq!(app_not_web.len() as i64, single_i64(&expected));

    // Seed 001's statements, with only the table names changed.
    let seed = |s: &str| {
        s.replace("best_practice_marketing_cdp.ads_user_bitmap", "curated.ads_user_bitmap")
            .replace("best_practice_marketing_cdp.dws_user_segment", "curated.customer_profiles")
            .replace("best_practice_marketing_cdp.dwd_user_events", "curated.user_events")
    };
    let counts = sql(
        &ws,
        &seed("SELECT segment_tag, BITMAP_COUNT(user_bitmap) AS user_count FROM best_practice_marketing_cdp.ads_user_bitmap ORDER BY user_count DESC"),
    )
    .await;
    assert!(counts.iter().map(|b| b.num_rows()).sum::<usize>() >= 8);
    let and_all = sql(
        &ws,
        &seed(
            "SELECT GROUP_BITMAP_AND(user_bitmap) AS users_in_all_segments FROM best_practice_marketing_cdp.ads_user_bitmap \
             WHERE segment_tag IN ('Champions', 'High Value')",
        ),
    )
    .await;
    let (_, both, _) = evaluate(&ws, &session, "Champions AND \"High Value\"", None).await.unwrap();
    assert_eq!(single_i64(&and_all), both.len() as i64);
    let union = sql(
        &ws,
        &seed(
            "SELECT BITMAP_COUNT(
BITMAP_OR(
(SELECT user_bitmap FROM best_practice_marketing_cdp.ads_user_bitmap WHERE segment_tag = 'Champions'),
(SELECT user_bitmap FROM best_practice_marketing_cdp.ads_user_bitmap WHERE segment_tag = 'Loyal Customers')
)
) AS union_count",
        ),
    )
    .await;
    let (_, either, _) = evaluate(&ws, &session, "Champions OR \"Loyal Customers\"", None).await.unwrap();
    assert_eq!(single_i64(&union), either.len() as i64);
    let target = sql(
        &ws,
        &seed(
            "SELECT BITMAP_COUNT(
BITMAP_ANDNOT(
BITMAP_AND(
(SELECT user_bitmap FROM best_practice_marketing_cdp.ads_user_bitmap WHERE segment_tag = 'Champions'),
(SELECT user_bitmap FROM best_practice_marketing_cdp.ads_user_bitmap WHERE segment_tag = 'High Value')
),
(SELECT user_bitmap FROM best_practice_marketing_cdp.ads_user_bitmap WHERE segment_tag = 'channel_app')
)
) AS target_audience_count",
        ),
    )
    .await;
    let (_, expected, _) =
        evaluate(&ws, &session, "Champions AND \"High Value\" AND NOT channel_app", None).await.unwrap();
    assert_eq!(single_i64(&target), expected.len() as i64);
    // The ids themselves, exploded with unnest, and the seed's GROUP_BITMAP_STATE build over one_id digits.
    let ids = sql(
        &ws,
        "SELECT unnest(bitmap_to_array((SELECT user_bitmap FROM curated.ads_user_bitmap WHERE segment_tag = 'Champions'))) AS user_id",
    )
    .await;
    let champions = sql(&ws, "SELECT count(*) FROM curated.customer_profiles WHERE rfm_segment = 'Champions'").await;
    assert_eq!(ids.iter().map(|b| b.num_rows()).sum::<usize>() as i64, single_i64(&champions));
    let built = sql(
        &ws,
        &seed(
            "SELECT rfm_segment AS segment_tag, BITMAP_COUNT(GROUP_BITMAP_STATE(CAST(SUBSTRING(one_id, 4) AS INT))) AS n \
             FROM best_practice_marketing_cdp.dws_user_segment WHERE one_id LIKE 'ONE%' AND rfm_segment = 'Champions' \
             GROUP BY rfm_segment",
        ),
    )
    .await;
    assert_eq!(texts(&built[0], 1), [single_i64(&champions).to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_record_changes_between_dates_and_exports_respect_the_floor() {
    let t = TestLake::new(Backend::Local).await;
    let ws = lake_with_profiles(&t, 300, "2024-09-30").await;
    build_segments(&ws, None, at(2)).await.unwrap();
    let rule = "active OR at_risk";
    let first = build_audience(&ws, "recent buyers", rule, None, at(2)).await.unwrap();
    assert_eq!((first.previous_as_of.as_deref(), first.entered, first.left), (None, first.members, 0));
    let rebuilt = build_audience(&ws, "recent buyers", rule, None, at(2)).await.unwrap();
    assert_eq!(rebuilt.members, first.members);
    let rows = sql(&ws, "SELECT count(*) FROM curated.audience_packages WHERE package_name = 'recent buyers'").await;
    assert_eq!(single_i64(&rows) as u64, first.members, "a rebuild replaces its own rows");

    // Three months later people have moved in and out.
    refresh(&ws, &RefreshOptions { as_of: date("2024-12-31"), full: false, force: false }, at(3)).await.unwrap();
    build_segments(&ws, None, at(3)).await.unwrap();
    let later = build_audience(&ws, "recent buyers", rule, None, at(3)).await.unwrap();
    assert_eq!(later.previous_as_of.as_deref(), Some("2024-09-30"));
    assert!(later.entered > 0 && later.left > 0, "{later:?}");
    let set = |batches: Vec<RecordBatch>| -> BTreeSet<String> { batches.iter().flat_map(|b| texts(b, 0)).collect() };
    let members = |as_of: &str| {
        format!(
            "SELECT one_id FROM curated.audience_packages WHERE package_name = 'recent buyers' AND as_of = '{as_of}'"
        )
    };
    let changes = |change: &str| {
        format!("SELECT one_id FROM curated.audience_changes WHERE change = '{change}' AND as_of = '2024-12-31'")
    };
    let (old, new) = (set(sql(&ws, &members("2024-09-30")).await), set(sql(&ws, &members("2024-12-31")).await));
    let entered = set(sql(&ws, &changes("entered")).await);
    let left = set(sql(&ws, &changes("left")).await);
    assert_eq!(entered, new.difference(&old).cloned().collect(), "entered = new members minus old");
    assert_eq!(left, old.difference(&new).cloned().collect(), "left = old members minus new");
    assert_eq!((entered.len() as u64, left.len() as u64), (later.entered, later.left));

    // Exports: refused below the floor, written above it.
    let out = tempfile::tempdir().unwrap();
    let request = |min_size| ExportRequest {
        name: "recent buyers".into(),
        as_of: None,
        to: out.path().display().to_string(),
        format: ExportFormat::Csv,
        ids: ExportIds::OneId,
        min_size,
    };
    let refused = export_audience(&ws, &request(Some(later.members + 1))).await.unwrap_err();
    assert!(
        matches!(&refused, cdplake_core::JobError::BadInput { reason, .. } if reason.contains("below the export floor")),
        "{refused}"
    );
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "nothing written");
    let written = export_audience(&ws, &request(Some(1))).await.unwrap();
    let csv = std::fs::read_to_string(out.path().join("recent_buyers-2024-12-31.csv")).unwrap();
    assert_eq!(csv.lines().count() as u64, later.members + 1, "{written:?}");
    assert!(csv.starts_with("one_id\n"));
    let hashed = ExportRequest { ids: ExportIds::EmailHash, format: ExportFormat::Parquet, ..request(Some(1)) };
    let report = export_audience(&ws, &hashed).await.unwrap();
    assert!(report.rows > 0 && report.location.ends_with(".parquet"), "{report:?}");
}
