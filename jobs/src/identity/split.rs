//! Splitting a person: re-stitch it from the links that may still join it.
//!
//! Used when links are undone (`identity unlink`, a blocklist entry) and when an identifier that
//! is already part of a person turns out to be a hub. Only that person is touched: the largest
//! part keeps the one_id (ties: the part holding a person-unique id such as a member_id, then
//! the part seen first), every other part becomes a new person, and each split is recorded in
//! `curated.id_merge_history`. An identifier that leaves the person altogether (a hub) keeps
//! its row with `is_active = false`.

use std::collections::{BTreeMap, HashSet};

use cdplake_engine::arrow::array::AsArray;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_zones::curated;
use chrono::{DateTime, Utc};

use super::union_find::{Components, Identifier};
use super::unlink::{load_unlinks, quote};
use super::{Mapping, append_history, max_user_int_id, merge_mapping, parse_mapping, text};
use crate::error::{JobError, Result};
use crate::workspace::Workspace;

/// One person re-stitched.
#[derive(Debug, Clone)]
pub(crate) struct Split {
    pub(crate) parts: usize,
    pub(crate) new_one_ids: Vec<String>,
}

/// Re-stitch each person in `retiring` (one_id → identifiers that leave it) from its links that
/// are not undone and do not touch a leaving identifier, record the splits with `cause` and
/// write the changed rows in one MERGE. Returns each person's split and the number of mapping
/// rows written. (A stop between the two leaves a history row that a rerun writes again.)
pub(crate) async fn restitch(
    workspace: &Workspace,
    retiring: &BTreeMap<String, HashSet<Identifier>>,
    cause: &(dyn Fn(&str) -> String + Sync),
    now: DateTime<Utc>,
) -> Result<(Vec<Split>, u64)> {
    if retiring.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let session = workspace.catalog.sql_session().await?;
    let run = |sql: String| {
        let session = session.clone();
        async move { session.sql(&sql).await?.collect().await.map_err(|e| JobError::query("identity: splitting", e)) }
    };
    let persons = retiring.keys().map(|o| quote(o)).collect::<Vec<_>>().join(", ");
    let members = parse_mapping(
        &run(format!("SELECT * FROM curated.id_mapping WHERE is_active AND one_id IN ({persons})")).await?,
    )?;
    let links = run(format!(
        "SELECT m.one_id, l.id_type_a, l.id_value_a, l.id_type_b, l.id_value_b FROM curated.identity_links l \
         JOIN curated.id_mapping m ON m.id_type = l.id_type_a AND m.id_value = l.id_value_a \
         WHERE m.is_active AND m.one_id IN ({persons})"
    ))
    .await?;
    let unlinks = load_unlinks(workspace).await?;
    let unique_types = &workspace.config.identity.unique_types;
    let mut components: BTreeMap<&str, Components> =
        retiring.keys().map(|o| (o.as_str(), Components::new(unique_types))).collect();
    let mut sorted: Vec<(&Identifier, &Mapping)> = members.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (identifier, mapping) in &sorted {
        if !retiring[&mapping.one_id].contains(*identifier) {
            components.get_mut(mapping.one_id.as_str()).expect("queried person").node(identifier);
        }
    }
    for batch in &links {
        let (Some(owner), Some(ta), Some(va), Some(tb), Some(vb)) = (
            text(batch, "one_id"),
            text(batch, "id_type_a"),
            text(batch, "id_value_a"),
            text(batch, "id_type_b"),
            text(batch, "id_value_b"),
        ) else {
            continue;
        };
        for i in 0..batch.num_rows() {
            let owner = owner.as_string::<i32>().value(i);
            let x = (ta.as_string::<i32>().value(i).to_string(), va.as_string::<i32>().value(i).to_string());
            let y = (tb.as_string::<i32>().value(i).to_string(), vb.as_string::<i32>().value(i).to_string());
            let leaving = &retiring[owner];
            let usable = [&x, &y].iter().all(|i| members.get(*i).is_some_and(|m| m.one_id == owner))
                && !leaving.contains(&x)
                && !leaving.contains(&y)
                && !unlinks.blocks(&x, &y);
            if usable && let Some(c) = components.get_mut(owner) {
                let _ = c.union(&x, &y);
            }
        }
    }

    let anchored = |part: &Vec<Identifier>| part.iter().any(|i| unique_types.contains(&i.0));
    let first_seen = |part: &Vec<Identifier>| part.iter().map(|i| members[i].first_seen).min().unwrap_or_default();
    let mut next_int = max_user_int_id(workspace).await? + 1;
    let mut rows: Vec<(Identifier, Mapping)> = Vec::new();
    let mut history = Vec::new();
    let mut splits = Vec::new();
    for (owner, mut c) in components {
        let mut parts = c.clusters();
        parts.sort_by(|x, y| {
            y.len()
                .cmp(&x.len())
                .then(anchored(y).cmp(&anchored(x)))
                .then(first_seen(x).cmp(&first_seen(y)))
                .then(x.cmp(y))
        });
        let mut new_one_ids = Vec::new();
        for part in parts.iter().skip(1) {
            let one_id = format!("ONE{next_int:010}");
            for identifier in part {
                let mut mapping = members[identifier].clone();
                mapping.one_id = one_id.clone();
                mapping.user_int_id = next_int;
                rows.push((identifier.clone(), mapping));
            }
            history.push((owner.to_string(), one_id.clone(), cause(owner)));
            new_one_ids.push(one_id);
            next_int += 1;
        }
        let mut leaving: Vec<&Identifier> = retiring[owner].iter().filter(|i| members.contains_key(*i)).collect();
        leaving.sort();
        for identifier in leaving {
            rows.push((identifier.clone(), Mapping { active: false, ..members[identifier].clone() }));
        }
        splits.push(Split { parts: parts.len(), new_one_ids });
    }
    append_history(workspace, "split", &history, &[], now).await?;
    if !rows.is_empty() {
        let table = workspace.lake().table(&curated::id_mapping_id()).await?;
        merge_mapping(workspace, table, &rows, CommitProperties::default()).await?;
    }
    Ok((splits, rows.len() as u64))
}

