//! `cdplake maintain`: compact, Z-order, vacuum, checkpoint; row retention; S3 lifecycle rules.

use anyhow::bail;
use cdplake_core::Workspace;
use cdplake_core::audit::Invoker;
use cdplake_engine::TableId;
use cdplake_operations::{lifecycle, maintain};
use clap::Args;

use super::common::AuditedJob;

#[derive(Args)]
#[command(
    after_help = "Each table keeps the history of its zone ([retention] history_days: raw 30 days, clean and curated 7): files replaced earlier are deleted, newer ones kept for time travel. Small files are compacted to [maintenance] target_file_mb; curated.id_mapping is Z-ordered by id_value and curated.customer_profiles by one_id. PII columns are kept out of Delta statistics. Raw rows older than [retention] raw_days are deleted (an audit row each). Safe beside running jobs: a conflicting commit is rerun, never lost. The daily schedule runs it last.

Examples:
  cdplake maintain --dry-run
  cdplake maintain curated.id_mapping _catalog.tables
  cdplake maintain --lifecycle-rules   # the S3 lifecycle block of infra/template.yaml
  cdplake --lake s3://bucket/cdp maintain --apply-lifecycle"
)]
pub struct MaintainArgs {
    /// Only these tables, as ZONE.TABLE [default: every table, and the catalog]
    tables: Vec<TableId>,
    /// Report what would be done; change nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the archival rules (S3 lifecycle) generated from [retention] for infra/template.yaml, and stop
    #[arg(long)]
    lifecycle_rules: bool,
    /// Put the archival rules on the lake's bucket, keeping its other rules, and stop (S3 only; what the server refuses is reported)
    #[arg(long)]
    apply_lifecycle: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

pub fn audited(args: &MaintainArgs) -> Option<AuditedJob> {
    if args.apply_lifecycle {
        return AuditedJob::new("maintain --apply-lifecycle", serde_json::json!({}));
    }
    if args.lifecycle_rules {
        return None;
    }
    let tables: Vec<String> = args.tables.iter().map(|t| t.to_string()).collect();
    AuditedJob::new("maintain", serde_json::json!({ "tables": tables, "dry_run": args.dry_run }))
}

pub async fn run(workspace: &Workspace, args: MaintainArgs) -> anyhow::Result<()> {
    if args.lifecycle_rules {
        out!("{}", lifecycle::template_block(&workspace.config.retention).trim_end());
        return Ok(());
    }
    if args.apply_lifecycle {
        return apply_lifecycle(workspace, args.json).await;
    }
    let request = maintain::MaintainRequest { tables: args.tables, dry_run: args.dry_run };
    let report = maintain::maintain(workspace, &request, &Invoker::cli(), chrono::Utc::now()).await?;
    if args.json {
        out_json!(&report);
    } else {
        out!("{}", maintain::describe_report(&report).trim_end());
    }
    Ok(())
}

async fn apply_lifecycle(workspace: &Workspace, json: bool) -> anyhow::Result<()> {
    let applied = lifecycle::apply(workspace.lake().location(), &workspace.config.retention).await?;
    if json {
        out_json!(&applied);
    } else {
        out!("{}", lifecycle::describe_report(&applied).trim_end());
    }
    if applied.applied.is_empty() {
        bail!("the S3 server took none of cdplake's lifecycle rules (listed above)");
    }
    Ok(())
}
