//! `cdplake identity report`: what a data engineer checks before trusting the identity graph.
//!
//! Persons by size (one huge person is glued strangers), the largest persons with their
//! identifiers by type, the highest-degree identifiers that are *not* flagged as hubs (the next
//! placeholder the rules missed), the hubs, the refused links and the values skipped by rule.

use std::collections::BTreeMap;

use cdplake_engine::arrow::array::{AsArray, RecordBatch};
use cdplake_engine::arrow::datatypes::Int64Type;
use cdplake_engine::sql::{SqlSession, in_list};

use cdplake_core::columns::{int64, utf8};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{ID_MAPPING, IDENTITY_CONFLICTS, IDENTITY_HUBS, IDENTITY_LINKS, IDENTITY_SKIPPED};

/// Persons whose number of active identifiers falls in a band.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SizeBand {
    pub identifiers: String,
    pub persons: u64,
}

/// One of the largest persons.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LargePerson {
    pub one_id: String,
    pub identifiers: u64,
    pub by_type: BTreeMap<String, u64>,
}

/// An identifier and how many distinct values of another type it is linked to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Degree {
    pub id_type: String,
    pub id_value: String,
    pub linked_type: String,
    pub distinct_values: u64,
    /// The linked type's per-person limit, if it has one.
    pub limit: Option<u32>,
}

/// Values kept out by a rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SkippedValue {
    pub id_type: String,
    pub id_value: String,
    pub rule: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IdentityHealth {
    pub persons: u64,
    pub active_identifiers: u64,
    pub persons_by_size: Vec<SizeBand>,
    pub largest_persons: Vec<LargePerson>,
    /// The highest-degree identifiers not flagged as hubs, most linked first.
    pub highest_degree_not_flagged: Vec<Degree>,
    pub hubs: u64,
    /// The hubs with the most linked values.
    pub top_hubs: Vec<Degree>,
    pub refused_links: u64,
    pub refused_by_type: BTreeMap<String, u64>,
    pub skipped_rows_by_rule: BTreeMap<String, u64>,
    pub top_skipped_values: Vec<SkippedValue>,
}

/// Size bands of persons, by number of identifiers.
const BANDS: &[(u64, u64, &str)] = &[
    (1, 1, "1"),
    (2, 2, "2"),
    (3, 5, "3-5"),
    (6, 10, "6-10"),
    (11, 20, "11-20"),
    (21, 50, "21-50"),
    (51, u64::MAX, "51+"),
];

/// The health of the identity graph; `top` rows per list.
pub async fn health(workspace: &Workspace, top: usize) -> Result<IdentityHealth> {
    let lake = workspace.lake();
    let mut health = IdentityHealth::default();
    if !lake.table_exists(&ID_MAPPING.id()).await? {
        return Err(JobError::not_found("curated.id_mapping does not exist yet", "run `cdplake identity` first"));
    }
    let session = workspace.catalog.sql_session().await?;
    add_persons(&session, top, &mut health).await?;
    health.highest_degree_not_flagged = with_limits(workspace, highest_degrees_not_flagged(&session, top).await?);
    add_hubs(workspace, &session, top, &mut health).await?;
    let refused = pairs(
        &session
            .rows(&format!("SELECT limited_type, count(*) AS n FROM {IDENTITY_CONFLICTS} GROUP BY limited_type"))
            .await?,
        "limited_type",
    )?;
    health.refused_links = refused.iter().map(|r| r.1).sum();
    health.refused_by_type = refused.into_iter().collect();
    if lake.table_exists(&IDENTITY_SKIPPED.id()).await? {
        add_skipped(&session, top, &mut health).await?;
    }
    Ok(health)
}

/// Persons by size and the `top` largest ones, with their identifiers by type.
async fn add_persons(session: &SqlSession, top: usize, health: &mut IdentityHealth) -> Result<()> {
    let sizes = pairs(
        &session
            .rows(&format!("SELECT one_id, count(*) AS n FROM {ID_MAPPING} WHERE is_active GROUP BY one_id"))
            .await?,
        "one_id",
    )?;
    health.persons = sizes.len() as u64;
    health.active_identifiers = sizes.iter().map(|(_, n)| *n).sum();
    health.persons_by_size = size_bands(&sizes);
    let mut largest = sizes;
    largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    largest.truncate(top);
    if largest.is_empty() {
        return Ok(());
    }
    let by_type = session
        .rows(&format!(
            "SELECT one_id, id_type, count(*) AS n FROM {ID_MAPPING} WHERE is_active AND one_id IN {} \
             GROUP BY one_id, id_type",
            in_list(largest.iter().map(|(o, _)| o.as_str()))
        ))
        .await?;
    let by_type = triples(&by_type, ["one_id", "id_type"])?;
    health.largest_persons = largest
        .into_iter()
        .map(|(one_id, n)| LargePerson {
            by_type: by_type.iter().filter(|t| t.0 == one_id).map(|t| (t.1.clone(), t.2)).collect(),
            one_id,
            identifiers: n,
        })
        .collect();
    Ok(())
}

