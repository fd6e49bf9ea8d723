//! The `cdplake` command line: parses arguments and calls the jobs; no logic of its own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use cdplake_catalog::{athena_ddl, glue_table_resources};
use cdplake_engine::{EngineError, TableId};
use cdplake_app::bench::bitmaps::Layout;
use cdplake_app::{demo, init, lambda};
use cdplake_core::output::{Format, format_batches};
use cdplake_core::{JobError, Workspace, audit, query};
use cdplake_ingest::{clean, ingest};
use cdplake_operations::{erase, lifecycle, maintain};
use cdplake_profiles::audience::export::{ExportFormat, ExportIds, ExportRequest};
use cdplake_profiles::{audience, segments};
use cdplake_serving::inspect;
use clap::{Args, Parser, Subcommand};

/// Warnings only. The Delta kernel logs a missing table as an error although cdplake expects
/// (and reports) it, e.g. on a lake's first use.
/// delta-rs's merge warns about a metric name on every MERGE; that is noise to a user.
use cdplake_core::output::DEFAULT_LOG;

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
struct Cli {
    /// Lake root: a local directory or s3://bucket/prefix [default: ./lake, or lake.root in cdplake.toml]
    #[arg(long, global = true, env = "CDPLAKE_LAKE", value_name = "URL")]
    lake: Option<String>,

    /// Configuration file [default: ./cdplake.toml when it exists]
    #[arg(long, global = true, env = "CDPLAKE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Copy)]
struct FormatArg {
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Create the lake and its catalog (idempotent), and check it can be written.
    #[command(after_help = "Example:\n  cdplake --lake s3://lake/cdp init")]
    Init,

    /// Run the demo on built-in sample data: generate seed-style files into landing/, ingest, clean, query.
    #[command(
        after_help = "Runs on ./lake unless --lake says otherwise; running it again changes nothing.\n\nExamples:\n  cdplake demo\n  cdplake query \"SELECT * FROM clean.crm_members LIMIT 5\"\n  cdplake query \"SELECT source, rule, count(*) FROM clean._quarantine GROUP BY source, rule\""
    )]
    Demo(FormatArg),

    /// Write the demo's sources at any scale, plus the hidden ground truth (truth.csv, truth_edges.csv).
    #[command(
        after_help = "Example:\n  cdplake generate --persons 100000 --out /tmp/cdp-data\n  cdplake ingest --source customers /tmp/cdp-data/customers/customers.csv"
    )]
    Generate {
        /// How many people
        #[arg(long, default_value_t = 1000)]
        persons: u64,
        /// Seed of the deterministic generator
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Directory to write <source>/<file>, truth.csv (owner of every identifier) and
        /// truth_edges.csv (two identifiers of one person on one row) into
        #[arg(long)]
        out: PathBuf,
    },

    /// List the tables in the catalog.
    #[command(after_help = "Example:\n  cdplake tables --format json")]
    Tables(FormatArg),

    /// Show a table's definition: location, keys, PII columns, columns and types.
    #[command(after_help = "Example:\n  cdplake describe clean.customers")]
    Describe {
        /// The table, as ZONE.TABLE
        table: TableId,
        #[command(flatten)]
        format: FormatArg,
    },

    /// Show a table's commits (newest first): version, time, operation, metrics.
    #[command(after_help = "Example:\n  cdplake history clean.customers --limit 5")]
    History {
        /// The table, as ZONE.TABLE
        table: TableId,
        /// Show at most this many commits
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        format: FormatArg,
    },

    /// Run SQL over the lake; every table is `zone.table` (e.g. clean.customers).
    #[command(
        after_help = "Examples:\n  cdplake query \"SELECT country, count(*) FROM clean.customers GROUP BY country\"\n  cdplake query \"SELECT * FROM _catalog.tables\" --format json"
    )]
    Query {
        /// One SQL statement (DataFusion SQL; identifiers are case-insensitive)
        sql: String,
        #[command(flatten)]
        format: FormatArg,
    },

    /// Build unified events and customer profiles (RFM, segments, lifecycle) as of a date, incrementally.
    #[command(
        after_help = "Recomputes only the persons touched since the last run (new events, identity merges and splits, \
new CRM rows); a new --as-of date recomputes everyone. Quality rules ([quality] in cdplake.toml) run before \
publishing: a failed rule keeps the previous version and exits non-zero unless --force.\n\nExamples:\n  \
cdplake profiles --as-of 2011-12-10\n  \
cdplake query \"SELECT rfm_segment, count(*) FROM curated.customer_profiles GROUP BY rfm_segment\"\n  \
cdplake query \"SELECT * FROM curated.customer_profiles_daily WHERE dt = '2011-12-10' LIMIT 5\""
    )]
    Profiles {
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
    },

    /// Build one Roaring bitmap per segment (RFM, lifecycle, engagement, monetary, channels, [segments.custom]).
    #[command(
        after_help = "Reads the profiles as of the date from curated.customer_profiles_daily and replaces that date's rows \
of curated.segment_bitmaps (one row per segment); curated.ads_user_bitmap (seed 001's table) gets the same bitmaps.\n\n\
Examples:\n  cdplake segments\n  \
cdplake query \"SELECT segment_tag, bitmap_count(user_bitmap) FROM curated.ads_user_bitmap ORDER BY 2 DESC\""
    )]
    Segments {
        /// Business date (YYYY-MM-DD) [default: the as-of date of curated.customer_profiles]
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },

    /// Audiences: expressions over segment bitmaps, their members, changes and exports.
    #[command(subcommand)]
    Audience(AudienceCommand),

    /// Run a Lambda handler locally on an event file (the same code the deployed functions run).
    #[command(subcommand)]
    Lambda(LambdaCommand),

    /// Benchmark helpers (see benches/).
    #[command(subcommand, hide = true)]
    Bench(BenchCommand),

    /// Append source files to raw.SOURCE exactly as received, with lineage; replays are no-ops.
    #[command(
        after_help = "With no PATH, ingests every file under <lake>/landing/SOURCE/. Files may be CSV, JSON lines \
or Parquet, gzipped or not; the format follows the file name, else the source's.\n\nExamples:\n  \
cdplake ingest --source retail_transactions ../shared/data/online_retail.csv\n  \
cdplake ingest --source crm_members s3://my-bucket/landing/crm_members/2024-05-01.json.gz\n  \
cdplake sources   # the built-in and configured sources"
    )]
    Ingest {
        /// The source the files belong to (see `cdplake sources`)
        #[arg(long)]
        source: String,
        /// Local paths or s3:// URIs [default: everything under landing/SOURCE/]
        paths: Vec<String>,
        /// Print the reports as JSON
        #[arg(long)]
        json: bool,
    },

    /// Clean raw batches not cleaned yet: typed, normalised, PII hashed, upserted by key.
    #[command(after_help = "Rejected rows and duplicates go to clean._quarantine with the reason; the report \
