//! `cdplake audience build|export`: expressions over segment bitmaps, their members and exports.

use cdplake_core::Workspace;
use cdplake_profiles::audience;
use cdplake_profiles::audience::export::{ExportFormat, ExportIds, ExportRequest};
use clap::Subcommand;

use super::common::AuditedJob;

#[derive(Subcommand)]
pub enum AudienceCommand {
    /// Evaluate an expression over segment tags on bitmaps and store the members (idempotent per date).
    #[command(
        after_help = "Tags are the segment_tag values of curated.segment_bitmaps; quote those with spaces. NOT is \
taken against every person. Members go to curated.audience_packages, who entered or left since the previous \
build to curated.audience_changes.\n\nExamples:\n  \
cdplake audience build win_back --expr '\"At Risk\" AND \"High Value\" AND NOT channel_miniapp'\n  \
cdplake audience build engaged --expr '(\"Highly Engaged\" OR active) AND NOT Champions'"
    )]
    Build {
        /// The audience's name
        name: String,
        /// The expression: segment tags with AND, OR, NOT and parentheses
        #[arg(long)]
        expr: String,
        /// Business date of the segments [default: the latest built]
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Only count the members: store nothing
        #[arg(long)]
        count_only: bool,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Write an audience's members to a directory or file (local or s3://), as one_ids or hashed identifiers.
    #[command(
        after_help = "Refuses audiences smaller than [audiences] min_export_size (default 100).\n\nExamples:\n  \
cdplake audience export win_back --to exports/ --format csv\n  \
cdplake audience export win_back --to s3://my-bucket/exports/ --format parquet --ids email_hash"
    )]
    Export {
        /// The audience's name
        name: String,
        /// Directory (a file name is made up) or file path ending in .csv / .json / .parquet
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// Identifier written per member
        #[arg(long, value_enum, default_value_t = ExportIds::OneId)]
        ids: ExportIds,
        /// The build to export [default: the latest]
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Minimum audience size [default: [audiences] min_export_size]
        #[arg(long)]
        min_size: Option<u64>,
    },
}

pub fn audited(command: &AudienceCommand) -> Option<AuditedJob> {
    match command {
        AudienceCommand::Build { count_only: true, .. } => None,
        AudienceCommand::Build { name, expr, as_of, .. } => {
            AuditedJob::new("audience build", serde_json::json!({ "name": name, "expr": expr, "as_of": as_of }))
        }
        AudienceCommand::Export { name, to, format, ids, as_of, .. } => AuditedJob::new(
            "audience export",
            serde_json::json!({ "name": name, "to": to, "format": format!("{format:?}"), "ids": format!("{ids:?}"), "as_of": as_of }),
        ),
    }
}

pub async fn run(workspace: &Workspace, command: AudienceCommand) -> anyhow::Result<()> {
    match command {
        AudienceCommand::Build { name, expr, as_of, count_only, json } => {
            let report = if count_only {
                audience::count_audience(workspace, &name, &expr, as_of).await?
            } else {
                audience::build_audience(workspace, &name, &expr, as_of, chrono::Utc::now()).await?
            };
            if json {
                out_json!(&report);
            } else {
                out!("{}", audience::describe_report(&report));
            }
        }
        AudienceCommand::Export { name, to, format, ids, as_of, min_size } => {
            let request = ExportRequest { name, as_of, to, format, ids, min_size };
            let report = audience::export::export_audience(workspace, &request).await?;
            out!(
                "exported {} rows ({} members as of {}) to {}",
                report.rows,
                report.members,
                report.as_of,
                report.location
            );
        }
    }
    Ok(())
}
