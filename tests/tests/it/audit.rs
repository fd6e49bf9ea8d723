//! The audit trail: every Lambda invocation (S3 events on the S3 server, the schedule, a failed
//! query, an erasure) and every command-line job is one row of `_audit.job_runs`, with who, when, outcome,
//! the tables and versions committed and rows; identifiers typed by a user are keyed hashes.

use cdplake_app::lambda::{Handler, invoke_as};
use cdplake_core::{Config, Workspace};
use chrono::{TimeZone, Utc};
use serde_json::json;

use crate::support::{Backend, TestLake, lake_rows_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_is_a_row_of_the_audit_trail() {
    let t = TestLake::new(Backend::Local).await;
    let ws = Workspace::open_with(Config::default(), Some(&t.root)).await.unwrap();
    let (files, _) = cdplake_generate::generate(20, 3);
    for f in files.iter().filter(|f| f.source == "crm_members" || f.source == "customers") {
        let location = ws.lake().location().join(&format!("landing/{}/{}", f.source, f.name)).to_string();
        ws.lake().put_object(&location, f.content.clone().into()).await.unwrap();
    }
    let now = Utc.with_ymd_and_hms(2024, 12, 31, 2, 0, 0).unwrap();
    let schedule = json!({"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "1", "time": "2024-12-31T02:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let invoker = cdplake_core::audit::Invoker::lambda("schedule", "req-123");
    invoke_as(&ws, Handler::Schedule, schedule, now, &invoker).await.unwrap();
    let query = cdplake_core::audit::Invoker::lambda("query", "req-456");
    let refused = json!({"sql": "DELETE FROM curated.id_mapping WHERE id_value = 'MBR0000001'"});
    assert!(invoke_as(&ws, Handler::Query, refused, now, &query).await.is_err());
    // The erase handler (the template's EraseFunction), recognised by the event's shape.
    let member = cdplake_core::query::run_query(
        &ws,
        "SELECT id_value FROM curated.id_mapping WHERE id_type = 'member_id' AND is_active ORDER BY id_value LIMIT 1",
    )
    .await
    .unwrap();
    let member = lake_rows_of(&member).remove(0).remove(0);
    let erase = json!({"identifier": format!("member_id:{member}"), "reason": "GDPR request 1"});
    assert_eq!(Handler::detect(&erase), Some(Handler::Erase));
    let eraser = cdplake_core::audit::Invoker::lambda("erase", "req-789");
    let report = invoke_as(&ws, Handler::Erase, erase, now, &eraser).await.unwrap();
    assert_eq!(report["found"], json!(true), "{report}");
    assert_eq!(report["matches_after"], json!([]), "{report}");
    let left = format!("SELECT count(*) FROM curated.id_mapping WHERE id_value = '{member}'");
    assert_eq!(crate::support::single_i64(&cdplake_core::query::run_query(&ws, &left).await.unwrap()), 0);

    let rows = cdplake_core::query::run_query(
        &ws,
        "SELECT job, trigger, principal, outcome, array_to_string(tables, ' '), rows_in, arguments, \
         CAST(ended_at >= started_at AS VARCHAR) FROM _audit.job_runs ORDER BY started_at",
    )
    .await
    .unwrap();
    let rows = lake_rows_of(&rows);
    assert_eq!(rows.len(), 3, "{rows:?}");
    let (daily, failed, erased) = (&rows[0], &rows[1], &rows[2]);
    assert_eq!(&daily[..4], ["lambda schedule", "schedule", "lambda:req-123", "ok"]);
    for table in ["raw.crm_members@", "clean.customers@", "curated.id_mapping@", "curated.customer_profiles@"] {
        assert!(daily[4].contains(table), "{table} not in {}", daily[4]);
    }
    assert_eq!(daily[7], "true");
    assert_eq!(&failed[..4], ["lambda query", "lambda", "lambda:req-456", "failed"]);
    assert!(!failed[6].contains("MBR0000001") && failed[6].contains("sql_sha256"), "{}", failed[6]);
    assert!(failed[4].is_empty(), "a refused query commits nothing: {}", failed[4]);

    assert_eq!(&erased[..4], ["lambda erase", "lambda", "lambda:req-789", "ok"]);
    assert!(!erased[6].contains(member.as_str()), "the erased identifier is not in the audit trail: {}", erased[6]);
    assert!(erased[4].contains("curated.id_mapping@"), "{}", erased[4]);

    let listed = cdplake_core::audit::list(&ws, 10).await.unwrap();
    assert_eq!(listed.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
}
