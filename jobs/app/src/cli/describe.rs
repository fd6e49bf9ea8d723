//! `cdplake describe`: a table's definition.

use cdplake_core::Workspace;
use cdplake_core::output::{Format, format_batches};
use cdplake_engine::TableId;
use cdplake_serving::inspect;
use clap::Args;

use super::common::FormatArg;

#[derive(Args)]
#[command(after_help = "Example:\n  cdplake describe clean.customers")]
pub struct DescribeArgs {
    /// The table, as ZONE.TABLE
    table: TableId,
    #[command(flatten)]
    format: FormatArg,
}

pub async fn run(workspace: &Workspace, DescribeArgs { table, format }: DescribeArgs) -> anyhow::Result<()> {
    let entry = workspace.catalog.describe(&table).await?;
    match format.format {
        Format::Json => out_json!(&entry),
        other => {
            out!("{}", format_batches(&[inspect::entry_batch(&entry)?], other)?);
            out!("{}", format_batches(&[inspect::columns_batch(&entry)?], other)?);
        }
    }
    Ok(())
}
