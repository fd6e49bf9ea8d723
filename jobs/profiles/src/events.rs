//! `curated.user_events` (seed 001's `dwd_user_events`): every clean event row, mapped by its
//! source's [`EventMapping`] and resolved to its person through the identifiers it carries.
//!
//! An event resolves through the first of its identifiers that belongs to a person, person-
//! unique id types first (an app event's union_id before its possibly shared device_id), compared
//! trimmed as identity stitching compares them. One
//! that resolves to nobody keeps a null one_id (anonymous) and is re-resolved when one of its
//! identifiers later joins a person.

use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::datafusion::prelude::DataFrame;

use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::lake::table_arrow_schema;
use cdplake_engine::sql::{in_list, quote_ident, quote_literal};
use cdplake_engine::upsert::Upsert;
use cdplake_engine::{SqlSession, TableSpec, applied_version, timestamp_type};
use cdplake_zones::Source;

use crate::ids::{ChangedIdentifiers, IDS, register_changed_identifiers};
use crate::inputs::register_clean;
use cdplake_core::batches::pending_batches;
use cdplake_core::config::profiles::EventMapping;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{ID_MAPPING, USER_EVENTS, app_ids, clean_table};

/// Which rows a run writes, the number that grows with every write (profiles refresh the
/// persons of rows newer than the last one they read), and the one_id a row had before.
pub const REFRESH_SEQ: &str = "_refresh_seq";
pub const PREVIOUS_ONE_ID: &str = "previous_one_id";

pub fn user_events_spec() -> TableSpec {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    TableSpec::new(
        USER_EVENTS.id(),
        Arc::new(Schema::new(vec![
            Field::new("source", DataType::Utf8, false),
            Field::new("event_key", DataType::Utf8, false),
            text("event_id"),
            text("one_id"),
            Field::new("kind", DataType::Utf8, false),
            text("event_type"),
            text("channel"),
            text("platform"),
            text("item_id"),
            Field::new("item_price", DataType::Float64, true),
            Field::new("quantity", DataType::Int64, true),
            Field::new("revenue", DataType::Float64, true),
            text("status"),
            text("order_id"),
            Field::new("event_time", timestamp_type(), true),
            Field::new("event_date", DataType::Date32, true),
            text("session_id"),
            text(PREVIOUS_ONE_ID),
            Field::new(REFRESH_SEQ, DataType::Int64, false),
        ])),
    )
    // By source, so a refresh's MERGE reads and rewrites only the sources its rows come from.
    .partitioned_by(["source"])
    .with_description(format!(
        "Every clean purchase, order, app/web event and support ticket with the person (one_id) it \
         resolves to through {ID_MAPPING}; null one_id = anonymous so far. Key: (source, event_key); \
         partitioned by source."
    ))
}

/// An identifier column of a clean table and its id type.
#[derive(Debug, Clone)]
pub struct IdColumn {
    pub column: String,
    pub id_type: String,
}

/// The identifier columns of a source, person-unique types first.
pub fn id_columns(source: &Source, priority: &[String]) -> Vec<IdColumn> {
    let mut columns: Vec<IdColumn> = source
        .columns
        .iter()
        .filter_map(|c| Some(IdColumn { column: c.clean_name()?, id_type: c.id_type.clone()? }))
        .collect();
    // Strongest id type first (`[identity.types]` priorities); types without one last.
    columns.sort_by_key(|c| priority.iter().position(|t| *t == c.id_type).unwrap_or(usize::MAX));
    columns
}

/// Which clean rows to map: all, or those of some batches and those carrying a changed identifier.
pub enum Selection<'a> {
    All,
    Incremental { batches: &'a [String], changed_ids_table: Option<&'a str> },
}