reconciles rows read = kept + duplicates + quarantined. When every row of a source went to the quarantine, \
clean exits with code 3: fix the contract in cdplake.toml (a type, a date format) and run \
`cdplake clean --reprocess --source NAME`.\n\nExamples:\n  cdplake clean\n  \
cdplake clean --source crm_members --json\n  cdplake clean --reprocess --source cdnow\n  \
cdplake query \"SELECT rule, count(*) FROM clean._quarantine GROUP BY rule\"")]
    Clean {
        /// Only this source [default: every source with a raw table]
        #[arg(long)]
        source: Option<String>,
        /// Rebuild the source's clean table and quarantine rows from every raw batch under the
        /// current contract (after changing it in cdplake.toml); identity and profiles read the
        /// source again on their next run
        #[arg(long, requires = "source")]
        reprocess: bool,
        /// Print the reports as JSON
        #[arg(long)]
        json: bool,
    },

    /// Stitch identifiers into persons: curated.id_mapping (one_id per identifier), incrementally.
    #[command(
        after_help = "Reads every version of the rows clean has applied since the last run (a CRM member's old email \
still links), keeps placeholders (guest, N/A, test@test.com, all-zero ids, their hashes) and hubs (an identifier \
linked to more values of a type than one person may hold, [identity.types.TYPE] limit) out, refuses links that \
would give a person more values of a type than its limit (curated.identity_conflicts), and MERGEs only the changed \
identifiers. first_seen/last_seen are the rows' business times; the oldest one_id survives a merge \
(curated.id_merge_history).\n\nExamples:\n  cdplake identity\n  cdplake identity report\n  \
cdplake query \"SELECT one_id, count(*) FROM curated.id_mapping GROUP BY one_id ORDER BY 2 DESC LIMIT 5\""
    )]
    Identity {
        #[command(subcommand)]
        action: Option<IdentityAction>,
        /// Print the report as JSON
        #[arg(long, global = true)]
        json: bool,
    },

    /// Check cdplake.toml, and what a source's contract would do to files (nothing is written).
    #[command(after_help = "Without files: validates cdplake.toml (unknown keys, column types, formats, time zones, \
