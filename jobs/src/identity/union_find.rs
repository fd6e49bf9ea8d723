//! Union-find (disjoint sets) over identifiers, with the per-person guard: two clusters that
//! each hold a different value of a person-unique id type (a member_id) never join.

use std::collections::BTreeSet;

use cdplake_engine::datafusion::common::HashMap as FastMap;

/// An identifier: `(id_type, id_value)`.
pub type Identifier = (String, String);

/// Disjoint sets with path halving and union by size.
#[derive(Debug, Default)]
pub struct Components {
    /// DataFusion's hashbrown map (foldhash, not SipHash): a first run looks up every identifier
    /// of tens of millions of links.
    index: FastMap<Identifier, usize>,
    nodes: Vec<Identifier>,
    parent: Vec<usize>,
    size: Vec<usize>,
    /// Per root: the values of person-unique id types in its cluster.
    unique: Vec<BTreeSet<Identifier>>,
    unique_types: Vec<String>,
}

/// Why a union was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub left: Vec<Identifier>,
    pub right: Vec<Identifier>,
}

impl Components {
    /// `unique_types`: id types of which one person holds at most one value (`member_id`).
    pub fn new(unique_types: &[String]) -> Self {
        Self { unique_types: unique_types.to_vec(), ..Default::default() }
    }

    /// The node of an identifier, adding it if new.
    pub fn node(&mut self, id: &Identifier) -> usize {
        if let Some(&n) = self.index.get(id) {
            return n;
        }
        let n = self.nodes.len();
        self.index.insert(id.clone(), n);
        self.nodes.push(id.clone());
        self.parent.push(n);
        self.size.push(1);
        let mut unique = BTreeSet::new();
        if self.unique_types.contains(&id.0) {
            unique.insert(id.clone());
        }
        self.unique.push(unique);
        n
    }

    pub fn find(&mut self, mut n: usize) -> usize {
        while self.parent[n] != n {
            self.parent[n] = self.parent[self.parent[n]];
            n = self.parent[n];
        }
        n
    }

    /// Join the clusters of `a` and `b`, unless each holds a different person-unique value.
    /// Returns whether two clusters became one.
    pub fn union(&mut self, a: &Identifier, b: &Identifier) -> Result<bool, Refusal> {
        let (na, nb) = (self.node(a), self.node(b));
        let (mut ra, mut rb) = (self.find(na), self.find(nb));
        if ra == rb {
            return Ok(false);
        }
        let (ua, ub) = (&self.unique[ra], &self.unique[rb]);
        let clash = self.unique_types.iter().any(|t| {
            let left: Vec<_> = ua.iter().filter(|i| &i.0 == t).collect();
            let right: Vec<_> = ub.iter().filter(|i| &i.0 == t).collect();
            !left.is_empty() && !right.is_empty() && left != right
        });
        if clash {
            return Err(Refusal { left: ua.iter().cloned().collect(), right: ub.iter().cloned().collect() });
        }
        if self.size[ra] < self.size[rb] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb] = ra;
        self.size[ra] += self.size[rb];
        let moved = std::mem::take(&mut self.unique[rb]);
        self.unique[ra].extend(moved);
        Ok(true)
    }

    /// Every identifier grouped by cluster; each cluster sorted, clusters in the order of their
    /// smallest identifier (clusters are disjoint, so that is their lexicographic order).
    pub fn clusters(&mut self) -> Vec<Vec<Identifier>> {
        let mut groups: FastMap<usize, Vec<Identifier>> = FastMap::default();
        for n in 0..self.nodes.len() {
            let root = self.find(n);
            groups.entry(root).or_default().push(self.nodes[n].clone());
        }
        let mut clusters: Vec<Vec<Identifier>> = groups.into_values().collect();
        for c in &mut clusters {
            c.sort_unstable();
        }
        clusters.sort_unstable_by(|a, b| a[0].cmp(&b[0]));
        clusters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(t: &str, v: &str) -> Identifier {
        (t.to_string(), v.to_string())
    }

    #[test]
    fn joins_and_refuses_two_members() {
        let mut c = Components::new(&["member_id".to_string()]);
        assert_eq!(c.union(&id("member_id", "M1"), &id("email_hash", "e1")), Ok(true));
        assert_eq!(c.union(&id("email_hash", "e1"), &id("device_id", "d1")), Ok(true));
        assert_eq!(c.union(&id("device_id", "d1"), &id("member_id", "M1")), Ok(false));
        assert_eq!(c.union(&id("member_id", "M2"), &id("device_id", "d2")), Ok(true));
        let refused = c.union(&id("device_id", "d1"), &id("device_id", "d2")).unwrap_err();
        assert_eq!(refused.left, [id("member_id", "M1")]);
        assert_eq!(c.clusters().len(), 2);
    }
}
