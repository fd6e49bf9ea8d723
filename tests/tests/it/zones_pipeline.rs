//! Raw and clean zones end to end: real files in, reconciled counts out, replays harmless.

use std::path::Path;

use cdplake_core::{Config, JobError, Workspace};
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Float64Type};
use cdplake_ingest::clean::{CleanReport, clean};
use cdplake_ingest::ingest::{IngestStatus, ingest};
use chrono::{TimeZone, Utc};

use crate::support::{Backend, TestLake, on_every_backend, s3_options, single_i64};
use cdplake_zones::tables::QUARANTINE;

async fn workspace(t: &TestLake, backend: Backend) -> Workspace {
    let mut config = Config::default();
    if backend == Backend::S3 {
        config.lake.storage = s3_options();
    }
    Workspace::open_with(config, Some(&t.root)).await.unwrap()
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 2, 6, 0, 0).unwrap()
}

async fn sql(ws: &Workspace, query: &str) -> Vec<RecordBatch> {
    cdplake_core::query::run_query(ws, query).await.unwrap()
}

fn f64_of(batches: &[RecordBatch]) -> f64 {
    let column = cast(batches[0].column(0), &DataType::Float64).unwrap();
    column.as_primitive::<Float64Type>().value(0)
}

fn strings_of(batches: &[RecordBatch]) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let column = cast(batch.column(0), &DataType::Utf8).unwrap();
        let column = column.as_string::<i32>();
        out.extend(
            (0..column.len()).map(|i| if column.is_null(i) { "NULL".to_string() } else { column.value(i).to_string() }),
        );
    }
    out
}

async fn ingest_file(
    ws: &Workspace,
    source: &str,
    path: &Path,
) -> cdplake_core::Result<Vec<cdplake_ingest::ingest::IngestReport>> {
    let source = ws.config.source(source).unwrap();
    ingest(ws, &source, &[path.display().to_string()], now()).await
}

