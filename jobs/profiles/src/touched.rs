//! Which persons a refresh recomputes: everyone (a full build), or the persons touched since the
//! stored profiles were computed — the one_ids (old and new) of event rows written since, of
//! identifiers that changed person, and of new CRM rows.

use std::sync::Arc;

use cdplake_engine::SqlSession;
use cdplake_engine::arrow::array::{AsArray, RecordBatch};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::deltalake::DeltaTable;

use crate::events::{EventsUpdate, REFRESH_SEQ};
use crate::ids::{ChangedIdentifiers, register_changed_identifiers};
use crate::inputs::query_error;
use crate::watermarks::Watermarks;
use cdplake_core::columns::{column, column_as};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::USER_EVENTS;

/// The session table of touched one_ids.
pub const TOUCHED: &str = "touched";

/// Up to this many touched persons are listed in the events query itself: a literal list is
/// pushed into the Parquet scan, which then decodes the other columns only for the matching
/// rows (a semi-join with `touched` decodes all 20 million).
const LISTED_PERSONS: usize = 20_000;

/// The persons a refresh recomputes.
pub enum Scope {
    /// Everyone: a full build.
    Everyone,
    /// The persons registered as [`TOUCHED`] (none, when only watermarks moved); `listed` holds
    /// their one_ids when there are few enough to list in a query.
    Persons { count: u64, listed: Option<Vec<String>> },
    /// Nothing was read since the stored profiles: nothing to compute or commit.
    Unchanged,
}

impl Scope {
    /// The persons computed, for the report (None for everyone: counted once computed).
    pub fn count(&self) -> Option<u64> {
        match self {
            Scope::Persons { count, .. } => Some(*count),
            Scope::Everyone | Scope::Unchanged => None,
        }
    }
}

/// Find and register the touched persons of an incremental refresh.
pub async fn find(
    workspace: &Workspace,
    session: &SqlSession,
    marks: &Watermarks,
    events: &EventsUpdate,
    mapping: &DeltaTable,
) -> Result<Scope> {
    let Some(read) = marks.read else { return Ok(Scope::Everyone) };
    let mut sources = marks.crm_persons_sql();
    let seq = read.events_seq;
    sources.push(format!(
        "SELECT one_id FROM {USER_EVENTS} WHERE {REFRESH_SEQ} > {seq} AND one_id IS NOT NULL \
         UNION SELECT previous_one_id AS one_id FROM {USER_EVENTS} WHERE {REFRESH_SEQ} > {seq} \
         AND previous_one_id IS NOT NULL"
    ));
    let changed = if read.mapping == marks.current.mapping {
        None
    } else if events.mapping_read == Some(read.mapping) && !events.full {
        // The events step already read the changes since this version.
        events.changed_ids.clone()
    } else {
        match register_changed_identifiers(workspace, session, mapping, read.mapping as u64, "changed_for_profiles")
            .await?
        {
            ChangedIdentifiers::None => None,
            ChangedIdentifiers::In(name) => Some(name),
            ChangedIdentifiers::HistoryGone => return Ok(Scope::Everyone),
        }
    };
    if let Some(changed) = changed {
        sources.push(format!(
            "SELECT old_one_id AS one_id FROM {changed} WHERE old_one_id IS NOT NULL \
             UNION SELECT new_one_id AS one_id FROM {changed} WHERE new_one_id IS NOT NULL"
        ));
    }
    let rows = session
        .rows(&format!("SELECT DISTINCT one_id FROM ({}) t", sources.join(" UNION ")))
        .await
        .map_err(query_error("profiles: finding touched persons"))?;
    let count: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
    if count == 0 && !marks.moved() {
        return Ok(Scope::Unchanged);
    }
    let schema = Arc::new(Schema::new(vec![Field::new("one_id", DataType::Utf8, true)]));
    let rows = rows.iter().map(|b| one_id_batch(&schema, b)).collect::<Result<Vec<_>>>()?;
    let listed = if count as usize <= LISTED_PERSONS { Some(one_ids(&rows)?) } else { None };
    session.register_rows(TOUCHED, schema, rows)?;
    Ok(Scope::Persons { count, listed })
}

/// The `one_id` column of a batch of touched persons, as strings (Utf8) in a batch of `schema`.
fn one_id_batch(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch> {
    let one_ids = column_as(batch, "profiles: touched persons", "one_id", &DataType::Utf8)?;
    RecordBatch::try_new(schema.clone(), vec![one_ids]).map_err(|e| JobError::arrow("touched persons", e))
}

/// The non-null one_ids of batches made by [`one_id_batch`].
fn one_ids(rows: &[RecordBatch]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in rows {
        out.extend(column(b, "profiles", "one_id")?.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    Ok(out)
}
