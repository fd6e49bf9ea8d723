//! `cdplake clean`: raw batches into typed, validated, deduplicated clean tables.

use cdplake_core::Workspace;
use cdplake_core::audit::{JobReport, RowCounts};
use cdplake_ingest::clean::{self, CleanReport};
use clap::Args;

use super::common::{AuditedJob, NoOutput, find_source};

#[derive(Args)]
#[command(after_help = "Rejected rows and duplicates go to clean._quarantine with the reason; the report \
reconciles rows read = kept + duplicates + quarantined. When every row of a source went to the quarantine, \
clean exits with code 3: fix the contract in cdplake.toml (a type, a date format) and run \
`cdplake clean --reprocess --source NAME`.\n\nExamples:\n  cdplake clean\n  \
cdplake clean --source crm_members --json\n  cdplake clean --reprocess --source cdnow\n  \
cdplake query \"SELECT rule, count(*) FROM clean._quarantine GROUP BY rule\"")]
pub struct CleanArgs {
    /// Only this source [default: every source with a raw table]
    #[arg(long)]
    source: Option<String>,
    /// Rebuild the source's clean table and quarantine rows from every raw batch under the
    /// current contract (after changing it in cdplake.toml); identity and profiles read the
    /// source again on their next run
    #[arg(long, requires = "source")]
    reprocess: bool,
    /// Print the reports as JSON
    #[arg(long)]
    json: bool,
}

pub fn audited(args: &CleanArgs) -> Option<AuditedJob> {
    AuditedJob::new("clean", serde_json::json!({ "source": args.source, "reprocess": args.reprocess }))
}

pub async fn run(workspace: &Workspace, args: CleanArgs, rows: &mut RowCounts) -> anyhow::Result<()> {
    let sources = match &args.source {
        Some(name) => vec![find_source(workspace, name)?],
        None => workspace.config.all_sources(),
    };
    let mut reports = Vec::new();
    for source in &sources {
        let report = if args.reprocess {
            clean::reprocess(workspace, source, chrono::Utc::now()).await?
        } else {
            clean::clean(workspace, source, chrono::Utc::now()).await?
        };
        if report.batches > 0 || !args.json {
            reports.push(report);
        }
    }
    *rows = reports.row_counts();
    if args.json {
        out_json!(&reports);
    } else {
        for r in reports.iter().filter(|r| r.batches > 0) {
            out!("{}", clean::describe_report(r));
        }
        if reports.iter().all(|r| r.batches == 0) {
            out!("nothing to clean: every raw batch is cleaned");
        }
    }
    refuse_all_quarantined(&reports)
}

/// Exit 3 when every row of a source went to the quarantine: nothing usable came out.
fn refuse_all_quarantined(reports: &[CleanReport]) -> anyhow::Result<()> {
    let empty: Vec<String> = reports
        .iter()
        .filter(|r| r.all_quarantined())
        .map(|r| {
            let top = r.quarantined_by_reason.iter().max_by_key(|(_, n)| **n).map(|(k, _)| k.as_str());
            format!("{} ({} rows; mostly {})", r.source, r.rows_read, top.unwrap_or("?"))
        })
        .collect();
    if empty.is_empty() {
        return Ok(());
    }
    Err(NoOutput(format!(
        "every row went to the quarantine for {}: fix the contract in cdplake.toml, then run \
         `cdplake clean --reprocess --source NAME`; the reasons are in clean._quarantine",
        empty.join(", ")
    ))
    .into())
}
