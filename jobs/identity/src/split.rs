//! Splitting a person: re-stitch it from the links that may still join it.
//!
//! Used when links are undone (`identity unlink`, a blocklist entry) and when an identifier that
//! is already part of a person turns out to be a hub. Only that person is touched: the largest
//! part keeps the one_id (ties: the part holding a person-unique id such as a member_id, then
//! the part seen first), every other part becomes a new person, and each split is recorded in
//! `curated.id_merge_history`. An identifier that leaves the person altogether (a hub) keeps
//! its row with `is_active = false`.

use std::collections::{BTreeMap, HashMap, HashSet};

use cdplake_engine::arrow::array::AsArray;
use cdplake_zones::curated;
use chrono::{DateTime, Utc};

use cdplake_engine::sql::{SqlSession, in_list};
use cdplake_zones::curated::IdMappingRow;

use cdplake_engine::arrow::array::RecordBatch;

use cdplake_core::columns::{strings, text};

use crate::hubs::{ALL_TYPES, NamedHubRules};
use crate::store::{HistoryEntry, append_history, max_user_int_id, merge_mapping, parse_mapping};
use crate::union_find::{Components, Identifier};
use crate::unlinks::{Unlinks, load_unlinks};
use cdplake_core::config::IdTypeRule;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{ID_MAPPING, IDENTITY_LINKS};

/// One person re-stitched.
#[derive(Debug, Clone)]
pub(crate) struct Split {
    pub(crate) parts: usize,
    pub(crate) new_one_ids: Vec<String>,
}

/// Re-stitch each person in `retiring` (one_id → identifiers that leave it) from its links that
/// are not undone, not removed by a hub rule and do not touch a leaving identifier, record the splits with `cause` and
/// write the changed rows in one MERGE. Returns each person's split and the number of mapping
/// rows written. (A stop between the two leaves a history row that a rerun writes again.)
pub(crate) async fn restitch(
    workspace: &Workspace,
    retiring: &BTreeMap<String, HashSet<Identifier>>,
    cause: &(dyn Fn(&str) -> String + Sync),
    hub_rules: &NamedHubRules,
    now: DateTime<Utc>,
) -> Result<(Vec<Split>, u64)> {
    if retiring.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let session = workspace.catalog.sql_session().await?;
    let one_ids = in_list(retiring.keys().map(String::as_str));
    let members = parse_mapping(
        &run(&session, &format!("SELECT * FROM {ID_MAPPING} WHERE is_active AND one_id IN {one_ids}")).await?,
    )?;
    let links = run(
        &session,
        &format!(
            "SELECT m.one_id, l.id_type_a, l.id_value_a, l.id_type_b, l.id_value_b FROM {IDENTITY_LINKS} l \
             JOIN {ID_MAPPING} m ON m.id_type = l.id_type_a AND m.id_value = l.id_value_a \
             WHERE m.is_active AND m.one_id IN {one_ids}"
        ),
    )
    .await?;
    let unlinks = load_unlinks(workspace).await?;
    let persons = Persons { retiring, members: &members, cause, hub_rules };
    let unique_types = workspace.config.identity.unique_types();
    let mut components = persons.staying_identifiers(&workspace.config.identity.types);
    for batch in &links {
        persons.apply_links(batch, &unlinks, &mut components);
    }
    let mut rewrite = Rewrite::starting_at(max_user_int_id(workspace).await? + 1);
    for (owner, c) in components {
        rewrite.person(&persons, owner, persons.ranked_parts(&c, &unique_types));
    }
    append_history(workspace, &rewrite.history, &[], now).await?;
    if !rewrite.rows.is_empty() {
        let table = workspace.lake().table(&ID_MAPPING.id()).await?;
        merge_mapping(workspace, table, &rewrite.rows, Vec::new()).await?;
    }
    Ok((rewrite.splits, rewrite.rows.len() as u64))
}

async fn run(session: &SqlSession, sql: &str) -> Result<Vec<RecordBatch>> {
    session.sql(sql).await?.collect().await.map_err(|e| JobError::query("identity: splitting", e))
}

/// The persons being re-stitched, as loaded.
struct Persons<'a> {
    /// one_id → the identifiers that leave it.
    retiring: &'a BTreeMap<String, HashSet<Identifier>>,
    /// Their active mapping rows, by identifier.
    members: &'a HashMap<Identifier, IdMappingRow>,
    cause: &'a (dyn Fn(&str) -> String + Sync),
    hub_rules: &'a NamedHubRules,
}

