//! A user's own data: a source declared in cdplake.toml from the README's fields alone, with the
//! formats real files use (CDNOW's purchase log: `19970101` dates, money, repeated lines).

use cdplake_core::{Config, Workspace};
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
    cdplake_ingest::ingest::ingest(ws, &source, &[], now()).await.unwrap();
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 2, 3, 0, 0).unwrap()
}

async fn count(ws: &Workspace, sql: &str) -> i64 {
    single_i64(&cdplake_core::query::run_query(ws, sql).await.unwrap())
}

async fn a_purchase_log_keeps_its_repeated_lines_and_exact_money(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend, CDNOW).await;
    land_and_ingest(&ws).await;
    let report = cdplake_ingest::clean::clean(&ws, &ws.config.source("cdnow").unwrap(), now()).await.unwrap();
    // Six lines: the repeat is kept, the impossible date (Feb 31) is quarantined, named.
    assert_eq!((report.rows_read, report.kept, report.duplicates, report.quarantined), (6, 5, 0, 1), "{report:?}");
    assert!(report.quarantined_by_reason.contains_key("date: not_a_date"), "{report:?}");
    let reason = cdplake_core::query::run_query(&ws, "SELECT reason FROM clean._quarantine WHERE source = 'cdnow'")
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
    cdplake_identity::resolve(&ws, now()).await.unwrap();
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
    let report = cdplake_ingest::clean::clean(&first, &cdnow, now()).await.unwrap();
    assert!(report.all_quarantined(), "19970101 is no date in the default formats: {report:?}");
    assert_eq!(count(&first, "SELECT count(*) FROM clean._quarantine WHERE source = 'cdnow'").await, 6);
    cdplake_identity::resolve(&first, now()).await.unwrap();
    assert_eq!(count(&first, "SELECT count(*) FROM curated.id_mapping WHERE id_type = 'cdnow_customer_id'").await, 0);
    // Cleaning again changes nothing: every raw batch is cleaned.
    assert_eq!(cdplake_ingest::clean::clean(&first, &cdnow, now()).await.unwrap().batches, 0);

    // The format fixed in cdplake.toml, the source reprocessed: counts reconcile, once each.
    let fixed = workspace(&t, backend, CDNOW).await;
    let cdnow = fixed.config.source("cdnow").unwrap();
    let report = cdplake_ingest::clean::reprocess(&fixed, &cdnow, now()).await.unwrap();
    assert!(report.reprocessed, "{report:?}");
    assert_eq!((report.rows_read, report.kept, report.quarantined), (6, 5, 1), "{report:?}");
    assert_eq!(count(&fixed, "SELECT count(*) FROM clean.cdnow").await, 5);
    assert_eq!(count(&fixed, "SELECT count(*) FROM clean._quarantine WHERE source = 'cdnow'").await, 1);
    let read = count(&fixed, "SELECT count(*) FROM raw.cdnow").await;
    let kept_and_quarantined = count(&fixed, "SELECT count(*) FROM clean.cdnow").await
        + count(&fixed, "SELECT count(*) FROM clean._quarantine WHERE source = 'cdnow'").await;
    assert_eq!(read, kept_and_quarantined, "every raw row once: kept or quarantined");
    // A second reprocess gives the same tables.
    cdplake_ingest::clean::reprocess(&fixed, &cdnow, now()).await.unwrap();
    assert_eq!(count(&fixed, "SELECT count(*) FROM clean._quarantine WHERE source = 'cdnow'").await, 1);
    assert_eq!(count(&fixed, "SELECT count(*) FROM clean.cdnow").await, 5);
    // Identity reads the source again after a reprocess.
    let identity = cdplake_identity::resolve(&fixed, now()).await.unwrap();
    assert_eq!(identity.batches, 1, "{identity:?}");
    assert_eq!(count(&fixed, "SELECT count(*) FROM curated.id_mapping WHERE id_type = 'cdnow_customer_id'").await, 3);
    assert_eq!(cdplake_identity::resolve(&fixed, now()).await.unwrap().batches, 0);
}

/// The README's CDNOW example, cut from README.md itself: the test breaks if the documented
/// fields stop working.
fn readme_cdnow_config() -> String {
    let readme = std::fs::read_to_string(crate::support::repo_root().join("README.md")).unwrap();
    let block = readme
        .split("```toml\n")
        .skip(1)
        .map(|b| &b[..b.find("```").unwrap_or(b.len())])
        .find(|b| b.starts_with("[sources.cdnow]") && b.contains("[profiles.events.cdnow]"))
        .expect("README documents a CDNOW source with its event mapping");
    block.to_string()
}

