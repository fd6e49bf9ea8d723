//! `cdplake identity report`: what a data engineer checks before trusting the identity graph.
//!
//! Persons by size (one huge person is glued strangers), the largest persons with their
//! identifiers by type, the highest-degree identifiers that are *not* flagged as hubs (the next
//! placeholder the rules missed), the hubs, the refused links and the values skipped by rule.

use std::collections::BTreeMap;

use cdplake_engine::arrow::array::{AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Int64Type};
use cdplake_engine::sql::in_list;

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{IDENTITY_SKIPPED, ID_MAPPING};

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
        return Err(JobError::NotFound("curated.id_mapping does not exist yet: run `cdplake identity` first".into()));
    }
    let session = workspace.catalog.sql_session().await?;
    let rows = |sql: String| {
        let session = session.clone();
        async move { session.rows(&sql).await.map_err(JobError::from) }
    };

    // Persons by size and the largest ones.
    let sizes = pairs(
        &rows("SELECT one_id, count(*) AS n FROM curated.id_mapping WHERE is_active GROUP BY one_id".into()).await?,
    )?;
    health.persons = sizes.len() as u64;
    health.active_identifiers = sizes.iter().map(|(_, n)| *n).sum();
    health.persons_by_size = BANDS
        .iter()
        .map(|(low, high, label)| SizeBand {
            identifiers: label.to_string(),
            persons: sizes.iter().filter(|(_, n)| (*low..=*high).contains(n)).count() as u64,
        })
        .collect();
    let mut largest = sizes;
    largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    largest.truncate(top);
    if !largest.is_empty() {
        let by_type = rows(format!(
            "SELECT one_id, id_type, count(*) AS n FROM curated.id_mapping WHERE is_active AND one_id IN {} \
             GROUP BY one_id, id_type",
            in_list(largest.iter().map(|(o, _)| o.as_str()))
        ))
        .await?;
        let by_type = triples(&by_type)?;
        health.largest_persons = largest
            .into_iter()
            .map(|(one_id, n)| LargePerson {
                by_type: by_type.iter().filter(|t| t.0 == one_id).map(|t| (t.1.clone(), t.2)).collect(),
                one_id,
                identifiers: n,
            })
            .collect();
    }

    // Degrees: links are distinct pairs, so a count per (identifier, other type) is distinct values.
    let limit_of = |t: &str| workspace.config.identity.types.get(t).map(|r| r.limit);
    let degree_rows = rows(format!(
        "SELECT d.id_type, d.id_value, d.linked_type, count(*) AS n FROM (\
           SELECT id_type_a AS id_type, id_value_a AS id_value, id_type_b AS linked_type FROM curated.identity_links \
           UNION ALL SELECT id_type_b, id_value_b, id_type_a FROM curated.identity_links) d \
         WHERE d.id_type <> d.linked_type AND NOT EXISTS (SELECT 1 FROM curated.identity_hubs h \
           WHERE h.id_type = d.id_type AND h.id_value = d.id_value) \
         GROUP BY d.id_type, d.id_value, d.linked_type ORDER BY n DESC, d.id_type, d.id_value LIMIT {top}"
    ))
    .await?;
    let with_limits = |rows: Vec<Degree>| -> Vec<Degree> {
        rows.into_iter().map(|d| Degree { limit: limit_of(&d.linked_type), ..d }).collect()
    };
    health.highest_degree_not_flagged = with_limits(degrees(&degree_rows, "n")?);

    // Hubs, refused links, skipped values.
    health.hubs = count(&rows("SELECT count(*) FROM curated.identity_hubs".into()).await?)?;
    let hub_rows = rows(format!(
        "SELECT id_type, id_value, linked_type, distinct_values, \"limit\" FROM curated.identity_hubs \
         ORDER BY distinct_values DESC, id_type, id_value LIMIT {top}"
    ))
    .await?;
    health.top_hubs = with_limits(degrees(&hub_rows, "distinct_values")?);
    let refused = pairs(
        &rows("SELECT limited_type, count(*) AS n FROM curated.identity_conflicts GROUP BY limited_type".into())
            .await?,
    )?;
    health.refused_links = refused.iter().map(|r| r.1).sum();
    health.refused_by_type = refused.into_iter().collect();
    if lake.table_exists(&IDENTITY_SKIPPED.id()).await? {
        let by_rule =
            pairs(&rows("SELECT rule, sum(\"rows\") AS n FROM curated.identity_skipped GROUP BY rule".into()).await?)?;
        health.skipped_rows_by_rule = by_rule.into_iter().collect();
        let values = rows(format!(
            "SELECT id_type, id_value, rule, sum(\"rows\") AS n FROM curated.identity_skipped \
             GROUP BY id_type, id_value, rule ORDER BY n DESC, id_type, id_value LIMIT {top}"
        ))
        .await?;
        for batch in &values {
            let c = |i: usize| cast(batch.column(i), &DataType::Utf8).map_err(|e| JobError::arrow("skipped", e));
            let (t, v, r) = (c(0)?, c(1)?, c(2)?);
            let n = cast(batch.column(3), &DataType::Int64).map_err(|e| JobError::arrow("skipped", e))?;
            for i in 0..batch.num_rows() {
                health.top_skipped_values.push(SkippedValue {
                    id_type: t.as_string::<i32>().value(i).to_string(),
                    id_value: v.as_string::<i32>().value(i).to_string(),
                    rule: r.as_string::<i32>().value(i).to_string(),
                    rows: n.as_primitive::<Int64Type>().value(i) as u64,
                });
            }
        }
    }
    Ok(health)
}

