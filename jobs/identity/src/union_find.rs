//! Union-find (disjoint sets) over interned identifiers, with per-person limits per id type:
//! two clusters never join when together they would hold more values of a type than one person
//! may (two member_ids, six email hashes).
//!
//! Identifiers are interned once into dense `u32` node ids ([`Interner`]): a first run at 1M
//! people unions tens of millions of links, and comparing and hashing integers instead of
//! `(String, String)` pairs is what makes that take seconds.

use std::collections::BTreeMap;
use std::hash::BuildHasher;

use cdplake_core::config::IdTypeRule;

/// An identifier: `(id_type, id_value)`.
pub type Identifier = (String, String);

/// A dense number standing for one identifier of an [`Interner`].
pub type NodeId = u32;

/// Identifiers as dense numbers; id types as small numbers.
#[derive(Default)]
pub struct Interner {
    type_names: Vec<String>,
    node_type: Vec<u16>,
    node_value: Vec<Box<str>>,
    table: hashbrown::HashTable<NodeId>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("types", &self.type_names).field("identifiers", &self.len()).finish()
    }
}

impl Interner {
    /// The number of an id type, registering it if new.
    pub fn type_id(&mut self, id_type: &str) -> u16 {
        match self.type_names.iter().position(|t| t == id_type) {
            Some(t) => t as u16,
            None => {
                self.type_names.push(id_type.to_string());
                (self.type_names.len() - 1) as u16
            }
        }
    }

    fn hash(&self, id_type: u16, value: &str) -> u64 {
        self.hasher.hash_one((id_type, value))
    }

    /// The node of an identifier, adding it if new.
    pub fn intern(&mut self, id_type: u16, value: &str) -> NodeId {
        let hash = self.hash(id_type, value);
        let (types, values) = (&self.node_type, &self.node_value);
        if let Some(&n) = self.table.find(hash, |&n| types[n as usize] == id_type && &*values[n as usize] == value) {
            return n;
        }
        let n = self.node_type.len() as NodeId;
        self.node_type.push(id_type);
        self.node_value.push(value.into());
        let (types, values, hasher) = (&self.node_type, &self.node_value, &self.hasher);
        self.table.insert_unique(hash, n, |&m| hasher.hash_one((types[m as usize], &*values[m as usize])));
        n
    }

    /// The node of `(id_type, value)` by name, adding both if new.
    pub fn intern_named(&mut self, id_type: &str, value: &str) -> NodeId {
        let t = self.type_id(id_type);
        self.intern(t, value)
    }

    /// The node of an identifier, if interned.
    pub fn get(&self, id_type: &str, value: &str) -> Option<NodeId> {
        let t = self.type_names.iter().position(|name| name == id_type)? as u16;
        let hash = self.hash(t, value);
        self.table.find(hash, |&n| self.node_type[n as usize] == t && &*self.node_value[n as usize] == value).copied()
    }

    pub fn len(&self) -> usize {
        self.node_type.len()
    }

    pub fn is_empty(&self) -> bool {
        self.node_type.is_empty()
    }

    pub fn type_of(&self, n: NodeId) -> u16 {
        self.node_type[n as usize]
    }

    pub fn type_name(&self, t: u16) -> &str {
        &self.type_names[t as usize]
    }

    pub fn type_count(&self) -> usize {
        self.type_names.len()
    }

    pub fn id_type(&self, n: NodeId) -> &str {
        self.type_name(self.type_of(n))
    }

    pub fn value(&self, n: NodeId) -> &str {
        &self.node_value[n as usize]
    }

    pub fn identifier(&self, n: NodeId) -> Identifier {
        (self.id_type(n).to_string(), self.value(n).to_string())
    }

    /// `type:value`, for messages.
    pub fn label(&self, n: NodeId) -> String {
        format!("{}:{}", self.id_type(n), self.value(n))
    }