/// A CDNOW-shaped purchase log: `customer_id,date,number_of_cds,dollar_value`, dates as
/// `19970101`, cents, some lines repeated (two identical purchases).
fn cdnow_log(customers: u64) -> String {
    let mut state = 7u64;
    let mut next = |n: u64| {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) % n
    };
    let mut log = String::from("customer_id,date,number_of_cds,dollar_value\n");
    let start = chrono::NaiveDate::from_ymd_opt(1997, 1, 1).unwrap();
    for c in 1..=customers {
        for _ in 0..(1 + next(6)) {
            let day = start + chrono::Duration::days(next(540) as i64);
            let line = format!("{c},{},{},{}.{:02}\n", day.format("%Y%m%d"), 1 + next(4), 5 + next(90), next(100));
            log.push_str(&line);
            if next(10) == 0 {
                log.push_str(&line);
            }
        }
    }
    log
}

const DUCKDB_CDNOW_RFM: &str = r#"
import json, sys, duckdb
path, as_of = sys.argv[1], sys.argv[2]
rows = duckdb.sql(f"""
WITH lines AS (
  SELECT CAST(customer_id AS VARCHAR) AS customer, strptime(CAST(date AS VARCHAR), '%Y%m%d')::DATE AS day,
         CAST(dollar_value AS DECIMAL(10,2)) AS revenue
  FROM read_csv('{path}', header = true, all_varchar = true)
), rfm AS (
  SELECT customer, DATE '{as_of}' - max(day) AS recency_days, count(DISTINCT day) AS frequency,
         round(sum(revenue), 2) AS monetary
  FROM lines WHERE day <= DATE '{as_of}' GROUP BY customer
), scored AS (
  SELECT *, 1 + floor(5 * (rank() OVER (ORDER BY recency_days DESC) - 1) / count(*) OVER ()) AS r_score,
            1 + floor(5 * (rank() OVER (ORDER BY frequency) - 1) / count(*) OVER ()) AS f_score,
            1 + floor(5 * (rank() OVER (ORDER BY monetary) - 1) / count(*) OVER ()) AS m_score
  FROM rfm
)
SELECT customer, recency_days, frequency, monetary,
  CASE WHEN recency_days <= 200 AND frequency >= 2 AND monetary >= 300 THEN 'Champions'
       WHEN recency_days <= 600 AND frequency >= 2 THEN 'Loyal Customers'
       WHEN recency_days <= 600 THEN 'At Risk'
       WHEN recency_days <= 2000 THEN 'Hibernating'
       ELSE 'Lost' END AS rfm_segment, CAST(r_score AS BIGINT), CAST(f_score AS BIGINT), CAST(m_score AS BIGINT)
FROM scored ORDER BY customer
""").fetchall()
print(json.dumps([[str(c) for c in r] for r in rows]))
sys.stdout.flush()
import os
os._exit(0)
"#;

