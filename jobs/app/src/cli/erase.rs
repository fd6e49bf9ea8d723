//! `cdplake erase`: a person out of the whole lake, provably.

use anyhow::bail;
use cdplake_core::Workspace;
use cdplake_core::audit::{self, JobReport, RowCounts};
use cdplake_operations::erase;
use clap::Args;

use super::common::AuditedJob;

#[derive(Args)]
#[command(
    after_help = "The person is found through curated.id_mapping (email: and phone: take plaintext, hashed as clean does); every identifier of theirs, in every form, is deleted from every zone and table (raw rows too, bitmaps, audience packages), each touched table is vacuumed at zero retention and its old log deleted, landing files holding them are removed, and every object under the lake root is scanned: the report says how many still hold a form (0). The identifiers go to a suppression list (keyed hashes) that ingest and clean honour, so a replay cannot bring the person back. _audit.erasures records when, why, tables and versions (keyed hashes only). Run it while no other job writes. Exits 1 when the scan still finds a form.

Examples:
  cdplake erase email:jane@example.com --reason 'GDPR request #123'
  cdplake erase member_id:MBR0000042"
)]
pub struct EraseArgs {
    /// The person, as ID_TYPE:VALUE (any id type of curated.id_mapping, or email:/phone: in plaintext)
    identifier: String,
    /// Why (recorded in _audit.erasures; write no personal data here)
    #[arg(long)]
    reason: Option<String>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn audited(args: &EraseArgs) -> Option<AuditedJob> {
    AuditedJob::new(
        "erase",
        serde_json::json!({ "identifier": audit::hashed_identifier(&args.identifier), "reason_given": args.reason.is_some() }),
    )
}

pub async fn run(workspace: &Workspace, args: EraseArgs, rows: &mut RowCounts) -> anyhow::Result<()> {
    let (id_type, value) = cdplake_identity::explain::parse_identifier(&args.identifier)?;
    let report = erase::erase(workspace, &id_type, &value, args.reason.as_deref(), chrono::Utc::now()).await?;
    *rows = report.row_counts();
    if args.json {
        out_json!(&report);
    } else {
        out!("{}", erase::describe_report(&report));
    }
    if !report.matches_after.is_empty() {
        bail!(
            "{} objects still hold a form of the person's identifiers (listed above); nothing was hidden",
            report.matches_after.len()
        );
    }
    Ok(())
}