async fn clean_source(ws: &Workspace, source: &str) -> CleanReport {
    clean(ws, &ws.config.source(source).unwrap(), now()).await.unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

on_every_backend!(
    online_retail_ingests_and_cleans_with_reconciled_counts,
    bad_input_is_refused_or_quarantined_with_reasons,
    latest_version_wins_and_cdc_applies,
    pii_is_hashed_and_never_reaches_clean_in_plaintext,
);

/// The real Online Retail file: 541,909 lines, reconciled to the cent.
async fn online_retail_ingests_and_cleans_with_reconciled_counts(backend: Backend) {
    let file = crate::support::repo_root().join("../shared/data/online_retail.csv");
    assert!(file.exists(), "{} is missing (CI has ../shared beside the clone)", file.display());
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;

    let reports = ingest_file(&ws, "retail_transactions", &file).await.unwrap();
    assert_eq!(reports[0].status, IngestStatus::Ingested);
    assert_eq!((reports[0].rows_in, reports[0].rows_written), (541_909, 541_909));

    let report = clean_source(&ws, "retail_transactions").await;
    assert_eq!(report.rows_read, 541_909);
    assert_eq!(report.duplicates, 5_268, "exact repeats of a line are reported as duplicates");
    assert_eq!(report.quarantined, 2);
    assert_eq!(report.quarantined_by_reason.get("price: negative"), Some(&2));
    assert_eq!(report.kept, 541_909 - 5_268 - 2);
    assert_eq!(report.inserted, report.kept);

    let customers = sql(&ws, "SELECT count(DISTINCT customer_id) FROM clean.retail_transactions").await;
    assert_eq!(single_i64(&customers), 4_372);
    let reasons = strings_of(&sql(&ws, "SELECT reason FROM clean._quarantine WHERE kind = 'rejected'").await);
    assert!(reasons.iter().all(|r| r.contains("field price") && r.contains("negative")), "{reasons:?}");
    // Revenue over clean + duplicates + quarantined lines, the last two through their lineage.
    let clean_revenue = f64_of(&sql(&ws, "SELECT sum(quantity * price) FROM clean.retail_transactions").await);
    let set_aside = f64_of(
        &sql(
            &ws,
            "SELECT sum(CAST(r.quantity AS DOUBLE) * CAST(r.unit_price AS DOUBLE)) FROM raw.retail_transactions r \
             JOIN clean._quarantine q ON q._source_uri = r._source_uri AND q._source_row = r._source_row",
        )
        .await,
    );
    assert!(((clean_revenue + set_aside) - 9_747_747.934).abs() < 0.0005, "{clean_revenue} + {set_aside}");
    let cancellations =
        sql(&ws, "SELECT count(*) FROM clean.retail_transactions WHERE invoice LIKE 'C%' AND quantity < 0").await;
    assert!(single_i64(&cancellations) > 9_000, "cancellations kept as negative lines");

    // Replays change nothing; a second clean finds nothing to do.
    let raw_version = ws.lake().table(&"raw.retail_transactions".parse().unwrap()).await.unwrap().version();
    let clean_version = ws.lake().table(&"clean.retail_transactions".parse().unwrap()).await.unwrap().version();
    for _ in 0..3 {
        let replay = ingest_file(&ws, "retail_transactions", &file).await.unwrap();
        assert_eq!(replay[0].status, IngestStatus::AlreadyIngested);
    }
    assert_eq!(clean_source(&ws, "retail_transactions").await.batches, 0);
    assert_eq!(ws.lake().table(&"raw.retail_transactions".parse().unwrap()).await.unwrap().version(), raw_version);
    assert_eq!(ws.lake().table(&"clean.retail_transactions".parse().unwrap()).await.unwrap().version(), clean_version);
}

async fn bad_input_is_refused_or_quarantined_with_reasons(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let header = "transaction_id,customer_id,product_id,amount,transaction_date,status\n";

    // Whole-file refusals: nothing written.
    let mut latin1 = format!("{header}t1,c1,p1,9.5,2024-05-01,caf").into_bytes();
    latin1.extend_from_slice(b"\xe9\n");
    let err = ingest_file(&ws, "transactions", &write(d, "latin1.csv", &latin1)).await;
    let err = err.unwrap_err();
    assert!(
        matches!(&err, JobError::Rejected { file, reason }
            if file.ends_with("latin1.csv") && reason.contains("row 1, field status") && reason.contains("UTF-8")),
        "{err}"
    );
    let err = ingest_file(
        &ws,
        "transactions",
        &write(d, "no_amount.csv", b"transaction_id,customer_id,transaction_date\nt1,c1,2024-05-01\n"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, JobError::Rejected { file, reason } if file.ends_with("no_amount.csv") && reason.contains("amount")),
        "{err:?}"
    );
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(format!("{header}t1,c1,p1,1,2024-05-01,completed\n").as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let err = ingest_file(&ws, "transactions", &write(d, "cut.csv.gz", &gz[..gz.len() - 5])).await.unwrap_err();
    assert!(matches!(&err, JobError::Rejected { reason, .. } if reason.contains("gzip")), "{err}");
    let rows = sql(&ws, "SELECT count(*) FROM raw.transactions").await;
    assert_eq!(single_i64(&rows), 0, "refused files leave raw untouched");

    // Empty and header-only files: nothing to do.
    assert_eq!(
        ingest_file(&ws, "transactions", &write(d, "empty.csv", b"")).await.unwrap()[0].status,
        IngestStatus::Empty
    );
    assert_eq!(
        ingest_file(&ws, "transactions", &write(d, "header.csv", header.as_bytes())).await.unwrap()[0].status,
        IngestStatus::Empty
    );
    // A header without the required columns is refused even with no rows, naming them.
    let err = ingest_file(&ws, "transactions", &write(d, "foo_bar.csv", b"foo,bar\n")).await.unwrap_err();
    assert!(
        matches!(&err, JobError::Rejected { file, reason }
            if file.ends_with("foo_bar.csv") && reason.contains("transaction_id") && reason.contains("amount")),
        "{err:?}"
    );

    // Row-level problems: the rest of the file goes through, every row accounted for.
    let body = "\u{feff}transaction_id,customer_id,product_id,amount,transaction_date,status,note\n\
         t1,c1,p1,9.5,2024-05-01,completed,\n\
         t2,c1,p2,abc,2024-05-01,completed,\n\
         t3,c2,p3,NaN,2024-05-01,completed,\n\
         t4,c2,p4,3.0,2024-13-45,completed,\n\
         t5,c3,p5,1.0,2024-05-02,completed,late,surplus\n\
         t6,c3,p6,-2.5,2024-05-02,refunded,gift\n";
    let reports = ingest_file(&ws, "transactions", &write(d, "mixed.csv", body.as_bytes())).await.unwrap();
    let r = &reports[0];
    assert_eq!(r.unknown_columns, ["note"], "an unknown column is kept in raw, with a warning");
    assert_eq!(r.rows_in, 6);
    assert_eq!(r.rows_written + r.rows_rejected, 6);
    assert_eq!(r.rows_rejected, 1, "the row with a surplus field");
    let quoting = ingest_file(
        &ws,
        "transactions",
        &write(
            d,
            "quotes.csv",
            format!("{header}t7,c4,\"p7,9.5,2024-05-01,completed\nt8,c4,p8,1,2024-05-01,completed\n").as_bytes(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(quoting[0].rows_rejected, 1, "an unclosed quote is quarantined, not guessed");

    let report = clean_source(&ws, "transactions").await;
    assert_eq!(report.rows_read, report.kept + report.duplicates + report.quarantined);
    assert_eq!(
        report.quarantined_by_reason.get("amount: not_a_number"),
        Some(&2),
        "{:?}",
        report.quarantined_by_reason
    );
    assert_eq!(report.quarantined_by_reason.get("transaction_date: not_a_date"), Some(&1));
    let kept = strings_of(&sql(&ws, "SELECT transaction_id FROM clean.transactions ORDER BY transaction_id").await);
    assert_eq!(kept, ["t1", "t6"], "negative amounts are refunds here: transactions has no non-negative rule");
    let quarantined =
        single_i64(&sql(&ws, "SELECT count(*) FROM clean._quarantine WHERE source = 'transactions'").await);
    assert_eq!(quarantined, 3 + 2, "3 rejected at clean + 2 unreadable at ingest");
    let clean_columns = ws.catalog.describe(&"clean.transactions".parse().unwrap()).await.unwrap().columns();
    assert!(clean_columns.iter().all(|c| c.0 != "note"), "clean ignores unknown columns");
}

async fn latest_version_wins_and_cdc_applies(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let h = "order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at\n";
    ingest_file(&ws, "orders", &write(d, "day2.csv", format!("{h}o1,c1,SHIPPED,10,1,web,2024-05-01 09:00:00,2024-05-02 10:00:00\no2,c2,placed,20,2,mobile,2024-05-01 09:00:00,2024-05-01 09:00:00\no2,c2,placed,25,3,mobile,2024-05-01 09:00:00,2024-05-01 09:30:00\n").as_bytes()))
        .await
        .unwrap();
    let first = clean_source(&ws, "orders").await;
    assert_eq!((first.kept, first.duplicates, first.inserted), (2, 1, 2), "o2's older version collapses");

    // An older version of o1 arrives late: it must not win.
    ingest_file(
        &ws,
        "orders",
        &write(
            d,
            "day1_late.csv",
            format!("{h}o1,c1,placed,10,1,web,2024-05-01 09:00:00,2024-05-01 09:00:00\n").as_bytes(),
        ),
    )
    .await
    .unwrap();
    let late = clean_source(&ws, "orders").await;
    assert_eq!((late.updated, late.unchanged), (0, 1));
    let status = strings_of(&sql(&ws, "SELECT order_status FROM clean.orders WHERE order_id = 'o1'").await);
    assert_eq!(status, ["shipped"]);

    // AWS DMS change file: delete o2, delete an unknown key, insert o3.
    ingest_file(&ws, "orders", &write(d, "dms.csv", b"Op,order_id,customer_id,order_status,total_amount,item_count,channel,created_at,updated_at\nD,o2,,,,,,,2024-05-03 08:00:00\nD,o404,,,,,,,2024-05-03 08:00:00\nI,o3,c3,placed,5,1,web,2024-05-03 08:00:00,2024-05-03 08:00:00\n"))
        .await
        .unwrap();
    let dms = clean_source(&ws, "orders").await;
    assert_eq!((dms.deleted, dms.inserted, dms.unchanged), (1, 1, 1), "the unknown key's delete changes nothing");
    // Debezium: o1 updated (newer), o3 deleted.
    ingest_file(&ws, "orders", &write(d, "debezium.json", br#"{"op":"u","before":null,"after":{"order_id":"o1","customer_id":"c1","order_status":"delivered","total_amount":10,"updated_at":"2024-05-04T10:00:00Z"},"ts_ms":1}
{"op":"d","before":{"order_id":"o3","updated_at":"2024-05-04T11:00:00Z"},"after":null,"ts_ms":2}
"#))
        .await
        .unwrap();
    let dbz = clean_source(&ws, "orders").await;
    assert_eq!((dbz.updated, dbz.deleted), (1, 1));
    let orders =
        strings_of(&sql(&ws, "SELECT order_id || ':' || order_status FROM clean.orders ORDER BY order_id").await);
    assert_eq!(orders, ["o1:delivered"]);
}

async fn pii_is_hashed_and_never_reaches_clean_in_plaintext(backend: Backend) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "customers.csv",
        b"customer_id,email,phone,first_name,country,signup_date,updated_at\nc1, Alice@Example.COM ,07911 123456,Alice,United Kingdom,2024-01-02,2024-05-01 10:00:00\nc2,not-an-email,,Bob,EIRE,2024-01-03,2024-05-01 10:00:00\n",
    );
    ingest_file(&ws, "customers", &file).await.unwrap();
    let report = clean_source(&ws, "customers").await;
    assert_eq!(report.kept, 2);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    let hashes = strings_of(&sql(&ws, "SELECT email_hash FROM clean.customers ORDER BY customer_id").await);
    assert_eq!(hashes, [cdplake_zones::normalize::pii_hash("alice@example.com", None), "NULL".to_string()]);
    let phones = strings_of(&sql(&ws, "SELECT phone_hash FROM clean.customers WHERE customer_id = 'c1'").await);
    assert_eq!(phones, [cdplake_zones::normalize::pii_hash("+447911123456", None)]);
    let countries = strings_of(&sql(&ws, "SELECT country_code FROM clean.customers ORDER BY customer_id").await);
    assert_eq!(countries, ["GB", "IE"]);
    let written = strings_of(&sql(&ws, "SELECT country FROM clean.customers ORDER BY customer_id").await);
    assert_eq!(written, ["United Kingdom", "EIRE"], "as the source wrote it");
    let entry = ws.catalog.describe(&"clean.customers".parse().unwrap()).await.unwrap();
    assert!(entry.columns().iter().all(|c| c.0 != "email" && c.0 != "phone"), "no plaintext columns");
    assert!(!entry.schema_json.contains("\"email\""));
    let plain = single_i64(
        &sql(&ws, "SELECT count(*) FROM clean.customers WHERE email_hash LIKE '%@%' OR phone_hash LIKE '+%'").await,
    );
    assert_eq!(plain, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_clean_on_s3_with_concurrent_replays() {
    let t = TestLake::new(Backend::S3).await;
    let ws = workspace(&t, Backend::S3).await;
    let landing = format!("{}/landing/crm_members/2024-05-01.json", t.root);
    let body = br#"{"member_id":"MBR001","mobile_hash":"hash_mobile_001","email_hash":"hash_email_001","real_name":"Alice Wang","gender":"f","birthday":"1990-05-12","register_date":"2020-01-15","channel":"offline","level":"gold","total_points":1200,"updated_at":"2024-11-01 10:00:00"}
{"member_id":"MBR002","mobile_hash":"hash_mobile_002","email_hash":"hash_email_002","real_name":"Bob Chen","gender":"M","birthday":"1985-08-23","register_date":"2019-06-20","channel":"online","level":"silver","total_points":800,"updated_at":"2024-10-15 14:30:00"}
"#;
    ws.lake().put_object(&landing, bytes::Bytes::from_static(body)).await.unwrap();
    let source = ws.config.source("crm_members").unwrap();

    // Two concurrent deliveries of the same S3 event: exactly one ingests.
    let explicit = [landing.clone()];
    let (a, b) = tokio::join!(ingest(&ws, &source, &[], now()), ingest(&ws, &source, &explicit, now()));
    let mut statuses = vec![a.unwrap()[0].status, b.unwrap()[0].status];
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(statuses, [IngestStatus::AlreadyIngested, IngestStatus::Ingested]);
    assert_eq!(single_i64(&sql(&ws, "SELECT count(*) FROM raw.crm_members").await), 2);

    let report = clean_source(&ws, "crm_members").await;
    assert_eq!((report.rows_read, report.kept, report.inserted), (2, 2, 2));
    let genders = strings_of(&sql(&ws, "SELECT gender FROM clean.crm_members ORDER BY member_id").await);
    assert_eq!(genders, ["F", "M"]);
    assert_eq!(clean_source(&ws, "crm_members").await.batches, 0, "a second clean is a no-op");
}

/// A run that crashed between its quarantine commit and its clean commit leaves its batch
/// pending with its quarantined rows written. The next run, which also finds a batch ingested
/// since, must write the new batch's quarantined rows and not the crashed batch's again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantined_rows_of_a_batch_ingested_after_a_crash_are_kept() {
    use cdplake_zones::quarantine::{Kind, QuarantinedRow, quarantine_batch, quarantine_table_spec};
    let t = TestLake::new(Backend::Local).await;
    let ws = workspace(&t, Backend::Local).await;
    let dir = tempfile::tempdir().unwrap();
    let header = "transaction_id,customer_id,product_id,amount,transaction_date,status\n";
    let file = |name: &str, rows: &str| write(dir.path(), name, format!("{header}{rows}").as_bytes());
    let crashed = ingest_file(
        &ws,
        "transactions",
        &file("a.csv", "a1,c1,p1,9.5,2024-05-01,completed\na2,c1,p2,abc,2024-05-01,completed\n"),
    )
    .await
    .unwrap()[0]
        .batch_id
        .clone()
        .unwrap();
    // What the crashed run committed: batch A's rejected row, under A's clean watermark.
    let (_, _) =
        ws.catalog.ensure_table(&quarantine_table_spec(), &cdplake_catalog::TableMeta::default()).await.unwrap();
    let row = QuarantinedRow {
        source: "transactions".into(),
        stage: "clean",
        kind: Kind::Rejected,
        batch_id: crashed.clone(),
        source_uri: "a.csv".into(),
        source_row: 2,
        field: "amount".into(),
        rule: "not_a_number".into(),
        reason: "written by the crashed run".into(),
        raw_values: "{}".into(),
    };
    let txn = cdplake_engine::deltalake::kernel::Transaction::new(format!("cdplake-clean-{crashed}"), 1);
    let commit = cdplake_engine::deltalake::kernel::transaction::CommitProperties::default()
        .with_application_transactions(vec![txn]);
    ws.lake().append_with(&QUARANTINE.id(), vec![quarantine_batch(&[row], now()).unwrap()], commit).await.unwrap();

    ingest_file(
        &ws,
        "transactions",
        &file("b.csv", "b1,c2,p3,1.0,2024-05-02,completed\nb2,c2,p4,xyz,2024-05-02,completed\n"),
    )
    .await
    .unwrap();
    let report = clean_source(&ws, "transactions").await;
    assert_eq!((report.batches, report.kept, report.quarantined), (2, 2, 2));
    let reasons = strings_of(
        &sql(&ws, "SELECT reason FROM clean._quarantine WHERE source = 'transactions' ORDER BY reason DESC").await,
    );
    assert_eq!(reasons.len(), 2, "A's row once, B's row once: {reasons:?}");
    assert_eq!(reasons[0], "written by the crashed run");
    assert!(reasons[1].contains("amount"), "{reasons:?}");
    let kept = strings_of(&sql(&ws, "SELECT transaction_id FROM clean.transactions ORDER BY transaction_id").await);
    assert_eq!(kept, ["a1", "b1"]);
}
