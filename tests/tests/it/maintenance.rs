//! `cdplake maintain` on a lake grown by micro-batches (local and S3): contents identical
//! before and after, fewer files on storage, a short log, PII out of statistics, a dry run that
//! changes nothing; maintenance beside a running writer loses no write; raw rows past the
//! zone's retention deleted, vacuumed and audited.

use std::collections::BTreeMap;

use cdplake_core::audit::Invoker;
use cdplake_core::{Config, Workspace};
use cdplake_engine::{MaintainOptions, TableSpec};
use cdplake_operations::maintain::{MaintainRequest, maintain};
use chrono::{TimeZone, Utc};

use crate::support::{Backend, TestLake, count, events, events_schema, id, lake_rows, on_every_backend, s3_options};

async fn workspace(t: &TestLake, backend: Backend, history_days: u32) -> Workspace {
    Workspace::open_with(config(backend, history_days), Some(&t.root)).await.unwrap()
}

fn config(backend: Backend, history_days: u32) -> Config {
    let mut config = Config::default();
    if backend == Backend::S3 {
        config.lake.storage = s3_options();
    }
    for zone in ["raw", "clean", "curated", "_catalog", "_audit", "_quality"] {
        config.retention.history_days.insert(zone.into(), history_days);
    }
    config
}

/// The generated sources landed a few files at a time, each group run through the S3 handler's
/// steps (clean → identity → profiles): every table gets many small files and commits.
async fn grow(ws: &Workspace) {
    let now = Utc.with_ymd_and_hms(2024, 12, 30, 12, 0, 0).unwrap();
    let (files, _) = cdplake_generate::generate(40, 9);
    for group in files.chunks(3) {
        let landed: Vec<(&str, String, String)> =
            group.iter().map(|f| (f.source, f.name.clone(), f.content.clone())).collect();
        crate::support::land_ingest_clean(ws, &landed, now).await;
        cdplake_identity::resolve(ws, now).await.unwrap();
        let options = cdplake_profiles::RefreshOptions {
            as_of: chrono::NaiveDate::from_ymd_opt(2024, 12, 30).unwrap(),
            full: false,
            force: true,
        };
        cdplake_profiles::refresh(ws, &options, now).await.unwrap();
    }
}

