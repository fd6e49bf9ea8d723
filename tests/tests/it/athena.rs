//! Every table the pipeline writes stays within what Athena engine v3 reads, checked in the
//! Delta log itself: protocol reader 1 / writer 2 (4 with the change data feed, which readers
//! ignore), no table features (deletion vectors, column mapping, ...), lower-case snake_case column names, timestamps as `timestamp` (µs, UTC), and
//! an Athena DDL statement for each table.

use std::path::Path;

use cdplake_core::{Config, Workspace};
use chrono::{TimeZone, Utc};

use crate::support::{Backend, TestLake};

/// The last `protocol` and `metaData` actions of a table's log.
fn protocol_and_metadata(table: &Path) -> (serde_json::Value, serde_json::Value) {
    let mut commits: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json") && !p.ends_with("_last_checkpoint"))
        .collect();
    commits.sort();
    let (mut protocol, mut metadata) = (serde_json::Value::Null, serde_json::Value::Null);
    for commit in commits {
        for line in std::fs::read_to_string(&commit).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(p) = action.get("protocol") {
                protocol = p.clone();
            }
            if let Some(m) = action.get("metaData") {
                metadata = m.clone();
            }
        }
    }
    (protocol, metadata)
}

fn check_type(table: &str, column: &str, data_type: &serde_json::Value) {
    match data_type {
        serde_json::Value::String(t) => {
            assert_ne!(t, "timestamp_ntz", "{table}.{column}: Athena reads timestamps as µs UTC `timestamp`");
            assert!(!t.starts_with("variant"), "{table}.{column}: {t}");
        }
        serde_json::Value::Object(nested) => {
            for f in nested.get("fields").and_then(|f| f.as_array()).into_iter().flatten() {
                check_type(table, f["name"].as_str().unwrap(), &f["type"]);
            }
            if let Some(element) = nested.get("elementType") {
                check_type(table, column, element);
            }
        }
        other => panic!("{table}.{column}: unexpected type {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_of_the_pipeline_is_readable_by_athena_engine_v3() {
    let t = TestLake::new(Backend::Local).await;
    let ws = Workspace::open_with(Config::default(), Some(&t.root)).await.unwrap();
    let now = Utc.with_ymd_and_hms(2025, 1, 2, 3, 0, 0).unwrap();
    cdplake_app::demo::run_demo(&ws, now).await.unwrap();
    cdplake_profiles::audience::build_audience(&ws, "everyone", "all_persons", None, now).await.unwrap();

    let entries = ws.catalog.list().await.unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    for expected in [
        "raw.crm_members",
        "clean.customers",
        "clean._quarantine",
        "curated.id_mapping",
        "curated.user_events",
        "curated.customer_profiles",
        "curated.customer_profiles_daily",
        "curated.segment_bitmaps",
        "curated.ads_user_bitmap",
        "curated.audience_packages",
        "curated.audience_changes",
        "_quality.results",
    ] {
        assert!(names.contains(&expected), "{expected} missing from the catalog: {names:?}");
    }
    let ddl = cdplake_catalog::athena_ddl("cdp", "s3://bucket/lake", &entries);
    for entry in &entries {
        let table = Path::new(&t.root).join(&entry.location);
        let (protocol, metadata) = protocol_and_metadata(&table);
        assert_eq!(protocol["minReaderVersion"], 1, "{}: {protocol}", entry.name);
        // Readers look at the reader version only; the change data feed (curated.id_mapping)
        // raises the writer version to 4, which only writers check.
        let configuration = metadata["configuration"].as_object().cloned().unwrap_or_default();
        let change_feed = configuration.get("delta.enableChangeDataFeed").is_some_and(|v| v == "true");
        let writer = protocol["minWriterVersion"].as_i64().unwrap();
        assert!(writer <= 2 || (change_feed && writer == 4), "{}: {protocol}", entry.name);
        assert!(protocol.get("readerFeatures").is_none() && protocol.get("writerFeatures").is_none(), "{}", entry.name);
        for key in configuration.keys() {
            assert!(
                !key.contains("enableDeletionVectors") && !key.contains("columnMapping"),
                "{}: {key} is not for Athena",
                entry.name
            );
        }
        let schema: serde_json::Value = serde_json::from_str(metadata["schemaString"].as_str().unwrap()).unwrap();
        for field in schema["fields"].as_array().unwrap() {
            let column = field["name"].as_str().unwrap();
            assert!(
                column.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{}: column {column} is not lower-case snake_case",
                entry.name
            );
            check_type(&entry.name, column, &field["type"]);
        }
        let athena_name = cdplake_catalog::athena::athena_table_name(entry);
        assert!(
            ddl.contains(&format!("`cdp`.`{athena_name}`\nLOCATION 's3://bucket/lake/{}/'", entry.location)),
            "no Athena DDL for {}",
            entry.name
        );
    }
    glue_tables_of_the_template_match_the_catalog(&entries);
}

/// infra/template.yaml declares a Glue table for every table of the pipeline (raw, clean,
/// curated, quarantine, quality): its generated block is what `cdplake catalog export-glue`
/// prints for this catalog.
fn glue_tables_of_the_template_match_the_catalog(entries: &[cdplake_catalog::TableEntry]) {
    use cdplake_catalog::athena::{GLUE_BLOCK_BEGIN, GLUE_BLOCK_END};
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml")).unwrap();
    let begin = template.find(GLUE_BLOCK_BEGIN).expect("infra/template.yaml has no generated Glue block");
    let end = template.find(GLUE_BLOCK_END).expect("the Glue block of infra/template.yaml is not closed")
        + GLUE_BLOCK_END.len();
    let expected = cdplake_catalog::glue_table_resources(entries);
    assert_eq!(
        &template[begin..end],
        expected.trim_end(),
        "infra/template.yaml's Glue tables differ from the catalog: regenerate the block with \
         `cdplake demo && cdplake audience build everyone --expr all_persons && cdplake catalog export-glue`"
    );
    for entry in entries {
        let name = cdplake_catalog::athena_table_name(entry);
        assert!(template.contains(&format!("        Name: {name}\n")), "no Glue table for {}", entry.name);
    }
}

fn column_strings(batches: &[cdplake_engine::arrow::array::RecordBatch], i: usize) -> Vec<String> {
    use cdplake_engine::arrow::array::{Array, AsArray};
    batches
        .iter()
        .flat_map(|b| {
            let c =
                cdplake_engine::arrow::compute::cast(b.column(i), &cdplake_engine::arrow::datatypes::DataType::Utf8)
                    .unwrap();
            let c = c.as_string::<i32>().clone();
            (0..c.len()).map(move |r| if c.is_null(r) { "∅".to_string() } else { c.value(r).to_string() })
        })
        .collect()
}

/// Athena (Trino) queries over the curated tables, as an analyst would write them in Athena.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_queries_over_the_curated_tables_run_unmodified() {
    let t = TestLake::new(Backend::Local).await;
    let ws = Workspace::open_with(Config::default(), Some(&t.root)).await.unwrap();
    cdplake_app::demo::run_demo(&ws, Utc.with_ymd_and_hms(2025, 1, 2, 3, 0, 0).unwrap()).await.unwrap();
    let q = |sql: &'static str| {
        let ws = ws.clone();
        async move { cdplake_core::query::run_query(&ws, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")) }
    };
    // Each pair: the Athena query, and the same answer computed without the Trino functions.
    let pairs = [
        (
            "SELECT count_if(date_diff('day', last_purchase_date, DATE '2024-12-31') <> days_since_last_purchase) \
             FROM curated.customer_profiles",
            "SELECT 0",
        ),
        (
            "SELECT count_if(lifecycle_stage = 'active') FROM curated.customer_profiles",
            "SELECT count(*) FROM curated.customer_profiles WHERE lifecycle_stage = 'active'",
        ),
        (
            "SELECT total_revenue FROM curated.customer_profiles WHERE one_id = \
             (SELECT max_by(one_id, total_revenue) FROM curated.customer_profiles)",
            "SELECT max(total_revenue) FROM curated.customer_profiles",
        ),
        (
            "SELECT total_revenue FROM curated.customer_profiles WHERE one_id = \
             (SELECT min_by(one_id, total_revenue) FROM curated.customer_profiles)",
            "SELECT min(total_revenue) FROM curated.customer_profiles",
        ),
        (
            "SELECT count(*) FROM curated.user_events WHERE format_datetime(event_time, 'yyyy-MM-dd') = CAST(event_date AS VARCHAR)",
            "SELECT count(*) FROM curated.user_events WHERE event_time IS NOT NULL",
        ),
        (
            "SELECT count(*) FROM curated.user_events WHERE day_of_week(event_time) IN (6, 7)",
            "SELECT count(*) FROM curated.user_events WHERE extract(dow FROM event_time) IN (0, 6)",
        ),
        (
            "SELECT count(*) FROM curated.customer_profiles WHERE date_add('day', 30, last_purchase_date) >= DATE '2024-12-31'",
            "SELECT count(*) FROM curated.customer_profiles WHERE days_since_last_purchase <= 30",
        ),
        (
            "SELECT max(CAST(regexp_extract(one_id, 'ONE0*(\\d+)', 1) AS BIGINT)) FROM curated.customer_profiles",
            "SELECT max(user_int_id) FROM curated.id_mapping",
        ),
        (
            "SELECT count(*) FROM curated.customer_profiles WHERE element_at(split(identifier_counts, ','), 1) IS NOT NULL",
            "SELECT count(*) FROM curated.customer_profiles WHERE identifier_counts IS NOT NULL",
        ),
        (
            "SELECT json_extract_scalar('{\"segment\": {\"name\": \"vip\", \"size\": 3}}', '$.segment.size')",
            "SELECT '3'",
        ),
        (
            "SELECT CAST(from_iso8601_timestamp('2024-05-01T10:00:00+02:00') AS VARCHAR)",
            "SELECT CAST(TIMESTAMP '2024-05-01 08:00:00' AT TIME ZONE 'UTC' AS VARCHAR)",
        ),
        ("SELECT date_parse('01/05/2024 10:30', '%d/%m/%Y %H:%i') = TIMESTAMP '2024-05-01 10:30:00'", "SELECT true"),
        (
            "SELECT count(*) FROM (SELECT rfm_segment, arbitrary(one_id) AS sample FROM curated.customer_profiles GROUP BY 1)",
            "SELECT count(DISTINCT coalesce(rfm_segment, '-')) FROM curated.customer_profiles",
        ),
    ];
    for (athena, expected) in pairs {
        assert_eq!(column_strings(&q(athena).await, 0), column_strings(&q(expected).await, 0), "{athena}");
    }
}