/// SQL producing the user_events rows (without the refresh columns) of one source; `None` when
/// nothing is selected. `ids` is the table of active identifiers (id_type, id_value, one_id).
pub fn source_events_sql(
    source: &Source,
    clean_table: &str,
    mapping: &EventMapping,
    ids: &str,
    priority: &[String],
    selection: &Selection,
) -> Option<String> {
    let id_columns = id_columns(source, priority);
    let expr = |e: &Option<String>| e.clone().unwrap_or_else(|| "NULL".into());
    let mut select = vec![
        format!("{} AS source", quote_literal(&source.name)),
        "_row_key AS event_key".into(),
        format!("CAST({} AS VARCHAR) AS event_id", mapping.event_id),
        format!("{} AS kind", quote_literal(mapping.kind.as_str())),
        format!("CAST({} AS VARCHAR) AS event_type", mapping.event_type),
        format!("CAST({} AS VARCHAR) AS channel", expr(&mapping.channel)),
        format!("CAST({} AS VARCHAR) AS platform", expr(&mapping.platform)),
        format!("CAST({} AS VARCHAR) AS item_id", expr(&mapping.item_id)),
        format!("CAST({} AS DOUBLE) AS item_price", expr(&mapping.item_price)),
        format!("CAST({} AS BIGINT) AS quantity", expr(&mapping.quantity)),
        format!("CAST({} AS DOUBLE) AS revenue", expr(&mapping.revenue)),
        format!("CAST({} AS VARCHAR) AS status", expr(&mapping.status)),
        format!("CAST({} AS VARCHAR) AS order_id", expr(&mapping.order_id)),
        format!("CAST({} AS TIMESTAMP) AS event_time", mapping.event_time),
        format!("CAST({} AS VARCHAR) AS session_id", expr(&mapping.session_id)),
    ];
    for (i, c) in id_columns.iter().enumerate() {
        select.push(format!("trim(CAST({} AS VARCHAR)) AS __id{i}", quote_ident(&c.column)));
    }
    let filter = match selection {
        Selection::All => String::new(),
        Selection::Incremental { batches, changed_ids_table } => {
            let mut any = Vec::new();
            if !batches.is_empty() {
                any.push(format!("_batch_id IN {}", in_list(batches.iter().map(String::as_str))));
            }
            if let Some(changed) = changed_ids_table {
                for c in &id_columns {
                    any.push(format!(
                        "trim(CAST({} AS VARCHAR)) IN (SELECT id_value FROM {changed} WHERE id_type = {})",
                        quote_ident(&c.column),
                        quote_literal(&c.id_type)
                    ));
                }
            }
            if any.is_empty() {
                return None;
            }
            format!(" WHERE {}", any.join(" OR "))
        }
    };
    let joins: String = id_columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                " LEFT JOIN {ids} i{i} ON i{i}.id_type = {} AND i{i}.id_value = e.__id{i}",
                quote_literal(&c.id_type)
            )
        })
        .collect();
    let one_id = match id_columns.len() {
        0 => "CAST(NULL AS VARCHAR)".to_string(),
        1 => "i0.one_id".to_string(),
        n => format!("coalesce({})", (0..n).map(|i| format!("i{i}.one_id")).collect::<Vec<_>>().join(", ")),
    };
    Some(format!(
        "SELECT e.source, e.event_key, e.event_id, {one_id} AS one_id, e.kind, e.event_type, e.channel, e.platform, \
         e.item_id, e.item_price, e.quantity, e.revenue, e.status, e.order_id, e.event_time, \
         CAST(e.event_time AS DATE) AS event_date, e.session_id \
         FROM (SELECT {} FROM {clean_table}{filter}) e{joins}",
        select.join(", ")
    ))
}

/// What the events step did: the table as written, and what the profiles need to know of it.
pub struct EventsUpdate {
    pub table: DeltaTable,
    /// The id_mapping version the events had been resolved against before this run (None: never).
    pub mapping_read: Option<i64>,
    /// Every clean row was mapped again (`--full`, or no events yet).
    pub full: bool,
    /// The session table of identifiers that changed person since `mapping_read`, if any.
    pub changed_ids: Option<String>,
    pub written: u64,
    pub anonymous: u64,
}

