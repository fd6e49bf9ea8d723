//! Every table the pipeline writes stays within what Athena engine v3 reads, checked in the
//! Delta log itself: protocol reader 1 / writer 2, no table features (deletion vectors, column
//! mapping, ...), lower-case snake_case column names, timestamps as `timestamp` (µs, UTC), and
//! an Athena DDL statement for each table.

use std::path::Path;

use cdplake_jobs::{Config, Workspace};
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
    cdplake_jobs::demo::run_demo(&ws, now).await.unwrap();
    cdplake_jobs::audience::build_audience(&ws, "everyone", "all_persons", None, now).await.unwrap();

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
        assert!(protocol["minWriterVersion"].as_i64().unwrap() <= 2, "{}: {protocol}", entry.name);
        assert!(protocol.get("readerFeatures").is_none() && protocol.get("writerFeatures").is_none(), "{}", entry.name);
        let configuration = metadata["configuration"].as_object().cloned().unwrap_or_default();
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
}