/// How many persons fall in each of [`BANDS`], from `(one_id, identifiers)` rows.
fn size_bands(sizes: &[(String, u64)]) -> Vec<SizeBand> {
    BANDS
        .iter()
        .map(|(low, high, label)| SizeBand {
            identifiers: label.to_string(),
            persons: sizes.iter().filter(|(_, n)| (*low..=*high).contains(n)).count() as u64,
        })
        .collect()
}

/// The `top` identifiers with the most distinct values of another type that no hub rule names.
/// Links are distinct pairs, so a count per (identifier, other type) is distinct values.
async fn highest_degrees_not_flagged(session: &SqlSession, top: usize) -> Result<Vec<Degree>> {
    let degree_rows = session
        .rows(&format!(
            "SELECT d.id_type, d.id_value, d.linked_type, count(*) AS n FROM (\
               SELECT id_type_a AS id_type, id_value_a AS id_value, id_type_b AS linked_type FROM {IDENTITY_LINKS} \
               UNION ALL SELECT id_type_b, id_value_b, id_type_a FROM {IDENTITY_LINKS}) d \
             WHERE d.id_type <> d.linked_type AND NOT EXISTS (SELECT 1 FROM {IDENTITY_HUBS} h \
               WHERE h.id_type = d.id_type AND h.id_value = d.id_value) \
             GROUP BY d.id_type, d.id_value, d.linked_type ORDER BY n DESC, d.id_type, d.id_value LIMIT {top}"
        ))
        .await?;
    degrees(&degree_rows, "n")
}

/// The number of hubs and the `top` hubs with the most linked values.
async fn add_hubs(workspace: &Workspace, session: &SqlSession, top: usize, health: &mut IdentityHealth) -> Result<()> {
    health.hubs = count(&session.rows(&format!("SELECT count(*) AS n FROM {IDENTITY_HUBS}")).await?)?;
    let hub_rows = session
        .rows(&format!(
            "SELECT id_type, id_value, linked_type, distinct_values, \"limit\" FROM {IDENTITY_HUBS} \
             ORDER BY distinct_values DESC, id_type, id_value LIMIT {top}"
        ))
        .await?;
    health.top_hubs = with_limits(workspace, degrees(&hub_rows, "distinct_values")?);
    Ok(())
}

/// Each degree with its linked type's per-person limit, if it has one.
fn with_limits(workspace: &Workspace, rows: Vec<Degree>) -> Vec<Degree> {
    let limit_of = |t: &str| workspace.config.identity.types.get(t).map(|r| r.limit);
    rows.into_iter().map(|d| Degree { limit: limit_of(&d.linked_type), ..d }).collect()
}

/// The rows skipped by each rule, and the `top` values skipped most.
async fn add_skipped(session: &SqlSession, top: usize, health: &mut IdentityHealth) -> Result<()> {
    let by_rule = pairs(
        &session.rows(&format!("SELECT rule, sum(\"rows\") AS n FROM {IDENTITY_SKIPPED} GROUP BY rule")).await?,
        "rule",
    )?;
    health.skipped_rows_by_rule = by_rule.into_iter().collect();
    let values = session
        .rows(&format!(
            "SELECT id_type, id_value, rule, sum(\"rows\") AS n FROM {IDENTITY_SKIPPED} \
             GROUP BY id_type, id_value, rule ORDER BY n DESC, id_type, id_value LIMIT {top}"
        ))
        .await?;
    health.top_skipped_values = skipped_values(&values)?;
    Ok(())
}

/// `(id_type, id_value, rule, n)` rows.
fn skipped_values(batches: &[RecordBatch]) -> Result<Vec<SkippedValue>> {
    let mut out = Vec::new();
    for batch in batches {
        let (t, v, r) = (
            utf8(batch, "identity", "id_type")?,
            utf8(batch, "identity", "id_value")?,
            utf8(batch, "identity", "rule")?,
        );
        let n = int64(batch, "identity", "n")?;
        for i in 0..batch.num_rows() {
            out.push(SkippedValue {
                id_type: t.as_string::<i32>().value(i).to_string(),
                id_value: v.as_string::<i32>().value(i).to_string(),
                rule: r.as_string::<i32>().value(i).to_string(),
                rows: n.as_primitive::<Int64Type>().value(i) as u64,
            });
        }
    }
    Ok(out)
}