/// A user's own purchase log, configured from the README alone, through ingest, clean, identity
/// and profiles: every customer's recency, frequency, monetary, RFM segment and r/f/m scores
/// equal DuckDB's computation of the same rules on the same file; the profile carries the
/// customer's own id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_log_from_the_readme_gives_duckdbs_rfm() {
    let t = TestLake::new(Backend::Local).await;
    let ws = workspace(&t, Backend::Local, &readme_cdnow_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("CDNOW_sample.csv");
    std::fs::write(&path, cdnow_log(300)).unwrap();
    let source = ws.config.source("cdnow").unwrap();
    cdplake_ingest::ingest::ingest(&ws, &source, &[path.display().to_string()], now()).await.unwrap();
    let cleaned = cdplake_ingest::clean::clean(&ws, &source, now()).await.unwrap();
    assert_eq!((cleaned.duplicates, cleaned.quarantined), (0, 0), "{cleaned:?}");
    cdplake_identity::resolve(&ws, now()).await.unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(1998, 6, 30).unwrap();
    let options = cdplake_profiles::RefreshOptions { as_of, full: false, force: true };
    cdplake_profiles::refresh(&ws, &options, now()).await.unwrap();

    let python = std::env::var("CDPLAKE_TEST_PYTHON")
        .unwrap_or_else(|_| crate::support::repo_root().join(".cache/py/bin/python").display().to_string());
    let output = std::process::Command::new(&python)
        .args(["-c", DUCKDB_CDNOW_RFM, &path.display().to_string(), "1998-06-30"])
        .output()
        .unwrap();
    assert!(output.status.success(), "duckdb: {}", String::from_utf8_lossy(&output.stderr));
    let expected: Vec<Vec<String>> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(expected.len(), 300);
    let ours = cdplake_core::query::run_query(
        &ws,
        "SELECT cdnow_customer_id, CAST(recency_days AS VARCHAR) AS r, CAST(frequency AS VARCHAR) AS f, \
         CAST(CAST(round(monetary * 100) AS BIGINT) AS VARCHAR) AS m, rfm_segment, CAST(r_score AS VARCHAR) AS rs, \
         CAST(f_score AS VARCHAR) AS fs, CAST(m_score AS VARCHAR) AS ms FROM curated.customer_profiles \
         WHERE cdnow_customer_id IS NOT NULL ORDER BY cdnow_customer_id",
    )
    .await
    .unwrap();
    use cdplake_engine::arrow::array::AsArray;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for b in &ours {
        let c: Vec<_> = (0..b.num_columns())
            .map(|i| {
                cdplake_engine::arrow::compute::cast(b.column(i), &cdplake_engine::arrow::datatypes::DataType::Utf8)
                    .unwrap()
            })
            .collect();
        for r in 0..b.num_rows() {
            rows.push(c.iter().map(|a| a.as_string::<i32>().value(r).to_string()).collect());
        }
    }
    rows.sort();
    let mut expected: Vec<Vec<String>> = expected
        .into_iter()
        .map(|e| {
            let cents = (e[3].parse::<f64>().unwrap() * 100.0).round() as i64;
            vec![
                e[0].clone(),
                e[1].clone(),
                e[2].clone(),
                cents.to_string(),
                e[4].clone(),
                e[5].clone(),
                e[6].clone(),
                e[7].clone(),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(rows.len(), expected.len());
    for (ours, theirs) in rows.iter().zip(&expected) {
        assert_eq!(ours, theirs, "customer, recency, frequency, monetary (cents), rfm_segment, r/f/m score");
    }

    // These persons have no email: an export of their email hashes is refused, not an empty file.
    cdplake_profiles::segments::build_segments(&ws, Some(as_of), now()).await.unwrap();
    cdplake_profiles::audience::build_audience(&ws, "everyone", "all_persons", Some(as_of), now()).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let request = cdplake_profiles::audience::export::ExportRequest {
        name: "everyone".into(),
        as_of: Some(as_of),
        to: out.path().display().to_string(),
        format: cdplake_profiles::audience::export::ExportFormat::Csv,
        ids: cdplake_profiles::audience::export::ExportIds::EmailHash,
        min_size: None,
    };
    let refused = cdplake_profiles::audience::export::export_audience(&ws, &request).await.unwrap_err();
    assert!(matches!(&refused, cdplake_core::JobError::Empty { what, .. } if what.contains("as of")), "{refused}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0, "nothing written");
}

/// A mapping whose event_type never says 'purchase' is refused before anything is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_event_mapping_is_refused() {
    let t = TestLake::new(Backend::Local).await;
    let config = readme_cdnow_config().replace("event_type = \"'purchase'\"", "event_type = \"'sale'\"");
    let ws = workspace(&t, Backend::Local, &config).await;
    land_and_ingest(&ws).await;
    cdplake_ingest::clean::clean(&ws, &ws.config.source("cdnow").unwrap(), now()).await.unwrap();
    cdplake_identity::resolve(&ws, now()).await.unwrap();
    let as_of = chrono::NaiveDate::from_ymd_opt(1998, 6, 30).unwrap();
    let options = cdplake_profiles::RefreshOptions { as_of, full: false, force: true };
    let err = cdplake_profiles::refresh(&ws, &options, now()).await.unwrap_err();
    assert!(
        matches!(&err, cdplake_core::JobError::BadInput { what, reason }
            if what.starts_with("[profiles.events.cdnow]") && reason.contains("\"sale\"")),
        "{err}"
    );
    assert!(!ws.lake().table_exists(&"curated.customer_profiles".parse().unwrap()).await.unwrap(), "nothing written");
}
