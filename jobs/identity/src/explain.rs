//! `cdplake identity explain ID_TYPE:VALUE`: who this is, and which links made them one person.

use std::collections::{HashMap, HashSet, VecDeque};

use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::datatypes::Int64Type;

use cdplake_engine::sql::{SqlSession, quote_literal};

use crate::union_find::Identifier;
use cdplake_core::columns::{int64, utf8};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{ID_MAPPING, IDENTITY_LINKS};

/// How one identifier joined the person: through which link, first seen where.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    pub id_type: String,
    pub id_value: String,
    /// The identifier it was linked to (`None` for the one asked about).
    pub via: Option<String>,
    /// `source file row N`, for the link.
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Explanation {
    pub one_id: String,
    pub user_int_id: i64,
    pub identifiers: Vec<Step>,
}

/// `id_type:value` → the identifier.
pub fn parse_identifier(text: &str) -> Result<Identifier> {
    let (t, v) = text.split_once(':').ok_or_else(|| {
        JobError::bad_input(format!("{text:?}"), "write an identifier as ID_TYPE:VALUE, e.g. member_id:MBR001")
    })?;
    Ok((t.trim().to_string(), v.trim().to_string()))
}

/// The text column `name`, one entry per row (`None` for a null).
fn strings(batch: &RecordBatch, name: &str) -> Result<Vec<Option<String>>> {
    let column = utf8(batch, "identity", name)?;
    let column = column.as_string::<i32>();
    Ok((0..column.len()).map(|i| (!column.is_null(i)).then(|| column.value(i).to_string())).collect())
}

/// The person `identifier` belongs to, and how: the identifiers of the person in the order the
/// links reached them from `identifier`.
pub async fn explain(workspace: &Workspace, identifier: &Identifier) -> Result<Explanation> {
    let session = workspace.catalog.sql_session().await?;
    let (one_id, user_int_id) = owner(&session, identifier).await?;
    let cluster = members(&session, &one_id).await?;
    let adjacent = links_within(&session, &one_id, &cluster).await?;
    Ok(Explanation { identifiers: steps(identifier, &cluster, &adjacent), one_id, user_int_id })
}

async fn run(session: &SqlSession, sql: &str) -> Result<Vec<RecordBatch>> {
    session.sql(sql).await?.collect().await.map_err(|e| JobError::query("identity explain", e))
}

/// `(one_id, user_int_id)` of the active person holding `identifier`.
async fn owner(session: &SqlSession, identifier: &Identifier) -> Result<(String, i64)> {
    let owner = run(
        session,
        &format!(
            "SELECT one_id, user_int_id FROM {ID_MAPPING} WHERE is_active AND id_type = {} AND id_value = {}",
            quote_literal(&identifier.0),
            quote_literal(&identifier.1)
        ),
    )
    .await?;
    let Some(batch) = owner.iter().find(|b| b.num_rows() > 0) else {
        return Err(JobError::bad_input(
            format!("{}:{}", identifier.0, identifier.1),
            "is not in curated.id_mapping (run `cdplake identity` first, or check the id type)",
        ));
    };
    let one_id = strings(batch, "one_id")?[0].clone().unwrap_or_default();
    let user_int_id = int64(batch, "identity", "user_int_id")?.as_primitive::<Int64Type>().value(0);
    Ok((one_id, user_int_id))
}

/// The active identifiers of person `one_id`.
async fn members(session: &SqlSession, one_id: &str) -> Result<HashSet<Identifier>> {
    let members = run(
        session,
        &format!("SELECT id_type, id_value FROM {ID_MAPPING} WHERE is_active AND one_id = {}", quote_literal(one_id)),
    )
    .await?;
    let mut cluster: HashSet<Identifier> = HashSet::new();
    for b in &members {
        for (t, v) in strings(b, "id_type")?.into_iter().zip(strings(b, "id_value")?) {
            cluster.insert((t.unwrap_or_default(), v.unwrap_or_default()));
        }
    }
    Ok(cluster)
}