async fn maintenance_keeps_contents_and_shrinks_files(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend, 0).await;
    grow(&ws).await;
    let before = lake_rows(&ws).await;
    let mapping = id("curated.id_mapping");
    let footprint = ws.lake().footprint(&mapping).await.unwrap();
    let catalog = ws.lake().footprint(&cdplake_catalog::catalog_table_id()).await.unwrap();
    assert!(catalog.live_files <= 1, "the catalog is rewritten as one file per update: {catalog:?}");

    // A dry run reports and changes nothing.
    let dry = MaintainRequest { tables: Vec::new(), dry_run: true };
    let report = maintain(&ws, &dry, &Invoker::cli(), Utc::now()).await.unwrap();
    assert!(report.tables.iter().any(|t| t.files_vacuumed > 0), "{report:?}");
    assert_eq!(ws.lake().footprint(&mapping).await.unwrap(), footprint, "a dry run changes nothing");

    // As a maintenance two hours later: what is younger than an hour (change data, orphans, log
    // entries a concurrent reader may have listed) stays whatever the history.
    let later = Utc::now() + chrono::Duration::hours(2);
    let report = maintain(&ws, &MaintainRequest::default(), &Invoker::cli(), later).await.unwrap();
    let text = cdplake_operations::maintain::describe_report(&report);
    assert_eq!(lake_rows(&ws).await, before, "every table holds the same rows after maintenance\n{text}");
    let (files_before, files_after): (u64, u64) =
        report.tables.iter().fold((0, 0), |a, t| (a.0 + t.before.files, a.1 + t.after.files));
    assert!(files_after < files_before, "fewer files on storage: {files_before} → {files_after}\n{text}");
    let m = report.tables.iter().find(|t| t.table == "curated.id_mapping").unwrap();
    assert!(m.after.files < m.before.files, "{m:?}");
    assert!(m.after.live_files <= m.before.live_files, "{m:?}");
    assert!(m.after.log_files < m.before.log_files, "old commits cleaned after the checkpoint: {m:?}");
    assert!(m.checkpoint_version.is_some());

    // PII is kept out of statistics; the zone's history is the table's own retention.
    let customers = ws.lake().table(&id("clean.customers")).await.unwrap();
    let config = customers.snapshot().unwrap().metadata().configuration().clone();
    let stats = config.get("delta.dataSkippingStatsColumns").expect("stats columns set");
    assert!(stats.contains("customer_id") && !stats.contains("email_hash"), "{stats}");
    assert_eq!(config.get("delta.deletedFileRetentionDuration").map(String::as_str), Some("interval 0 days"));
    let raw = ws.lake().table(&id("raw.customers")).await.unwrap();
    let raw_stats = raw.snapshot().unwrap().metadata().configuration().get("delta.dataSkippingStatsColumns").cloned();
    assert_eq!(raw_stats.as_deref().map(|s| s.contains("email")), Some(false), "raw keeps lineage stats only");

    // The pipeline goes on on the maintained lake, and a second maintenance has little to do.
    grow(&ws).await;
    let again = maintain(&ws, &MaintainRequest::default(), &Invoker::cli(), Utc::now()).await.unwrap();
    // Each run appends its quality results and audit rows; a profiles run that finds the history
    // it would read incrementally vacuumed recomputes events whole (new refresh sequence numbers).
    let after = comparable(lake_rows(&ws).await);
    let before = comparable(before);
    let differing: Vec<&String> =
        before.keys().chain(after.keys()).filter(|t| before.get(*t) != after.get(*t)).collect();
    assert!(
        differing.is_empty(),
        "replayed files change nothing, maintained or not; tables that differ: {differing:?}"
    );
    assert!(!again.tables.is_empty());
}

async fn maintenance_beside_a_running_writer_loses_no_write(backend: Backend) {
    let t = TestLake::new(backend).await;
    let table = id("raw.events");
    t.lake.create_table(&TableSpec::new(table.clone(), events_schema())).await.unwrap();
    for i in 0..20 {
        t.lake.append(&table, vec![events(&[(&format!("a{i}"), "c", 1.0, "2024-05-01")])]).await.unwrap();
    }
    let writer = {
        let lake = t.lake.clone();
        let table = table.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                lake.append(&table, vec![events(&[(&format!("b{i}"), "c", 1.0, "2024-05-01")])]).await.unwrap();
            }
        })
    };
    let options = MaintainOptions::new(chrono::Duration::zero(), Utc::now());
    let maintained = t.lake.maintain_table(&table, &options).await.unwrap();
    writer.await.unwrap();
    assert!(maintained.files_compacted > 0, "{maintained:?}");
    assert_eq!(count(t.lake.read(&table).await.unwrap()).await, 40, "every append landed, compaction lost none");
    let again =
        t.lake.maintain_table(&table, &MaintainOptions::new(chrono::Duration::zero(), Utc::now())).await.unwrap();
    assert_eq!(count(t.lake.read(&table).await.unwrap()).await, 40);
    assert_eq!(again.after.live_files, 1, "{again:?}");
}