identity limits) and lists what it defines. With --source and files: reads each file as `ingest` would and applies \
the contract to the first --sample rows as `clean` would: rows kept and quarantined (by rule, with examples), \
values kept as null, identifier columns and their placeholders. Exits 3 when no row would be kept.\n\n\
Examples:\n  cdplake check\n  cdplake check --source cdnow data/CDNOW_master.csv\n  \
cdplake check --source customers landing/customers/*.csv --sample 5000 --json")]
    Check {
        /// The source whose contract to apply to FILE
        #[arg(long, requires = "files")]
        source: Option<String>,
        /// Files to dry-run (local paths)
        files: Vec<PathBuf>,
        /// Rows per file to check
        #[arg(long, default_value_t = 1000)]
        sample: usize,
        /// Print the checks as JSON
        #[arg(long)]
        json: bool,
    },

    /// The configuration file itself: its JSON schema for editors.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// List the sources: built-in presets and those in cdplake.toml.
    #[command(after_help = "Example:\n  cdplake sources --format json")]
    Sources(FormatArg),

    /// Catalog maintenance: Athena DDL, Glue tables for the deployment template, dropping tables.
    #[command(subcommand)]
    Catalog(CatalogCommand),

    /// Compact, Z-order, vacuum (change data too), checkpoint and clean the log of tables; enforce row retention.
    #[command(
        after_help = "Each table keeps the history of its zone ([retention] history_days: raw 30 days, clean and curated 7): files replaced earlier are deleted, newer ones kept for time travel. Small files are compacted to [maintenance] target_file_mb; curated.id_mapping is Z-ordered by id_value and curated.customer_profiles by one_id. PII columns are kept out of Delta statistics. Raw rows older than [retention] raw_days are deleted (an audit row each). Safe beside running jobs: a conflicting commit is rerun, never lost. The daily schedule runs it last.

Examples:
  cdplake maintain --dry-run
  cdplake maintain curated.id_mapping _catalog.tables
  cdplake maintain --lifecycle-rules   # the S3 lifecycle block of infra/template.yaml
  cdplake --lake s3://bucket/cdp maintain --apply-lifecycle"
    )]
    Maintain {
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
    },

    /// Erase a person from the whole lake (right to erasure), provably.
    #[command(
        after_help = "The person is found through curated.id_mapping (email: and phone: take plaintext, hashed as clean does); every identifier of theirs, in every form, is deleted from every zone and table (raw rows too, bitmaps, audience packages), each touched table is vacuumed at zero retention and its old log deleted, landing files holding them are removed, and every object under the lake root is scanned: the report says how many still hold a form (0). The identifiers go to a suppression list (keyed hashes) that ingest and clean honour, so a replay cannot bring the person back. _audit.erasures records when, why, tables and versions (keyed hashes only). Run it while no other job writes. Exits 1 when the scan still finds a form.

Examples:
  cdplake erase email:jane@example.com --reason 'GDPR request #123'
  cdplake erase member_id:MBR0000042"
    )]
    Erase {
        /// The person, as ID_TYPE:VALUE (any id type of curated.id_mapping, or email:/phone: in plaintext)
        identifier: String,
        /// Why (recorded in _audit.erasures; write no personal data here)
        #[arg(long)]
        reason: Option<String>,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },

    /// List job runs from the audit trail (_audit.job_runs), newest first.
    #[command(
        after_help = "Every run of a job (CLI, Lambda, schedule) is a row: job, arguments (identifiers keyed-hashed, no secrets), who (user@host or lambda:<request id>), start, duration, outcome, the tables and Delta versions it committed, rows in and out.

Examples:
  cdplake audit --limit 20
  cdplake query \"SELECT job, count(*) FROM _audit.job_runs GROUP BY job\""
    )]
    Audit {
        /// Show at most this many runs
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[command(flatten)]
        format: FormatArg,
    },

    /// Look a person up by any identifier: profile, identifiers, segments, audiences, latest events.
    #[command(subcommand)]
    Profile(ProfileCommand),

    /// Serve profile look-ups over HTTP from an in-memory index (read-only).
    #[command(
        after_help = "Builds an index from curated.id_mapping, customer_profiles, user_events, segment_bitmaps and \
audience_packages (an identifier resolves to its person in one hash probe), then answers:\n\n  \
GET /v1/profiles/{id_type}/{value}?events=N   the person: profile row, identifiers (first/last seen), segments \
and audience packages of the latest builds, latest N events; 404 for an unknown identifier, 400 for a malformed one\n  \
GET /v1/health                                index size, memory, build time, table versions\n  \
POST /v1/query {\"sql\": \"SELECT ...\"}          only with --allow-sql: one read-only statement\n\n\
The server never writes to the lake. Every --refresh-secs it reads the tables' Delta versions; when one changed \
(a new profiles build), it rebuilds the index in the background and swaps it in.\n\nExamples:\n  \
cdplake serve --listen 127.0.0.1:8080\n  \
curl -s 127.0.0.1:8080/v1/profiles/member_id/MBR0000001?events=5\n  \
curl -s 127.0.0.1:8080/v1/health"
    )]
    Serve {
        /// Address and port to listen on
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Allow POST /v1/query (one read-only SELECT/WITH/SHOW/DESCRIBE/EXPLAIN)
        #[arg(long)]
        allow_sql: bool,
        /// Seconds between checks for a new version of the curated tables
        #[arg(long, default_value_t = 10)]
        refresh_secs: u64,
        /// Latest events kept per person (the most ?events= may ask for)
        #[arg(long, default_value_t = cdplake_serving::serve::DEFAULT_EVENTS_KEPT)]
        events_kept: usize,
    },

    /// Write curated tables back to PostgreSQL (the first run copies, later runs apply what changed).
    #[command(subcommand)]
    Sync(SyncCommand),

    /// Write a self-contained HTML report with charts (no network needed to open it).
    #[command(after_help = "Charts (SVG, drawn with plotters): persons and profiles over time, the RFM grid (recency \
score × frequency score; cell = persons, colour = average monetary), segment and audience sizes and their change \
since the previous as-of, lifecycle stages over time from curated.customer_profiles_daily, identity health \
(persons by number of identifiers, hubs, refused links) and the quality gates' history.\n\nExamples:\n  \
cdplake report --out report.html\n  cdplake report --as-of 2024-12-31 --out report-2024-12-31.html")]
    Report {
        /// The profiles snapshot (dt of curated.customer_profiles_daily) to report on [default: the latest]
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// The HTML file to write
        #[arg(long, default_value = "report.html")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// One person by any of their identifiers (the answer `GET /v1/profiles/ID_TYPE/VALUE` gives).
    #[command(after_help = "Exits with 1 and says so when nobody has the identifier.\n\nExamples:\n  \
cdplake profile get member_id:MBR0000001\n  cdplake profile get customer_id:C00042 --events 5 --json")]
    Get {
        /// The identifier, as ID_TYPE:VALUE
        identifier: String,
        /// Latest events to show
        #[arg(long, default_value_t = 10)]
        events: usize,
        /// Print the whole answer as JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SyncCommand {
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

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the JSON schema of cdplake.toml (the repository publishes it as cdplake.schema.json).
    #[command(after_help = "Editors that read JSON schemas for TOML (Taplo / Even Better TOML) check cdplake.toml \
against it: put `#:schema ./cdplake.schema.json` on the file's first line.\n\nExample:\n  \
cdplake config schema > cdplake.schema.json")]
    Schema,
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

#[derive(Subcommand)]
enum AudienceCommand {
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

#[derive(Subcommand)]
enum LambdaCommand {
    /// Invoke a handler with an event JSON file and print its response.
    #[command(
        after_help = "Examples:\n  cdplake --lake s3://bucket/cdp lambda invoke --handler s3 --event s3-put.json\n  \
cdplake lambda invoke --handler query --event query.json   # {\"sql\": \"SELECT ...\", \"format\": \"json\"}\n  \
cdplake lambda invoke --handler schedule --event scheduled.json"
    )]
    Invoke {
        /// The handler [default: guessed from the event's shape]
        #[arg(long, value_enum)]
        handler: Option<lambda::Handler>,
        /// The event, as JSON
        #[arg(long)]
        event: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// S3-event micro-batches through the S3 handler, with maintenance every N (benches/maintenance.sh).
    MicroBatches {
        #[arg(long, default_value_t = 500)]
        batches: u64,
        /// Report files, log length and batch times every this many batches
        #[arg(long, default_value_t = 100)]
        window: u64,
        /// Run `maintain` every this many batches (0: never)
        #[arg(long, default_value_t = 0)]
        maintain_every: u64,
    },
    /// Synthetic segments a, b, c for benches/bitmaps.sh: stored in curated.segment_bitmaps, ids as Parquet.
    Bitmaps {
        /// Members per segment (from a population of twice as many)
        #[arg(long, default_value_t = 1_000_000)]
        members: u32,
        #[arg(long, value_enum, default_value_t = Layout::Random)]
        layout: Layout,
        /// Directory for the Parquet id lists
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum CatalogCommand {
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

/// Print to stdout; a closed pipe (`cdplake query ... | head`) ends the output quietly.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, $($arg)*) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            other => other?,
        }
    }};
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CDPLAKE_LOG").unwrap_or_else(|_| DEFAULT_LOG.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err)
            if err.downcast_ref::<NoOutput>().is_some() || matches!(err.downcast_ref(), Some(JobError::Empty(_))) =>
        {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_NO_OUTPUT)
        }
        Err(err) => {
            eprintln!("error: {}", describe_error(&err));
            if let Some(hint) = hint(&err) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Exit code of a run that worked but produced nothing usable (every row quarantined, an export
/// of no rows, an event mapping that matched nothing): a script must not take it for success.
const EXIT_NO_OUTPUT: u8 = 3;

/// A run that produced nothing usable; the message says why and what to do.
#[derive(Debug)]
struct NoOutput(String);

impl std::fmt::Display for NoOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoOutput {}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Config(ConfigCommand::Schema) = &cli.command {
        out!("{}", cdplake_core::config::json_schema().trim_end());
        return Ok(());
    }
    // `check` needs the configuration only, not a lake.
    if let Command::Check { source, files, sample, json } = &cli.command {
        return check(cli.config.as_deref(), source.as_deref(), files, *sample, *json).await;
    }
    let workspace = Workspace::open(cli.config.as_deref(), cli.lake.as_deref()).await?;
    // Every job run is a row of _audit.job_runs; reads (tables, query, audit) are not jobs.
    let recorder = match job_of(&cli.command) {
        Some((job, arguments)) => {
            let invoker = audit::Invoker::cli();
            Some(audit::Recorder::start(&workspace, invoker, &job, arguments, chrono::Utc::now()).await)
        }
        None => None,
    };
    let mut rows = audit::RowCounts::default();
    let result = dispatch(&workspace, cli.command, &mut rows).await;
    if let Some(recorder) = recorder {
        recorder.finish(&workspace, rows, result.as_ref().err().map(describe_error)).await;
    }
    result
}

/// The job a command runs and its arguments as the audit trail keeps them.
fn job_of(command: &Command) -> Option<(String, serde_json::Value)> {
    use serde_json::json;
    let (job, arguments) = match command {
        Command::Init => ("init", json!({})),
        Command::Demo(_) => ("demo", json!({})),
        Command::Ingest { source, paths, .. } => ("ingest", json!({ "source": source, "paths": paths })),
        Command::Clean { source, reprocess, .. } => ("clean", json!({ "source": source, "reprocess": reprocess })),
        Command::Identity { action: None, .. } => ("identity", json!({})),
        Command::Identity { action: Some(IdentityAction::Unlink { a, b }), .. } => (
            "identity unlink",
            json!({ "a": audit::hashed_identifier(a), "b": b.as_deref().map(audit::hashed_identifier) }),
        ),
        Command::Profiles { as_of, full, force, .. } => {
            ("profiles", json!({ "as_of": as_of, "full": full, "force": force }))
        }
        Command::Segments { as_of, .. } => ("segments", json!({ "as_of": as_of })),
        Command::Audience(AudienceCommand::Build { name, expr, as_of, count_only, .. }) if !count_only => {
            ("audience build", json!({ "name": name, "expr": expr, "as_of": as_of }))
        }
        Command::Audience(AudienceCommand::Export { name, to, format, ids, as_of, .. }) => (
            "audience export",
            json!({ "name": name, "to": to, "format": format!("{format:?}"), "ids": format!("{ids:?}"), "as_of": as_of }),
        ),
        Command::Maintain { apply_lifecycle: true, .. } => ("maintain --apply-lifecycle", json!({})),
        Command::Maintain { tables, dry_run, lifecycle_rules: false, .. } => (
            "maintain",
            json!({ "tables": tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(), "dry_run": dry_run }),
        ),
        Command::Erase { identifier, reason, .. } => {
            ("erase", json!({ "identifier": audit::hashed_identifier(identifier), "reason_given": reason.is_some() }))
        }
        Command::Catalog(CatalogCommand::Drop { table, purge }) => {
            ("catalog drop", json!({ "table": table.to_string(), "purge": purge }))
        }
        _ => return None,
    };
    Some((job.to_string(), arguments))
}

async fn dispatch(workspace: &Workspace, command: Command, rows: &mut audit::RowCounts) -> anyhow::Result<()> {
    use audit::JobReport;
    match command {
        Command::Init => {
            let report = init::init(&workspace).await?;
            out!(
                "lake ready at {} ({} tables in the catalog at {})",
                report.root,
                report.tables,
                report.catalog_location
            );
        }
        Command::Demo(FormatArg { format }) => {
            let report = demo::run_demo(&workspace, chrono::Utc::now()).await?;
            if format == Format::Table {
                out!("lake: {}", workspace.lake().location().root());
                let totals = ingest::summarize(&report.ingested);
                out!(
                    "ingest: {} files ({} new, {} already ingested), {} rows in, {} written to raw, {} unreadable",
                    totals.get("files").unwrap_or(&0),
                    totals.get("ingested").unwrap_or(&0),
                    totals.get("already_ingested").unwrap_or(&0),
                    totals.get("rows_in").unwrap_or(&0),
                    totals.get("rows_written").unwrap_or(&0),
                    totals.get("rows_rejected").unwrap_or(&0)
                );
                for (_, what) in &report.steps {
                    out!("{what}");
                }
                out!("\n{}\n", demo::DEMO_QUERY);
            }
            out!("{}", format_batches(&report.answer, format)?);
        }
        Command::Generate { persons, seed, out } => {
            let generated = cdplake_generate::generate_with_truth(persons, seed);
            let files = &generated.files;
            for file in files {
                let dir = out.join(file.source);
                std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
                std::fs::write(dir.join(&file.name), &file.content)
                    .with_context(|| format!("writing into {}", dir.display()))?;
            }
            std::fs::write(out.join("truth.csv"), &generated.truth)
                .with_context(|| format!("writing {}/truth.csv", out.display()))?;
            std::fs::write(out.join("truth_edges.csv"), &generated.truth_edges)
                .with_context(|| format!("writing {}/truth_edges.csv", out.display()))?;
            out!(
                "{} files for {persons} people in {}/<source>/, ground truth in {}/truth.csv and truth_edges.csv",
                files.len(),
                out.display(),
                out.display()
            );
        }
        Command::Tables(FormatArg { format }) => {
            let entries = workspace.catalog.list().await?;
            out!("{}", format_batches(&[inspect::tables_batch(&entries)?], format)?);
        }
        Command::Describe { table, format } => {
            let entry = workspace.catalog.describe(&table).await?;
            match format.format {
                Format::Json => out!("{}", serde_json::to_string_pretty(&entry)?),
                other => {
                    out!("{}", format_batches(&[inspect::entry_batch(&entry)?], other)?);
                    out!("{}", format_batches(&[inspect::columns_batch(&entry)?], other)?);
                }
            }
        }
        Command::History { table, limit, format } => {
            let commits = workspace.lake().history(&table, limit).await?;
            out!("{}", format_batches(&[inspect::history_batch(&commits)?], format.format)?);
        }
        Command::Query { sql, format } => {
            let batches = query::run_query(&workspace, &sql).await?;
            out!("{}", format_batches(&batches, format.format)?);
        }
        Command::Ingest { source, paths, json } => {
            let source = find_source(&workspace, &source)?;
            let reports = ingest::ingest(&workspace, &source, &paths, chrono::Utc::now()).await?;
            *rows = reports.row_counts();
            if json {
                out!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                if reports.is_empty() {
                    out!(
                        "no files to ingest for {} (looked in {})",
                        source.name,
                        ingest::landing_prefix(&workspace, &source)
                    );
                }
                for r in &reports {
                    if r.status == ingest::IngestStatus::AlreadyIngested {
                        out!("AlreadyIngested: {} (same ETag/content as before; nothing written)", r.uri);
                        continue;
                    }
                    out!(
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
                    );
                }
            }
        }
        Command::Clean { source, reprocess, json } => {
            let sources = match source {
                Some(name) => vec![find_source(&workspace, &name)?],
                None => workspace.config.all_sources(),
            };
            let mut reports = Vec::new();
            for source in &sources {
                let report = if reprocess {
                    clean::reprocess(&workspace, source, chrono::Utc::now()).await?
                } else {
                    clean::clean(&workspace, source, chrono::Utc::now()).await?
                };
                if report.batches > 0 || !json {
                    reports.push(report);
                }
            }
            *rows = reports.row_counts();
            if json {
                out!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                for r in reports.iter().filter(|r| r.batches > 0) {
                    out!("{}", clean::describe_report(r));
                }
                if reports.iter().all(|r| r.batches == 0) {
                    out!("nothing to clean: every raw batch is cleaned");
                }
            }
            let empty: Vec<String> = reports
                .iter()
                .filter(|r| r.all_quarantined())
                .map(|r| {
                    let top = r.quarantined_by_reason.iter().max_by_key(|(_, n)| **n).map(|(k, _)| k.as_str());
                    format!("{} ({} rows; mostly {})", r.source, r.rows_read, top.unwrap_or("?"))
                })
                .collect();
            if !empty.is_empty() {
                return Err(NoOutput(format!(
                    "every row went to the quarantine for {}: fix the contract in cdplake.toml, then run \
                     `cdplake clean --reprocess --source NAME`; the reasons are in clean._quarantine",
                    empty.join(", ")
                ))
                .into());
            }
        }
        Command::Identity { action: Some(IdentityAction::Explain { identifier }), json } => {
            use cdplake_identity::explain;
            let explanation = explain::explain(&workspace, &explain::parse_identifier(&identifier)?).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&explanation)?);
            } else {
                out!(
                    "{} (user_int_id {}): {} identifiers",
                    explanation.one_id,
                    explanation.user_int_id,
                    explanation.identifiers.len()
                );
                for step in &explanation.identifiers {
                    match (&step.via, &step.evidence) {
                        (Some(via), Some(evidence)) => {
                            out!("  {}:{}  ← {via}  ({evidence})", step.id_type, step.id_value)
                        }
                        (None, Some(evidence)) => out!("  {}:{}  ({evidence})", step.id_type, step.id_value),
                        _ => out!("  {}:{}", step.id_type, step.id_value),
                    }
                }
            }
        }
        Command::Identity { action: Some(IdentityAction::Unlink { a, b }), json } => {
            use cdplake_identity::{explain::parse_identifier, unlink};
            let a = parse_identifier(&a)?;
            let b = b.as_deref().map(parse_identifier).transpose()?;
            let report = unlink::unlink(&workspace, &a, b.as_ref(), chrono::Utc::now()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.parts == 1 {
                out!(
                    "{} is still one person (other links hold it together); the link will not be used again",
                    report.one_id
                );
            } else {
                out!(
                    "{} split into {} parts: it keeps the largest; new persons {}",
                    report.one_id,
                    report.parts,
                    report.new_one_ids.join(", ")
                );
            }
        }
        Command::Identity { action: Some(IdentityAction::Report { top }), json } => {
            let health = cdplake_identity::report::health(&workspace, top).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&health)?);
            } else {
                out!("{}", cdplake_identity::report::describe(&health));
            }
        }
        Command::Identity { action: None, json } => {
            let report = cdplake_identity::resolve(&workspace, chrono::Utc::now()).await?;
            *rows = report.row_counts();
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", cdplake_identity::describe_report(&report));
            }
        }
        Command::Profiles { as_of, full, force, json } => {
            let now = chrono::Utc::now();
            let options = cdplake_profiles::RefreshOptions { as_of: as_of.unwrap_or_else(|| now.date_naive()), full, force };
            let report = cdplake_profiles::refresh(&workspace, &options, now).await?;
            *rows = report.row_counts();
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", cdplake_profiles::describe_report(&report));
            }
        }
        Command::Segments { as_of, json } => {
            let report = segments::build_segments(&workspace, as_of, chrono::Utc::now()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", segments::describe_report(&report));
            }
        }
        Command::Audience(AudienceCommand::Build { name, expr, as_of, count_only, json }) => {
            let report = if count_only {
                audience::count_audience(&workspace, &name, &expr, as_of).await?
            } else {
                audience::build_audience(&workspace, &name, &expr, as_of, chrono::Utc::now()).await?
            };
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", audience::describe_report(&report));
            }
        }
        Command::Audience(AudienceCommand::Export { name, to, format, ids, as_of, min_size }) => {
            let request = ExportRequest { name, as_of, to, format, ids, min_size };
            let report = audience::export::export_audience(&workspace, &request).await?;
            out!(
                "exported {} rows ({} members as of {}) to {}",
                report.rows,
                report.members,
                report.as_of,
                report.location
            );
        }
        Command::Lambda(LambdaCommand::Invoke { handler, event }) => {
            let text = std::fs::read_to_string(&event).with_context(|| format!("reading {}", event.display()))?;
            let payload: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", event.display()))?;
            let handler = handler.or_else(|| lambda::Handler::detect(&payload)).ok_or_else(|| {
                anyhow::anyhow!("cannot tell which handler {} is for; pass --handler", event.display())
            })?;
            let invoker = audit::Invoker::cli();
            let response = lambda::invoke_as(&workspace, handler, payload, chrono::Utc::now(), &invoker).await?;
            out!("{}", serde_json::to_string_pretty(&response)?);
        }
        Command::Bench(BenchCommand::MicroBatches { batches, window, maintain_every }) => {
            cdplake_app::bench::micro_batches::bench_micro_batches(workspace, batches, window, maintain_every, |w| {
                println!("{}", serde_json::to_string(w).unwrap_or_default());
            })
            .await?;
        }
        Command::Bench(BenchCommand::Bitmaps { members, layout, out }) => {
            let report = cdplake_app::bench::bitmaps::bench_bitmaps(&workspace, members, layout, &out, chrono::Utc::now()).await?;
            out!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Check { .. } | Command::Config(_) => unreachable!("handled before the lake is opened"),
        Command::Sources(FormatArg { format }) => {
            let sources = workspace.config.all_sources();
            out!("{}", format_batches(&[inspect::sources_batch(&sources)?], format)?);
        }
        Command::Catalog(CatalogCommand::ExportAthena { database, location_root }) => {
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
            let entries = workspace.catalog.list().await?;
            out!("{}", athena_ddl(&database, &root, &entries).trim_end());
        }
        Command::Catalog(CatalogCommand::ExportGlue) => {
            out!("{}", glue_table_resources(&workspace.catalog.list().await?).trim_end());
        }
        Command::Profile(ProfileCommand::Get { identifier, events, json }) => {
            use cdplake_serving::serve::{IndexHolder, Lookup, LookupError, lookup, parse_identifier};
            let (id_type, id_value) = match parse_identifier(&identifier) {
                Ok(parts) => parts,
                Err(LookupError::Malformed(m) | LookupError::NotFound(m)) => bail!(m),
            };
            let holder = IndexHolder::open(workspace.clone(), events).await?;
            match lookup(&holder.get(), &Lookup { id_type, id_value, events })? {
                Ok(answer) if json => out!("{}", serde_json::to_string_pretty(&answer)?),
                Ok(answer) => out!("{}", cdplake_serving::serve::describe_answer(&answer)),
                Err(LookupError::Malformed(m) | LookupError::NotFound(m)) => bail!(m),
            }
        }
        Command::Serve { listen, allow_sql, refresh_secs, events_kept } => {
            use cdplake_serving::serve::{IndexHolder, Permissions, http};
            let holder = std::sync::Arc::new(IndexHolder::open(workspace.clone(), events_kept).await?);
            let stats = holder.get().stats().clone();
            let options = http::ServeOptions {
                listen,
                permissions: Permissions { allow_sql },
                refresh_every: std::time::Duration::from_secs(refresh_secs.max(1)),
            };
            let server = http::Server::bind(holder.clone(), &options).await?;
            let address = server.local_addr()?;
            out!(
                "serving {} persons ({} identifiers, {} profiles; index {} MB, built in {:.0} ms) on http://{address}",
                stats.persons,
                stats.identifiers,
                stats.profiles,
                stats.memory_bytes / (1 << 20),
                stats.build_ms
            );
            if let Some((t, v)) = holder.get().sample_identifiers(1).first() {
                out!("try: curl -s http://{address}/v1/profiles/{t}/{v}?events=5");
            }
            // Read-only: stopping it (Ctrl-C, SIGTERM) loses nothing.
            server.run(std::future::pending::<()>()).await?;
        }
        Command::Sync(SyncCommand::Postgres { url, tables, schema, full, json }) => {
            use cdplake_serving::sync::{SyncOptions, describe_report, sync_postgres};
            let options = SyncOptions { url, tables, schema, full, ..Default::default() };
            let reports = sync_postgres(&workspace, &options, chrono::Utc::now()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&reports)?);
            } else {
                for r in &reports {
                    out!("{}", describe_report(r));
                }
            }
        }
        Command::Report { as_of, out } => {
            let report = cdplake_serving::report::build_report(&workspace, as_of).await?;
            std::fs::write(&out, &report.html).with_context(|| format!("writing {}", out.display()))?;
            out!("report as of {} ({} charts) written to {}", report.as_of, report.charts.len(), out.display());
        }
        Command::Catalog(CatalogCommand::Drop { table, purge }) => {
            workspace.catalog.drop_table(&table, purge).await.with_context(|| format!("dropping {table}"))?;
            out!("dropped {table}{}", if purge { " and deleted its files" } else { " (files kept)" });
        }
        Command::Maintain { lifecycle_rules: true, .. } => {
            out!("{}", lifecycle::template_block(&workspace.config.retention).trim_end());
        }
        Command::Maintain { apply_lifecycle: true, json, .. } => {
            let applied = lifecycle::apply(workspace.lake().location(), &workspace.config.retention).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&applied)?);
            } else {
                out!("{}", lifecycle::describe_report(&applied).trim_end());
            }
            if applied.applied.is_empty() {
                bail!("the S3 server took none of cdplake's lifecycle rules (listed above)");
            }
        }
        Command::Maintain { tables, dry_run, json, .. } => {
            let request = maintain::MaintainRequest { tables, dry_run };
            let report = maintain::maintain(workspace, &request, &audit::Invoker::cli(), chrono::Utc::now()).await?;
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", maintain::describe_report(&report).trim_end());
            }
        }
        Command::Erase { identifier, reason, json } => {
            let (id_type, value) = cdplake_identity::explain::parse_identifier(&identifier)?;
            let report = erase::erase(workspace, &id_type, &value, reason.as_deref(), chrono::Utc::now()).await?;
            *rows = report.row_counts();
            if json {
                out!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                out!("{}", erase::describe_report(&report));
            }
            if !report.matches_after.is_empty() {
                bail!(
                    "{} objects still hold a form of the person's identifiers (listed above); nothing was hidden",
                    report.matches_after.len()
                );
            }
        }
        Command::Audit { limit, format } => {
            let batches = audit::list(workspace, limit).await?;
            if batches.iter().all(|b| b.num_rows() == 0) {
                out!("no job runs recorded yet");
            } else {
                out!("{}", format_batches(&batches, format.format)?);
            }
        }
    }
    Ok(())
}

/// The error and its causes, each cause once: library errors often repeat their source's
/// message in their own.
fn describe_error(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let message = cause.to_string();
        if !text.contains(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
    }
    text
}

/// `cdplake check`: the configuration, and the contract of `source` dry-run on `files`.
async fn check(
    config: Option<&std::path::Path>,
    source: Option<&str>,
    files: &[PathBuf],
    sample: usize,
    json: bool,
) -> anyhow::Result<()> {
    let config = cdplake_core::Config::load(config)?;
    for (mapping_source, mapping) in &config.profiles.events {
        let source = config.source(mapping_source).ok_or_else(|| {
            anyhow::anyhow!("[profiles.events.{mapping_source}]: there is no source {mapping_source:?}")
        })?;
        cdplake_profiles::validate::check_mapping(&source, mapping).await.map_err(anyhow::Error::msg)?;
    }
    let Some(name) = source else {
        let configured: Vec<&String> = config.sources.keys().collect();
        out!(
            "configuration OK: {} sources ({} from cdplake.toml{}), {} identity types with limits, {} event mappings \
             of your own, lake {}",
            config.all_sources().len(),
            configured.len(),
            if configured.is_empty() {
                String::new()
            } else {
                format!(": {}", configured.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
            },
            config.identity.types.len(),
            config.profiles.events.len(),
            config.lake_root(None)
        );
        return Ok(());
    };
    let source = config.source(name).ok_or_else(|| {
        let known: Vec<String> = config.all_sources().into_iter().map(|s| s.name).collect();
        anyhow::anyhow!("no source named {name:?}; known sources: {}", known.join(", "))
    })?;
    let mut checks = Vec::new();
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        checks.push(cdplake_ingest::check::check_file(&source, &file.display().to_string(), &bytes, sample)?);
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for c in &checks {
            out!("{}", cdplake_ingest::check::describe(c));
        }
    }
    if checks.iter().any(|c| c.kept == 0 && c.rows_checked + u64::from(c.missing_columns.is_some()) > 0) {
        return Err(NoOutput(format!(
            "no row of {} would be kept: fix [sources.{name}] in cdplake.toml (see the rules above)",
            checks.iter().filter(|c| c.kept == 0).map(|c| c.file.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    Ok(())
}

fn find_source(workspace: &Workspace, name: &str) -> anyhow::Result<cdplake_zones::Source> {
    workspace.config.source(name).ok_or_else(|| {
        let known: Vec<String> = workspace.config.all_sources().into_iter().map(|s| s.name).collect();
        anyhow::anyhow!(
            "no source named {name:?}; known sources: {} (or declare [sources.{name}] in cdplake.toml)",
            known.join(", ")
        )
    })
}

/// What the user can do about common failures.
fn hint(err: &anyhow::Error) -> Option<&'static str> {
    let engine = err.chain().find_map(|e| {
        e.downcast_ref::<EngineError>().or_else(|| match e.downcast_ref::<JobError>() {
            Some(JobError::Engine(inner)) => Some(inner),
            _ => None,
        })
    });
    match engine? {
        EngineError::TableNotFound { .. } => Some("`cdplake tables` lists the tables in this lake; check --lake"),
        EngineError::UnsafeStore { .. } => {
            Some("use an S3 server that honours If-None-Match (AWS S3, SeaweedFS: `bash infra/s3/seaweedfs.sh start`)")
        }
        EngineError::Query { .. } => Some("tables are named zone.table; `cdplake tables` lists them"),
        _ => None,
    }
}
