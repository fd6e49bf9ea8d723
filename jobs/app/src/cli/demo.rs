//! `cdplake demo`: the whole pipeline on built-in sample data.

use cdplake_app::demo;
use cdplake_core::Workspace;
use cdplake_core::output::{Format, format_batches};
use cdplake_ingest::ingest;

use super::common::FormatArg;

pub async fn run(workspace: &Workspace, FormatArg { format }: FormatArg) -> anyhow::Result<()> {
    let report = demo::run_demo(workspace, chrono::Utc::now()).await?;
    if format == Format::Table {
        out!("lake: {}", workspace.lake().location().root());
        let totals = ingest::summarize(&report.ingested);
        out!(
            "ingest: {} files ({} new, {} already ingested), {} rows in, {} written to raw, {} unreadable",
            totals.get("files").unwrap_or(&0),
            totals.get("ingested").unwrap_or(&0),
            totals.get("already_ingested").unwrap_or(&0),
            totals.get("rows_in").unwrap_or(&0),
            totals.get("rows_written").unwrap_or(&0),
            totals.get("rows_rejected").unwrap_or(&0)
        );
        for (_, what) in &report.steps {
            out!("{what}");
        }
        out!("\n{}\n", demo::demo_query());
    }
    out!("{}", format_batches(&report.answer, format)?);
    Ok(())
}
