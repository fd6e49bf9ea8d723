//! `cdplake audit`: the job runs of the audit trail, newest first.

use cdplake_core::output::format_batches;
use cdplake_core::{Workspace, audit};
use clap::Args;

use super::common::FormatArg;

#[derive(Args)]
#[command(
    after_help = "Every run of a job (CLI, Lambda, schedule) is a row: job, arguments (identifiers keyed-hashed, no secrets), who (user@host or lambda:<request id>), start, duration, outcome, the tables and Delta versions it committed, rows in and out.

Examples:
  cdplake audit --limit 20
  cdplake query \"SELECT job, count(*) FROM _audit.job_runs GROUP BY job\""
)]
pub struct AuditArgs {
    /// Show at most this many runs
    #[arg(long, default_value_t = 50)]
    limit: usize,
    #[command(flatten)]
    format: FormatArg,
}

pub async fn run(workspace: &Workspace, AuditArgs { limit, format }: AuditArgs) -> anyhow::Result<()> {
    let batches = audit::list(workspace, limit).await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        out!("no job runs recorded yet");
    } else {
        out!("{}", format_batches(&batches, format.format)?);
    }
    Ok(())
}