    /// [`Self::cmp`]'s order as a key, with type names ranked once: for comparing millions of
    /// identifiers (links sorted, ends oriented) without comparing type names each time.
    pub fn order_key<'a>(&'a self) -> impl Fn(NodeId) -> (u32, &'a str) + 'a {
        let mut names: Vec<(&str, usize)> = self.type_names.iter().map(String::as_str).zip(0..).collect();
        names.sort_unstable();
        let mut rank = vec![0u32; names.len()];
        for (r, &(_, t)) in names.iter().enumerate() {
            rank[t] = r as u32;
        }
        move |n| (rank[self.node_type[n as usize] as usize], self.value(n))
    }

    /// Order of two nodes by `(id_type, id_value)`: stable whatever order they were interned in.
    pub fn cmp(&self, a: NodeId, b: NodeId) -> std::cmp::Ordering {
        (self.id_type(a), self.value(a)).cmp(&(self.id_type(b), self.value(b)))
    }
}

/// Why a union was refused: together the two clusters would exceed an id type's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub id_type: String,
    pub limit: u32,
    /// The values of that type on each side.
    pub left: Vec<Identifier>,
    pub right: Vec<Identifier>,
}

impl Refusal {
    /// One line for people: `member_id limit 1: member_id:M1 | member_id:M2`.
    pub fn describe(&self) -> String {
        let list = |ids: &[Identifier]| ids.iter().map(|i| format!("{}:{}", i.0, i.1)).collect::<Vec<_>>().join(",");
        format!(
            "a person holds at most {} {}; this link would join {} and {}",
            self.limit,
            self.id_type,
            list(&self.left),
            list(&self.right)
        )
    }
}

/// Disjoint sets with path halving and union by size, over the nodes added to it.
#[derive(Debug, Default)]
pub struct Components {
    pub ids: Interner,
    rules: BTreeMap<String, IdTypeRule>,
    /// By type number: the limit, looked up once per type.
    limits: Vec<Option<u32>>,
    parent: Vec<NodeId>,
    size: Vec<u32>,
    /// Whether the node takes part (an interned identifier may only be a neighbour).
    member: Vec<bool>,
    /// Per root: its members of id types with a limit, as a list threaded through the nodes
    /// (first and last per root, next per node): a union appends one list to another without
    /// moving anything, and millions of one-member persons allocate nothing.
    limited_first: Vec<NodeId>,
    limited_last: Vec<NodeId>,
    limited_next: Vec<NodeId>,
}

const NONE: NodeId = NodeId::MAX;

impl Components {
    /// Empty, with the per-type limits of `rules`.
    pub fn new(rules: &BTreeMap<String, IdTypeRule>) -> Self {
        Self::with_interner(Interner::default(), rules)
    }

    /// Over identifiers interned already (no node takes part until [`Self::add`]).
    pub fn with_interner(ids: Interner, rules: &BTreeMap<String, IdTypeRule>) -> Self {
        let mut components = Self { ids, rules: rules.clone(), ..Default::default() };
        components.grow();
        components
    }

    fn limit_of_type(&mut self, t: u16) -> Option<u32> {
        while self.limits.len() <= t as usize {
            let name = self.ids.type_name(self.limits.len() as u16);
            let limit = self.rules.get(name).map(|r| r.limit);
            self.limits.push(limit);
        }
        self.limits[t as usize]
    }

    fn grow(&mut self) {
        let n = self.ids.len();
        if self.parent.len() < n {
            self.parent.resize(n, NONE);
            self.size.resize(n, 1);
            self.member.resize(n, false);
            self.limited_first.resize(n, NONE);
            self.limited_last.resize(n, NONE);
            self.limited_next.resize(n, NONE);
        }
    }

    /// Make an interned node take part, as a cluster of its own if new.
    pub fn add(&mut self, n: NodeId) {
        self.grow();
        if self.member[n as usize] {
            return;
        }
        self.member[n as usize] = true;
        self.parent[n as usize] = n;
        let t = self.ids.type_of(n);
        if self.limit_of_type(t).is_some() {
            self.limited_first[n as usize] = n;
            self.limited_last[n as usize] = n;
        }
    }

