//! `cdplake identity unlink`: undo a bad merge.
//!
//! `unlink A B` undoes the link between two identifiers; `unlink A` undoes every link of A.
//! The undo is recorded in `curated.identity_unlinks` (later runs never use those links), and
//! only the person A belongs to is re-stitched from the links that remain ([`restitch`]). No
//! other person is touched.

use std::collections::{BTreeMap, HashSet};

use cdplake_engine::sql::quote_literal;
use cdplake_zones::curated;
use chrono::{DateTime, Utc};

use cdplake_core::columns::{batch_for, micros, strings};

use crate::split::restitch;
use crate::store::parse_mapping;
use crate::union_find::Identifier;
use crate::unlinks::load_unlinks;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::ID_MAPPING;

#[derive(Debug, Clone, serde::Serialize)]
pub struct UnlinkReport {
    pub one_id: String,
    /// The person's parts after the undo (1: still one person).
    pub parts: usize,
    pub new_one_ids: Vec<String>,
    pub mapping_rows_written: u64,
}

/// Identifiers newly added to `[identity] blocklist` as `id_type:value` that still belong to a
/// person: undo every link of each, as `unlink A` would.
pub async fn apply_blocklist(workspace: &Workspace, now: DateTime<Utc>) -> Result<Vec<UnlinkReport>> {
    let unlinks = load_unlinks(workspace).await?;
    let mut reports = Vec::new();
    for entry in &workspace.config.identity.blocklist {
        let Some((t, v)) = entry.split_once(':') else { continue };
        let identifier = (t.trim().to_string(), v.trim().to_string());
        if unlinks.identifiers.contains(&identifier) {
            continue;
        }
        match unlink(workspace, &identifier, None, now).await {
            Ok(report) => reports.push(report),
            Err(JobError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(reports)
}

pub async fn unlink(
    workspace: &Workspace,
    a: &Identifier,
    b: Option<&Identifier>,
    now: DateTime<Utc>,
) -> Result<UnlinkReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let session = workspace.catalog.sql_session().await?;
    let run = |sql: String| {
        let session = session.clone();
        async move { session.sql(&sql).await?.collect().await.map_err(|e| JobError::query("identity unlink", e)) }
    };
    let owner = parse_mapping(
        &run(format!(
            "SELECT * FROM {ID_MAPPING} WHERE is_active AND id_type = {} AND id_value = {}",
            quote_literal(&a.0),
            quote_literal(&a.1)
        ))
        .await?,
    )?;
    let Some(owner) = owner.get(a).cloned() else {
        return Err(JobError::not_found(format!("{}:{} is not in curated.id_mapping", a.0, a.1), "nothing to unlink"));
    };

    // Record the undo first: later runs must never use the link again.
    let spec = curated::unlinks_spec();
    let (tb, vb) = b.map(|b| (b.0.as_str(), b.1.as_str())).unwrap_or(("", ""));
    let row = batch_for(
        &spec,
        vec![
            strings([a.0.as_str()].into_iter()),
            strings([a.1.as_str()].into_iter()),
            strings([tb].into_iter()),
            strings([vb].into_iter()),
            micros([now.timestamp_micros()].into_iter()),
        ],
    )?;
    lake.append(&spec.id, vec![row]).await?;

    // Re-stitch this person alone from the links that remain.
    let cause = match b {
        Some(b) => format!("unlink {}:{} {}:{}", a.0, a.1, b.0, b.1),
        None => format!("unlink {}:{}", a.0, a.1),
    };
    let retiring = BTreeMap::from([(owner.one_id.clone(), HashSet::new())]);
    let hub_rules = crate::hubs::known_hub_rules(workspace).await?;
    let (splits, rows) = restitch(workspace, &retiring, &|_| cause.clone(), &hub_rules, now).await?;
    let split = splits.into_iter().next().expect("one person re-stitched");
    Ok(UnlinkReport {
        one_id: owner.one_id,
        parts: split.parts,
        new_one_ids: split.new_one_ids,
        mapping_rows_written: rows,
    })
}
