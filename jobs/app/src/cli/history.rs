//! `cdplake history`: a table's commits, newest first.

use cdplake_core::Workspace;
use cdplake_core::output::format_batches;
use cdplake_engine::TableId;
use cdplake_serving::inspect;
use clap::Args;

use super::common::FormatArg;

#[derive(Args)]
#[command(after_help = "Example:\n  cdplake history clean.customers --limit 5")]
pub struct HistoryArgs {
    /// The table, as ZONE.TABLE
    table: TableId,
    /// Show at most this many commits
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    format: FormatArg,
}

pub async fn run(workspace: &Workspace, HistoryArgs { table, limit, format }: HistoryArgs) -> anyhow::Result<()> {
    let commits = workspace.lake().history(&table, limit).await?;
    out!("{}", format_batches(&[inspect::history_batch(&commits)?], format.format)?);
    Ok(())
}
