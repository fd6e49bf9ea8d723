//! A user's own data: a source declared in cdplake.toml from the README's fields alone, with the
//! formats real files use (CDNOW's purchase log: `19970101` dates, money, repeated lines).

use cdplake_jobs::{Config, Workspace};
use chrono::{TimeZone, Utc};

use crate::support::{Backend, TestLake, on_every_backend, s3_options, single_i64};

on_every_backend!(a_purchase_log_keeps_its_repeated_lines_and_exact_money, a_changed_contract_is_reprocessed);

/// CDNOW's columns, as the README documents a source.
const CDNOW: &str = r#"
[sources.cdnow]
format = "csv"
dedupe = "none"                      # two identical lines are two purchases
time_column = "date"
columns = [
  { name = "customer_id", required = true, id_type = "cdnow_customer_id" },
  { name = "date", type = "date", format = "%Y%m%d", required = true },
  { name = "number_of_cds", type = "int", non_negative = true },
  { name = "dollar_value", type = "decimal(10,2)", non_negative = true },
]
"#;

/// The same source before its author knew the dates' format.
const CDNOW_WITHOUT_FORMAT: &str = r#"
[sources.cdnow]
format = "csv"
dedupe = "none"
columns = [
  { name = "customer_id", required = true, id_type = "cdnow_customer_id" },
  { name = "date", type = "date", required = true },
  { name = "number_of_cds", type = "int", non_negative = true },
  { name = "dollar_value", type = "decimal(10,2)", non_negative = true },
]
"#;

/// A CDNOW-shaped log: customer 1 bought the same thing twice on one day (two lines).
const LOG: &str = "customer_id,date,number_of_cds,dollar_value\n\
1,19970101,1,11.77\n\
1,19970101,1,11.77\n\
1,19970112,2,20.10\n\
2,19970102,2,29.33\n\
3,19970231,1,10.00\n\
4,19970301,5,77.05\n";

async fn workspace(t: &TestLake, backend: Backend, toml: &str) -> Workspace {
    let mut config = Config::parse(toml).unwrap();
    if backend == Backend::S3 {
        config.lake.storage = s3_options();
    }
    Workspace::open_with(config, Some(&t.root)).await.unwrap()
}

async fn land_and_ingest(ws: &Workspace) {
    let location = ws.lake().location().join("landing/cdnow/CDNOW_sample.csv").to_string();
    ws.lake().put_object(&location, LOG.as_bytes().to_vec().into()).await.unwrap();
    let source = ws.config.source("cdnow").unwrap();
    cdplake_jobs::ingest::ingest(ws, &source, &[], now()).await.unwrap();
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 0, 0).unwrap()
}

async fn count(ws: &Workspace, sql: &str) -> i64 {
    single_i64(&cdplake_jobs::query::run_query(ws, sql).await.unwrap())
}

async fn a_purchase_log_keeps_its_repeated_lines_and_exact_money(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend, CDNOW).await;
    land_and_ingest(&ws).await;
    let report = cdplake_jobs::clean::clean(&ws, &ws.config.source("cdnow").unwrap(), now()).await.unwrap();
    // Six lines: the repeat is kept, the impossible date (Feb 31) is quarantined, named.
    assert_eq!((report.rows_read, report.kept, report.duplicates, report.quarantined), (6, 5, 0, 1), "{report:?}");
    assert!(report.quarantined_by_reason.contains_key("date: not_a_date"), "{report:?}");
    let reason = cdplake_jobs::query::run_query(&ws, "SELECT reason FROM clean._quarantine WHERE source = 'cdnow'")
        .await
        .unwrap();
    let reason =
        cdplake_engine::arrow::compute::cast(reason[0].column(0), &cdplake_engine::arrow::datatypes::DataType::Utf8)
            .unwrap();
    use cdplake_engine::arrow::array::AsArray;
    let reason = reason.as_string::<i32>().value(0).to_string();
    assert!(reason.contains("row 5") && reason.contains("\"19970231\" is not a date in format %Y%m%d"), "{reason}");
    // Money is exact: 11.77 + 11.77 + 20.10 = 43.64, in cents, with no float rounding.
    assert_eq!(
        count(&ws, "SELECT CAST(sum(dollar_value) * 100 AS BIGINT) FROM clean.cdnow WHERE customer_id = '1'").await,
        4364
    );
    assert_eq!(count(&ws, "SELECT count(*) FROM clean.cdnow WHERE customer_id = '1'").await, 3);
    assert_eq!(count(&ws, "SELECT count(*) FROM clean.cdnow WHERE date = DATE '1997-01-01'").await, 2);
    // Identity: each customer id is a person, first seen on its first purchase day.
    cdplake_jobs::identity::resolve(&ws, now()).await.unwrap();
    assert_eq!(count(&ws, "SELECT count(*) FROM curated.id_mapping WHERE id_type = 'cdnow_customer_id'").await, 3);
    assert_eq!(
        count(
            &ws,
            "SELECT count(*) FROM curated.id_mapping WHERE id_value = '1' AND first_seen = TIMESTAMP '1997-01-01 00:00:00Z'"
        )
        .await,
        1
    );
}

