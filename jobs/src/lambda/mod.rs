//! Lambda entry points: each parses its event and calls the same job functions as the CLI.
//!
//! * [`s3`]: `ObjectCreated` events for `landing/<source>/...` → ingest → clean → identity →
//!   profiles of the touched persons (also S3 events delivered through SQS, with partial-batch
//!   failures reported the SQS way).
//! * [`schedule`]: an EventBridge schedule → the daily DAG for the event's business date.
//! * [`query`]: `{"sql": ..., "format": "json|csv"}` → a read-only query's rows, inline or
//!   written to an S3 result location when large (as Athena does).
//! * [`profile`]: a function URL / API Gateway request → the profile look-up API
//!   (`GET /v1/profiles/{id_type}/{value}`, `GET /v1/health`), as `cdplake serve` answers it.
//!
//! `cdplake lambda invoke` and the `cdplake-lambda` binary (infra/) both call [`invoke`].

pub mod profile;
pub mod query;
pub mod s3;
pub mod schedule;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{JobError, Result};
use crate::workspace::Workspace;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Handler {
    S3,
    Schedule,
    Query,
    Profile,
}

impl Handler {
    /// The handler an event is meant for, from its shape.
    pub fn detect(event: &Value) -> Option<Handler> {
        if event.get("sql").is_some() {
            return Some(Handler::Query);
        }
        if profile::is_http_event(event) {
            return Some(Handler::Profile);
        }
        if event.get("detail-type").is_some() || event.get("detail_type").is_some() {
            return Some(Handler::Schedule);
        }
        let source = event.pointer("/Records/0/eventSource").and_then(Value::as_str);
        matches!(source, Some("aws:s3") | Some("aws:sqs")).then_some(Handler::S3)
    }

    pub fn from_name(name: &str) -> Option<Handler> {
        match name.to_ascii_lowercase().as_str() {
            "s3" => Some(Handler::S3),
            "schedule" => Some(Handler::Schedule),
            "query" => Some(Handler::Query),
            "profile" => Some(Handler::Profile),
            _ => None,
        }
    }
}

/// Run a handler on an event; the answer is the Lambda response.
pub async fn invoke(workspace: &Workspace, handler: Handler, event: Value, now: DateTime<Utc>) -> Result<Value> {
    let parse_error = |what: &str, e: serde_json::Error| JobError::Invalid(format!("not {what}: {e}"));
    let answer = match handler {
        Handler::S3 => {
            if event.pointer("/Records/0/eventSource").and_then(Value::as_str) == Some("aws:sqs") {
                let sqs = serde_json::from_value(event).map_err(|e| parse_error("an SQS event", e))?;
                serde_json::to_value(s3::handle_sqs(workspace, sqs, now).await?)
            } else {
                let s3_event = serde_json::from_value(event).map_err(|e| parse_error("an S3 event", e))?;
                serde_json::to_value(s3::handle(workspace, s3_event, now).await?)
            }
        }
        Handler::Schedule => {
            let scheduled = serde_json::from_value(event).map_err(|e| parse_error("an EventBridge event", e))?;
            serde_json::to_value(schedule::handle(workspace, scheduled, now).await?)
        }
        Handler::Query => {
            let request = serde_json::from_value(event).map_err(|e| parse_error("a query event", e))?;
            serde_json::to_value(query::handle(workspace, request).await?)
        }
        Handler::Profile => Ok(profile::handle(workspace, event).await?),
    };
    answer.map_err(|e| JobError::Invalid(format!("encoding the response: {e}")))
}