/// Hubs that are still active in a person (they were stitched before they became hubs, or a
/// run stopped between recording the hub and splitting): each leaves its person, which is
/// re-stitched without it. Returns the number of persons split.
pub(crate) async fn split_stitched_hubs(workspace: &Workspace, now: DateTime<Utc>) -> Result<u64> {
    let lake = workspace.lake();
    if !lake.table_exists(&curated::hubs_id()).await? || !lake.table_exists(&curated::id_mapping_id()).await? {
        return Ok(0);
    }
    let session = workspace.catalog.sql_session().await?;
    // Only the mapping partitions of the hubs' id types.
    let types = session.rows("SELECT DISTINCT id_type FROM curated.identity_hubs").await?;
    let types: Vec<String> = types
        .iter()
        .filter_map(|b| text(b, "id_type"))
        .flat_map(|c| c.as_string::<i32>().iter().flatten().map(quote).collect::<Vec<_>>())
        .collect();
    if types.is_empty() {
        return Ok(0);
    }
    let stitched = session
        .sql(&format!(
            "SELECT m.one_id, m.id_type, m.id_value, h.unique_type, h.distinct_values FROM curated.id_mapping m \
             JOIN curated.identity_hubs h ON m.id_type = h.id_type AND m.id_value = h.id_value \
             WHERE m.is_active AND m.id_type IN ({})",
            types.join(", ")
        ))
        .await?
        .collect()
        .await
        .map_err(|e| JobError::query("identity: hubs inside persons", e))?;
    let mut retiring: BTreeMap<String, HashSet<Identifier>> = BTreeMap::new();
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for batch in &stitched {
        let columns: Vec<_> = ["one_id", "id_type", "id_value", "unique_type", "distinct_values"]
            .iter()
            .map(|c| text(batch, c))
            .collect();
        let [Some(o), Some(t), Some(v), Some(u), Some(n)] =
            <[_; 5]>::try_from(columns).map_err(|_| JobError::Invalid("hubs".into()))?
        else {
            continue;
        };
        for i in 0..batch.num_rows() {
            let one_id = o.as_string::<i32>().value(i).to_string();
            let identifier = (t.as_string::<i32>().value(i).to_string(), v.as_string::<i32>().value(i).to_string());
            reasons.entry(one_id.clone()).or_default().push(format!(
                "{}:{} became a hub ({} {} values)",
                identifier.0,
                identifier.1,
                n.as_string::<i32>().value(i),
                u.as_string::<i32>().value(i)
            ));
            retiring.entry(one_id).or_default().insert(identifier);
        }
    }
    let cause = |one_id: &str| reasons.get(one_id).map(|r| r.join("; ")).unwrap_or_default();
    let (splits, _) = restitch(workspace, &retiring, &cause, now).await?;
    Ok(splits.len() as u64)
}
