//! Hubs, found from the data in both directions. An identifier linked to more distinct values
//! of an id type than one person may hold (that type's `limit`) cannot be one person's link to
//! those values: a kiosk tablet seen with dozens of member_ids, a `guest` member seen with
//! hundreds of devices, an email that many customers typed. Its links to that type are not used
//! (a *hub rule* `(identifier, linked_type)` in `curated.identity_hubs`); its other links still
//! count, so a family tablet whose rows also carry its owner's union_id still joins its owner.
//! An identifier whose remaining links would still join two persons loses every link (a rule
//! with linked_type `*`), so an ambiguous identifier is never guessed into one of them.
//!
//! Degrees count distinct linked values per type, over this run's links and the stored links of
//! the identifiers touched now. Rules are found greedily, most values over the limit first, each candidate
//! recounted without the links earlier rules removed: once the `guest` member's links to devices
//! are out, each of those devices is seen with one member again, and keeps it.

use std::collections::BTreeMap;

use cdplake_engine::arrow::array::{AsArray, RecordBatch};
use cdplake_engine::datafusion::common::{HashMap as FastMap, HashSet as FastSet};
use cdplake_engine::sql::{SqlSession, in_list};

use cdplake_core::columns::{strings, utf8};

use crate::observe::{Observations, Sighting};
use crate::union_find::{Identifier, Interner, NodeId};
use cdplake_core::config::IdTypeRule;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{IDENTITY_HUBS, IDENTITY_LINKS};

/// The `linked_type` of a rule that removes every link of its identifier.
pub(crate) const ALL_TYPES: &str = "*";

/// Which links of an identifier are not used.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    All,
    /// Its links to values of these id types (by type number).
    Types(Vec<u16>),
}

/// Every hub rule known, by interned identifier.
#[derive(Debug, Default)]
pub(crate) struct HubRules {
    rules: FastMap<NodeId, Scope>,
}

impl HubRules {
    /// Add a rule: `Some(t)` removes the links to type `t`, `None` every link.
    pub(crate) fn add(&mut self, n: NodeId, linked: Option<u16>) {
        let scope = self.rules.entry(n).or_insert(Scope::Types(Vec::new()));
        match (linked, &mut *scope) {
            (None, _) => *scope = Scope::All,
            (Some(_), Scope::All) => {}
            (Some(t), Scope::Types(types)) => {
                if !types.contains(&t) {
                    types.push(t);
                }
            }
        }
    }

    /// Is the link between `a` and `b` removed by a rule on either side?
    pub(crate) fn blocks(&self, ids: &Interner, a: NodeId, b: NodeId) -> bool {
        let one_side = |x: NodeId, y: NodeId| match self.rules.get(&x) {
            None => false,
            Some(Scope::All) => true,
            Some(Scope::Types(types)) => types.contains(&ids.type_of(y)),
        };
        one_side(a, b) || one_side(b, a)
    }

    /// Does a rule remove every link of `n`?
    pub(crate) fn is_full(&self, n: NodeId) -> bool {
        matches!(self.rules.get(&n), Some(Scope::All))
    }

    /// Does any rule name `n`?
    pub(crate) fn names(&self, n: NodeId) -> bool {
        self.rules.contains_key(&n)
    }

    /// The rules as identifiers and type names, for re-stitching persons from stored links.
    pub(crate) fn named(&self, ids: &Interner) -> NamedHubRules {
        let mut named = NamedHubRules::default();
        for (&n, scope) in &self.rules {
            let types = match scope {
                Scope::All => vec![ALL_TYPES.to_string()],
                Scope::Types(types) => types.iter().map(|&t| ids.type_name(t).to_string()).collect(),
            };
            named.rules.insert(ids.identifier(n), types);
        }
        named
    }
}

/// [`HubRules`] keyed by identifier: for the small graphs of a re-stitch.
#[derive(Debug, Default, Clone)]
pub(crate) struct NamedHubRules {
    rules: std::collections::HashMap<Identifier, Vec<String>>,
}

impl NamedHubRules {
    pub(crate) fn blocks(&self, a: &Identifier, b: &Identifier) -> bool {
        let one_side = |x: &Identifier, y: &Identifier| {
            self.rules.get(x).is_some_and(|types| types.iter().any(|t| t == ALL_TYPES || *t == y.0))
        };
        one_side(a, b) || one_side(b, a)
    }

    pub(crate) fn is_full(&self, a: &Identifier) -> bool {
        self.rules.get(a).is_some_and(|types| types.iter().any(|t| t == ALL_TYPES))
    }

    pub(crate) fn names(&self, a: &Identifier) -> bool {
        self.rules.contains_key(a)
    }
}

/// A hub rule found in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewHub {
    pub node: NodeId,
    /// The type it is linked to too many values of (`*`: it would join several persons).
    pub linked_type: String,
    pub distinct_values: u32,
    pub limit: u32,
}

