//! The profile rows of the persons in scope, before their scores: everyone's from all events, or
//! the touched persons' from their events and identifiers only (read once: the profile query
//! uses them in a dozen places, and DataFusion does not materialise a CTE).

use std::sync::Arc;

use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::lake::table_arrow_schema;
use cdplake_engine::sql::in_list;
use cdplake_engine::writes::conform_batches;
use cdplake_engine::{SqlSession, timestamp_type};
use chrono::NaiveDate;

use crate::build::ProfileSql;
use crate::ids::IDS;
use crate::inputs::query_error;
use crate::touched::{Scope, TOUCHED};
use crate::watermarks::Watermarks;
use cdplake_core::error::{JobError, Result};
use cdplake_zones::tables::{CUSTOMER_PROFILES, USER_EVENTS};

/// The session table of the computed rows (profile columns without the scores).
pub const RECOMPUTED: &str = "recomputed";

/// The RFM score columns the scoring step appends to a computed profile, in that order.
pub const SCORE_COLUMNS: [&str; 3] = ["r_score", "f_score", "m_score"];

/// Compute the profiles of the persons in `scope` and register them as [`RECOMPUTED`]; returns
/// how many rows that is.
pub async fn compute(
    session: &SqlSession,
    config: &cdplake_core::config::Config,
    as_of: NaiveDate,
    scope: &Scope,
    marks: &Watermarks,
) -> Result<u64> {
    let in_scope = format!("IN (SELECT one_id FROM {TOUCHED})");
    let user_events = USER_EVENTS.to_string();
    let (ids, events, persons) = match scope {
        Scope::Everyone => (IDS, user_events.as_str(), None),
        Scope::Persons { listed, .. } => {
            register_touched_inputs(session, listed.as_deref()).await?;
            ("touched_ids", "touched_events", Some(in_scope.as_str()))
        }
        Scope::Unchanged => return Ok(0),
    };
    let attribute_columns = marks.attribute_columns();
    let key_types = crate::build::key_types(&config.identity, &attribute_columns);
    let query = ProfileSql {
        config: &config.profiles,
        as_of,
        ids,
        events,
        attributes: &marks.attributes,
        attribute_columns: &attribute_columns,
        persons,
        key_types: &key_types,
    };
    let sql = query.sql();
    tracing::debug!(%sql, "profiles: computing");
    let (schema, rows) = session.rows_with_schema(&sql).await.map_err(query_error("profiles: computing profiles"))?;
    let schema = table_schema(&schema);
    if let Some(stored) = &marks.stored {
        same_columns(&table_arrow_schema(stored, &CUSTOMER_PROFILES.id())?, &schema)?;
    }
    let rows = conform_batches(&CUSTOMER_PROFILES.id(), &schema, rows)?;
    let count = rows.iter().map(|b| b.num_rows() as u64).sum();
    session.register_rows(RECOMPUTED, schema, rows)?;
    Ok(count)
}

/// Register the touched persons' events and identifiers as `touched_events` / `touched_ids`.
async fn register_touched_inputs(session: &SqlSession, listed: Option<&[String]>) -> Result<()> {
    // A literal list is pushed into the Parquet scan (see touched::LISTED_PERSONS).
    let events_filter = match listed {
        Some(ids) => format!("IN {}", in_list(ids.iter().map(String::as_str))),
        None => format!("IN (SELECT one_id FROM {TOUCHED})"),
    };
    for (name, sql) in [
        ("touched_events", format!("SELECT * FROM {USER_EVENTS} WHERE one_id {events_filter}")),
        ("touched_ids", format!("SELECT * FROM {IDS} WHERE one_id IN (SELECT one_id FROM {TOUCHED})")),
    ] {
        let (schema, rows) =
            session.rows_with_schema(&sql).await.map_err(query_error("profiles: reading touched persons"))?;
        session.register_rows(name, schema, rows)?;
    }
    Ok(())
}

/// The table's types for a query's columns: every column nullable (DataFusion's nullability
/// depends on the plan), plain strings, timestamps as the lake's (microseconds, UTC).
pub fn table_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema.fields().iter().map(|f| Field::new(f.name(), table_type(f.data_type()), true)).collect::<Vec<_>>(),
    ))
}

fn table_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::Timestamp(_, _) => timestamp_type(),
        other => other.clone(),
    }
}

/// The stored profiles must have the columns this version computes, in order (plus the scores):
/// rows are combined with the stored ones by position.
fn same_columns(stored: &SchemaRef, computed: &SchemaRef) -> Result<()> {
    let stored: Vec<(String, DataType)> =
        stored.fields().iter().map(|f| (f.name().clone(), table_type(f.data_type()))).collect();
    let mut expected: Vec<(String, DataType)> =
        computed.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    expected.extend(SCORE_COLUMNS.map(|c| (c.to_string(), DataType::Int64)));
    if stored == expected {
        return Ok(());
    }
    let describe =
        |columns: &[(String, DataType)]| columns.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ");
    let missing: Vec<(String, DataType)> = expected.iter().filter(|c| !stored.contains(c)).cloned().collect();
    let extra: Vec<(String, DataType)> = stored.iter().filter(|c| !expected.contains(c)).cloned().collect();
    Err(JobError::bad_input(
        CUSTOMER_PROFILES.id().to_string(),
        format!(
            "written with other columns than this version computes (new or changed: {}; gone or changed: {}); \
             drop it and its daily snapshot (`cdplake catalog drop curated.customer_profiles --purge` and \
             `cdplake catalog drop curated.customer_profiles_daily --purge`), then run `cdplake profiles --full`",
            describe(&missing),
            describe(&extra),
        ),
    ))
}
