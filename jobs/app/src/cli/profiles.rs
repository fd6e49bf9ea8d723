//! `cdplake profiles`: unified events and customer profiles as of a date.

use cdplake_core::Workspace;
use cdplake_core::audit::{JobReport, RowCounts};
use clap::Args;

use super::common::AuditedJob;

#[derive(Args)]
#[command(
    after_help = "Recomputes only the persons touched since the last run (new events, identity merges and splits, \
new CRM rows); a new --as-of date recomputes everyone. Quality rules ([quality] in cdplake.toml) run before \
publishing: a failed rule keeps the previous version and exits non-zero unless --force.\n\nExamples:\n  \
cdplake profiles --as-of 2011-12-10\n  \
cdplake query \"SELECT rfm_segment, count(*) FROM curated.customer_profiles GROUP BY rfm_segment\"\n  \
cdplake query \"SELECT * FROM curated.customer_profiles_daily WHERE dt = '2011-12-10' LIMIT 5\""
)]
pub struct ProfilesArgs {
    /// Business date the profiles are computed as of (YYYY-MM-DD) [default: today, UTC]
    #[arg(long)]
    as_of: Option<chrono::NaiveDate>,
    /// Recompute every event and profile from the clean tables
    #[arg(long)]
    full: bool,
    /// Publish even when a quality rule fails (the failure is still recorded)
    #[arg(long)]
    force: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn audited(args: &ProfilesArgs) -> Option<AuditedJob> {
    AuditedJob::new("profiles", serde_json::json!({ "as_of": args.as_of, "full": args.full, "force": args.force }))
}

pub async fn run(workspace: &Workspace, args: ProfilesArgs, rows: &mut RowCounts) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let options = cdplake_profiles::RefreshOptions {
        as_of: args.as_of.unwrap_or_else(|| now.date_naive()),
        full: args.full,
        force: args.force,
    };
    let report = cdplake_profiles::refresh(workspace, &options, now).await?;
    *rows = report.row_counts();
    if args.json {
        out_json!(&report);
    } else {
        out!("{}", cdplake_profiles::describe_report(&report));
    }
    Ok(())
}
