//! `cdplake ingest`: source files into raw.SOURCE, exactly as received.

use cdplake_core::Workspace;
use cdplake_core::audit::{JobReport, RowCounts};
use cdplake_ingest::ingest::{self, IngestReport, IngestStatus};
use clap::Args;

use super::common::{AuditedJob, find_source};

#[derive(Args)]
#[command(after_help = "With no PATH, ingests every file under <lake>/landing/SOURCE/. Files may be CSV, JSON lines \
or Parquet, gzipped or not; the format follows the file name, else the source's.\n\nExamples:\n  \
cdplake ingest --source retail_transactions ../shared/data/online_retail.csv\n  \
cdplake ingest --source crm_members s3://my-bucket/landing/crm_members/2024-05-01.json.gz\n  \
cdplake sources   # the built-in and configured sources")]
pub struct IngestArgs {
    /// The source the files belong to (see `cdplake sources`)
    #[arg(long)]
    source: String,
    /// Local paths or s3:// URIs [default: everything under landing/SOURCE/]
    paths: Vec<String>,
    /// Print the reports as JSON
    #[arg(long)]
    json: bool,
}

pub fn audited(args: &IngestArgs) -> Option<AuditedJob> {
    AuditedJob::new("ingest", serde_json::json!({ "source": args.source, "paths": args.paths }))
}

pub async fn run(workspace: &Workspace, args: IngestArgs, rows: &mut RowCounts) -> anyhow::Result<()> {
    let source = find_source(workspace, &args.source)?;
    let reports = ingest::ingest(workspace, &source, &args.paths, chrono::Utc::now()).await?;
    *rows = reports.row_counts();
    if args.json {
        out_json!(&reports);
        return Ok(());
    }
    if reports.is_empty() {
        out!("no files to ingest for {} (looked in {})", source.name, ingest::landing_prefix(workspace, &source));
    }
    for report in &reports {
        out!("{}", describe(report));
    }
    Ok(())
}

/// One line per file: what happened to it and where its rows went.
fn describe(r: &IngestReport) -> String {
    if r.status == IngestStatus::AlreadyIngested {
        return format!("AlreadyIngested: {} (same ETag/content as before; nothing written)", r.uri);
    }
    format!(
        "{:?}: {} ({} rows in, {} written to raw.{}, {} rejected{})",
        r.status,
        r.uri,
        r.rows_in,
        r.rows_written,
        r.source,
        r.rows_rejected,
        if r.unknown_columns.is_empty() {
            String::new()
        } else {
            format!("; unknown columns kept in raw: {}", r.unknown_columns.join(", "))
        }
    )
}
