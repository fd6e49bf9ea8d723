//! `cdplake query`: SQL over the lake.

use cdplake_core::output::format_batches;
use cdplake_core::{Workspace, query};
use clap::Args;

use super::common::FormatArg;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  cdplake query \"SELECT country, count(*) FROM clean.customers GROUP BY country\"\n  cdplake query \"SELECT * FROM _catalog.tables\" --format json"
)]
pub struct QueryArgs {
    /// One read-only SQL statement: SELECT, WITH, SHOW, DESCRIBE or EXPLAIN (DataFusion SQL;
    /// identifiers are case-insensitive). Tables change only through jobs.
    sql: String,
    #[command(flatten)]
    format: FormatArg,
}

pub async fn run(workspace: &Workspace, QueryArgs { sql, format }: QueryArgs) -> anyhow::Result<()> {
    // The same check as the HTTP and Lambda paths: writes happen only through jobs.
    let batches = query::run_read_only(workspace, &sql).await?;
    out!("{}", format_batches(&batches, format.format)?);
    Ok(())
}