/// `[maintenance] min_age_minutes`: log entries younger than it stay however short the history
/// (a reader that listed the log may still read them); at 0 a zero-history maintenance keeps
/// only what the new checkpoint needs.
async fn min_age_minutes_keeps_young_log_entries(backend: Backend) {
    let mut log_files_after = Vec::new();
    for min_age_minutes in [60, 0] {
        let t = TestLake::new(backend).await;
        let mut config = config(backend, 0);
        config.maintenance.min_age_minutes = min_age_minutes;
        let ws = Workspace::open_with(config, Some(&t.root)).await.unwrap();
        let table = id("raw.events");
        ws.catalog.ensure_table(&TableSpec::new(table.clone(), events_schema()), &Default::default()).await.unwrap();
        for i in 0..15 {
            ws.lake().append(&table, vec![events(&[(&format!("a{i}"), "c", 1.0, "2024-05-01")])]).await.unwrap();
        }
        let request = MaintainRequest { tables: vec![table.clone()], dry_run: false };
        let report = maintain(&ws, &request, &Invoker::cli(), Utc::now()).await.unwrap();
        let maintained = report.tables.iter().find(|m| m.table == "raw.events").unwrap();
        assert_eq!(maintained.after.live_files, 1, "{maintained:?}");
        assert_eq!(count(ws.lake().read(&table).await.unwrap()).await, 15);
        log_files_after.push((min_age_minutes, maintained.before.log_files, maintained.after.log_files));
    }
    let [(_, young_before, young_after), (_, _, zero_after)] = log_files_after[..] else { unreachable!() };
    assert!(young_after > young_before, "60 minutes: every commit stays ({log_files_after:?})");
    assert!(zero_after <= 4, "0 minutes: the checkpoint and what follows it ({log_files_after:?})");
}

/// Row retention (`[retention] raw_days`, the raw tables' catalog `retention_days`): the rows
/// ingested before `now - raw_days` are deleted and their files vacuumed, with one audit row per
/// table; younger raw rows and the clean zone stay as they were; a second maintenance has no
/// rows left to delete.
async fn raw_rows_past_their_retention_are_deleted_and_audited(backend: Backend) {
    let t = TestLake::new(backend).await;
    let mut config = config(backend, 0);
    config.retention.raw_days = Some(30);
    let ws = Workspace::open_with(config, Some(&t.root)).await.unwrap();
    let today = Utc::now();
    let long_ago = today - chrono::Duration::days(45);
    let (files, _) = cdplake_generate::generate(20, 5);
    let (mut old, mut recent) = (Vec::new(), Vec::new());
    for (i, f) in files.iter().enumerate() {
        let file = (f.source, f.name.clone(), f.content.clone());
        if i % 2 == 0 { old.push(file) } else { recent.push(file) }
    }
    crate::support::land_ingest_clean(&ws, &old, long_ago).await;
    crate::support::land_ingest_clean(&ws, &recent, today).await;

    let old_date = long_ago.format("%Y-%m-%d").to_string();
    let before = raw_rows_by_age(&ws, &old_date).await;
    assert!(
        before.values().any(|&(old, young)| old > 0 && young > 0),
        "a raw table with old and young rows: {before:?}"
    );
    let clean_before: BTreeMap<_, _> =
        lake_rows(&ws).await.into_iter().filter(|(t, _)| t.starts_with("clean.")).collect();
    assert!(!clean_before.is_empty());

    // Two hours on, so the deleted files are older than `min_age_minutes` and vacuumed at once.
    let later = today + chrono::Duration::hours(2);
    let report = maintain(&ws, &MaintainRequest::default(), &Invoker::cli(), later).await.unwrap();
    let text = cdplake_operations::maintain::describe_report(&report);
    let expected: BTreeMap<String, u64> =
        before.iter().filter(|(_, (old, _))| *old > 0).map(|(t, (old, _))| (t.clone(), *old)).collect();
    assert_eq!(report.retention, expected, "{text}");
    let after = raw_rows_by_age(&ws, &old_date).await;
    for (table, (_, young)) in &before {
        assert_eq!(after[table], (0, *young), "{table}: the old rows go, the young ones stay\n{text}");
    }
    // Clean runs again on the shortened raw tables: nothing to redo, nothing lost.
    let mut sources: Vec<&str> = files.iter().map(|f| f.source).collect();
    sources.sort();
    sources.dedup();
    for name in sources {
        cdplake_ingest::clean::clean(&ws, &ws.config.source(name).unwrap(), later).await.unwrap();
    }
    let clean_after: BTreeMap<_, _> =
        lake_rows(&ws).await.into_iter().filter(|(t, _)| t.starts_with("clean.")).collect();
    assert_eq!(clean_after, clean_before, "row retention is the raw zone's: clean rows stay");

    // The old partitions' files are gone from storage, not only from the table.
    let raw_objects = ws.lake().list_objects(ws.lake().location().join("raw/").as_str()).await.unwrap();
    let partition = format!("_ingest_date={old_date}/");
    let left: Vec<_> = raw_objects.iter().filter(|o| o.contains(&partition) && o.ends_with(".parquet")).collect();
    assert!(left.is_empty(), "old raw files vacuumed: {left:?}");

    // One audit row per table whose rows retention deleted, with the number of rows.
    let audited = cdplake_core::query::run_query(
        &ws,
        "SELECT array_to_string(tables, ' '), CAST(rows_in AS VARCHAR), outcome FROM _audit.job_runs \
         WHERE job = 'retention' ORDER BY 1",
    )
    .await
    .unwrap();
    let audited: Vec<(String, u64)> = crate::support::lake_rows_of(&audited)
        .into_iter()
        .map(|row| {
            assert_eq!(row[2], "ok");
            (row[0].clone(), row[1].parse().unwrap())
        })
        .collect();
    assert_eq!(audited, expected.clone().into_iter().collect::<Vec<_>>());

    let again = maintain(&ws, &MaintainRequest::default(), &Invoker::cli(), later).await.unwrap();
    assert!(again.retention.is_empty(), "nothing old is left: {:?}", again.retention);
}

