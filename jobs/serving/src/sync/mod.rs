//! `cdplake sync postgres`: curated tables written back to PostgreSQL (seed 000's write-back to
//! RDS that marketing tools query), kept in step incrementally.
//!
//! Per table, in one PostgreSQL transaction (so a sync that dies anywhere leaves the previous
//! state and the next run redoes the same work, without loss or duplicates):
//!
//! 1. `cdplake_sync_state` (one row per target table) says which Delta version of which lake
//!    table the target holds, and with which columns. The row is locked for the transaction.
//! 2. No state, another lake, other columns (the table's schema changed), or `--full`: the target
//!    is dropped, created from the Delta schema with the catalog's primary key, and loaded with
//!    binary COPY.
//! 3. Otherwise the rows that changed since that version are applied: found from the table's
//!    change data feed when it records one (the keys it names, read at the new version), else by
//!    comparing the two versions (rows of the new version not in the old are upserts, keys of the
//!    old not in the new are deletes: erased or absorbed persons disappear). They are COPYed into
//!    temporary tables, then `INSERT ... ON CONFLICT (key) DO UPDATE` and `DELETE ... USING`.
//! 4. The state row gets the new version, the target's row count is checked against the lake's
//!    (a mismatch rolls everything back), and the transaction commits.

pub mod copy;

use std::time::Instant;

use cdplake_engine::arrow::datatypes::SchemaRef;
use cdplake_engine::datafusion::prelude::DataFrame;
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::lake::table_arrow_schema;
use cdplake_engine::sql::quote_ident;
use cdplake_engine::{SqlSession, TableId, TimeTravel};
use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use tokio_postgres::{Client, NoTls, Transaction};

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{AUDIENCE_PACKAGES, CUSTOMER_PROFILES};
use copy::{CopyEncoder, PgType};

/// The table that records what each target holds.
pub const STATE_TABLE: &str = "cdplake_sync_state";

/// What `cdplake sync postgres` does.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// libpq-style connection string or `postgres://` URL.
    pub url: String,
    /// Tables to sync [default: curated.customer_profiles, curated.audience_packages].
    pub tables: Vec<TableId>,
    /// PostgreSQL schema for every table [default: the table's zone].
    pub schema: Option<String>,
    /// Reload every table whole.
    pub full: bool,
    /// Fault injection for tests: stop after the COPY, before the commit, as a crash would
    /// (the connection is dropped with the transaction open).
    pub crash_before_commit: bool,
}

/// What one table's sync did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableSyncReport {
    pub table: String,
    pub target: String,
    /// `full`, `incremental` or `unchanged`.
    pub mode: String,
    /// Why a full load (no state yet, columns changed, ...).
    pub reason: Option<String>,
    pub from_version: Option<u64>,
    pub to_version: u64,
    /// Rows COPYed: the whole table (full) or the changed rows (incremental).
    pub rows_copied: u64,
    pub rows_upserted: u64,
    pub rows_deleted: u64,
    /// Rows in the target after the sync (equal to the lake's, checked).
    pub rows: u64,
    pub elapsed_ms: f64,
    /// Whether the changes came from the change data feed (else from comparing versions).
    pub change_data_feed: bool,
}

pub fn describe_report(r: &TableSyncReport) -> String {
    let versions = match r.from_version {
        Some(from) if r.mode == "incremental" => format!("version {from} → {}", r.to_version),
        _ => format!("version {}", r.to_version),
    };
    match r.mode.as_str() {
        "unchanged" => format!("{} → {}: unchanged at {versions} ({} rows)", r.table, r.target, r.rows),
        "full" => format!(
            "{} → {}: full load of {versions}, {} rows copied{} in {:.0} ms",
            r.table,
            r.target,
            r.rows_copied,
            r.reason.as_deref().map(|w| format!(" ({w})")).unwrap_or_default(),
            r.elapsed_ms
        ),
        _ => format!(
            "{} → {}: {versions}, {} rows upserted, {} deleted ({} rows now; changes from the {}) in {:.0} ms",
            r.table,
            r.target,
            r.rows_upserted,
            r.rows_deleted,
            r.rows,
            if r.change_data_feed { "change data feed" } else { "version diff" },
            r.elapsed_ms
        ),
    }
}

