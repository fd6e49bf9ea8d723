//! The schedule handler: the daily DAG for the business date of an EventBridge event's `time`
//! (or `detail.as_of`), with seed 000's dependencies: every source swept from landing/ and
//! cleaned → identity → profiles, whose quality gates must pass → segments → audiences
//! (`[audiences.packages]`). A failed step stops everything that depends on it.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::error::{JobError, Result};
use crate::profiles::RefreshOptions;
use crate::retry::retry_step;
use crate::workspace::Workspace;

const ATTEMPTS: usize = 20;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScheduleOutcome {
    pub business_date: String,
    /// (step, what it did), in order.
    pub steps: Vec<(String, String)>,
}

pub async fn handle(
    workspace: &Workspace,
    event: EventBridgeEvent<Value>,
    now: DateTime<Utc>,
) -> Result<ScheduleOutcome> {
    let as_of = match event.detail.get("as_of").and_then(Value::as_str) {
        Some(text) => text
            .parse::<NaiveDate>()
            .map_err(|e| JobError::Invalid(format!("detail.as_of {text:?} is not a date (YYYY-MM-DD): {e}")))?,
        None => event.time.unwrap_or(now).date_naive(),
    };
    run_daily(workspace, as_of, now).await
}

/// The daily DAG for one business date.
pub async fn run_daily(workspace: &Workspace, as_of: NaiveDate, now: DateTime<Utc>) -> Result<ScheduleOutcome> {
    let mut outcome = ScheduleOutcome { business_date: as_of.to_string(), steps: Vec::new() };
    for source in workspace.config.all_sources() {
        // A sweep of landing/ catches objects whose event was lost; ingested ones are skipped.
        let ingested = retry_step(ATTEMPTS, || crate::ingest::ingest(workspace, &source, &[], now)).await?;
        let new = ingested.iter().filter(|r| r.batch_id.is_some()).count();
        if !workspace.lake().table_exists(&cdplake_zones::raw::raw_table_id(&source)).await? {
            continue;
        }
        let cleaned = retry_step(ATTEMPTS, || crate::clean::clean(workspace, &source, now)).await?;
        outcome.steps.push((
            format!("ingest+clean {}", source.name),
            format!("{new} new files, {} clean batches", cleaned.batches),
        ));
    }
    let identity = retry_step(ATTEMPTS, || crate::identity::resolve(workspace, now)).await?;
    outcome.steps.push(("identity".into(), crate::identity::describe_report(&identity)));
    let options = RefreshOptions { as_of, full: false, force: false };
    // A failed quality gate ends the run here: segments and audiences keep their last build.
    let profiles = retry_step(ATTEMPTS, || crate::profiles::refresh(workspace, &options, now)).await?;
    outcome.steps.push(("profiles".into(), crate::profiles::describe_report(&profiles)));
    let segments = retry_step(ATTEMPTS, || crate::segments::build_segments(workspace, Some(as_of), now)).await?;
    outcome.steps.push(("segments".into(), crate::segments::describe_report(&segments)));
    for (name, rule) in &workspace.config.audiences.packages {
        let report =
            retry_step(ATTEMPTS, || crate::audience::build_audience(workspace, name, rule, Some(as_of), now)).await?;
        outcome.steps.push((format!("audience {name}"), crate::audience::describe_report(&report)));
    }
    Ok(outcome)
}
