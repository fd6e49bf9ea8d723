//! `cdplake lambda invoke`: a Lambda handler run locally on an event file.

use std::path::PathBuf;

use anyhow::Context;
use cdplake_app::lambda;
use cdplake_core::Workspace;
use cdplake_core::audit::Invoker;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum LambdaCommand {
    /// Invoke a handler with an event JSON file and print its response.
    #[command(
        after_help = "Examples:\n  cdplake --lake s3://bucket/cdp lambda invoke --handler s3 --event s3-put.json\n  \
cdplake lambda invoke --handler query --event query.json   # {\"sql\": \"SELECT ...\", \"format\": \"json\"}\n  \
cdplake lambda invoke --handler schedule --event scheduled.json"
    )]
    Invoke {
        /// The handler [default: guessed from the event's shape]
        #[arg(long, value_enum)]
        handler: Option<lambda::Handler>,
        /// The event, as JSON
        #[arg(long)]
        event: PathBuf,
    },
}

pub async fn run(workspace: &Workspace, command: LambdaCommand) -> anyhow::Result<()> {
    let LambdaCommand::Invoke { handler, event } = command;
    let text = std::fs::read_to_string(&event).with_context(|| format!("reading {}", event.display()))?;
    let payload: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", event.display()))?;
    let handler = handler
        .or_else(|| lambda::Handler::detect(&payload))
        .ok_or_else(|| anyhow::anyhow!("cannot tell which handler {} is for; pass --handler", event.display()))?;
    let response = lambda::invoke_as(workspace, handler, payload, chrono::Utc::now(), &Invoker::cli()).await?;
    out_json!(&response);
    Ok(())
}
