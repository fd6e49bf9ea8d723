//! The links a user undid (`curated.identity_unlinks`): stitching never uses them again.

use std::collections::HashSet;

use cdplake_core::columns::text;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;

use crate::union_find::Identifier;
use cdplake_zones::tables::IDENTITY_UNLINKS;

/// The undone links and identifiers.
#[derive(Debug, Default)]
pub struct Unlinks {
    pairs: HashSet<(Identifier, Identifier)>,
    pub(crate) identifiers: HashSet<Identifier>,
}

impl Unlinks {
    /// Is the link `a`–`b` undone (itself, or through either side)?
    pub fn blocks(&self, a: &Identifier, b: &Identifier) -> bool {
        self.identifiers.contains(a)
            || self.identifiers.contains(b)
            || self.pairs.contains(&(a.clone(), b.clone()))
            || self.pairs.contains(&(b.clone(), a.clone()))
    }

    /// The undone links as interned nodes, for checking millions of links without copying
    /// strings; identifiers never interned cannot be on a link of this run.
    pub(crate) fn interned(&self, ids: &crate::union_find::Interner) -> InternedUnlinks {
        let node = |i: &Identifier| ids.get(&i.0, &i.1);
        InternedUnlinks {
            nodes: self.identifiers.iter().filter_map(node).collect(),
            pairs: self
                .pairs
                .iter()
                .filter_map(|(a, b)| Some((node(a)?, node(b)?)))
                .flat_map(|(a, b)| [(a, b), (b, a)])
                .collect(),
        }
    }
}

/// [`Unlinks`] by interned node.
#[derive(Debug, Default)]
pub(crate) struct InternedUnlinks {
    nodes: std::collections::HashSet<crate::union_find::NodeId>,
    pairs: std::collections::HashSet<(crate::union_find::NodeId, crate::union_find::NodeId)>,
}

impl InternedUnlinks {
    pub(crate) fn blocks(&self, a: crate::union_find::NodeId, b: crate::union_find::NodeId) -> bool {
        !(self.nodes.is_empty() && self.pairs.is_empty())
            && (self.nodes.contains(&a) || self.nodes.contains(&b) || self.pairs.contains(&(a, b)))
    }
}

pub async fn load_unlinks(workspace: &Workspace) -> Result<Unlinks> {
    let mut unlinks = Unlinks::default();
    let Some(stored) = workspace.lake().read_if_exists(&IDENTITY_UNLINKS.id()).await? else {
        return Ok(unlinks);
    };
    let batches = stored.collect().await.map_err(|e| JobError::query("identity: reading unlinks", e))?;
    for batch in &batches {
        let columns: Vec<_> =
            ["id_type_a", "id_value_a", "id_type_b", "id_value_b"].iter().map(|c| text(batch, c)).collect();
        let [Some(ta), Some(va), Some(tb), Some(vb)] =
            <[_; 4]>::try_from(columns).map_err(|_| JobError::bad_input("curated.unlinks", "not four columns"))?
        else {
            continue;
        };
        use cdplake_engine::arrow::array::AsArray;
        for i in 0..batch.num_rows() {
            let a = (ta.as_string::<i32>().value(i).to_string(), va.as_string::<i32>().value(i).to_string());
            let b = (tb.as_string::<i32>().value(i).to_string(), vb.as_string::<i32>().value(i).to_string());
            if b.1.is_empty() {
                unlinks.identifiers.insert(a);
            } else {
                unlinks.pairs.insert((a, b));
            }
        }
    }
    Ok(unlinks)
}
