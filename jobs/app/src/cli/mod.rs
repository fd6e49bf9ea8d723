//! The `cdplake` command line: one file per command, each parsing its arguments and calling one
//! job; this module holds the command list and runs a command inside the audit trail.

#[macro_use]
mod common;
mod audience;
mod audit;
mod bench;
mod catalog;
mod check;
mod clean;
mod config;
mod demo;
mod describe;
mod erase;
mod generate;
mod history;
mod identity;
mod ingest;
mod init;
mod lambda;
mod maintain;
mod profile;
mod profiles;
mod query;
mod report;
mod segments;
mod serve;
mod sources;
mod sync;
mod tables;

use std::path::PathBuf;

use cdplake_core::audit::{Invoker, Recorder, RowCounts};
use cdplake_core::{Config, Workspace};
use clap::{Parser, Subcommand};

use common::{AuditedJob, FormatArg};

#[derive(Parser)]
#[command(
    name = "cdplake",
    version,
    about = "A customer data platform on Delta Lake: raw, clean and curated zones on a local disk or S3.",
    long_about = "cdplake lands customer data in Delta Lake tables (raw → clean → curated), on a local \
directory or on S3 / any S3-compatible server, and answers SQL over them.\n\n\
Start with `cdplake demo`, then `cdplake tables` and `cdplake query \"SELECT ...\"`.\n\n\
S3: set AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (and AWS_ALLOW_HTTP=true \
for a plain-HTTP local server) and pass --lake s3://bucket/prefix.",
    after_help = "Examples:\n  cdplake demo\n  cdplake --lake s3://lake/cdp tables\n  cdplake query \"SELECT * FROM clean.customers LIMIT 5\" --format csv\n\n\
Exit codes:\n  0  done\n  1  failed: the message names what (file, row, field, table) and a hint says what to do\n  \
2  wrong usage (an unknown flag, a missing argument)\n  3  ran, but nothing usable came out: every row of a source \
quarantined, an export of 0 rows, an event mapping that matched nothing"
)]
pub struct Cli {
    /// Lake root: a local directory or s3://bucket/prefix [default: ./lake, or lake.root in cdplake.toml]
    #[arg(long, global = true, env = "CDPLAKE_LAKE", value_name = "URL")]
    pub lake: Option<String>,

    /// Configuration file [default: ./cdplake.toml when it exists]
    #[arg(long, global = true, env = "CDPLAKE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Memory a job's queries may hold together, e.g. 2GiB or 512MiB; beyond it they spill to
    /// --spill-dir [default: [engine] memory_limit in cdplake.toml, else half the machine's memory]
    #[arg(long, global = true, env = "CDPLAKE_MEMORY_LIMIT", value_name = "SIZE")]
    pub memory_limit: Option<String>,

    /// Directory for spill files [default: [engine] spill_dir, else the system temp directory]
    #[arg(long, global = true, env = "CDPLAKE_SPILL_DIR", value_name = "DIR")]
    pub spill_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create the lake and its catalog (idempotent), and check it can be written.
    #[command(after_help = "Example:\n  cdplake --lake s3://lake/cdp init")]
    Init,

    /// Run the demo on built-in sample data: generate seed-style files into landing/, ingest, clean, query.
    #[command(
        after_help = "Runs on ./lake unless --lake says otherwise; running it again changes nothing.\n\nExamples:\n  cdplake demo\n  cdplake query \"SELECT * FROM clean.crm_members LIMIT 5\"\n  cdplake query \"SELECT source, rule, count(*) FROM clean._quarantine GROUP BY source, rule\""
    )]
    Demo(FormatArg),

    /// Write the demo's sources at any scale, plus the hidden ground truth (truth.csv, truth_edges.csv).
    Generate(generate::GenerateArgs),

    /// List the tables in the catalog.
    #[command(after_help = "Example:\n  cdplake tables --format json")]
    Tables(FormatArg),

    /// Show a table's definition: location, keys, PII columns, columns and types.
    Describe(describe::DescribeArgs),

    /// Show a table's commits (newest first): version, time, operation, metrics.
    History(history::HistoryArgs),

    /// Run SQL over the lake; every table is `zone.table` (e.g. clean.customers).
    Query(query::QueryArgs),

    /// Build unified events and customer profiles (RFM, segments, lifecycle) as of a date, incrementally.
    Profiles(profiles::ProfilesArgs),

    /// Build one Roaring bitmap per segment (RFM, lifecycle, engagement, monetary, channels, [segments.custom]).
    Segments(segments::SegmentsArgs),

    /// Audiences: expressions over segment bitmaps, their members, changes and exports.
    #[command(subcommand)]
    Audience(audience::AudienceCommand),

    /// Run a Lambda handler locally on an event file (the same code the deployed functions run).
    #[command(subcommand)]
    Lambda(lambda::LambdaCommand),

    /// Benchmark helpers (see benches/).
    #[command(subcommand, hide = true)]
    Bench(bench::BenchCommand),

    /// Append source files to raw.SOURCE exactly as received, with lineage; replays are no-ops.
    Ingest(ingest::IngestArgs),

    /// Clean raw batches not cleaned yet: typed, normalised, PII hashed, upserted by key.
    Clean(clean::CleanArgs),

    /// Stitch identifiers into persons: curated.id_mapping (one_id per identifier), incrementally.
    Identity(identity::IdentityArgs),

    /// Check cdplake.toml, and what a source's contract would do to files (nothing is written).
    Check(check::CheckArgs),

    /// The configuration file itself: its JSON schema for editors.
    #[command(subcommand)]
    Config(config::ConfigCommand),

    /// List the sources: built-in presets and those in cdplake.toml.
    #[command(after_help = "Example:\n  cdplake sources --format json")]
    Sources(FormatArg),

    /// Catalog maintenance: Athena DDL, Glue tables for the deployment template, dropping tables.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),

    /// Compact, Z-order, vacuum (change data too), checkpoint and clean the log of tables; enforce row retention.
    Maintain(maintain::MaintainArgs),

    /// Erase a person from the whole lake (right to erasure), provably.
    Erase(erase::EraseArgs),

    /// List job runs from the audit trail (_audit.job_runs), newest first.
    Audit(audit::AuditArgs),

    /// Look a person up by any identifier: profile, identifiers, segments, audiences, latest events.
    #[command(subcommand)]
    Profile(profile::ProfileCommand),

    /// Serve profile look-ups over HTTP from an in-memory index (read-only).
    Serve(serve::ServeArgs),

    /// Write curated tables back to PostgreSQL (the first run copies, later runs apply what changed).
    #[command(subcommand)]
    Sync(sync::SyncCommand),

    /// Write a self-contained HTML report with charts (no network needed to open it).
    Report(report::ReportArgs),
}