pub fn default_tables() -> Vec<TableId> {
    vec![CUSTOMER_PROFILES.id(), AUDIENCE_PACKAGES.id()]
}

fn pg(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> JobError {
    let context = context.into();
    move |e| {
        let detail = e.as_db_error().map(|d| format!("{}: {}", d.code().code(), d.message())).unwrap_or_default();
        JobError::service(
            "PostgreSQL",
            format!("{context}: {e}{}", if detail.is_empty() { "".into() } else { format!(" ({detail})") }),
        )
    }
}

/// Connect; the connection is driven by a task of its own.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(pg("connecting (check --url: postgres://USER[:PASSWORD]@HOST[:PORT]/DB)"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// Sync each table; stops at the first failure (tables before it stay synced).
pub async fn sync_postgres(
    workspace: &Workspace,
    options: &SyncOptions,
    now: DateTime<Utc>,
) -> Result<Vec<TableSyncReport>> {
    let tables = if options.tables.is_empty() { default_tables() } else { options.tables.clone() };
    let mut client = connect(&options.url).await?;
    client
        .batch_execute(&format!(
            "SELECT pg_advisory_lock(hashtext('cdplake_sync_state')); \
             CREATE TABLE IF NOT EXISTS {STATE_TABLE} (target text PRIMARY KEY, lake_table text NOT NULL, \
               lake text NOT NULL, delta_version bigint NOT NULL, columns text NOT NULL, \"rows\" bigint NOT NULL, \
               synced_at timestamptz NOT NULL); \
             SELECT pg_advisory_unlock(hashtext('cdplake_sync_state'));"
        ))
        .await
        .map_err(pg(format!("creating {STATE_TABLE}")))?;
    let mut reports = Vec::new();
    for id in &tables {
        let report = sync_table(workspace, &mut client, id, options, now).await?;
        tracing::info!(table = %id, mode = %report.mode, rows = report.rows, "synced");
        reports.push(report);
    }
    Ok(reports)
}

/// The PostgreSQL columns of a lake schema: (name, type).
pub fn pg_columns(table: &TableId, schema: &SchemaRef) -> Result<Vec<(String, PgType)>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            PgType::of(f.data_type()).map(|t| (f.name().clone(), t)).ok_or_else(|| {
                JobError::bad_input(
                    table.to_string(),
                    format!(
                        "column {} has type {}, which cdplake does not write to PostgreSQL",
                        f.name(),
                        f.data_type()
                    ),
                )
            })
        })
        .collect()
}

fn signature(columns: &[(String, PgType)], key: &[String]) -> String {
    let cols: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {}", t.sql())).collect();
    format!("{}; key ({})", cols.join(", "), key.join(", "))
}

/// One lake table at its current version and the PostgreSQL table it is written to.
struct SyncPlan<'a> {
    id: &'a TableId,
    table: DeltaTable,
    version: u64,
    columns: Vec<(String, PgType)>,
    /// The catalog's primary key.
    key: Vec<String>,
    pg_schema: String,
    /// `schema.table`, quoted for SQL.
    target: String,
    /// `schema.table` as messages, the lock and the state row name it.
    target_label: String,
    /// The columns and key, as the state row records them.
    signature: String,
    lake_root: String,
}

impl<'a> SyncPlan<'a> {
    async fn new(workspace: &Workspace, id: &'a TableId, options: &SyncOptions) -> Result<Self> {
        let lake = workspace.lake();
        let entry = workspace.catalog.describe(id).await?;
        let table = lake.table(id).await?;
        let version = table.version().unwrap_or(0) as u64;
        let schema = table_arrow_schema(&table, id)?;
        let columns = pg_columns(id, &schema)?;
        let key = entry.primary_key.clone();
        let pg_schema = options.schema.clone().unwrap_or_else(|| id.zone().trim_start_matches('_').to_string());
        let target = format!("{}.{}", quote_ident(&pg_schema), quote_ident(id.name()));
        let target_label = format!("{pg_schema}.{}", id.name());
        let signature = signature(&columns, &key);
        let lake_root = lake.location().root().to_string();
        Ok(Self { id, table, version, columns, key, pg_schema, target, target_label, signature, lake_root })
    }

