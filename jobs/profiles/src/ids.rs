//! The identifiers a refresh resolves events and persons with, read once per run: the active,
//! non-hub identifiers of `curated.id_mapping`, and those whose person changed since a version.

use std::sync::Arc;

use cdplake_engine::arrow::array::RecordBatch;
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::{SqlSession, TimeTravel};

use crate::inputs::query_error;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{ID_MAPPING, IDENTITY_HUBS};

/// The session table of active identifiers (one_id, id_type, id_value, first_seen).
pub const IDS: &str = "ids";

/// Register the active identifiers as [`IDS`], without identifiers a hub rule removes every link
/// of (a rule on one linked type leaves an identifier its person: a tablet kept with its owner).
pub async fn register_identifiers(workspace: &Workspace, session: &SqlSession, mapping: &DeltaTable) -> Result<()> {
    session.register_loaded(ID_MAPPING.zone(), ID_MAPPING.table(), mapping).await?;
    let hubs = workspace.lake().table_if_exists(&IDENTITY_HUBS.id()).await?;
    if let Some(table) = &hubs {
        session.register_loaded(IDENTITY_HUBS.zone(), IDENTITY_HUBS.table(), table).await?;
    }
    let not_hub = if hubs.is_some() {
        format!(
            " AND NOT EXISTS (SELECT 1 FROM {IDENTITY_HUBS} h WHERE h.id_type = m.id_type AND h.id_value = m.id_value \
           AND h.linked_type = '*')"
        )
    } else {
        String::new()
    };
    let sql = format!("SELECT one_id, id_type, id_value, first_seen FROM {ID_MAPPING} m WHERE is_active{not_hub}");
    let (schema, rows) = session.rows_with_schema(&sql).await.map_err(query_error("profiles: reading identifiers"))?;
    session.register_rows(IDS, schema, rows)?;
    Ok(())
}

/// What [`register_changed_identifiers`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangedIdentifiers {
    /// No identifier changed person.
    None,
    /// The changes, registered under this name.
    In(String),
    /// Neither the change feed nor the version itself can be read any more (maintenance
    /// removed that history): the caller recomputes everything.
    HistoryGone,
}

/// Identifiers whose person differs between `curated.id_mapping` at `version` and now (new,
/// moved, or gone), registered as `name` (id_type, id_value, old_one_id, new_one_id).
/// Read from the table's change data feed (the rows of the commits since), or, when the table
/// has none or it is incomplete, by comparing the two versions whole.
pub async fn register_changed_identifiers(
    workspace: &Workspace,
    session: &SqlSession,
    mapping: &DeltaTable,
    version: u64,
    name: &str,
) -> Result<ChangedIdentifiers> {
    let feed = format!("{name}_feed");
    let from_feed = match session.register_changes(&feed, mapping, version + 1).await {
        Ok(registered) => registered,
        Err(e) => {
            tracing::info!(error = %e, "id_mapping's change feed since version {} is gone", version + 1);
            false
        }
    };
    if from_feed {
        // Each identifier's first change since `version`: its pre-image is what it was then
        // (an insert: nothing).
        let sql = format!(
            "SELECT f.id_type, f.id_value, f.old_one_id, n.one_id AS new_one_id FROM (\
               SELECT id_type, id_value, CASE WHEN _change_type = 'update_preimage' AND is_active THEN one_id END AS old_one_id \
               FROM (SELECT id_type, id_value, one_id, is_active, _change_type, row_number() OVER (\
                 PARTITION BY id_type, id_value ORDER BY _commit_version, \
                 CASE WHEN _change_type = 'update_preimage' THEN 0 ELSE 1 END) AS __first FROM {feed}) \
               WHERE __first = 1) f \
             LEFT JOIN {IDS} n ON n.id_type = f.id_type AND n.id_value = f.id_value \
             WHERE n.one_id IS DISTINCT FROM f.old_one_id"
        );
        match session.rows(&sql).await {
            Ok(rows) => return register_changes_found(session, name, rows),
            // Change-data files vacuumed while the log still names them.
            Err(e) => {
                tracing::info!(error = %e, "id_mapping's change feed since version {} is incomplete", version + 1)
            }
        }
    }
    let earlier = match workspace.lake().table_as_of(&ID_MAPPING.id(), TimeTravel::Version(version)).await {
        Ok(earlier) => earlier,
        Err(e) => {
            tracing::info!(error = %e, "id_mapping version {version} is gone: recomputing everything");
            return Ok(ChangedIdentifiers::HistoryGone);
        }
    };
    session.register_loaded("history", &format!("id_mapping_v{version}"), &earlier).await?;
    let sql = format!(
        "SELECT coalesce(n.id_type, o.id_type) AS id_type, coalesce(n.id_value, o.id_value) AS id_value, \
           o.one_id AS old_one_id, n.one_id AS new_one_id \
         FROM {IDS} n FULL OUTER JOIN (SELECT id_type, id_value, one_id FROM history.id_mapping_v{version} WHERE is_active) o \
           ON n.id_type = o.id_type AND n.id_value = o.id_value \
         WHERE n.one_id IS DISTINCT FROM o.one_id"
    );
    match session.rows(&sql).await {
        Ok(rows) => register_changes_found(session, name, rows),
        Err(e) => {
            tracing::info!(error = %e, "id_mapping version {version} cannot be read whole: recomputing everything");
            Ok(ChangedIdentifiers::HistoryGone)
        }
    }
}

/// Register the changed identifiers' rows as `name` (as plain strings).
fn register_changes_found(session: &SqlSession, name: &str, rows: Vec<RecordBatch>) -> Result<ChangedIdentifiers> {
    let schema = Arc::new(Schema::new(
        ["id_type", "id_value", "old_one_id", "new_one_id"].map(|c| Field::new(c, DataType::Utf8, true)).to_vec(),
    ));
    let rows = rows
        .iter()
        .map(|b| {
            let columns =
                (0..4).map(|i| cast(b.column(i), &DataType::Utf8)).collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| JobError::arrow("changed identifiers", e))?;
    if rows.iter().all(|b| b.num_rows() == 0) {
        return Ok(ChangedIdentifiers::None);
    }
    session.register_rows(name, schema, rows)?;
    Ok(ChangedIdentifiers::In(name.to_string()))
}