/// Map the clean rows of batches not seen yet, and the rows carrying an identifier whose person
/// changed since the last run (all rows when `full`), and MERGE them into `curated.user_events`
/// with the watermarks in the same commit.
pub async fn update(
    workspace: &Workspace,
    session: &SqlSession,
    mapping: &DeltaTable,
    mapping_version: i64,
    full: bool,
) -> Result<EventsUpdate> {
    check_user_mappings(workspace, session).await?;
    let (table, _) = workspace
        .catalog
        .ensure_table(&user_events_spec(), &TableMeta::default().with_primary_key(["source", "event_key"]))
        .await?;
    let label = USER_EVENTS.id().to_string();
    let mapping_read = applied_version(&table, &label, app_ids::EVENTS_MAPPING_VERSION).await?;
    crate::superseded::check_not_superseded(workspace, &label, mapping_read, mapping_version).await?;
    let generations = clean_generations(workspace, &table).await?;
    let full = full || mapping_read.is_none() || generations.reprocessed;
    let versions = MappingVersions { read: mapping_read, current: mapping_version };
    let remap = remap(workspace, session, mapping, versions, full).await?;
    let mut txns = vec![Transaction::new(app_ids::EVENTS_MAPPING_VERSION, mapping_version)];
    txns.extend(generations.transactions);
    let selects = source_selects(workspace, session, &table, &remap).await?;
    txns.extend(selects.transactions);
    let seq = table.version().unwrap_or(0) as i64 + 1;
    let rows = map_rows(session, &selects.sql, seq).await?;
    let changed = rows.is_some() || txns.len() > 1 || mapping_read != Some(mapping_version);
    let table = if changed { write(workspace, table, rows, txns, remap.full).await? } else { table };
    session.register_loaded(USER_EVENTS.zone(), USER_EVENTS.table(), &table).await?;
    let Written { written, anonymous } = if changed { written(session, seq).await? } else { Written::default() };
    Ok(EventsUpdate { table, mapping_read, full: remap.full, changed_ids: remap.changed_ids, written, anonymous })
}

/// Check a user's own mappings before anything is written: a wrong one fails here with what to
/// change, instead of giving everyone zero orders.
async fn check_user_mappings(workspace: &Workspace, session: &SqlSession) -> Result<()> {
    for (name, mapping) in &workspace.config.profiles.events {
        let source = workspace.config.source(name).ok_or_else(|| {
            JobError::bad_input(
                format!("[profiles.events.{name}]"),
                format!("there is no source {name:?} (declare [sources.{name}])"),
            )
        })?;
        crate::validate::check_mapping(&source, mapping)
            .await
            .map_err(|reason| JobError::bad_input("the event mapping", reason))?;
        if register_clean(workspace, session, &source).await? {
            crate::validate::check_mapped_rows(session, name, mapping).await?;
        }
    }
    Ok(())
}

/// The clean generations of the mapped sources, to record with the events.
struct Generations {
    transactions: Vec<Transaction>,
    /// A source was reprocessed under a new contract (`clean --reprocess`) since the last run:
    /// it may have lost rows as well as gained them, so its events are mapped again from scratch.
    reprocessed: bool,
}

/// Every mapped source's clean generation, and whether one changed since the events recorded it.
async fn clean_generations(workspace: &Workspace, table: &DeltaTable) -> Result<Generations> {
    let label = USER_EVENTS.id().to_string();
    let mut generations = Generations { transactions: Vec::new(), reprocessed: false };
    for (name, _) in workspace.config.profiles.event_mappings() {
        let Some(source) = workspace.config.source(&name) else { continue };
        let generation = cdplake_core::batches::clean_generation(workspace, &source).await?;
        let app_id = app_ids::events_generation(&name);
        if generation > 0 {
            generations.reprocessed |= applied_version(table, &label, &app_id).await? != Some(generation as i64);
            generations.transactions.push(Transaction::new(app_id, generation as i64));
        }
    }
    Ok(generations)
}

