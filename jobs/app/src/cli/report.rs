//! `cdplake report`: a self-contained HTML report with charts.

use std::path::PathBuf;

use anyhow::Context;
use cdplake_core::Workspace;
use clap::Args;

#[derive(Args)]
#[command(after_help = "Charts (SVG, drawn with plotters): persons and profiles over time, the RFM grid (recency \
score × frequency score; cell = persons, colour = average monetary), segment and audience sizes and their change \
since the previous as-of, lifecycle stages over time from curated.customer_profiles_daily, identity health \
(persons by number of identifiers, hubs, refused links) and the quality gates' history.\n\nExamples:\n  \
cdplake report --out report.html\n  cdplake report --as-of 2024-12-31 --out report-2024-12-31.html")]
pub struct ReportArgs {
    /// The profiles snapshot (dt of curated.customer_profiles_daily) to report on [default: the latest]
    #[arg(long)]
    as_of: Option<chrono::NaiveDate>,
    /// The HTML file to write
    #[arg(long, default_value = "report.html")]
    out: PathBuf,
}

pub async fn run(workspace: &Workspace, ReportArgs { as_of, out }: ReportArgs) -> anyhow::Result<()> {
    let report = cdplake_serving::report::build_report(workspace, as_of).await?;
    std::fs::write(&out, &report.html).with_context(|| format!("writing {}", out.display()))?;
    out!("report as of {} ({} charts) written to {}", report.as_of, report.charts.len(), out.display());
    Ok(())
}