    /// Why the target must be reloaded whole, if it must.
    fn full_reason(&self, held: &Held, full: bool) -> Option<String> {
        let (id, target_label) = (self.id, &self.target_label);
        match &held.state {
            _ if full => Some("--full".to_string()),
            _ if self.key.is_empty() => Some(format!("{id} has no primary key in the catalog")),
            None => Some("first sync".to_string()),
            Some(_) if !held.exists => Some(format!("{target_label} was dropped in PostgreSQL")),
            Some(s) if s.lake != self.lake_root || s.lake_table != id.to_string() => {
                Some(format!("it held {} of lake {}", s.lake_table, s.lake))
            }
            Some(s) if s.columns != self.signature => Some("the table's columns changed".to_string()),
            Some(s) if (s.delta_version as u64) > self.version => {
                Some(format!("it holds version {}, newer than the lake's", s.delta_version))
            }
            Some(_) => None,
        }
    }
}

/// A target's row of the state table.
struct SyncState {
    lake: String,
    lake_table: String,
    delta_version: i64,
    columns: String,
}

/// What PostgreSQL holds for a target when its sync starts.
struct Held {
    state: Option<SyncState>,
    /// Whether the target table exists.
    exists: bool,
}

/// What a sync does to its target.
enum SyncWork {
    /// Reload it whole, for this reason.
    Full(String),
    Incremental(Changes),
    Unchanged,
}

async fn sync_table(
    workspace: &Workspace,
    client: &mut Client,
    id: &TableId,
    options: &SyncOptions,
    now: DateTime<Utc>,
) -> Result<TableSyncReport> {
    let started = Instant::now();
    let plan = SyncPlan::new(workspace, id, options).await?;
    let mut report = TableSyncReport {
        table: id.to_string(),
        target: plan.target_label.clone(),
        to_version: plan.version,
        ..Default::default()
    };
    let tx = client.transaction().await.map_err(pg("BEGIN"))?;
    let held = lock_and_read_state(&tx, &plan).await?;
    let full_reason = plan.full_reason(&held, options.full);
    report.from_version = held.state.as_ref().map(|s| s.delta_version as u64);

    let session = SqlSession::new()?;
    session.register_loaded("sync", "current", &plan.table).await?;
    match choose_work(workspace, &session, &plan, report.from_version, full_reason).await {
        SyncWork::Full(reason) => {
            report.mode = "full".into();
            report.reason = Some(reason);
            report.rows_copied = full_load(&tx, &session, &plan).await?;
        }
        SyncWork::Incremental(changes) => apply_changes(&tx, &plan, changes, &mut report).await?,
        SyncWork::Unchanged => report.mode = "unchanged".into(),
    }

    let pg_rows = check_row_counts(&tx, &session, &plan).await?;
    report.rows = pg_rows as u64;
    if report.mode != "unchanged" {
        record_state(&tx, &plan, pg_rows, now).await?;
    }
    if options.crash_before_commit && report.mode != "unchanged" {
        // As a crash: the transaction is never committed; dropping it rolls it back.
        drop(tx);
        return Err(JobError::bad_input(
            plan.target_label.clone(),
            "stopped before the commit (crash_before_commit); nothing was committed",
        ));
    }
    tx.commit().await.map_err(pg(format!("committing {}", plan.target_label)))?;
    report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(report)
}