/// The id_mapping version the events were last resolved against (None: never), and the current one.
#[derive(Clone, Copy)]
struct MappingVersions {
    read: Option<i64>,
    current: i64,
}

/// Which rows a run maps again: all (`full`), or those carrying an identifier in `changed_ids`.
struct Remap {
    full: bool,
    /// The session table of identifiers that changed person since the version read, if any.
    changed_ids: Option<String>,
}

/// The identifiers that changed person since the events were last resolved; a run whose
/// mapping history is gone maps every row again.
async fn remap(
    workspace: &Workspace,
    session: &SqlSession,
    mapping: &DeltaTable,
    versions: MappingVersions,
    full: bool,
) -> Result<Remap> {
    let Some(read) = versions.read.filter(|v| !full && *v != versions.current) else {
        return Ok(Remap { full, changed_ids: None });
    };
    Ok(match register_changed_identifiers(workspace, session, mapping, read as u64, "changed_for_events").await? {
        ChangedIdentifiers::None => Remap { full, changed_ids: None },
        ChangedIdentifiers::In(name) => Remap { full, changed_ids: Some(name) },
        ChangedIdentifiers::HistoryGone => Remap { full: true, changed_ids: None },
    })
}

/// The SQL of every mapped source's rows to write, and the transactions recording their
/// pending batches as read.
struct SourceSelects {
    sql: Vec<String>,
    transactions: Vec<Transaction>,
}

/// Every mapped source's SQL for the rows `remap` selects, with the batches pending for it.
async fn source_selects(
    workspace: &Workspace,
    session: &SqlSession,
    table: &DeltaTable,
    remap: &Remap,
) -> Result<SourceSelects> {
    let label = USER_EVENTS.id().to_string();
    let mut selects = SourceSelects { sql: Vec::new(), transactions: Vec::new() };
    let priority = &workspace.config.identity.priority_order();
    for (name, event_mapping) in workspace.config.profiles.event_mappings() {
        let Some(source) = workspace.config.source(&name) else { continue };
        let generation = cdplake_core::batches::clean_generation(workspace, &source).await?;
        let app_id = |b: &str| app_ids::at_generation(app_ids::events_batch(&name, b), generation);
        let pending = if register_clean(workspace, session, &source).await? {
            pending_batches(workspace, &clean_table(&source), table, &label, app_id).await?
        } else {
            Vec::new()
        };
        selects.transactions.extend(pending.iter().map(|b| Transaction::new(app_id(b), 1)));
        let selection = if remap.full {
            Selection::All
        } else {
            Selection::Incremental { batches: &pending, changed_ids_table: remap.changed_ids.as_deref() }
        };
        let clean = format!("clean.{name}");
        if let Some(sql) = source_events_sql(&source, &clean, &event_mapping, IDS, priority, &selection) {
            selects.sql.push(sql);
        }
    }
    Ok(selects)
}

/// The user_events rows of `selects`, with the refresh columns (written at `seq`): a plan the
/// write streams, never collected (`None` when no source has rows to map).
async fn map_rows(session: &SqlSession, selects: &[String], seq: i64) -> Result<Option<DataFrame>> {
    if selects.is_empty() {
        return Ok(None);
    }
    let sql = format!(
        "SELECT *, CAST(NULL AS VARCHAR) AS {PREVIOUS_ONE_ID}, CAST({seq} AS BIGINT) AS {REFRESH_SEQ} FROM ({})",
        selects.join(" UNION ALL ")
    );
    let frame =
        session.context().sql(&sql).await.map_err(|e| JobError::query("profiles: mapping clean rows to events", e))?;
    Ok(Some(frame))
}

/// Rows a run wrote, and how many of them resolve to nobody yet.
#[derive(Default)]
struct Written {
    written: u64,
    anonymous: u64,
}