/// Rows of every raw table ingested on `old_date` and on other days.
async fn raw_rows_by_age(ws: &Workspace, old_date: &str) -> BTreeMap<String, (u64, u64)> {
    let mut counts = BTreeMap::new();
    let raw_tables =
        ws.catalog.list().await.unwrap().into_iter().filter(|e| {
            e.zone == "raw" && e.columns().iter().any(|(name, _, _)| name == cdplake_zones::raw::INGEST_DATE)
        });
    for entry in raw_tables {
        let q = format!(
            "SELECT CAST(count(*) FILTER (WHERE _ingest_date = '{old_date}') AS VARCHAR), \
             CAST(count(*) FILTER (WHERE _ingest_date <> '{old_date}') AS VARCHAR) FROM {}",
            entry.name
        );
        let rows = crate::support::lake_rows_of(&cdplake_core::query::run_query(ws, &q).await.unwrap());
        counts.insert(entry.name.clone(), (rows[0][0].parse().unwrap(), rows[0][1].parse().unwrap()));
    }
    counts
}

on_every_backend!(
    maintenance_keeps_contents_and_shrinks_files,
    maintenance_beside_a_running_writer_loses_no_write,
    min_age_minutes_keeps_young_log_entries,
    raw_rows_past_their_retention_are_deleted_and_audited
);

/// Table rows without what every run appends (`_quality`, `_audit`) and without the refresh
/// sequence of `curated.user_events`, sorted.
fn comparable(rows: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    rows.into_iter()
        .filter(|(table, _)| !table.starts_with("_quality.") && !table.starts_with("_audit."))
        .map(|(table, rows)| {
            let mut rows: Vec<String> = rows
                .into_iter()
                .map(|row| row.split('|').filter(|kv| !kv.starts_with("_refresh_seq=")).collect::<Vec<_>>().join("|"))
                .collect();
            rows.sort();
            (table, rows)
        })
        .collect()
}

/// A client of the test S3 server, for what the test checks on the bucket itself.
async fn s3_client() -> aws_sdk_s3::Client {
    let env = crate::support::s3_env();
    let credentials = aws_sdk_s3::config::Credentials::new(
        &env["AWS_ACCESS_KEY_ID"],
        &env["AWS_SECRET_ACCESS_KEY"],
        None,
        None,
        "test",
    );
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&env["AWS_ENDPOINT_URL"])
        .credentials_provider(credentials)
        .load()
        .await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).build())
}

