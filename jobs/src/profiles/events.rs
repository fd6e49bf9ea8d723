//! `curated.user_events` (seed 001's `dwd_user_events`): every clean event row, mapped by its
//! source's [`EventMapping`] and resolved to its person through the identifiers it carries.
//!
//! An event resolves through the first of its identifiers that belongs to a person, person-
//! unique id types first (an app event's union_id before its possibly shared device_id), compared
//! trimmed as identity stitching compares them. One
//! that resolves to nobody keeps a null one_id (anonymous) and is re-resolved when one of its
//! identifiers later joins a person.

use std::sync::Arc;

use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::{TableId, TableSpec, timestamp_type};
use cdplake_zones::Source;

use super::config::EventMapping;

pub fn user_events_id() -> TableId {
    TableId::new("curated", "user_events").expect("static name is valid")
}

/// Which rows a run writes, the number that grows with every write (profiles refresh the
/// persons of rows newer than the last one they read), and the one_id a row had before.
pub const REFRESH_SEQ: &str = "_refresh_seq";
pub const PREVIOUS_ONE_ID: &str = "previous_one_id";

pub fn user_events_spec() -> TableSpec {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    TableSpec::new(
        user_events_id(),
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
    .with_description(
        "Every clean purchase, order, app/web event and support ticket with the person (one_id) it \
         resolves to through curated.id_mapping; null one_id = anonymous so far. Key: (source, event_key); \
         partitioned by source.",
    )
}

/// An identifier column of a clean table and its id type.
#[derive(Debug, Clone)]
pub struct IdColumn {
    pub column: String,
    pub id_type: String,
}

/// The identifier columns of a source, person-unique types first.
pub fn id_columns(source: &Source, unique_types: &[String]) -> Vec<IdColumn> {
    let mut columns: Vec<IdColumn> = source
        .columns
        .iter()
        .filter_map(|c| Some(IdColumn { column: c.clean_name()?, id_type: c.id_type.clone()? }))
        .collect();
    columns.sort_by_key(|c| !unique_types.contains(&c.id_type));
    columns
}

fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
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
    unique_types: &[String],
    selection: &Selection,
) -> Option<String> {
    let id_columns = id_columns(source, unique_types);
    let expr = |e: &Option<String>| e.clone().unwrap_or_else(|| "NULL".into());
    let mut select = vec![
        format!("{} AS source", quote(&source.name)),
        "_row_key AS event_key".into(),
        format!("CAST({} AS VARCHAR) AS event_id", mapping.event_id),
        format!("{} AS kind", quote(mapping.kind.as_str())),
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
        select.push(format!("trim(CAST(\"{}\" AS VARCHAR)) AS __id{i}", c.column));
    }
    let filter = match selection {
        Selection::All => String::new(),
        Selection::Incremental { batches, changed_ids_table } => {
            let mut any = Vec::new();
            if !batches.is_empty() {
                any.push(format!("_batch_id IN ({})", batches.iter().map(|b| quote(b)).collect::<Vec<_>>().join(", ")));
            }
            if let Some(changed) = changed_ids_table {
                for c in &id_columns {
                    any.push(format!(
                        "trim(CAST(\"{}\" AS VARCHAR)) IN (SELECT id_value FROM {changed} WHERE id_type = {})",
                        c.column,
                        quote(&c.id_type)
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
            format!(" LEFT JOIN {ids} i{i} ON i{i}.id_type = {} AND i{i}.id_value = e.__id{i}", quote(&c.id_type))
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