/// Lock the target for the transaction and read its state row (locked too) and whether it exists.
async fn lock_and_read_state(tx: &Transaction<'_>, plan: &SyncPlan<'_>) -> Result<Held> {
    let target_label = &plan.target_label;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[target_label])
        .await
        .map_err(pg(format!("locking {target_label}")))?;
    let state = tx
        .query_opt(
            &format!("SELECT lake, lake_table, delta_version, columns FROM {STATE_TABLE} WHERE target = $1 FOR UPDATE"),
            &[target_label],
        )
        .await
        .map_err(pg(format!("reading {STATE_TABLE}")))?;
    let state = state.map(|r| SyncState {
        lake: r.get("lake"),
        lake_table: r.get("lake_table"),
        delta_version: r.get("delta_version"),
        columns: r.get("columns"),
    });
    let exists: bool = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL AS target_exists", &[&plan.target])
        .await
        .map_err(pg(format!("looking for {target_label}")))?
        .get("target_exists");
    Ok(Held { state, exists })
}

/// Full, incremental or nothing. An incremental sync needs the version the target holds; if it
/// cannot be read any more, the table is reloaded whole.
async fn choose_work(
    workspace: &Workspace,
    session: &SqlSession,
    plan: &SyncPlan<'_>,
    from_version: Option<u64>,
    full_reason: Option<String>,
) -> SyncWork {
    if let Some(reason) = full_reason {
        return SyncWork::Full(reason);
    }
    if from_version == Some(plan.version) {
        return SyncWork::Unchanged;
    }
    let from = from_version.unwrap_or(0);
    match changes_since(workspace, session, plan, from).await {
        Ok(changes) => SyncWork::Incremental(changes),
        Err(e) => SyncWork::Full(format!("version {from} cannot be compared any more: {e}")),
    }
}

/// Recreate the target and COPY the whole table into it; returns the rows copied.
async fn full_load(tx: &Transaction<'_>, session: &SqlSession, plan: &SyncPlan<'_>) -> Result<u64> {
    create_target(tx, &plan.pg_schema, &plan.target, &plan.columns, &plan.key).await?;
    let rows = session.sql("SELECT * FROM sync.current").await?;
    copy_into(tx, &plan.target, &plan.columns, rows).await
}

/// COPY the changes into temporary tables, then delete and upsert them into the target.
async fn apply_changes(
    tx: &Transaction<'_>,
    plan: &SyncPlan<'_>,
    changes: Changes,
    report: &mut TableSyncReport,
) -> Result<()> {
    report.mode = "incremental".into();
    report.change_data_feed = changes.from_feed;
    let staging = Staging { upserts: quote_ident("__cdplake_upserts"), deletes: quote_ident("__cdplake_deletes") };
    let target = &plan.target;
    let keys: Vec<String> = plan.key.iter().map(|k| quote_ident(k)).collect();
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE {upserts} (LIKE {target}) ON COMMIT DROP; \
         CREATE TEMP TABLE {deletes} ON COMMIT DROP AS SELECT {} FROM {target} WITH NO DATA;",
        keys.join(", "),
        upserts = staging.upserts,
        deletes = staging.deletes,
    ))
    .await
    .map_err(pg("creating the staging tables"))?;
    let key_columns: Vec<(String, PgType)> =
        plan.key.iter().filter_map(|k| plan.columns.iter().find(|(n, _)| n == k).cloned()).collect();
    report.rows_upserted = copy_into(tx, &staging.upserts, &plan.columns, changes.upserts).await?;
    report.rows_deleted = copy_into(tx, &staging.deletes, &key_columns, changes.deletes).await?;
    report.rows_copied = report.rows_upserted + report.rows_deleted;
    tx.batch_execute(&merge_sql(plan, &staging))
        .await
        .map_err(pg(format!("applying the changes to {}", plan.target_label)))
}

/// The temporary tables an incremental sync stages its changes in (names quoted).
struct Staging {
    upserts: String,
    deletes: String,
}

