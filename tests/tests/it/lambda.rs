//! The Lambda handlers on real events: S3 object events against the S3 server (replays,
//! concurrent invocations), the daily schedule with its quality gate, read-only queries.

use std::collections::HashSet;

use cdplake_app::lambda::{Handler, invoke};
use cdplake_core::{Config, JobError, Workspace};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

use crate::support::{Backend, TestLake, s3_options, single_i64};

/// AWS's sample S3 put event (from the Lambda documentation), for one object.
fn s3_put_event(bucket: &str, key: &str, sequencer: &str) -> Value {
    json!({
      "Records": [{
        "eventVersion": "2.0",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-12-30T12:00:00.000Z",
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "EXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH"},
        "s3": {
          "s3SchemaVersion": "1.0",
          "configurationId": "testConfigRule",
          "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": format!("arn:aws:s3:::{bucket}")},
          "object": {"key": key, "size": 1024, "eTag": "0123456789abcdef0123456789abcdef", "sequencer": sequencer}
        }
      }]
    })
}

/// `s3://bucket/prefix` → (bucket, prefix).
fn bucket_and_prefix(root: &str) -> (String, String) {
    let rest = root.strip_prefix("s3://").unwrap();
    let (bucket, prefix) = rest.split_once('/').unwrap();
    (bucket.to_string(), prefix.trim_end_matches('/').to_string())
}

async fn sql(ws: &Workspace, query: &str) -> Vec<cdplake_engine::arrow::array::RecordBatch> {
    cdplake_core::query::run_query(ws, query).await.unwrap_or_else(|e| panic!("{query}: {e}"))
}

async fn versions(ws: &Workspace) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for t in ["raw.crm_members", "clean.crm_members", "curated.id_mapping", "curated.customer_profiles"] {
        out.push(ws.lake().table(&t.parse().unwrap()).await.unwrap().version());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_events_run_the_pipeline_replays_change_nothing_and_concurrent_invocations_all_land() {
    let t = TestLake::new(Backend::S3).await;
    let mut config = Config::default();
    config.lake.storage = s3_options();
    // Eight runs at once on an empty lake publish profiles from partly stitched identity; a later
    // run's merges shrink the count, which the row-count rule must not call a loss (it failed 2 of
    // 4 runs before it counted merged persons).
    let ws = Workspace::open_with(config, Some(&t.root)).await.unwrap();
    let (bucket, prefix) = bucket_and_prefix(&t.root);
    let now = Utc.with_ymd_and_hms(2024, 12, 30, 12, 0, 0).unwrap();

    // Every generated file lands in the bucket (one with spaces in its name), then eight
    // invocations, one per file, run at once.
    let (files, _) = cdplake_generate::generate(60, 4);
    let mut events = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let name = if f.source == "crm_members" { format!("May 2024 {}", f.name) } else { f.name.clone() };
        let key = format!("{prefix}/landing/{}/{name}", f.source);
        ws.lake().put_object(&format!("s3://{bucket}/{key}"), f.content.clone().into()).await.unwrap();
        let encoded = key.replace(' ', "+");
        events.push(s3_put_event(&bucket, &encoded, &format!("{:016X}", 100 + i)));
    }
    let runs = events.iter().cloned().map(|event| {
        let ws = ws.clone();
        tokio::spawn(async move { invoke(&ws, Handler::S3, event, now).await })
    });
    for run in futures::future::join_all(runs).await {
        let response = run.unwrap().unwrap();
        assert_eq!(response["failures"], json!([]), "{response}");
    }
    let raw_files = sql(&ws, "SELECT count(DISTINCT _source_uri) FROM raw.crm_members").await;
    assert_eq!(single_i64(&raw_files), 1);
    let spaced = sql(&ws, "SELECT count(*) FROM raw.crm_members WHERE _source_uri LIKE '%May%2024%'").await;
    assert!(single_i64(&spaced) > 0, "the URL-encoded key was decoded");
    let persons = sql(&ws, "SELECT count(DISTINCT one_id) FROM curated.id_mapping WHERE is_active").await;
    let profiles = sql(&ws, "SELECT count(*) FROM curated.customer_profiles").await;
    assert_eq!(single_i64(&profiles), single_i64(&persons), "every person has a profile");
    for source in files.iter().map(|f| f.source).collect::<HashSet<_>>() {
        let landed = files.iter().filter(|f| f.source == source).count() as i64;
        let raw = sql(&ws, &format!("SELECT count(DISTINCT _source_uri) FROM raw.{source}")).await;
        assert_eq!(single_i64(&raw), landed, "{source}: every file landed once");
    }

    // Replaying every event (at-least-once delivery) commits nothing anywhere.
    let before = versions(&ws).await;
    let replay = json!({"Records": events.iter().map(|e| e["Records"][0].clone()).collect::<Vec<_>>()});
    let response = invoke(&ws, Handler::S3, replay, now).await.unwrap();
    assert!(response["objects"].as_object().unwrap().values().all(|s| s == "already_ingested"), "{response}");
    assert_eq!(versions(&ws).await, before);

    // A key outside landing/ is reported by key; the other records of the batch still run.
    let mut mixed = s3_put_event(&bucket, &format!("{prefix}/elsewhere/x.csv"), "01");
    let good = s3_put_event(&bucket, events[0]["Records"][0]["s3"]["object"]["key"].as_str().unwrap(), "02");
    mixed["Records"].as_array_mut().unwrap().push(good["Records"][0].clone());
    let response = invoke(&ws, Handler::S3, mixed, now).await.unwrap();
    assert_eq!(response["failures"].as_array().unwrap().len(), 1, "{response}");
    assert!(response["failures"][0]["key"].as_str().unwrap().ends_with("elsewhere/x.csv"));
}