/// `(key, n)` rows: the text column `key` and the count `n`.
fn pairs(batches: &[RecordBatch], key: &str) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for batch in batches {
        let (k, n) = (utf8(batch, "identity", key)?, int64(batch, "identity", "n")?);
        for i in 0..batch.num_rows() {
            out.push((k.as_string::<i32>().value(i).to_string(), n.as_primitive::<Int64Type>().value(i) as u64));
        }
    }
    Ok(out)
}

/// `(a, b, n)` rows: the text columns `keys` and the count `n`.
fn triples(batches: &[RecordBatch], keys: [&str; 2]) -> Result<Vec<(String, String, u64)>> {
    let mut out = Vec::new();
    for batch in batches {
        let (a, b, n) =
            (utf8(batch, "identity", keys[0])?, utf8(batch, "identity", keys[1])?, int64(batch, "identity", "n")?);
        for i in 0..batch.num_rows() {
            out.push((
                a.as_string::<i32>().value(i).to_string(),
                b.as_string::<i32>().value(i).to_string(),
                n.as_primitive::<Int64Type>().value(i) as u64,
            ));
        }
    }
    Ok(out)
}

/// `(id_type, id_value, linked_type, <count column>)` rows.
fn degrees(batches: &[RecordBatch], count_column: &str) -> Result<Vec<Degree>> {
    let mut out = Vec::new();
    for batch in batches {
        let (t, v, l) = (
            utf8(batch, "identity", "id_type")?,
            utf8(batch, "identity", "id_value")?,
            utf8(batch, "identity", "linked_type")?,
        );
        let n = int64(batch, "identity", count_column)?;
        for i in 0..batch.num_rows() {
            out.push(Degree {
                id_type: t.as_string::<i32>().value(i).to_string(),
                id_value: v.as_string::<i32>().value(i).to_string(),
                linked_type: l.as_string::<i32>().value(i).to_string(),
                distinct_values: n.as_primitive::<Int64Type>().value(i) as u64,
                limit: None,
            });
        }
    }
    Ok(out)
}

/// The count `n` of a one-row result (0 without rows).
fn count(batches: &[RecordBatch]) -> Result<u64> {
    match batches.iter().find(|b| b.num_rows() > 0) {
        Some(batch) => Ok(int64(batch, "identity", "n")?.as_primitive::<Int64Type>().value(0) as u64),
        None => Ok(0),
    }
}

/// The report as text for people.
pub fn describe(h: &IdentityHealth) -> String {
    let mut out = format!(
        "{} persons, {} active identifiers\n\npersons by number of identifiers:\n",
        h.persons, h.active_identifiers
    );
    for band in &h.persons_by_size {
        out.push_str(&format!("  {:>6}  {}\n", band.identifiers, band.persons));
    }
    out.push_str("\nlargest persons:\n");
    for p in &h.largest_persons {
        let types: Vec<String> = p.by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        out.push_str(&format!("  {}  {} identifiers ({})\n", p.one_id, p.identifiers, types.join(", ")));
    }
    let degree_line = |d: &Degree| {
        let limit = d.limit.map(|l| format!(" (limit {l})")).unwrap_or_default();
        format!("  {}:{}  linked to {} {}{limit}\n", d.id_type, d.id_value, d.distinct_values, d.linked_type)
    };
    out.push_str("\nhighest-degree identifiers not flagged as hubs:\n");
    h.highest_degree_not_flagged.iter().for_each(|d| out.push_str(&degree_line(d)));
    out.push_str(&format!("\nhubs: {}\n", h.hubs));
    h.top_hubs.iter().for_each(|d| out.push_str(&degree_line(d)));
    out.push_str(&format!("\nrefused links: {}\n", h.refused_links));
    for (t, n) in &h.refused_by_type {
        out.push_str(&format!("  over the {t} limit: {n}\n"));
    }
    out.push_str("\nvalues skipped by rule (rows):\n");
    for (rule, n) in &h.skipped_rows_by_rule {
        out.push_str(&format!("  {rule}: {n}\n"));
    }
    for s in &h.top_skipped_values {
        out.push_str(&format!("  {}:{}  {} ({} rows)\n", s.id_type, s.id_value, s.rule, s.rows));
    }
    out
}