    /// The node of an identifier, interned and added if new.
    pub fn node(&mut self, id: &Identifier) -> NodeId {
        let n = self.ids.intern_named(&id.0, &id.1);
        self.add(n);
        n
    }

    pub fn find(&mut self, mut n: NodeId) -> NodeId {
        while self.parent[n as usize] != n {
            let grandparent = self.parent[self.parent[n as usize] as usize];
            self.parent[n as usize] = grandparent;
            n = grandparent;
        }
        n
    }

    /// Join the clusters of two identifiers (added if new), unless that would exceed a limit.
    /// Returns whether two clusters became one.
    pub fn union(&mut self, a: &Identifier, b: &Identifier) -> Result<bool, Refusal> {
        let (na, nb) = (self.node(a), self.node(b));
        self.union_nodes(na, nb)
    }

    /// [`Self::union`] on nodes that take part.
    pub fn union_nodes(&mut self, a: NodeId, b: NodeId) -> Result<bool, Refusal> {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return Ok(false);
        }
        if let Some(refusal) = self.refusal(ra, rb) {
            return Err(refusal);
        }
        self.link_roots(ra, rb);
        Ok(true)
    }

    /// Join two clusters whatever the limits: for persons that exist already.
    pub fn join_unchecked(&mut self, a: NodeId, b: NodeId) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.link_roots(ra, rb);
        }
    }

    /// Hang the smaller of two roots under the larger (union by size).
    fn link_roots(&mut self, mut ra: NodeId, mut rb: NodeId) {
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
        let (first_b, last_b) = (self.limited_first[rb as usize], self.limited_last[rb as usize]);
        if first_b != NONE {
            match self.limited_last[ra as usize] {
                NONE => self.limited_first[ra as usize] = first_b,
                last_a => self.limited_next[last_a as usize] = first_b,
            }
            self.limited_last[ra as usize] = last_b;
            self.limited_first[rb as usize] = NONE;
            self.limited_last[rb as usize] = NONE;
        }
    }

    /// The members of id types with a limit of the cluster whose root is `root`.
    fn limited_members(&self, root: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        std::iter::successors(Some(self.limited_first[root as usize]).filter(|&n| n != NONE), |&n| {
            Some(self.limited_next[n as usize]).filter(|&next| next != NONE)
        })
    }

    /// The first id type whose limit the two clusters together would exceed.
    fn refusal(&mut self, ra: NodeId, rb: NodeId) -> Option<Refusal> {
        if self.limited_first[ra as usize] == NONE || self.limited_first[rb as usize] == NONE {
            return None;
        }
        let mut counts: Vec<(u16, u32)> = Vec::new();
        for n in self.limited_members(ra).chain(self.limited_members(rb)) {
            let t = self.ids.type_of(n);
            match counts.iter_mut().find(|(ct, _)| *ct == t) {
                Some((_, c)) => *c += 1,
                None => counts.push((t, 1)),
            }
        }
        counts.sort_unstable();
        for (t, count) in counts {
            let limit = self.limit_of_type(t).unwrap_or(u32::MAX);
            let this = &*self;
            let of_type = move |root: NodeId| this.limited_members(root).filter(move |&n| this.ids.type_of(n) == t);
            let on_both_sides = of_type(ra).next().is_some() && of_type(rb).next().is_some();
            if count > limit && on_both_sides {
                let side = |root: NodeId| {
                    let mut ids: Vec<Identifier> = of_type(root).map(|n| this.ids.identifier(n)).collect();
                    ids.sort();
                    ids
                };
                return Some(Refusal {
                    id_type: this.ids.type_name(t).to_string(),
                    limit,
                    left: side(ra),
                    right: side(rb),
                });
            }
        }
        None
    }

    /// Every node that takes part, grouped by cluster; clusters in the order of their smallest
    /// identifier (clusters are disjoint, so that is an order that does not depend on the order
    /// identifiers were interned in).
    pub fn clusters(&self) -> Vec<Vec<NodeId>> {
        let root = |mut n: NodeId| {
            while self.parent[n as usize] != n {
                n = self.parent[n as usize];
            }
            n
        };
        let mut index: Vec<NodeId> = vec![NONE; self.parent.len()];
        let mut clusters: Vec<Vec<NodeId>> = Vec::new();
        for n in 0..self.parent.len() as NodeId {
            if !self.member[n as usize] {
                continue;
            }
            let root = root(n);
            if index[root as usize] == NONE {
                index[root as usize] = clusters.len() as NodeId;
                clusters.push(Vec::new());
            }
            clusters[index[root as usize] as usize].push(n);
        }
        let ids = &self.ids;
        let smallest = |c: &Vec<NodeId>| c.iter().copied().min_by(|&a, &b| ids.cmp(a, b)).unwrap_or(NONE);
        let mut keyed: Vec<(NodeId, Vec<NodeId>)> = clusters.into_iter().map(|c| (smallest(&c), c)).collect();
        keyed.sort_unstable_by(|a, b| ids.cmp(a.0, b.0));
        keyed.into_iter().map(|(_, c)| c).collect()
    }

    /// The clusters as identifiers, each sorted.
    pub fn identifier_clusters(&self) -> Vec<Vec<Identifier>> {
        self.clusters()
            .into_iter()
            .map(|c| {
                let mut ids: Vec<Identifier> = c.into_iter().map(|n| self.ids.identifier(n)).collect();
                ids.sort();
                ids
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: &str, v: &str) -> Identifier {
        (t.to_string(), v.to_string())
    }

    fn rules() -> BTreeMap<String, IdTypeRule> {
        [("member_id", 1, 1), ("email_hash", 2, 4)]
            .iter()
            .map(|(t, limit, priority)| (t.to_string(), IdTypeRule { limit: *limit, priority: *priority }))
            .collect()
    }

    #[test]
    fn joins_and_refuses_two_members() {
        let mut c = Components::new(&rules());
        assert_eq!(c.union(&id("member_id", "M1"), &id("email_hash", "e1")), Ok(true));
        assert_eq!(c.union(&id("email_hash", "e1"), &id("device_id", "d1")), Ok(true));
        assert_eq!(c.union(&id("device_id", "d1"), &id("member_id", "M1")), Ok(false));
        assert_eq!(c.union(&id("member_id", "M2"), &id("device_id", "d2")), Ok(true));
        let refused = c.union(&id("device_id", "d1"), &id("device_id", "d2")).unwrap_err();
        assert_eq!((refused.id_type.as_str(), refused.limit), ("member_id", 1));
        assert_eq!(refused.left, [id("member_id", "M1")]);
        assert_eq!(refused.right, [id("member_id", "M2")]);
        assert_eq!(c.clusters().len(), 2);
    }

    #[test]
    fn limits_above_one_count_values() {
        let mut c = Components::new(&rules());
        assert_eq!(c.union(&id("member_id", "M1"), &id("email_hash", "e1")), Ok(true));
        assert_eq!(c.union(&id("member_id", "M1"), &id("email_hash", "e2")), Ok(true));
        let refused = c.union(&id("member_id", "M1"), &id("email_hash", "e3")).unwrap_err();
        assert_eq!(refused.id_type, "email_hash");
        assert_eq!(refused.left.len() + refused.right.len(), 3);
        // No limit on device_id here: any number joins.
        for d in 0..20 {
            assert_eq!(c.union(&id("member_id", "M1"), &id("device_id", &format!("d{d}"))), Ok(true));
        }
    }

    #[test]
    fn interning_is_stable_and_clusters_are_ordered_by_identifier() {
        let mut c = Components::new(&rules());
        let _ = c.union(&id("device_id", "z"), &id("email_hash", "b"));
        let _ = c.union(&id("device_id", "a"), &id("member_id", "M9"));
        assert_eq!(c.ids.get("device_id", "z"), Some(0));
        assert_eq!(c.ids.get("device_id", "nope"), None);
        let clusters = c.identifier_clusters();
        assert_eq!(clusters[0], [id("device_id", "a"), id("member_id", "M9")]);
        assert_eq!(clusters[1], [id("device_id", "z"), id("email_hash", "b")]);
    }
}