impl<'a> Persons<'a> {
    /// Per person, components holding the identifiers that stay, unjoined (in identifier order).
    fn staying_identifiers(&self, rules: &BTreeMap<String, IdTypeRule>) -> BTreeMap<&'a str, Components> {
        let mut components: BTreeMap<&str, Components> =
            self.retiring.keys().map(|o| (o.as_str(), Components::new(rules))).collect();
        let mut sorted: Vec<(&Identifier, &IdMappingRow)> = self.members.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        for (identifier, mapping) in &sorted {
            if !self.retiring[&mapping.one_id].contains(*identifier) {
                components.get_mut(mapping.one_id.as_str()).expect("queried person").node(identifier);
            }
        }
        components
    }

    /// Join the two identifiers of each link row `(one_id, id_type_a, id_value_a, id_type_b,
    /// id_value_b)` that may still join its person.
    fn apply_links(&self, batch: &RecordBatch, unlinks: &Unlinks, components: &mut BTreeMap<&str, Components>) {
        let (Some(owner), Some(ta), Some(va), Some(tb), Some(vb)) = (
            text(batch, "one_id"),
            text(batch, "id_type_a"),
            text(batch, "id_value_a"),
            text(batch, "id_type_b"),
            text(batch, "id_value_b"),
        ) else {
            return;
        };
        for i in 0..batch.num_rows() {
            let owner = owner.as_string::<i32>().value(i);
            let x = (ta.as_string::<i32>().value(i).to_string(), va.as_string::<i32>().value(i).to_string());
            let y = (tb.as_string::<i32>().value(i).to_string(), vb.as_string::<i32>().value(i).to_string());
            if self.may_join(owner, &x, &y, unlinks)
                && let Some(c) = components.get_mut(owner)
            {
                let _ = c.union(&x, &y);
            }
        }
    }

    /// May the link `x`–`y` still join person `owner`: both ends are its members, neither
    /// leaves, and no unlink or hub rule removes it.
    fn may_join(&self, owner: &str, x: &Identifier, y: &Identifier, unlinks: &Unlinks) -> bool {
        let leaving = &self.retiring[owner];
        [x, y].iter().all(|i| self.members.get(*i).is_some_and(|m| m.one_id == owner))
            && !leaving.contains(x)
            && !leaving.contains(y)
            && !unlinks.blocks(x, y)
            && !self.hub_rules.blocks(x, y)
    }

    /// The parts of a re-stitched person, the one that keeps the one_id first: the largest, then
    /// one holding a person-unique id, then the one seen first.
    fn ranked_parts(&self, c: &Components, unique_types: &[String]) -> Vec<Vec<Identifier>> {
        let anchored = |part: &Vec<Identifier>| part.iter().any(|i| unique_types.contains(&i.0));
        let first_seen =
            |part: &Vec<Identifier>| part.iter().map(|i| self.members[i].first_seen).min().unwrap_or_default();
        let mut parts = c.identifier_clusters();
        parts.sort_by(|x, y| {
            y.len()
                .cmp(&x.len())
                .then(anchored(y).cmp(&anchored(x)))
                .then(first_seen(x).cmp(&first_seen(y)))
                .then(x.cmp(y))
        });
        parts
    }
}

/// What re-stitching writes: the changed mapping rows, the history, and each person's split.
struct Rewrite {
    /// The user_int_id of the next new person.
    next_int: i64,
    rows: Vec<IdMappingRow>,
    history: Vec<HistoryEntry>,
    splits: Vec<Split>,
}

impl Rewrite {
    fn starting_at(next_int: i64) -> Self {
        Self { next_int, rows: Vec::new(), history: Vec::new(), splits: Vec::new() }
    }

    /// Person `owner` re-stitched into `parts` (ranked): the first keeps the one_id, each other
    /// splits off, and the rows of the identifiers that leave go inactive.
    fn person(&mut self, persons: &Persons<'_>, owner: &str, parts: Vec<Vec<Identifier>>) {
        let members = persons.members;
        let retiring = &persons.retiring[owner];
        // Nothing left to stitch: every identifier it had is leaving, and so is the person.
        let had_leaving = retiring.iter().any(|i| members.get(i).is_some_and(|m| m.one_id == owner));
        if parts.is_empty() && had_leaving {
            let why = (persons.cause)(owner);
            self.history
                .push(HistoryEntry::retire(owner, if why.is_empty() { "every identifier left it" } else { &why }));
        }
        let new_one_ids = parts.iter().skip(1).filter_map(|part| self.split_off(persons, owner, part)).collect();
        let mut leaving: Vec<&Identifier> = retiring.iter().filter(|i| members.contains_key(*i)).collect();
        leaving.sort();
        for identifier in leaving {
            self.rows.push(IdMappingRow { is_active: false, ..members[identifier].clone() });
        }
        self.splits.push(Split { parts: parts.len(), new_one_ids });
    }

