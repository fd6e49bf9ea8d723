//! The `profile` handler: the look-up API behind a Lambda function URL or API Gateway (HTTP API
//! payload 2.0, or REST payload 1.0). It answers through [`cdplake_serving::serve::respond`], as
//! `cdplake serve` does; the index is built on the first invocation of an execution environment,
//! kept for the next ones, and rebuilt when a curated table has a newer version (checked at most
//! every [`CHECK_EVERY`]).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};

use cdplake_core::error::Result;
use cdplake_core::workspace::Workspace;
use cdplake_serving::serve::{DEFAULT_EVENTS_KEPT, IndexHolder, Permissions, Request, respond};

/// How often an invocation checks the tables' versions.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);

fn holders() -> &'static tokio::sync::Mutex<HashMap<String, Arc<IndexHolder>>> {
    static HOLDERS: OnceLock<tokio::sync::Mutex<HashMap<String, Arc<IndexHolder>>>> = OnceLock::new();
    HOLDERS.get_or_init(Default::default)
}

/// Is this event an HTTP request from a function URL or API Gateway?
pub fn is_http_event(event: &Value) -> bool {
    event.get("rawPath").is_some()
        || event.pointer("/requestContext/http/method").is_some()
        || (event.get("httpMethod").is_some() && event.get("path").is_some())
}

/// The HTTP request an event carries.
pub fn request_of(event: &Value) -> Request {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str).map(str::to_string);
    let method = text("/requestContext/http/method").or_else(|| text("/httpMethod")).unwrap_or_else(|| "GET".into());
    let path = text("/rawPath").or_else(|| text("/path")).unwrap_or_else(|| "/".into());
    let query = text("/rawQueryString").filter(|q| !q.is_empty()).or_else(|| {
        event.get("queryStringParameters").and_then(Value::as_object).map(|params| {
            params.iter().filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}"))).collect::<Vec<_>>().join("&")
        })
    });
    let body = match (event.get("body").and_then(Value::as_str), event.get("isBase64Encoded").and_then(Value::as_bool))
    {
        (Some(_), Some(true)) => Vec::new(), // look-ups carry no body; SQL is not served here
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, _) => Vec::new(),
    };
    Request { method, path, query, body }
}

/// Answer one function-URL / API Gateway event with the look-up API.
pub async fn handle(workspace: &Workspace, event: Value) -> Result<Value> {
    let root = workspace.lake().location().root().to_string();
    let holder = {
        let mut map = holders().lock().await;
        match map.get(&root) {
            Some(holder) => holder.clone(),
            None => {
                let holder = Arc::new(IndexHolder::open(workspace.clone(), DEFAULT_EVENTS_KEPT).await?);
                map.insert(root, holder.clone());
                holder
            }
        }
    };
    if let Err(e) = holder.refresh_if_due(CHECK_EVERY).await {
        tracing::warn!(error = %e, "profile index refresh failed; answering from the previous index");
    }
    let reply = respond(&holder, Permissions::default(), &request_of(&event)).await;
    Ok(json!({
        "statusCode": reply.status,
        "headers": { "content-type": "application/json" },
        "body": reply.body.to_string(),
        "isBase64Encoded": false,
    }))
}