fn scheduled_event(time: &str) -> Value {
    json!({
      "version": "0",
      "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
      "detail-type": "Scheduled Event",
      "source": "aws.events",
      "account": "123456789012",
      "time": time,
      "region": "us-east-1",
      "resources": ["arn:aws:events:us-east-1:123456789012:rule/cdplake-daily"],
      "detail": {}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_runs_the_daily_dag_and_a_failed_gate_stops_it() {
    let t = TestLake::new(Backend::Local).await;
    let mut config = Config::default();
    config.audiences.packages.insert("champions".into(), "Champions".into());
    let ws = Workspace::open_with(config, Some(&t.root)).await.unwrap();
    let (files, _) = cdplake_generate::generate(80, 6);
    for f in &files {
        let location = ws.lake().location().join(&format!("landing/{}/{}", f.source, f.name)).to_string();
        ws.lake().put_object(&location, f.content.clone().into()).await.unwrap();
    }
    let now = Utc.with_ymd_and_hms(2024, 12, 31, 2, 0, 0).unwrap();
    let outcome = invoke(&ws, Handler::Schedule, scheduled_event("2024-12-31T02:00:00Z"), now).await.unwrap();
    assert_eq!(outcome["business_date"], "2024-12-31");
    let steps: Vec<&str> = outcome["steps"].as_array().unwrap().iter().map(|s| s[0].as_str().unwrap()).collect();
    assert_eq!(
        &steps[steps.len() - 5..],
        ["identity", "profiles", "segments", "audience champions", "maintain"],
        "{outcome}"
    );
    let members = sql(&ws, "SELECT count(*) FROM curated.audience_packages WHERE as_of = '2024-12-31'").await;
    assert!(single_i64(&members) > 0);

    // The next day a broken CRM export arrives: the gate fails, segments are not rebuilt.
    let mut broken = "customer_id,email,phone,first_name,last_name,country,signup_date,updated_at\n".to_string();
    for i in 0..40 {
        broken.push_str(&format!("NOMAIL{i},,,A,B,GB,2024-12-01,2024-12-31 10:00:00\n"));
    }
    let location = ws.lake().location().join("landing/customers/broken.csv").to_string();
    ws.lake().put_object(&location, broken.into()).await.unwrap();
    let next = Utc.with_ymd_and_hms(2025, 1, 1, 2, 0, 0).unwrap();
    let err = invoke(&ws, Handler::Schedule, scheduled_event("2025-01-01T02:00:00Z"), next).await.unwrap_err();
    assert!(matches!(&err, JobError::QualityGate { table, .. } if table == "curated.customer_profiles"), "{err}");
    let segments = sql(&ws, "SELECT count(*) FROM curated.segment_bitmaps WHERE as_of = '2025-01-01'").await;
    assert_eq!(single_i64(&segments), 0, "nothing downstream of the failed gate ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_handler_answers_reads_and_refuses_writes() {
    let t = TestLake::new(Backend::Local).await;
    let ws = Workspace::open_with(Config::default(), Some(&t.root)).await.unwrap();
    let now = Utc.with_ymd_and_hms(2025, 1, 2, 3, 0, 0).unwrap();
    cdplake_app::demo::run_demo(&ws, now).await.unwrap();

    let small =
        json!({"sql": "SELECT lifecycle_stage, count(*) AS n FROM curated.customer_profiles GROUP BY 1 ORDER BY 1"});
    let response = invoke(&ws, Handler::Query, small, now).await.unwrap();
    assert!(response["rows"].as_array().unwrap().iter().any(|r| r["lifecycle_stage"] == "prospect"), "{response}");

    let csv = json!({"sql": "SELECT one_id FROM curated.customer_profiles ORDER BY one_id LIMIT 2", "format": "csv"});
    let response = invoke(&ws, Handler::Query, csv, now).await.unwrap();
    assert!(response["csv"].as_str().unwrap().starts_with("one_id\nONE"), "{response}");

    let large = json!({"sql": "SELECT * FROM curated.user_events", "max_inline_rows": 100});
    let response = invoke(&ws, Handler::Query, large, now).await.unwrap();
    let location = response["output_location"].as_str().unwrap();
    assert!(location.contains("_query_results/") && response["rows"].is_null(), "{response}");
    let written = ws.lake().fetch_object(location).await.unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&written.bytes).unwrap();
    assert_eq!(rows.len() as u64, response["row_count"].as_u64().unwrap());

    for refused in ["DROP TABLE curated.customer_profiles", "DELETE FROM curated.id_mapping", "SELECT 1; SELECT 2"] {
        let err = invoke(&ws, Handler::Query, json!({"sql": refused}), now).await.unwrap_err();
        assert!(matches!(&err, JobError::BadInput { what, .. } if what == "the query"), "{refused}: {err}");
    }
    assert_eq!(Handler::detect(&json!({"sql": "SELECT 1"})), Some(Handler::Query));
}

/// A child process killed when the test ends, however it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The S3 handler as Lambda runs it: the `cdplake-lambda` binary on cargo-lambda's emulator of
/// the Lambda runtime API, invoked with `cargo lambda invoke` and AWS's sample S3 put event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lambda_binary_handles_an_s3_put_event_under_cargo_lambda() {
    use std::process::{Command, Stdio};
    let repo = crate::support::repo_root();
    let cargo_lambda = repo.join(".cache/py/bin/cargo-lambda");
    // Beside the test binary (target/debug/deps/it-HASH → target/debug/), wherever the target dir is.
    let exe = std::env::current_exe().expect("test binary path");
    let binary = exe.parent().and_then(std::path::Path::parent).expect("target dir").join("cdplake-lambda");
    assert!(cargo_lambda.exists(), "{} missing: tests/run.sh installs cargo-lambda", cargo_lambda.display());
    assert!(binary.exists(), "{} missing: cargo build --workspace builds it", binary.display());

    let t = TestLake::new(Backend::S3).await;
    let mut config = Config::default();
    config.lake.storage = s3_options();
    let ws = Workspace::open_with(config, Some(&t.root)).await.unwrap();
    let (bucket, prefix) = bucket_and_prefix(&t.root);
    let (files, _) = cdplake_generate::generate(20, 8);
    let crm = files.iter().find(|f| f.source == "crm_members").unwrap();
    let key = format!("{prefix}/landing/crm_members/new members.json");
    ws.lake().put_object(&format!("s3://{bucket}/{key}"), crm.content.clone().into()).await.unwrap();

    let port = 9300 + (std::process::id() % 500) as u16;
    let _emulator = Child(
        Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let _function = Child(
        Command::new(&binary)
            .envs(crate::support::s3_env())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("CDPLAKE_LAKE", &t.root)
            .env("CDPLAKE_HANDLER", "s3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let event = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(event.path(), s3_put_event(&bucket, &key.replace(' ', "+"), "0A").to_string()).unwrap();
    let invoke = || {
        Command::new(&cargo_lambda)
            .args(["lambda", "invoke", "-A", "127.0.0.1", "-P", &port.to_string(), "--data-file"])
            .arg(event.path())
            .arg("_")
            .output()
            .unwrap()
    };
    let mut output = invoke();
    for _ in 0..10 {
        if output.status.success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await; // the emulator may still be starting
        output = invoke();
    }
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["failures"], json!([]), "{response}");
    assert_eq!(response["objects"].as_object().unwrap().values().next().unwrap(), "ingested", "{response}");
    let members = sql(&ws, "SELECT count(*) FROM curated.customer_profiles WHERE member_id IS NOT NULL").await;
    assert!(single_i64(&members) > 0, "the members have profiles");

    // The same event again (at-least-once delivery): nothing new.
    let output = invoke();
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["objects"].as_object().unwrap().values().next().unwrap(), "already_ingested", "{response}");
}