/// A link from one identifier to another, with where it was seen (`source file row N`).
#[derive(Debug, Clone)]
struct LinkTo {
    other: Identifier,
    evidence: String,
}

/// Per identifier, its links to other identifiers of the cluster, in both directions.
type Adjacent = HashMap<Identifier, Vec<LinkTo>>;

/// The stored links of person `one_id` between identifiers of `cluster`, oldest first.
async fn links_within(session: &SqlSession, one_id: &str, cluster: &HashSet<Identifier>) -> Result<Adjacent> {
    let links = run(
        session,
        &format!(
            "SELECT l.* FROM {IDENTITY_LINKS} l JOIN {ID_MAPPING} a ON a.id_type = l.id_type_a AND a.id_value = l.id_value_a \
             WHERE a.one_id = {} ORDER BY l.first_seen, l.source, l._source_row",
            quote_literal(one_id)
        ),
    )
    .await?;
    let mut adjacent = Adjacent::new();
    for b in &links {
        add_links(b, cluster, &mut adjacent)?;
    }
    Ok(adjacent)
}

/// The links of one batch of `curated.identity_links` rows with both ends in `cluster`.
fn add_links(b: &RecordBatch, cluster: &HashSet<Identifier>, adjacent: &mut Adjacent) -> Result<()> {
    let (ta, va, tb, vb) =
        (strings(b, "id_type_a")?, strings(b, "id_value_a")?, strings(b, "id_type_b")?, strings(b, "id_value_b")?);
    let (source, uri) = (strings(b, "source")?, strings(b, "_source_uri")?);
    let rows = utf8(b, "identity", "_source_row")?;
    let rows = rows.as_string::<i32>();
    for i in 0..b.num_rows() {
        let a = (ta[i].clone().unwrap_or_default(), va[i].clone().unwrap_or_default());
        let z = (tb[i].clone().unwrap_or_default(), vb[i].clone().unwrap_or_default());
        if !cluster.contains(&a) || !cluster.contains(&z) {
            continue;
        }
        let evidence = format!(
            "{} {} row {}",
            source[i].clone().unwrap_or_default(),
            uri[i].clone().unwrap_or_default(),
            if rows.is_null(i) { "?" } else { rows.value(i) }
        );
        adjacent.entry(a.clone()).or_default().push(LinkTo { other: z.clone(), evidence: evidence.clone() });
        adjacent.entry(z).or_default().push(LinkTo { other: a, evidence });
    }
    Ok(())
}

/// Breadth-first from the identifier asked about: each step is the link that reached it; the
/// identifiers no recorded link reaches come last, sorted.
fn steps(identifier: &Identifier, cluster: &HashSet<Identifier>, adjacent: &Adjacent) -> Vec<Step> {
    let mut steps =
        vec![Step { id_type: identifier.0.clone(), id_value: identifier.1.clone(), via: None, evidence: None }];
    let mut reached: HashSet<Identifier> = HashSet::from([identifier.clone()]);
    let mut queue = VecDeque::from([identifier.clone()]);
    while let Some(current) = queue.pop_front() {
        for LinkTo { other: next, evidence } in adjacent.get(&current).cloned().unwrap_or_default() {
            if reached.insert(next.clone()) {
                steps.push(Step {
                    id_type: next.0.clone(),
                    id_value: next.1.clone(),
                    via: Some(format!("{}:{}", current.0, current.1)),
                    evidence: Some(evidence),
                });
                queue.push_back(next);
            }
        }
    }
    let mut rest: Vec<&Identifier> = cluster.iter().filter(|i| !reached.contains(*i)).collect();
    rest.sort();
    for identifier in rest {
        steps.push(Step {
            id_type: identifier.0.clone(),
            id_value: identifier.1.clone(),
            via: None,
            evidence: Some("joined by a link no longer recorded".into()),
        });
    }
    steps
}