/// What the degrees say.
#[derive(Debug, Default)]
pub(crate) struct Degrees {
    /// Every rule known: earlier runs' and this run's.
    pub rules: HubRules,
    pub new_hubs: Vec<NewHub>,
    /// For identifiers touched now: the most distinct values of one person-unique type
    /// (limit 1) they are linked to, every link counted (for the confidence).
    pub shared: FastMap<NodeId, u32>,
}

impl Degrees {
    /// Remove every link of `n`: its links would join several persons.
    pub(crate) fn add_full(&mut self, n: NodeId, persons: u32) {
        if !self.rules.is_full(n) {
            self.rules.add(n, None);
            self.new_hubs.push(NewHub { node: n, linked_type: ALL_TYPES.into(), distinct_values: persons, limit: 1 });
        }
    }
}

/// The hub rules among the identifiers seen now, given the earlier ones.
pub(crate) async fn find_hubs(
    workspace: &Workspace,
    observations: &mut Observations,
    rules: &BTreeMap<String, IdTypeRule>,
) -> Result<Degrees> {
    let mut degrees = Degrees::default();
    for [id_type, value, linked] in known_hubs(workspace).await? {
        let n = observations.ids.intern_named(&id_type, &value);
        let linked = (linked != ALL_TYPES).then(|| observations.ids.type_id(&linked));
        degrees.rules.add(n, linked);
    }
    let stored = stored_links(workspace, observations).await?;
    let ids = &observations.ids;
    let graph = LinkGraph {
        ids,
        seen: &observations.seen,
        pairs: observations.links.keys().copied().chain(stored).collect(),
        limits: (0..ids.type_count()).map(|t| rules.get(ids.type_name(t as u16)).map(|r| r.limit)).collect(),
    };
    let candidates = graph.candidates(&degrees);
    graph.add_rules(&mut degrees, candidates);
    graph.add_shared(&mut degrees);
    Ok(degrees)
}

/// The links degrees are counted over: this run's and the stored ones of the identifiers seen now.
struct LinkGraph<'a> {
    ids: &'a Interner,
    seen: &'a FastMap<NodeId, Sighting>,
    pairs: FastSet<(NodeId, NodeId)>,
    /// By type number: the type's per-person limit, if it has one.
    limits: Vec<Option<u32>>,
}

/// An identifier linked to more values of a type than its limit: a possible hub rule.
struct Candidate {
    node: NodeId,
    linked_type: u16,
    over_limit: u32,
}

impl LinkGraph<'_> {
    fn usable(&self, degrees: &Degrees, a: NodeId, b: NodeId) -> bool {
        !degrees.rules.blocks(self.ids, a, b)
    }

    /// Distinct linked values per (identifier seen now, linked type that `keep` accepts, other
    /// than its own), over the links no rule removes: pairs are distinct already.
    fn count_per_type(&self, degrees: &Degrees, keep: &dyn Fn(u16) -> bool) -> FastMap<(NodeId, u16), u32> {
        let ids = self.ids;
        let mut count: FastMap<(NodeId, u16), u32> = FastMap::default();
        for &(a, b) in &self.pairs {
            if !self.usable(degrees, a, b) {
                continue;
            }
            for (x, y) in [(a, b), (b, a)] {
                let t = ids.type_of(y);
                if self.seen.contains_key(&x) && keep(t) && ids.type_of(x) != t {
                    *count.entry((x, t)).or_default() += 1;
                }
            }
        }
        count
    }

    /// The identifiers over a type's limit, most values over the limit first: the account seen
    /// on twelve devices is what puts each of those devices over its one-member limit, not the
    /// other way round.
    fn candidates(&self, degrees: &Degrees) -> Vec<Candidate> {
        let (ids, limits) = (self.ids, &self.limits);
        let count = self.count_per_type(degrees, &|t| limits[t as usize].is_some());
        let mut candidates: Vec<Candidate> = count
            .iter()
            .filter_map(|(&(node, t), &c)| {
                let limit = limits[t as usize].filter(|&limit| c > limit)?;
                Some(Candidate { node, linked_type: t, over_limit: c - limit })
            })
            .collect();
        candidates.sort_by(|a, b| {
            b.over_limit
                .cmp(&a.over_limit)
                .then_with(|| ids.cmp(a.node, b.node))
                .then_with(|| ids.type_name(a.linked_type).cmp(ids.type_name(b.linked_type)))
        });
        candidates
    }

    /// The neighbours of `wanted` identifiers.
    fn neighbours(&self, wanted: &FastSet<NodeId>) -> FastMap<NodeId, Vec<NodeId>> {
        let mut neighbours: FastMap<NodeId, Vec<NodeId>> = FastMap::default();
        for &(a, b) in &self.pairs {
            if wanted.contains(&a) {
                neighbours.entry(a).or_default().push(b);
            }
            if wanted.contains(&b) {
                neighbours.entry(b).or_default().push(a);
            }
        }
        neighbours
    }

    /// A rule for each candidate still over its limit once the rules found before it are
    /// applied (each is recounted over its neighbours).
    fn add_rules(&self, degrees: &mut Degrees, candidates: Vec<Candidate>) {
        let ids = self.ids;
        let neighbours = self.neighbours(&candidates.iter().map(|c| c.node).collect());
        for Candidate { node: n, linked_type: t, .. } in candidates {
            let Some(limit) = self.limits[t as usize] else { continue };
            let c = neighbours
                .get(&n)
                .into_iter()
                .flatten()
                .filter(|&&m| ids.type_of(m) == t && self.usable(degrees, n, m))
                .count() as u32;
            if c > limit {
                degrees.rules.add(n, Some(t));
                degrees.new_hubs.push(NewHub {
                    node: n,
                    linked_type: ids.type_name(t).to_string(),
                    distinct_values: c,
                    limit,
                });
            }
        }
    }

    /// For the confidence: the most values of one person-unique type each identifier was seen
    /// with, counting every link (a family tablet kept with its owner was also seen with a relative).
    fn add_shared(&self, degrees: &mut Degrees) {
        let unique = self.count_per_type(&Degrees::default(), &|t| self.limits[t as usize] == Some(1));
        for ((n, _), c) in unique {
            let most = degrees.shared.entry(n).or_default();
            *most = (*most).max(c);
        }
    }
}