/// Run the command; a job's run is recorded in _audit.job_runs (reads such as tables, query and
/// audit are not jobs).
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // `config schema` and `check` need the configuration only, not a lake.
    match cli.command {
        Command::Config(command) => return config::run(&command),
        Command::Check(args) => return check::run(cli.config.as_deref(), args).await,
        _ => {}
    }
    let config = Config::load(cli.config.as_deref())?;
    let budget =
        config.engine.budget(cli.memory_limit.as_deref(), cli.spill_dir.clone()).map_err(anyhow::Error::msg)?;
    cdplake_engine::memory::install(budget)?;
    let workspace = Workspace::open_with(config, cli.lake.as_deref()).await?;
    let recorder = match audited(&cli.command) {
        Some(AuditedJob { job, arguments }) => {
            Some(Recorder::start(&workspace, Invoker::cli(), job, arguments, chrono::Utc::now()).await)
        }
        None => None,
    };
    let mut rows = RowCounts::default();
    let result = dispatch(&workspace, cli.command, &mut rows).await;
    if let Some(recorder) = recorder {
        recorder.finish(&workspace, rows, result.as_ref().err().map(super::errors::describe)).await;
    }
    result
}

/// The job a command runs and its arguments as the audit trail keeps them.
fn audited(command: &Command) -> Option<AuditedJob> {
    match command {
        Command::Init => AuditedJob::new("init", serde_json::json!({})),
        Command::Demo(_) => AuditedJob::new("demo", serde_json::json!({})),
        Command::Ingest(args) => ingest::audited(args),
        Command::Clean(args) => clean::audited(args),
        Command::Identity(args) => identity::audited(args),
        Command::Profiles(args) => profiles::audited(args),
        Command::Segments(args) => segments::audited(args),
        Command::Audience(command) => audience::audited(command),
        Command::Maintain(args) => maintain::audited(args),
        Command::Erase(args) => erase::audited(args),
        Command::Catalog(command) => catalog::audited(command),
        _ => None,
    }
}

async fn dispatch(workspace: &Workspace, command: Command, rows: &mut RowCounts) -> anyhow::Result<()> {
    match command {
        Command::Init => init::run(workspace).await,
        Command::Demo(format) => demo::run(workspace, format).await,
        Command::Generate(args) => generate::run(args),
        Command::Tables(format) => tables::run(workspace, format).await,
        Command::Describe(args) => describe::run(workspace, args).await,
        Command::History(args) => history::run(workspace, args).await,
        Command::Query(args) => query::run(workspace, args).await,
        Command::Profiles(args) => profiles::run(workspace, args, rows).await,
        Command::Segments(args) => segments::run(workspace, args).await,
        Command::Audience(command) => audience::run(workspace, command).await,
        Command::Lambda(command) => lambda::run(workspace, command).await,
        Command::Bench(command) => bench::run(workspace, command).await,
        Command::Ingest(args) => ingest::run(workspace, args, rows).await,
        Command::Clean(args) => clean::run(workspace, args, rows).await,
        Command::Identity(args) => identity::run(workspace, args, rows).await,
        Command::Check(_) | Command::Config(_) => unreachable!("handled before the lake is opened"),
        Command::Sources(format) => sources::run(workspace, format),
        Command::Catalog(command) => catalog::run(workspace, command).await,
        Command::Maintain(args) => maintain::run(workspace, args).await,
        Command::Erase(args) => erase::run(workspace, args, rows).await,
        Command::Audit(args) => audit::run(workspace, args).await,
        Command::Profile(command) => profile::run(workspace, command).await,
        Command::Serve(args) => serve::run(workspace, args).await,
        Command::Sync(command) => sync::run(workspace, command).await,
        Command::Report(args) => report::run(workspace, args).await,
    }
}