/// The rows written at `seq`, counted in the table as written (a MERGE gives its rows the
/// run's `seq` too).
async fn written(session: &SqlSession, seq: i64) -> Result<Written> {
    let count = |what: &str| format!("SELECT {what} FROM {USER_EVENTS} WHERE {REFRESH_SEQ} = {seq}");
    let written = session.first_i64(&count("count(*)")).await?.unwrap_or(0) as u64;
    let anonymous = session.first_i64(&count("count(*) - count(one_id)")).await?.unwrap_or(0) as u64;
    Ok(Written { written, anonymous })
}

/// Commit `rows` with `transactions`: replacing every row when `full`, else merged by key
/// (only the transactions when there are no rows).
async fn write(
    workspace: &Workspace,
    table: DeltaTable,
    rows: Option<DataFrame>,
    transactions: Vec<Transaction>,
    full: bool,
) -> Result<DeltaTable> {
    let commit = || CommitProperties::default().with_application_transactions(transactions.clone());
    let lake = workspace.lake();
    match rows {
        Some(rows) if full => Ok(lake.overwrite_frame(table, &USER_EVENTS.id(), rows, None, commit()).await?),
        Some(rows) => merge(workspace, table, rows, transactions).await,
        None => Ok(lake.record_transactions(&USER_EVENTS.id(), commit()).await?),
    }
}

/// The largest [`REFRESH_SEQ`] of the registered `curated.user_events`: what a profile run has read.
pub async fn max_refresh_seq(session: &SqlSession) -> Result<i64> {
    let sql = format!("SELECT max({REFRESH_SEQ}) FROM {USER_EVENTS}");
    Ok(session.first_i64(&sql).await?.unwrap_or(0))
}

/// MERGE event rows by (source, event_key); an updated row remembers its previous one_id.
async fn merge(
    workspace: &Workspace,
    table: DeltaTable,
    rows: DataFrame,
    transactions: Vec<Transaction>,
) -> Result<DeltaTable> {
    let id = USER_EVENTS.id();
    let schema = table_arrow_schema(&table, &id)?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let update = names.iter().map(|c| {
        let value = if c == PREVIOUS_ONE_ID { "target.one_id".to_string() } else { format!("source.{c}") };
        (c.clone(), value)
    });
    let outcome = workspace
        .lake()
        .upsert_frame(&id, rows)
        .on_snapshot(table)
        .conform()
        .on_columns(&["source", "event_key"])
        .with_transactions(transactions)
        .update(None, update.collect::<Vec<_>>())
        .insert(None, Upsert::from_source(&names))
        .await?;
    Ok(outcome.table)
}

#[cfg(test)]
mod tests {
    use cdplake_zones::source::{ColumnDef, ColumnType, FileFormat};

    use super::*;
    use cdplake_core::config::profiles::default_event_mappings;

    #[test]
    fn an_incremental_selection_quotes_columns_batches_and_id_types() {
        let source = Source::new(
            "web_events",
            FileFormat::Csv,
            vec![
                ColumnDef::new("event_id", ColumnType::String).required(),
                ColumnDef::new("member id", ColumnType::String).id_type("member's id"),
                ColumnDef::new("event_time", ColumnType::Timestamp),
            ],
        );
        let mapping = &default_event_mappings()["web_events"];
        let batches = ["b'1".to_string()];
        let selection = Selection::Incremental { batches: &batches, changed_ids_table: Some("changed") };
        let sql = source_events_sql(&source, "clean.web_events", mapping, "ids", &[], &selection).unwrap();
        for expected in [
            r#"trim(CAST("member id" AS VARCHAR)) AS __id0"#,
            "_batch_id IN ('b''1')",
            r#"trim(CAST("member id" AS VARCHAR)) IN (SELECT id_value FROM changed WHERE id_type = 'member''s id')"#,
            "i0.id_type = 'member''s id' AND i0.id_value = e.__id0",
            "'web_events' AS source",
        ] {
            assert!(sql.contains(expected), "{expected} not in {sql}");
        }
        let nothing = Selection::Incremental { batches: &[], changed_ids_table: None };
        assert!(source_events_sql(&source, "clean.web_events", mapping, "ids", &[], &nothing).is_none());
    }
}
