//! `cdplake catalog ...`: Athena DDL, Glue tables for the deployment template, dropping tables.

use anyhow::{Context, bail};
use cdplake_catalog::{athena_ddl, glue_table_resources};
use cdplake_core::Workspace;
use cdplake_engine::TableId;
use clap::Subcommand;

use super::common::AuditedJob;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// Print Athena DDL: one CREATE EXTERNAL TABLE ... TBLPROPERTIES ('table_type'='DELTA') per table.
    #[command(after_help = "Athena reads each table's schema from its Delta log, so the DDL has no column list. \
A table `zone.table` becomes `zone_table` in the database.\n\nExamples:\n  cdplake --lake s3://my-bucket/cdp catalog export-athena --database cdp\n  cdplake catalog export-athena --database cdp --location-root s3://my-bucket/cdp")]
    ExportAthena {
        /// The Athena (Glue) database to create the tables in
        #[arg(long)]
        database: String,
        /// The S3 root the tables will be read from [default: the lake root, when it is on S3]
        #[arg(long, value_name = "S3_URI")]
        location_root: Option<String>,
    },

    /// Print CloudFormation Glue tables (one per table) for the Resources of infra/template.yaml.
    #[command(
        after_help = "The output replaces the block between `# BEGIN cdplake catalog export-glue` and `# END ...` \
in infra/template.yaml, which holds the demo pipeline's tables; regenerate it after adding sources so Athena \
sees their raw and clean tables.\n\nExample:\n  cdplake catalog export-glue > glue-tables.yaml"
    )]
    ExportGlue,

    /// Remove a table from the catalog; with --purge also delete its files.
    #[command(after_help = "Example:\n  cdplake catalog drop clean.customers --purge")]
    Drop {
        /// The table, as ZONE.TABLE
        table: TableId,
        /// Delete the table's data and log too (cannot be undone)
        #[arg(long)]
        purge: bool,
    },
}

pub fn audited(command: &CatalogCommand) -> Option<AuditedJob> {
    match command {
        CatalogCommand::Drop { table, purge } => {
            AuditedJob::new("catalog drop", serde_json::json!({ "table": table.to_string(), "purge": purge }))
        }
        _ => None,
    }
}

pub async fn run(workspace: &Workspace, command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::ExportAthena { database, location_root } => {
            let root = athena_root(workspace, location_root)?;
            let entries = workspace.catalog.list().await?;
            out!("{}", athena_ddl(&database, &root, &entries).trim_end());
        }
        CatalogCommand::ExportGlue => {
            out!("{}", glue_table_resources(&workspace.catalog.list().await?).trim_end());
        }
        CatalogCommand::Drop { table, purge } => {
            workspace.catalog.drop_table(&table, purge).await.with_context(|| format!("dropping {table}"))?;
            out!("dropped {table}{}", if purge { " and deleted its files" } else { " (files kept)" });
        }
    }
    Ok(())
}

/// The S3 root Athena reads the tables from: the given one, else the lake's when it is on S3.
fn athena_root(workspace: &Workspace, location_root: Option<String>) -> anyhow::Result<String> {
    let root = match location_root {
        Some(root) => root,
        None if workspace.lake().location().is_s3() => workspace.lake().location().root().to_string(),
        None => bail!(
            "the lake is at {}, which Athena cannot read; pass --location-root s3://bucket/prefix \
             (where the lake is or will be copied)",
            workspace.lake().location().root()
        ),
    };
    if !root.starts_with("s3://") {
        bail!("--location-root must be an s3:// URI, got {root}");
    }
    Ok(root)
}
