//! `cdplake sync postgres`: curated tables written back to PostgreSQL.

use cdplake_core::Workspace;
use cdplake_engine::TableId;
use cdplake_serving::sync::{SyncOptions, describe_report, sync_postgres};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Copy curated tables into PostgreSQL and keep them in step with the lake.
    #[command(
        after_help = "Each table becomes ZONE.TABLE in PostgreSQL (or SCHEMA.TABLE with --schema), with the lake's \
columns and types and the catalog's primary key. The first run loads it with binary COPY; later runs apply only \
the rows that changed since the Delta version recorded in cdplake_sync_state (upserts, and deletes for rows \
gone from the lake, erased persons included), in the same PostgreSQL transaction as the new version: a sync \
that dies half-way leaves the previous state, and the next run redoes it. A table whose columns changed is \
reloaded whole. The row count in PostgreSQL is checked against the lake's before committing.\n\nExamples:\n  \
cdplake sync postgres --url postgres://cdp@127.0.0.1:5432/marketing\n  \
cdplake sync postgres --url 'host=db.internal user=cdp dbname=marketing' --table curated.customer_profiles --table curated.audience_packages"
    )]
    Postgres {
        /// Connection string: postgres://USER[:PASSWORD]@HOST[:PORT]/DB or 'host=... user=... dbname=...'
        #[arg(long, env = "CDPLAKE_SYNC_URL")]
        url: String,
        /// Tables to sync, as ZONE.TABLE [default: curated.customer_profiles and curated.audience_packages]
        #[arg(long = "table")]
        tables: Vec<TableId>,
        /// PostgreSQL schema for every table [default: the table's zone]
        #[arg(long)]
        schema: Option<String>,
        /// Reload every table whole
        #[arg(long)]
        full: bool,
        /// Print the reports as JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(workspace: &Workspace, command: SyncCommand) -> anyhow::Result<()> {
    let SyncCommand::Postgres { url, tables, schema, full, json } = command;
    let options = SyncOptions { url, tables, schema, full, ..Default::default() };
    let reports = sync_postgres(workspace, &options, chrono::Utc::now()).await?;
    if json {
        out_json!(&reports);
    } else {
        for r in &reports {
            out!("{}", describe_report(r));
        }
    }
    Ok(())
}