/// `DELETE ... USING` the staged keys, then `INSERT ... ON CONFLICT (key) DO UPDATE` the staged rows.
fn merge_sql(plan: &SyncPlan<'_>, staging: &Staging) -> String {
    let keys: Vec<String> = plan.key.iter().map(|k| quote_ident(k)).collect();
    let names: Vec<String> = plan.columns.iter().map(|(n, _)| quote_ident(n)).collect();
    let updates: Vec<String> = plan
        .columns
        .iter()
        .filter(|(n, _)| !plan.key.contains(n))
        .map(|(n, _)| format!("{0} = EXCLUDED.{0}", quote_ident(n)))
        .collect();
    let on_conflict =
        if updates.is_empty() { "DO NOTHING".to_string() } else { format!("DO UPDATE SET {}", updates.join(", ")) };
    let matches: Vec<String> = keys.iter().map(|k| format!("t.{k} = d.{k}")).collect();
    format!(
        "DELETE FROM {target} t USING {deletes} d WHERE {}; \
         INSERT INTO {target} ({cols}) SELECT {cols} FROM {upserts} ON CONFLICT ({keys}) {on_conflict};",
        matches.join(" AND "),
        target = plan.target,
        deletes = staging.deletes,
        upserts = staging.upserts,
        cols = names.join(", "),
        keys = keys.join(", ")
    )
}

/// The target's row count, which must equal the lake table's before anything is committed.
async fn check_row_counts(tx: &Transaction<'_>, session: &SqlSession, plan: &SyncPlan<'_>) -> Result<i64> {
    let (target, target_label) = (&plan.target, &plan.target_label);
    let lake_rows = session.first_i64("SELECT count(*) FROM sync.current").await?.unwrap_or(0) as u64;
    let pg_rows: i64 = tx
        .query_one(&format!("SELECT count(*) AS target_rows FROM {target}"), &[])
        .await
        .map_err(pg(format!("counting {target_label}")))?
        .get("target_rows");
    if pg_rows as u64 != lake_rows {
        return Err(JobError::Reconciliation {
            what: format!("{target_label} (nothing committed; rerun with --full to reload it)"),
            got: format!("{pg_rows} rows it would hold"),
            expected: format!("{lake_rows} rows of {} version {}", plan.id, plan.version),
        });
    }
    Ok(pg_rows)
}

/// The state row: the target now holds this version of the table, with these columns.
async fn record_state(tx: &Transaction<'_>, plan: &SyncPlan<'_>, rows: i64, now: DateTime<Utc>) -> Result<()> {
    tx.execute(
        &format!(
            "INSERT INTO {STATE_TABLE} (target, lake_table, lake, delta_version, columns, \"rows\", synced_at) \
             VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7::double precision)) ON CONFLICT (target) DO UPDATE SET \
             lake_table = EXCLUDED.lake_table, lake = EXCLUDED.lake, delta_version = EXCLUDED.delta_version, \
             columns = EXCLUDED.columns, \"rows\" = EXCLUDED.\"rows\", synced_at = EXCLUDED.synced_at"
        ),
        &[
            &plan.target_label,
            &plan.id.to_string(),
            &plan.lake_root,
            &(plan.version as i64),
            &plan.signature,
            &rows,
            &(now.timestamp_micros() as f64 / 1e6),
        ],
    )
    .await
    .map_err(pg(format!("recording the version in {STATE_TABLE}")))?;
    Ok(())
}

async fn create_target(
    tx: &Transaction<'_>,
    pg_schema: &str,
    target: &str,
    columns: &[(String, PgType)],
    key: &[String],
) -> Result<()> {
    let mut definitions: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("{} {}{}", quote_ident(n), t.sql(), if key.contains(n) { " NOT NULL" } else { "" }))
        .collect();
    if !key.is_empty() {
        definitions
            .push(format!("PRIMARY KEY ({})", key.iter().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ")));
    }
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {}; DROP TABLE IF EXISTS {target}; CREATE TABLE {target} ({});",
        quote_ident(pg_schema),
        definitions.join(", ")
    ))
    .await
    .map_err(pg(format!("creating {target}")))
}

