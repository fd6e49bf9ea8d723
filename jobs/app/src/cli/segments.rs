//! `cdplake segments`: one Roaring bitmap per segment.

use cdplake_core::Workspace;
use cdplake_profiles::segments;
use clap::Args;

use super::common::AuditedJob;

#[derive(Args)]
#[command(
    after_help = "Reads the profiles as of the date from curated.customer_profiles_daily and replaces that date's rows \
of curated.segment_bitmaps (one row per segment); curated.ads_user_bitmap (seed 001's table) gets the same bitmaps.\n\n\
Examples:\n  cdplake segments\n  \
cdplake query \"SELECT segment_tag, bitmap_count(user_bitmap) FROM curated.ads_user_bitmap ORDER BY 2 DESC\""
)]
pub struct SegmentsArgs {
    /// Business date (YYYY-MM-DD) [default: the as-of date of curated.customer_profiles]
    #[arg(long)]
    as_of: Option<chrono::NaiveDate>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn audited(args: &SegmentsArgs) -> Option<AuditedJob> {
    AuditedJob::new("segments", serde_json::json!({ "as_of": args.as_of }))
}

pub async fn run(workspace: &Workspace, SegmentsArgs { as_of, json }: SegmentsArgs) -> anyhow::Result<()> {
    let report = segments::build_segments(workspace, as_of, chrono::Utc::now()).await?;
    if json {
        out_json!(&report);
    } else {
        out!("{}", segments::describe_report(&report));
    }
    Ok(())
}