async fn a_changed_contract_is_reprocessed(backend: Backend) {
    let t = TestLake::new(backend).await;
    let first = workspace(&t, backend, CDNOW_WITHOUT_FORMAT).await;
    land_and_ingest(&first).await;
    let cdnow = first.config.source("cdnow").unwrap();
    let report = cdplake_jobs::clean::clean(&first, &cdnow, now()).await.unwrap();
    assert!(report.all_quarantined(), "19970101 is no date in the default formats: {report:?}");
    assert_eq!(count(&first, "SELECT count(*) FROM clean._quarantine WHERE source = 'cdnow'").await, 6);
    cdplake_jobs::identity::resolve(&first, now()).await.unwrap();
    assert_eq!(count(&first, "SELECT count(*) FROM curated.id_mapping WHERE id_type = 'cdnow_customer_id'").await, 0);
    // Cleaning again changes nothing: every raw batch is cleaned.
    assert_eq!(cdplake_jobs::clean::clean(&first, &cdnow, now()).await.unwrap().batches, 0);

    // The format fixed in cdplake.toml, the source reprocessed: counts reconcile, once each.
    let fixed = workspace(&t, backend, CDNOW).await;
    let cdnow = fixed.config.source("cdnow").unwrap();
    let report = cdplake_jobs::clean::reprocess(&fixed, &cdnow, now()).await.unwrap();
    assert!(report.reprocessed, "{report:?}");
    assert_eq!((report.rows_read, report.kept, report.quarantined), (6, 5, 1), "{report:?}");
    assert_eq!(count(&fixed, "SELECT count(*) FROM clean.cdnow").await, 5);
    assert_eq!(count(&fixed, "SELECT count(*) FROM clean._quarantine WHERE source = 'cdnow'").await, 1);
    let read = count(&fixed, "SELECT count(*) FROM raw.cdnow").await;
    let kept_and_quarantined = count(&fixed, "SELECT count(*) FROM clean.cdnow").await
        + count(&fixed, "SELECT count(*) FROM clean._quarantine WHERE source = 'cdnow'").await;
    assert_eq!(read, kept_and_quarantined, "every raw row once: kept or quarantined");
    // A second reprocess gives the same tables.
    cdplake_jobs::clean::reprocess(&fixed, &cdnow, now()).await.unwrap();
    assert_eq!(count(&fixed, "SELECT count(*) FROM clean._quarantine WHERE source = 'cdnow'").await, 1);
    assert_eq!(count(&fixed, "SELECT count(*) FROM clean.cdnow").await, 5);
    // Identity reads the source again after a reprocess.
    let identity = cdplake_jobs::identity::resolve(&fixed, now()).await.unwrap();
    assert_eq!(identity.batches, 1, "{identity:?}");
    assert_eq!(count(&fixed, "SELECT count(*) FROM curated.id_mapping WHERE id_type = 'cdnow_customer_id'").await, 3);
    assert_eq!(cdplake_jobs::identity::resolve(&fixed, now()).await.unwrap().batches, 0);
}
