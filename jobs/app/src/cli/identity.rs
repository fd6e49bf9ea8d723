//! `cdplake identity`: stitch identifiers into persons; report, explain and unlink.

use cdplake_core::Workspace;
use cdplake_core::audit::{self, JobReport, RowCounts};
use cdplake_identity::explain::{self, Explanation, parse_identifier};
use cdplake_identity::unlink;
use clap::{Args, Subcommand};

use super::common::AuditedJob;

#[derive(Args)]
#[command(
    after_help = "Reads every version of the rows clean has applied since the last run (a CRM member's old email \
still links), keeps placeholders (guest, N/A, test@test.com, all-zero ids, their hashes) and hubs (an identifier \
linked to more values of a type than one person may hold, [identity.types.TYPE] limit) out, refuses links that \
would give a person more values of a type than its limit (curated.identity_conflicts), and MERGEs only the changed \
identifiers. first_seen/last_seen are the rows' business times; the oldest one_id survives a merge \
(curated.id_merge_history).\n\nExamples:\n  cdplake identity\n  cdplake identity report\n  \
cdplake query \"SELECT one_id, count(*) FROM curated.id_mapping GROUP BY one_id ORDER BY 2 DESC LIMIT 5\""
)]
pub struct IdentityArgs {
    #[command(subcommand)]
    action: Option<IdentityAction>,
    /// Print the report as JSON
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum IdentityAction {
    /// What to check before trusting the graph: persons by size, the largest persons, the
    /// highest-degree identifiers not flagged, hubs, refused links and values skipped by rule.
    #[command(
        after_help = "Read-only. A person with dozens of identifiers, or a high-degree identifier that is not a hub, is \
where strangers may be glued together: look at it with `cdplake identity explain`, then add the value to \
[identity] blocklist or tighten [identity.types.TYPE] limit.\n\nExamples:\n  cdplake identity report\n  \
cdplake identity report --top 20 --json"
    )]
    Report {
        /// Rows per list (largest persons, degrees, hubs, skipped values)
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Show a person: their one_id, every identifier, and the link (with its source row) that joined each.
    #[command(after_help = "Example:\n  cdplake identity explain member_id:MBR0000001")]
    Explain {
        /// The identifier, as ID_TYPE:VALUE
        identifier: String,
    },
    /// Undo a bad merge: the link between A and B, or with A alone every link of A.
    #[command(
        after_help = "Only the person A belongs to is re-stitched: the largest part keeps the one_id, the others become \
new persons (curated.id_merge_history, action 'split'). Undone links are never used again.\n\nExamples:\n  \
cdplake identity unlink device_id:KIOSK-7 member_id:MBR0000042\n  cdplake identity unlink email_hash:5e88..."
    )]
    Unlink {
        /// ID_TYPE:VALUE
        a: String,
        /// ID_TYPE:VALUE [default: every link of A]
        b: Option<String>,
    },
}

pub fn audited(args: &IdentityArgs) -> Option<AuditedJob> {
    match &args.action {
        None => AuditedJob::new("identity", serde_json::json!({})),
        Some(IdentityAction::Unlink { a, b }) => AuditedJob::new(
            "identity unlink",
            serde_json::json!({ "a": audit::hashed_identifier(a), "b": b.as_deref().map(audit::hashed_identifier) }),
        ),
        Some(_) => None,
    }
}

pub async fn run(
    workspace: &Workspace,
    IdentityArgs { action, json }: IdentityArgs,
    rows: &mut RowCounts,
) -> anyhow::Result<()> {
    match action {
        None => {
            let report = cdplake_identity::resolve(workspace, chrono::Utc::now()).await?;
            *rows = report.row_counts();
            if json {
                out_json!(&report);
            } else {
                out!("{}", cdplake_identity::describe_report(&report));
            }
        }
        Some(IdentityAction::Report { top }) => {
            let health = cdplake_identity::report::health(workspace, top).await?;
            if json {
                out_json!(&health);
            } else {
                out!("{}", cdplake_identity::report::describe(&health));
            }
        }
        Some(IdentityAction::Explain { identifier }) => {
            let explanation = explain::explain(workspace, &parse_identifier(&identifier)?).await?;
            if json {
                out_json!(&explanation);
            } else {
                print_explanation(&explanation)?;
            }
        }
        Some(IdentityAction::Unlink { a, b }) => unlink(workspace, &a, b.as_deref(), json).await?,
    }
    Ok(())
}

fn print_explanation(explanation: &Explanation) -> anyhow::Result<()> {
    out!(
        "{} (user_int_id {}): {} identifiers",
        explanation.one_id,
        explanation.user_int_id,
        explanation.identifiers.len()
    );
    for step in &explanation.identifiers {
        match (&step.via, &step.evidence) {
            (Some(via), Some(evidence)) => out!("  {}:{}  ← {via}  ({evidence})", step.id_type, step.id_value),
            (None, Some(evidence)) => out!("  {}:{}  ({evidence})", step.id_type, step.id_value),
            _ => out!("  {}:{}", step.id_type, step.id_value),
        }
    }
    Ok(())
}

async fn unlink(workspace: &Workspace, a: &str, b: Option<&str>, json: bool) -> anyhow::Result<()> {
    let a = parse_identifier(a)?;
    let b = b.map(parse_identifier).transpose()?;
    let report = unlink::unlink(workspace, &a, b.as_ref(), chrono::Utc::now()).await?;
    if json {
        out_json!(&report);
    } else if report.parts == 1 {
        out!("{} is still one person (other links hold it together); the link will not be used again", report.one_id);
    } else {
        out!(
            "{} split into {} parts: it keeps the largest; new persons {}",
            report.one_id,
            report.parts,
            report.new_one_ids.join(", ")
        );
    }
    Ok(())
}