    /// A part that leaves person `owner`: a new person (its one_id), or nobody's when hub rules
    /// cut every identifier of it off from everyone (its rows go inactive).
    fn split_off(&mut self, persons: &Persons<'_>, owner: &str, part: &[Identifier]) -> Option<String> {
        let members = persons.members;
        if part.iter().all(|i| persons.hub_rules.names(i)) {
            self.rows.extend(part.iter().map(|i| IdMappingRow { is_active: false, ..members[i].clone() }));
            return None;
        }
        let one_id = curated::one_id(self.next_int);
        for identifier in part {
            let mut mapping = members[identifier].clone();
            mapping.one_id = one_id.clone();
            mapping.user_int_id = self.next_int;
            self.rows.push(mapping);
        }
        self.history.push(HistoryEntry::new("split", owner, &one_id, (persons.cause)(owner)));
        self.next_int += 1;
        Some(one_id)
    }
}

/// A hub rule found in this run, by identifier.
#[derive(Debug, Clone)]
pub(crate) struct RuleFound {
    pub(crate) identifier: Identifier,
    /// `*` when every link of the identifier goes.
    pub(crate) linked_type: String,
    pub(crate) distinct_values: u32,
    pub(crate) limit: u32,
}

impl RuleFound {
    fn describe(&self) -> String {
        let (t, v) = &self.identifier;
        if self.linked_type == ALL_TYPES {
            format!("{t}:{v} would join {} persons", self.distinct_values)
        } else {
            format!("{t}:{v} is linked to {} {} values (limit {})", self.distinct_values, self.linked_type, self.limit)
        }
    }
}

/// The persons that hold an identifier of a new hub rule (it was stitched before the rule was
/// found): each is re-stitched without the links the rules remove, and an identifier that loses
/// every link leaves its person (inactive row). Returns the number of persons re-stitched.
pub(crate) async fn split_for_rules(
    workspace: &Workspace,
    found: &[RuleFound],
    rules: &NamedHubRules,
    now: DateTime<Utc>,
) -> Result<u64> {
    let lake = workspace.lake();
    if found.is_empty() || !lake.table_exists(&ID_MAPPING.id()).await? {
        return Ok(0);
    }
    let session = workspace.catalog.sql_session().await?;
    let batch = RecordBatch::try_from_iter(vec![
        ("h_type", strings(found.iter().map(|f| f.identifier.0.as_str()))),
        ("h_value", strings(found.iter().map(|f| f.identifier.1.as_str()))),
    ])
    .map_err(|e| JobError::arrow("identity: hub rules", e))?;
    session.register_rows("identity_new_hubs", batch.schema(), vec![batch])?;
    let types: std::collections::BTreeSet<&str> = found.iter().map(|f| f.identifier.0.as_str()).collect();
    let stitched = session
        .rows(&format!(
            "SELECT DISTINCT m.one_id, m.id_type, m.id_value FROM {ID_MAPPING} m \
             JOIN identity_new_hubs h ON m.id_type = h.h_type AND m.id_value = h.h_value \
             WHERE m.is_active AND m.id_type IN {}",
            in_list(types.into_iter())
        ))
        .await?;
    let mut retiring: BTreeMap<String, HashSet<Identifier>> = BTreeMap::new();
    let mut reasons: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for batch in &stitched {
        let (Some(o), Some(t), Some(v)) = (text(batch, "one_id"), text(batch, "id_type"), text(batch, "id_value"))
        else {
            continue;
        };
        for i in 0..batch.num_rows() {
            let one_id = o.as_string::<i32>().value(i).to_string();
            let identifier = (t.as_string::<i32>().value(i).to_string(), v.as_string::<i32>().value(i).to_string());
            for rule in found.iter().filter(|f| f.identifier == identifier) {
                reasons.entry(one_id.clone()).or_default().push(rule.describe());
            }
            let leaving = retiring.entry(one_id).or_default();
            if rules.is_full(&identifier) {
                leaving.insert(identifier);
            }
        }
    }
    let cause = |one_id: &str| reasons.get(one_id).map(|r| r.join("; ")).unwrap_or_default();
    let (splits, _) = restitch(workspace, &retiring, &cause, rules, now).await?;
    // Persons that lost an identifier or fell apart (`restitch` keeps `retiring`'s order).
    Ok(retiring.values().zip(&splits).filter(|(leaving, split)| !leaving.is_empty() || split.parts > 1).count() as u64)
}
