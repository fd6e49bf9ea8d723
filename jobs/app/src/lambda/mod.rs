//! Lambda entry points: each parses its event and calls the same job functions as the CLI.
//!
//! * [`s3`]: `ObjectCreated` events for `landing/<source>/...` → ingest → clean → identity →
//!   profiles of the touched persons (also S3 events delivered through SQS, with partial-batch
//!   failures reported the SQS way).
//! * [`schedule`]: an EventBridge schedule → the daily DAG for the event's business date.
//! * erase: `{"identifier": "email:...", "reason": ...}` → [`cdplake_operations::erase`] (the right to erasure).
//! * [`query`]: `{"sql": ..., "format": "json|csv"}` → a read-only query's rows, inline or
//!   written to an S3 result location when large (as Athena does).
//! * [`profile`]: a function URL / API Gateway request → the profile look-up API
//!   (`GET /v1/profiles/{id_type}/{value}`, `GET /v1/health`), as `cdplake serve` answers it.
//!
//! `cdplake lambda invoke` and the `cdplake-lambda` binary (infra/) both call [`invoke_as`]; every
//! invocation is a row of `_audit.job_runs` ([`cdplake_core::audit`]).

pub mod profile;
pub mod query;
pub mod s3;
pub mod schedule;

use chrono::{DateTime, Utc};
use serde_json::Value;

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Handler {
    S3,
    Schedule,
    Query,
    Profile,
    /// `{"identifier": "email:...", "reason": "..."}` → [`cdplake_operations::erase::erase`].
    Erase,
}

/// The erase handler's event.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct EraseRequest {
    /// ID_TYPE:VALUE (`email:` and `phone:` take plaintext).
    pub identifier: String,
    pub reason: Option<String>,
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
        if event.get("identifier").is_some() {
            return Some(Handler::Erase);
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
            "erase" => Some(Handler::Erase),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Handler::S3 => "s3",
            Handler::Schedule => "schedule",
            Handler::Query => "query",
            Handler::Profile => "profile",
            Handler::Erase => "erase",
        }
    }
}

/// Run a handler on an event; the answer is the Lambda response. Recorded in the audit trail as
/// a local invocation.
pub async fn invoke(workspace: &Workspace, handler: Handler, event: Value, now: DateTime<Utc>) -> Result<Value> {
    let invoker = cdplake_core::audit::Invoker::lambda(handler.name(), "local");
    invoke_as(workspace, handler, event, now, &invoker).await
}

/// [`invoke`], recorded in `_audit.job_runs` under `invoker` (the Lambda request id).
pub async fn invoke_as(
    workspace: &Workspace,
    handler: Handler,
    event: Value,
    now: DateTime<Utc>,
    invoker: &cdplake_core::audit::Invoker,
) -> Result<Value> {
    if handler == Handler::Profile {
        // A look-up reads an in-memory index and must answer in milliseconds; a Delta commit per
        // request would cost more than the answer. It is no job run: its trace is the function's
        // JSON log line (request id, route, status).
        return run(workspace, handler, event, now).await;
    }
    let arguments = audit_arguments(handler, &event);
    let job = format!("lambda {}", handler.name());
    cdplake_core::audit::audited(
        workspace,
        invoker,
        &job,
        arguments,
        chrono::Utc::now(),
        run(workspace, handler, event, now),
    )
    .await
}

/// What the audit trail keeps of an event: object keys, dates; never SQL text or identifiers.
fn audit_arguments(handler: Handler, event: &Value) -> Value {
    match handler {
        Handler::S3 => {
            let keys: Vec<Value> = event
                .get("Records")
                .and_then(Value::as_array)
                .map(|records| records.iter().filter_map(|r| r.pointer("/s3/object/key").cloned()).collect())
                .unwrap_or_default();
            serde_json::json!({ "objects": keys })
        }
        Handler::Schedule => serde_json::json!({ "time": event.get("time"), "detail": event.get("detail") }),
        Handler::Query => {
            let sql = event.get("sql").and_then(Value::as_str).unwrap_or_default();
            serde_json::json!({ "sql_sha256": cdplake_zones::normalize::pii_hash(sql, None) })
        }
        Handler::Profile => Value::Null,
        Handler::Erase => serde_json::json!({
            "identifier": event.get("identifier").and_then(Value::as_str).map(cdplake_core::audit::hashed_identifier),
        }),
    }
}

async fn run(workspace: &Workspace, handler: Handler, event: Value, now: DateTime<Utc>) -> Result<Value> {
    let parse_error = |what: &str, e: serde_json::Error| JobError::bad_input("the event", format!("not {what}: {e}"));
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
        Handler::Erase => {
            let request: EraseRequest = serde_json::from_value(event).map_err(|e| parse_error("an erase event", e))?;
            let (id_type, value) = cdplake_identity::explain::parse_identifier(&request.identifier)?;
            serde_json::to_value(
                cdplake_operations::erase::erase(workspace, &id_type, &value, request.reason.as_deref(), now).await?,
            )
        }
    };
    answer.map_err(|e| JobError::encoding("the response", e))
}
