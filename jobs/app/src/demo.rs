//! `cdplake demo`: the main job on built-in sample data, on the embedded default lake.
//!
//! Generates a small seed-style multi-channel data set (deterministic, no network, nothing
//! from outside the binary) into `<lake>/landing/<source>/`, ingests every source into the raw
//! zone, cleans it into the clean zone, stitches identities into persons, builds their profiles
//! as of [`demo_as_of`], builds the segment bitmaps, and prints the segment counts. Running it again finds every file
//! already ingested and every batch already cleaned: nothing changes.

use cdplake_engine::arrow::array::RecordBatch;
use chrono::{DateTime, Utc};

use crate::dag::{Dag, Through};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_generate::generate;
use cdplake_ingest::ingest::{IngestReport, ingest};
use cdplake_zones::tables::CUSTOMER_PROFILES;

/// People in the demo data set.
pub const DEMO_PERSONS: u64 = 200;
pub const DEMO_SEED: u64 = 42;

/// The business date of the demo's profiles (the generated data spans 2024).
pub fn demo_as_of() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2024, 12, 31).expect("valid date")
}

/// The question the demo asks once the data is in: persons per segment.
pub fn demo_query() -> String {
    format!(
        "SELECT lifecycle_stage, coalesce(rfm_segment, '-') AS rfm_segment, count(*) AS persons \
         FROM {CUSTOMER_PROFILES} GROUP BY 1, 2 ORDER BY 1, 2"
    )
}

#[derive(Debug, Clone)]
pub struct DemoReport {
    pub ingested: Vec<IngestReport>,
    /// (step, what it did) of the pipeline after ingest.
    pub steps: Vec<(String, String)>,
    pub answer: Vec<RecordBatch>,
}

impl cdplake_core::audit::JobReport for DemoReport {}

pub async fn run_demo(workspace: &Workspace, now: DateTime<Utc>) -> Result<DemoReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let (files, truth) = generate(DEMO_PERSONS, DEMO_SEED);
    let mut sources: Vec<&str> = Vec::new();
    for file in &files {
        let location = lake.location().join(&format!("landing/{}/{}", file.source, file.name)).to_string();
        lake.put_object(&location, file.content.clone().into()).await?;
        if !sources.contains(&file.source) {
            sources.push(file.source);
        }
    }
    let truth_location = lake.location().join("demo/truth.csv").to_string();
    lake.put_object(&truth_location, truth.into()).await?;

    let mut ingested = Vec::new();
    for name in &sources {
        let source = workspace
            .config
            .source(name)
            .ok_or_else(|| JobError::bad_input(format!("demo source {name}"), "is not defined"))?;
        ingested.extend(ingest(workspace, &source, &[], now).await?);
    }
    // Everything after ingest is the pipeline's DAG, as the schedule and the S3 handler run it.
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let run = Dag::new(workspace, &sources, false, demo_as_of(), Through::Segments).run(workspace, now).await?;
    let answer = cdplake_core::query::run_query(workspace, &demo_query()).await?;
    Ok(DemoReport { ingested, steps: run.steps, answer })
}