fn strings(batch: &RecordBatch, i: usize) -> Result<cdplake_engine::arrow::array::ArrayRef> {
    cast(batch.column(i), &DataType::Utf8).map_err(|e| JobError::arrow("identity report", e))
}

fn numbers(batch: &RecordBatch, i: usize) -> Result<cdplake_engine::arrow::array::ArrayRef> {
    cast(batch.column(i), &DataType::Int64).map_err(|e| JobError::arrow("identity report", e))
}

/// `(text, count)` rows.
fn pairs(batches: &[RecordBatch]) -> Result<Vec<(String, u64)>> {
    let mut out = Vec::new();
    for batch in batches {
        let (k, n) = (strings(batch, 0)?, numbers(batch, 1)?);
        for i in 0..batch.num_rows() {
            out.push((k.as_string::<i32>().value(i).to_string(), n.as_primitive::<Int64Type>().value(i) as u64));
        }
    }
    Ok(out)
}

/// `(text, text, count)` rows.
fn triples(batches: &[RecordBatch]) -> Result<Vec<(String, String, u64)>> {
    let mut out = Vec::new();
    for batch in batches {
        let (a, b, n) = (strings(batch, 0)?, strings(batch, 1)?, numbers(batch, 2)?);
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
        let index = batch.schema().index_of(count_column).map_err(|e| JobError::arrow("identity report", e))?;
        let (t, v, l, n) = (strings(batch, 0)?, strings(batch, 1)?, strings(batch, 2)?, numbers(batch, index)?);
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

fn count(batches: &[RecordBatch]) -> Result<u64> {
    Ok(pairs_of_one(batches)?.unwrap_or(0))
}

fn pairs_of_one(batches: &[RecordBatch]) -> Result<Option<u64>> {
    match batches.iter().find(|b| b.num_rows() > 0) {
        Some(batch) => Ok(Some(numbers(batch, 0)?.as_primitive::<Int64Type>().value(0) as u64)),
        None => Ok(None),
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
    let limit = |l: Option<u32>| l.map(|l| format!(" (limit {l})")).unwrap_or_default();
    out.push_str("\nhighest-degree identifiers not flagged as hubs:\n");
    for d in &h.highest_degree_not_flagged {
        out.push_str(&format!(
            "  {}:{}  linked to {} {}{}\n",
            d.id_type,
            d.id_value,
            d.distinct_values,
            d.linked_type,
            limit(d.limit)
        ));
    }
    out.push_str(&format!("\nhubs: {}\n", h.hubs));
    for d in &h.top_hubs {
        out.push_str(&format!(
            "  {}:{}  linked to {} {}{}\n",
            d.id_type,
            d.id_value,
            d.distinct_values,
            d.linked_type,
            limit(d.limit)
        ));
    }
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