/// The bucket's lifecycle rules as `(id, prefix, expiration days, noncurrent days, transitions)`.
async fn bucket_rules(
    client: &aws_sdk_s3::Client,
    bucket: &str,
) -> Vec<(String, String, Option<i32>, Option<i32>, usize)> {
    let output = client.get_bucket_lifecycle_configuration().bucket(bucket).send().await.unwrap();
    let mut rules: Vec<_> = output
        .rules()
        .iter()
        .map(|r| {
            (
                r.id().unwrap_or_default().to_string(),
                r.filter().and_then(|f| f.prefix()).unwrap_or_default().to_string(),
                r.expiration().and_then(|e| e.days()),
                r.noncurrent_version_expiration().and_then(|e| e.noncurrent_days()),
                r.transitions().len(),
            )
        })
        .collect();
    rules.sort();
    rules
}

/// `cdplake maintain --apply-lifecycle` against the S3 server: cdplake's rules go on the bucket
/// beside a rule someone else put there, under the lake's prefix; the storage-class transitions
/// SeaweedFS does not implement (it answers NotImplemented) are reported as not applied; a second
/// run leaves the same document; a local lake is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archival_rules_go_on_the_bucket_beside_its_other_rules_on_s3() {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    };
    use cdplake_operations::lifecycle;

    let t = TestLake::new(Backend::S3).await;
    let location = cdplake_engine::LakeLocation::parse(&t.root, s3_options()).unwrap();
    let bucket = location.root().host_str().unwrap().to_string();
    let prefix = location.root().path().trim_matches('/').to_string();
    let client = s3_client().await;
    let foreign_id = format!("someone-else:{prefix}");
    let foreign = LifecycleRule::builder()
        .id(&foreign_id)
        .filter(LifecycleRuleFilter::builder().prefix(format!("{prefix}-logs/")).build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(3).build())
        .build()
        .unwrap();
    let document = BucketLifecycleConfiguration::builder().rules(foreign).build().unwrap();
    client.put_bucket_lifecycle_configuration().bucket(&bucket).lifecycle_configuration(document).send().await.unwrap();

    let retention = cdplake_core::config::RetentionConfig::default();
    let report = lifecycle::apply(&location, &retention).await.unwrap();
    let ours = |name: &str| format!("cdplake:{prefix}:{name}");
    assert_eq!(report.applied, [ours("query-results-expire"), ours("noncurrent-versions-expire")], "{report:?}");
    let refused: Vec<&str> = report.not_applied.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(refused, [ours("raw-archive")], "{report:?}");
    assert!(report.not_applied[0].reason.contains("NotImplemented"), "{report:?}");
    assert_eq!(report.other_rules_kept, std::slice::from_ref(&foreign_id));

    let rules = bucket_rules(&client, &bucket).await;
    let mut expected = vec![
        (ours("noncurrent-versions-expire"), format!("{prefix}/"), None, Some(1), 0),
        (ours("query-results-expire"), format!("{prefix}/_query_results/"), Some(7), None, 0),
        (foreign_id, format!("{prefix}-logs/"), Some(3), None, 0),
    ];
    expected.sort();
    assert_eq!(rules, expected);

    let again = lifecycle::apply(&location, &retention).await.unwrap();
    assert_eq!(again.applied, report.applied);
    assert_eq!(bucket_rules(&client, &bucket).await, expected, "a second run replaces cdplake's rules, adds none");
    client.delete_bucket_lifecycle().bucket(&bucket).send().await.unwrap();

    let local =
        cdplake_engine::LakeLocation::parse(tempfile::tempdir().unwrap().path().to_str().unwrap(), Default::default())
            .unwrap();
    let refused = lifecycle::apply(&local, &retention).await.unwrap_err();
    assert!(
        matches!(&refused, cdplake_core::JobError::BadInput { what, reason }
            if what == "--apply-lifecycle" && reason.contains("needs an S3 lake")),
        "{refused}"
    );
}