/// COPY a DataFrame's rows (columns in `columns` order) into `target` in PostgreSQL's binary
/// format; returns the rows copied.
async fn copy_into(tx: &Transaction<'_>, target: &str, columns: &[(String, PgType)], rows: DataFrame) -> Result<u64> {
    let names: Vec<String> = columns.iter().map(|(n, _)| quote_ident(n)).collect();
    let sink = tx
        .copy_in(&format!("COPY {target} ({}) FROM STDIN (FORMAT binary)", names.join(", ")))
        .await
        .map_err(pg(format!("COPY into {target}")))?;
    let mut sink = std::pin::pin!(sink);
    let mut encoder = CopyEncoder::new(columns.iter().map(|(_, t)| *t).collect());
    let selected: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    let rows = rows
        .select_columns(&selected)
        .map_err(|e| JobError::query(format!("COPY into {target}: selecting the columns"), e))?;
    let mut stream =
        rows.execute_stream().await.map_err(|e| JobError::query(format!("COPY into {target}: reading the lake"), e))?;
    let mut copied = 0u64;
    sink.send(encoder.header()).await.map_err(pg(format!("COPY into {target}")))?;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| JobError::query(format!("COPY into {target}: reading the lake"), e))?;
        copied += batch.num_rows() as u64;
        for chunk in encoder.encode(&batch).map_err(|e| JobError::arrow(format!("COPY into {target}: encoding"), e))? {
            sink.send(chunk).await.map_err(pg(format!("COPY into {target}")))?;
        }
    }
    sink.send(encoder.trailer()).await.map_err(pg(format!("COPY into {target}")))?;
    sink.as_mut().finish().await.map_err(pg(format!("COPY into {target}")))?;
    Ok(copied)
}

struct Changes {
    upserts: DataFrame,
    deletes: DataFrame,
    from_feed: bool,
}

/// The rows to upsert and the keys to delete to take a target from version `from` to the
/// table's current version (`sync.current` in `session`).
async fn changes_since(workspace: &Workspace, session: &SqlSession, plan: &SyncPlan<'_>, from: u64) -> Result<Changes> {
    let (id, table, columns, key) = (plan.id, &plan.table, &plan.columns, &plan.key);
    let keys: Vec<String> = key.iter().map(|k| quote_ident(k)).collect();
    let keys = keys.join(", ");
    let cols: Vec<String> = columns.iter().map(|(n, _)| quote_ident(n)).collect();
    let cols = cols.join(", ");
    let join = key.iter().map(|k| format!("c.{0} = k.{0}", quote_ident(k))).collect::<Vec<_>>().join(" AND ");
    // The change data feed names the keys that changed; their rows are read at the current
    // version (a key gone from it is a delete).
    let feed = match session.register_changes("sync_feed", table, from + 1).await {
        Ok(true) => session
            .register_view("sync_changed_keys", &format!("SELECT DISTINCT {keys} FROM sync_feed"))
            .await
            .map(|_| true)
            .unwrap_or(false),
        Ok(false) => false,
        Err(e) => {
            tracing::warn!(error = %e, "{id}: change data feed unreadable; comparing versions instead");
            false
        }
    };
    if feed {
        let upserts = session
            .sql(&format!(
                "SELECT {cols} FROM sync.current c WHERE EXISTS (SELECT 1 FROM sync_changed_keys k WHERE {join})"
            ))
            .await?;
        let deletes = session
            .sql(&format!(
                "SELECT {keys} FROM sync_changed_keys k WHERE NOT EXISTS (SELECT 1 FROM sync.current c WHERE {join})"
            ))
            .await?;
        // Probe the feed now: files it needs may have been vacuumed.
        if deletes.clone().count().await.is_ok() {
            return Ok(Changes { upserts, deletes, from_feed: true });
        }
        tracing::warn!("{id}: change data feed since version {} incomplete; comparing versions instead", from + 1);
    }
    let previous = workspace.lake().table_as_of(id, TimeTravel::Version(from)).await.map_err(|e| {
        JobError::bad_input(
            id.to_string(),
            format!("version {from}, which the target holds, cannot be read any more ({e}); rerun with --full"),
        )
    })?;
    session.register_loaded("sync", "previous", &previous).await?;
    let upserts =
        session.sql(&format!("SELECT {cols} FROM sync.current EXCEPT SELECT {cols} FROM sync.previous")).await?;
    let deletes =
        session.sql(&format!("SELECT {keys} FROM sync.previous EXCEPT SELECT {keys} FROM sync.current")).await?;
    Ok(Changes { upserts, deletes, from_feed: false })
}
