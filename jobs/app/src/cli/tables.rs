//! `cdplake tables`: the tables in the catalog.

use cdplake_core::Workspace;
use cdplake_core::output::format_batches;
use cdplake_serving::inspect;

use super::common::FormatArg;

pub async fn run(workspace: &Workspace, FormatArg { format }: FormatArg) -> anyhow::Result<()> {
    let entries = workspace.catalog.list().await?;
    out!("{}", format_batches(&[inspect::tables_batch(&entries)?], format)?);
    Ok(())
}
