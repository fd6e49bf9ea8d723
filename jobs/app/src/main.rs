//! The `cdplake` binary: parse the command line, run the command, exit with the code of its
//! outcome. Each command lives in its own file under `cli/`.

mod cli;
mod errors;

use std::process::ExitCode;

use clap::Parser;

/// Warnings only. The Delta kernel logs a missing table as an error although cdplake expects
/// (and reports) it, e.g. on a lake's first use.
/// delta-rs's merge warns about a metric name on every MERGE; that is noise to a user.
use cdplake_core::output::DEFAULT_LOG;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CDPLAKE_LOG").unwrap_or_else(|_| DEFAULT_LOG.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let Err(err) = cli::run(cli::Cli::parse()).await else {
        return ExitCode::SUCCESS;
    };
    let kind = errors::kind(&err);
    if kind == cdplake_core::error::ErrorKind::NoOutput {
        eprintln!("error: {err}");
    } else {
        eprintln!("error: {}", errors::describe(&err));
        if let Some(hint) = kind.hint() {
            eprintln!("hint: {hint}");
        }
    }
    ExitCode::from(kind.exit_code())
}