/// Every hub rule recorded by earlier runs: `[id_type, id_value, linked_type]`.
pub(crate) async fn known_hubs(workspace: &Workspace) -> Result<Vec<[String; 3]>> {
    let Some(hubs) = workspace.lake().read_if_exists(&IDENTITY_HUBS.id()).await? else {
        return Ok(Vec::new());
    };
    let rows = hubs
        .select_columns(&["id_type", "id_value", "linked_type"])
        .map_err(|e| JobError::query("identity: reading hubs", e))?
        .collect()
        .await
        .map_err(|e| JobError::query("identity: reading hubs", e))?;
    rows_of(&rows, ["id_type", "id_value", "linked_type"])
}

/// Every hub rule recorded, keyed by identifier.
pub(crate) async fn known_hub_rules(workspace: &Workspace) -> Result<NamedHubRules> {
    let mut named = NamedHubRules::default();
    for [id_type, value, linked] in known_hubs(workspace).await? {
        named.rules.entry((id_type, value)).or_default().push(linked);
    }
    Ok(named)
}

/// Stored links with one side among the identifiers seen now, as node pairs (smaller first);
/// the other side is interned too.
async fn stored_links(workspace: &Workspace, observations: &mut Observations) -> Result<Vec<(NodeId, NodeId)>> {
    let lake = workspace.lake();
    if observations.seen.is_empty() {
        return Ok(Vec::new());
    }
    let Some(stored) = lake.table_if_exists(&IDENTITY_LINKS.id()).await? else {
        return Ok(Vec::new());
    };
    // A session of this one table: the catalog's session would open every table of the lake.
    let session = SqlSession::new()?;
    session.register_loaded(IDENTITY_LINKS.zone(), IDENTITY_LINKS.table(), &stored).await?;
    let ids = &observations.ids;
    let touched = RecordBatch::try_from_iter(vec![
        ("t_type", strings(observations.seen.keys().map(|&n| ids.id_type(n)))),
        ("t_value", strings(observations.seen.keys().map(|&n| ids.value(n)))),
    ])
    .map_err(|e| JobError::arrow("identity: touched identifiers", e))?;
    session.register_rows("identity_touched", touched.schema(), vec![touched])?;
    let types: std::collections::BTreeSet<&str> = observations.seen.keys().map(|&n| ids.id_type(n)).collect();
    let types = in_list(types.into_iter());
    let mut links = Vec::new();
    for side in ["a", "b"] {
        let sql = format!(
            "SELECT l.id_type_a, l.id_value_a, l.id_type_b, l.id_value_b FROM {IDENTITY_LINKS} l \
             JOIN identity_touched t ON l.id_type_{side} = t.t_type AND l.id_value_{side} = t.t_value \
             WHERE l.id_type_{side} IN {types}"
        );
        links.extend(session.rows(&sql).await?);
    }
    let mut out = Vec::new();
    for [ta, va, tb, vb] in rows_of(&links, ["id_type_a", "id_value_a", "id_type_b", "id_value_b"])? {
        let a = observations.ids.intern_named(&ta, &va);
        let b = observations.ids.intern_named(&tb, &vb);
        out.push(if a < b { (a, b) } else { (b, a) });
    }
    Ok(out)
}

/// The rows of string columns `names`, as arrays of owned strings.
fn rows_of<const N: usize>(batches: &[RecordBatch], names: [&str; N]) -> Result<Vec<[String; N]>> {
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<_> = names.iter().map(|n| utf8(batch, "identity: links", n)).collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            out.push(std::array::from_fn(|k| columns[k].as_string::<i32>().value(i).to_string()));
        }
    }
    Ok(out)
}
