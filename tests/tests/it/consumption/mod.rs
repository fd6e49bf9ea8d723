//! The consumption layer: profile look-up over real HTTP (and the Lambda handler), write-back to
//! a real PostgreSQL, and the HTML report rendered in a real headless Chromium.

mod report;
mod serve;
mod sync_postgres;

use cdplake_core::{Config, Workspace};
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_profiles::{RefreshOptions, refresh};
use chrono::{TimeZone, Utc};

use crate::support::{Backend, TestLake, s3_options};

pub fn at(day: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, day, 6, 0, 0).unwrap()
}

pub const AS_OF: &str = "2024-12-31";

pub async fn workspace(t: &TestLake, backend: Backend) -> Workspace {
    let mut config = Config::default();
    if backend == Backend::S3 {
        config.lake.storage = s3_options();
    }
    Workspace::open_with(config, Some(&t.root)).await.unwrap()
}

/// A generated lake run through ingest, clean, identity, profiles, segments and one audience.
pub async fn lake_with_everything(backend: Backend, persons: u64) -> (TestLake, Workspace) {
    let t = TestLake::new(backend).await;
    let ws = workspace(&t, backend).await;
    let (files, _) = cdplake_generate::generate(persons, 11);
    let files: Vec<_> = files.into_iter().map(|f| (f.source, f.name, f.content)).collect();
    crate::support::land_ingest_clean(&ws, &files, at(1)).await;
    cdplake_identity::resolve(&ws, at(1)).await.unwrap();
    refresh(&ws, &RefreshOptions { as_of: AS_OF.parse().unwrap(), full: false, force: false }, at(1)).await.unwrap();
    let segments = cdplake_profiles::segments::build_segments(&ws, None, at(1)).await.unwrap();
    let other = segments.segments.iter().map(|(t, _)| t.as_str()).find(|t| *t != "all_persons").unwrap().to_string();
    cdplake_profiles::audience::build_audience(
        &ws,
        "not_first",
        &format!("all_persons AND NOT \"{other}\""),
        None,
        at(1),
    )
    .await
    .unwrap();
    (t, ws)
}

pub async fn sql(ws: &Workspace, query: &str) -> Vec<RecordBatch> {
    cdplake_core::query::run_query(ws, query).await.unwrap_or_else(|e| panic!("{query}: {e}"))
}

/// Every row of a query as text columns (empty string for null).
pub async fn text_rows(ws: &Workspace, query: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in sql(ws, query).await {
        let columns: Vec<_> = b.columns().iter().map(|c| cast(c, &DataType::Utf8).unwrap()).collect();
        for r in 0..b.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| if c.is_null(r) { String::new() } else { c.as_string::<i32>().value(r).to_string() })
                    .collect(),
            );
        }
    }
    rows
}
