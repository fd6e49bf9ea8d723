//! The schedule handler: the daily DAG for the business date of an EventBridge event's `time`
//! (or `detail.as_of`), with seed 000's dependencies: every source swept from landing/ and
//! cleaned → identity → profiles, whose quality gates must pass → segments → audiences
//! (`[audiences.packages]`) → maintenance; the order is [`crate::dag`]'s. A failed step stops
//! everything that depends on it.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::dag::{Dag, Through};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;

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
        Some(text) => text.parse::<NaiveDate>().map_err(|e| {
            JobError::bad_input(format!("detail.as_of {text:?}"), format!("not a date (YYYY-MM-DD): {e}"))
        })?,
        None => event.time.unwrap_or(now).date_naive(),
    };
    run_daily(workspace, as_of, now).await
}

/// The daily DAG for one business date: every source swept and cleaned, then identity,
/// profiles, segments, the configured audiences and maintenance ([`crate::dag`]).
pub async fn run_daily(workspace: &Workspace, as_of: NaiveDate, now: DateTime<Utc>) -> Result<ScheduleOutcome> {
    let sources: Vec<String> = workspace.config.all_sources().into_iter().map(|s| s.name).collect();
    let dag = Dag::new(workspace, &sources, true, as_of, Through::Maintain);
    let outcome = dag.run(workspace, now).await?;
    Ok(ScheduleOutcome { business_date: outcome.business_date, steps: outcome.steps })
}
