//! `cdplake-lambda`: the Lambda binary for the `provided.al2023` runtime.
//!
//! One binary serves the functions of `infra/template.yaml`; `CDPLAKE_HANDLER`
//! (`s3`, `schedule`, `query`, `profile`, `erase`) names the one a function runs, else the event's
//! shape decides.
//! The lake is `CDPLAKE_LAKE` (`s3://bucket/prefix`), the config `CDPLAKE_CONFIG` (else a
//! `cdplake.toml` beside the binary's working directory); logs are JSON lines carrying the request
//! id (`CDPLAKE_LOG` sets the filter). The memory budget is `CDPLAKE_MEMORY_LIMIT`, else the
//! config's `[engine] memory_limit`, else half the function's memory; spill files go to /tmp.

use cdplake_app::lambda::{Handler, invoke_as};
use cdplake_core::Workspace;
use cdplake_core::audit::Invoker;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON lines with the current span's fields: the runtime's span carries the request id.
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CDPLAKE_LOG").unwrap_or_else(|_| {
            format!("{},cdplake_lambda=info,cdplake_core=info,cdplake_ingest=info,cdplake_identity=info,cdplake_profiles=info,cdplake_operations=info,cdplake_serving=info,cdplake_app=info,lambda_runtime=info", cdplake_core::output::DEFAULT_LOG)
                .into()
        }))
        .without_time()
        .init();
    let fixed = match std::env::var("CDPLAKE_HANDLER") {
        Ok(name) => Some(
            Handler::from_name(&name)
                .ok_or_else(|| format!("CDPLAKE_HANDLER={name}: use s3, schedule, query, profile or erase"))?,
        ),
        Err(_) => None,
    };
    // Opened once per execution environment and reused by every invocation it serves.
    let config = std::env::var("CDPLAKE_CONFIG").ok().map(std::path::PathBuf::from);
    let lake = std::env::var("CDPLAKE_LAKE").ok();
    let workspace = Workspace::open_for_function(config.as_deref(), lake.as_deref()).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let workspace = workspace.clone();
        async move {
            let handler = fixed
                .or_else(|| Handler::detect(&event.payload))
                .ok_or("cannot tell which handler this event is for: set CDPLAKE_HANDLER")?;
            tracing::info!(request_id = %event.context.request_id, ?handler, "invocation");
            let invoker = Invoker::lambda(handler.name(), &event.context.request_id);
            let response = invoke_as(&workspace, handler, event.payload, chrono::Utc::now(), &invoker).await?;
            Ok::<Value, Error>(response)
        }
    }))
    .await
}
