//! `cdplake identity`: stitch identifiers into persons (one_id), incrementally and stably.
//!
//! 1. Links: every clean row not yet seen by this job (per clean batch, recorded as Delta
//!    application transactions on `curated.id_mapping`) links its identifiers; junk values and
//!    blocklisted ones never link. Links are kept with provenance in `curated.identity_links`.
//! 2. Hubs: an identifier linked to more than `hub_max_unique` values of a person-unique type
//!    (a kiosk device seen with 6 member_ids) goes to `curated.identity_hubs` and never links.
//! 3. Only the components the new links reach are loaded from `curated.id_mapping` and
//!    re-stitched with union-find; a link that would give one person two member_ids is refused
//!    and recorded in `curated.identity_conflicts`.
//! 4. Stable ids: when clusters merge the oldest one_id survives (earliest first_seen, then the
//!    smaller id); merges go to `curated.id_merge_history`. New persons get the next
//!    `user_int_id` (never reused) and `one_id = ONE<user_int_id>`.
//! 5. Only identifiers whose row changed are MERGEd into `curated.id_mapping`.

pub mod explain;
mod split;
pub mod union_find;
pub mod unlink;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use cdplake_engine::datafusion::prelude::{col, lit};
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::{EngineError, TableSpec, applied_version};
use cdplake_zones::Source;
use cdplake_zones::curated;
use chrono::{DateTime, Utc};

use crate::clean::clean_table_id;
use crate::config::IdentityConfig;
use crate::error::{JobError, Result};
use crate::workspace::Workspace;
use union_find::{Components, Identifier};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IdentityReport {
    /// Clean batches read (across sources).
    pub batches: usize,
    pub rows: u64,
    pub new_links: u64,
    pub identifiers_seen: u64,
    pub junk_values_skipped: u64,
    pub components_touched: u64,
    pub persons_created: u64,
    pub merges: u64,
    pub conflicts: u64,
    /// Identifiers newly found to be hubs in this run.
    pub hubs: u64,
    /// Persons split because an identifier was added to the blocklist.
    pub splits: u64,
    /// Persons split because one of their identifiers became a hub.
    pub hub_splits: u64,
    pub mapping_rows_written: u64,
    pub mapping_version: Option<u64>,
}

/// The report as a line for people.
pub fn describe_report(r: &IdentityReport) -> String {
    if r.batches == 0 && r.splits == 0 {
        return "identity: nothing new (every clean batch is resolved)".into();
    }
    format!(
        "identity: {} clean rows from {} batches, {} identifiers, {} links; {} new persons, {} merges, \
         {} refused links (conflicts), {} new hubs ({} persons split by one), {} junk values skipped, {} blocklist splits; \
         {} id_mapping rows written",
        r.rows,
        r.batches,
        r.identifiers_seen,
        r.new_links,
        r.persons_created,
        r.merges,
        r.conflicts,
        r.hubs,
        r.hub_splits,
        r.junk_values_skipped,
        r.splits,
        r.mapping_rows_written
    )
}

/// The identifiers of the rows read: first and last seen (µs) and the first source. DataFusion's
/// hashbrown map (foldhash, not SipHash): a first run hashes every identifier of every clean row.
type Seen = cdplake_engine::datafusion::common::HashMap<Identifier, (i64, i64, String)>;

/// One link found in a clean row.
#[derive(Debug, Clone)]
struct Link {
    a: Identifier,
    b: Identifier,
    source: String,
    uri: String,
    row: i64,
    seen: i64,
}

/// An identifier's row in `curated.id_mapping`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mapping {
    pub(crate) one_id: String,
    pub(crate) source_channel: String,
    pub(crate) first_seen: i64,
    pub(crate) last_seen: i64,
    pub(crate) user_int_id: i64,
    /// How sure the stitching is that the identifier is this person's: 1 / the number of
    /// values of a person-unique type it was seen with (a device used by two members: 0.5).
    pub(crate) confidence: f64,
    /// False for an identifier that left its person (it turned out to be a hub).
    pub(crate) active: bool,
}

fn batch_app_id(source: &str, batch: &str) -> String {
    format!("cdplake-identity-{source}-{batch}")
}

/// Run identity resolution on every clean row not processed yet.
pub async fn resolve(workspace: &Workspace, now: DateTime<Utc>) -> Result<IdentityReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let config = &workspace.config.identity;
    let mut report = IdentityReport::default();
    let meta = TableMeta::default().with_primary_key(["id_type", "id_value"]);
    let (mapping_table, _) = workspace.catalog.ensure_table(&curated::id_mapping_spec(), &meta).await?;
    for spec in [
        curated::identity_links_spec(),
        curated::merge_history_spec(),
        curated::conflicts_spec(),
        curated::hubs_spec(),
        curated::unlinks_spec(),
    ] {
        workspace.catalog.ensure_table(&spec, &TableMeta::default()).await?;
    }

    let mut watch = crate::stopwatch::Stopwatch::start("identity");
    // 0. Identifiers newly blocklisted in cdplake.toml split their person, as `unlink A` would.
    if workspace.lake().table_exists(&curated::id_mapping_id()).await? {
        report.splits = unlink::apply_blocklist(workspace, now).await?.iter().filter(|r| r.parts > 1).count() as u64;
    }

    // 1. New rows → identifiers and links.
    let junk = JunkFilter::new(config);
    let mut links: Vec<Link> = Vec::new();
    let mut seen = Seen::default();
    let mut txns = Vec::new();
    for source in workspace.config.all_sources() {
        let id_columns = identifier_columns(&source, config);
        if id_columns.is_empty() || !lake.table_exists(&clean_table_id(&source)).await? {
            continue;
        }
        let pending = crate::batches::pending_batches(
            workspace,
            &clean_table_id(&source),
            &mapping_table,
            "curated.id_mapping",
            |batch| batch_app_id(&source.name, batch),
        )
        .await?;
        if pending.is_empty() {
            continue;
        }
        report.batches += pending.len();
        txns.extend(pending.iter().map(|b| Transaction::new(batch_app_id(&source.name, b), 1)));
        let batches = read_rows(workspace, &source, &pending).await?;
        for batch in &batches {
            extract(&source, &id_columns, batch, &junk, &mut links, &mut seen, &mut report)?;
        }
    }
    if txns.is_empty() {
        return Ok(report);
    }
    report.new_links = links.len() as u64;
    report.identifiers_seen = seen.len() as u64;
    links.sort_by(|x, y| {
        (x.seen, &x.source, &x.uri, x.row, &x.a, &x.b).cmp(&(y.seen, &y.source, &y.uri, y.row, &y.a, &y.b))
    });
    watch.lap("clean rows read");
    store_links(workspace, &links).await?;
    watch.lap("links stored");

    // 2. Hubs among the identifiers touched now.
    let SharedIdentifiers { hubs, new_hubs, shared } = find_hubs(workspace, config, &seen, &txns, now).await?;
    report.hubs = new_hubs;
    // An identifier already in a person that has now become a hub leaves it, and the person
    // is re-stitched without it.
    watch.lap("hubs found");
    report.hub_splits = split::split_stitched_hubs(workspace, now).await?;
    watch.lap("stitched hubs split");

    // 3. The components the new identifiers reach.
    let existing = load_components(workspace, &seen).await?;
    watch.lap("components loaded");
    let mut components = Components::new(&config.unique_types);
    let mut by_one_id: BTreeMap<String, Vec<Identifier>> = BTreeMap::new();
    for (identifier, mapping) in &existing {
        by_one_id.entry(mapping.one_id.clone()).or_default().push(identifier.clone());
    }
    for members in by_one_id.values() {
        components.node(&members[0]);
        for other in &members[1..] {
            let _ = components.union(&members[0], other);
        }
    }
    report.components_touched = by_one_id.len() as u64;
    let mut conflicts = Vec::new();
    // The links that joined two clusters, by index: formatted only for the merge history.
    let mut causes: Vec<usize> = Vec::new();
    for identifier in seen.keys() {
        if !hubs.contains(identifier) {
            components.node(identifier);
        }
    }
    let unlinked = unlink::load_unlinks(workspace).await?;
    for (index, link) in links.iter().enumerate() {
        if hubs.contains(&link.a) || hubs.contains(&link.b) || unlinked.blocks(&link.a, &link.b) {
            continue;
        }
        match components.union(&link.a, &link.b) {
            Ok(true) => causes.push(index),
            Ok(false) => {}
            Err(refusal) => conflicts.push((link.clone(), refusal)),
        }
    }
    report.conflicts = conflicts.len() as u64;

    // 4. One id per cluster: the oldest existing one survives.
    let mut next_int = max_user_int_id(workspace).await? + 1;
    let mut rows: Vec<(Identifier, Mapping)> = Vec::new();
    let mut history: Vec<(String, String, String)> = Vec::new();
    for cluster in components.clusters() {
        let mut owners: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for identifier in &cluster {
            if let Some(m) = existing.get(identifier) {
                let entry = owners.entry(m.one_id.clone()).or_insert((m.first_seen, m.user_int_id));
                entry.0 = entry.0.min(m.first_seen);
            }
        }
        let (one_id, user_int_id) = match owners.iter().min_by(|a, b| (a.1.0, a.0).cmp(&(b.1.0, b.0))) {
            Some((one_id, (_, int_id))) => (one_id.clone(), *int_id),
            None => {
                let id = next_int;
                next_int += 1;
                report.persons_created += 1;
                (format!("ONE{id:010}"), id)
            }
        };
        for absorbed in owners.keys().filter(|o| **o != one_id) {
            let cause = causes
                .iter()
                .map(|&i| &links[i])
                .find(|l| [&l.a, &l.b].iter().any(|i| existing.get(*i).is_some_and(|m| &m.one_id == absorbed)))
                .map(|l| format!("{}:{} = {}:{} ({} {} row {})", l.a.0, l.a.1, l.b.0, l.b.1, l.source, l.uri, l.row))
                .unwrap_or_else(|| "links in this run".into());
            history.push((absorbed.clone(), one_id.clone(), cause));
            report.merges += 1;
        }
        for identifier in cluster {
            let old = existing.get(&identifier);
            let new_seen = seen.get(&identifier);
            let mapping = Mapping {
                one_id: one_id.clone(),
                source_channel: old
                    .map(|m| m.source_channel.clone())
                    .or_else(|| new_seen.map(|s| s.2.clone()))
                    .unwrap_or_default(),
                first_seen: old
                    .map(|m| m.first_seen)
                    .into_iter()
                    .chain(new_seen.map(|s| s.0))
                    .min()
                    .unwrap_or_default(),
                last_seen: old.map(|m| m.last_seen).into_iter().chain(new_seen.map(|s| s.1)).max().unwrap_or_default(),
                user_int_id,
                confidence: match new_seen {
                    Some(_) => 1.0 / shared.get(&identifier).copied().unwrap_or(1).max(1) as f64,
                    None => old.map_or(1.0, |m| m.confidence),
                },
                active: true,
            };
            if old != Some(&mapping) {
                rows.push((identifier, mapping));
            }
        }
    }

    watch.lap("stitched");
    // 5. Side tables, then the mapping with the watermark in its commit.
    append_history(workspace, "merge", &history, &txns, now).await?;
    append_conflicts(workspace, &conflicts, &txns, now).await?;
    report.mapping_rows_written = rows.len() as u64;
    let commit = CommitProperties::default().with_application_transactions(txns);
    // A split above committed to the mapping after it was loaded.
    let mapping_table = if report.splits + report.hub_splits > 0 {
        lake.table(&curated::id_mapping_id()).await?
    } else {
        mapping_table
    };
    let table = if rows.is_empty() {
        lake.record_transactions(&curated::id_mapping_id(), commit).await?
    } else {
        merge_mapping(workspace, mapping_table, &rows, commit).await?
    };
    watch.lap("id_mapping merged");
    report.mapping_version = table.version();
    Ok(report)
}

/// The identifier columns of a source's clean table: `(clean column, id_type)`, plus the
/// conditional ones (`(column, id_type, when_column, equals)`).
fn identifier_columns(source: &Source, config: &IdentityConfig) -> Vec<IdColumn> {
    // An explicit link file names the id types in its rows.
    if ["id_type_a", "id_value_a", "id_type_b", "id_value_b"].iter().all(|c| source.column(c).is_some()) {
        return ["a", "b"]
            .iter()
            .map(|side| IdColumn { column: format!("id_value_{side}"), id_type: format!("id_type_{side}"), when: None })
            .map(|mut c| {
                c.id_type = format!("{PAIR_TYPE_PREFIX}{}", c.id_type);
                c
            })
            .collect();
    }
    let mut columns: Vec<IdColumn> = source
        .columns
        .iter()
        .filter_map(|c| Some(IdColumn { column: c.clean_name()?, id_type: c.id_type.clone()?, when: None }))
        .collect();
    for rule in config.conditional_ids.iter().filter(|r| r.source == source.name) {
        columns.push(IdColumn {
            column: rule.column.clone(),
            id_type: rule.id_type.clone(),
            when: Some((rule.when_column.clone(), rule.equals.clone())),
        });
    }
    columns
}

/// An [`IdColumn::id_type`] starting with this names the column holding the id type.
const PAIR_TYPE_PREFIX: &str = "column:";

#[derive(Debug, Clone)]
struct IdColumn {
    column: String,
    id_type: String,
    when: Option<(String, String)>,
}

struct JunkFilter {
    values: HashSet<String>,
    blocked: HashSet<String>,
}

impl JunkFilter {
    fn new(config: &IdentityConfig) -> Self {
        let mut values: HashSet<String> = config.junk_values.iter().map(|v| v.trim().to_lowercase()).collect();
        values.insert(cdplake_zones::normalize::pii_hash("", None));
        Self { values, blocked: config.blocklist.iter().map(|v| v.trim().to_string()).collect() }
    }

    fn is_junk(&self, id_type: &str, value: &str) -> bool {
        let v = value.trim();
        v.is_empty()
            || self.values.contains(&v.to_lowercase())
            || self.blocked.contains(v)
            || self.blocked.contains(&format!("{id_type}:{v}"))
    }
}

async fn read_rows(workspace: &Workspace, source: &Source, pending: &[String]) -> Result<Vec<RecordBatch>> {
    let filter =
        col(cdplake_zones::contract::BATCH_ID).in_list(pending.iter().map(|b| lit(b.clone())).collect(), false);
    workspace
        .lake()
        .read(&clean_table_id(source))
        .await?
        .filter(filter)
        .map_err(|e| JobError::query("identity: reading clean rows", e))?
        .collect()
        .await
        .map_err(|e| JobError::query("identity: reading clean rows", e))
}

pub(crate) fn text(batch: &RecordBatch, name: &str) -> Option<ArrayRef> {
    batch.column_by_name(name).and_then(|c| cast(c, &DataType::Utf8).ok())
}

fn extract(
    source: &Source,
    id_columns: &[IdColumn],
    batch: &RecordBatch,
    junk: &JunkFilter,
    links: &mut Vec<Link>,
    seen: &mut Seen,
    report: &mut IdentityReport,
) -> Result<()> {
    use cdplake_zones::contract::{INGESTED_AT, SOURCE_ROW, SOURCE_URI};
    let columns: Vec<(IdColumn, ArrayRef, Option<ArrayRef>, Option<ArrayRef>)> = id_columns
        .iter()
        .filter_map(|c| {
            let values = text(batch, &c.column)?;
            let when = match &c.when {
                Some((w, _)) => Some(text(batch, w)?),
                None => None,
            };
            let types = match c.id_type.strip_prefix(PAIR_TYPE_PREFIX) {
                Some(column) => Some(text(batch, column)?),
                None => None,
            };
            Some((c.clone(), values, when, types))
        })
        .collect();
    let uris = text(batch, SOURCE_URI).ok_or_else(|| JobError::Invalid("clean row without _source_uri".into()))?;
    let rows = batch
        .column_by_name(SOURCE_ROW)
        .and_then(|c| cast(c, &DataType::Int64).ok())
        .ok_or_else(|| JobError::Invalid("clean row without _source_row".into()))?;
    let at = batch
        .column_by_name(INGESTED_AT)
        .ok_or_else(|| JobError::Invalid("clean row without _ingested_at".into()))?
        .clone();
    let (uris, rows, at) =
        (uris.as_string::<i32>(), rows.as_primitive::<Int64Type>(), at.as_primitive::<TimestampMicrosecondType>());
    for r in 0..batch.num_rows() {
        report.rows += 1;
        let when_ok = |c: &IdColumn, w: &Option<ArrayRef>| match (&c.when, w) {
            (Some((_, equals)), Some(w)) => !w.is_null(r) && w.as_string::<i32>().value(r).eq_ignore_ascii_case(equals),
            _ => true,
        };
        let mut ids: Vec<Identifier> = Vec::new();
        for (c, values, when, types) in &columns {
            if values.is_null(r) || !when_ok(c, when) {
                continue;
            }
            let id_type = match types {
                Some(types) if types.is_null(r) => continue,
                Some(types) => types.as_string::<i32>().value(r).to_string(),
                None => c.id_type.clone(),
            };
            let value = values.as_string::<i32>().value(r);
            if junk.is_junk(&id_type, value) {
                report.junk_values_skipped += 1;
                continue;
            }
            let identifier = (id_type, value.trim().to_string());
            if !ids.contains(&identifier) {
                ids.push(identifier);
            }
        }
        let t = at.value(r);
        for identifier in &ids {
            let entry = seen.entry(identifier.clone()).or_insert((t, t, source.name.clone()));
            entry.0 = entry.0.min(t);
            entry.1 = entry.1.max(t);
        }
        for other in ids.iter().skip(1) {
            let (a, b) =
                if ids[0] <= *other { (ids[0].clone(), other.clone()) } else { (other.clone(), ids[0].clone()) };
            links.push(Link {
                a,
                b,
                source: source.name.clone(),
                uri: uris.value(r).to_string(),
                row: rows.value(r),
                seen: t,
            });
        }
    }
    Ok(())
}

/// Append rows to a side table once per run: the run's batch ids go in the commit, and a rerun
/// after a crash (same batches) finds them there and skips the append.
async fn append_once(
    workspace: &Workspace,
    id: &cdplake_engine::TableId,
    batch: RecordBatch,
    txns: &[Transaction],
) -> Result<()> {
    let lake = workspace.lake();
    let table = lake.table(id).await?;
    if let Some(first) = txns.first()
        && applied_version(&table, &id.to_string(), &first.app_id).await?.is_some()
    {
        return Ok(());
    }
    let commit = CommitProperties::default().with_application_transactions(txns.to_vec());
    lake.append_to(table, id, vec![batch], commit).await?;
    Ok(())
}

pub(crate) fn micros(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(values).with_timezone("UTC"))
}

pub(crate) fn strings<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<StringArray>())
}

pub(crate) fn batch_for(spec: &TableSpec, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    let schema = spec.normalized_schema()?;
    RecordBatch::try_new(schema, columns).map_err(|e| JobError::arrow(format!("rows for {}", spec.id), e))
}

/// Upsert links by their two identifiers: new ones inserted, `last_seen` moved forward.
async fn store_links(workspace: &Workspace, links: &[Link]) -> Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    // One row per pair: the first sighting's provenance, the last sighting's time.
    let mut unique: BTreeMap<(&Identifier, &Identifier), (&Link, i64)> = BTreeMap::new();
    for link in links {
        unique.entry((&link.a, &link.b)).and_modify(|e| e.1 = e.1.max(link.seen)).or_insert((link, link.seen));
    }
    let rows: Vec<&(&Link, i64)> = unique.values().collect();
    let spec = curated::identity_links_spec();
    let batch = batch_for(
        &spec,
        vec![
            strings(rows.iter().map(|(l, _)| l.a.0.as_str())),
            strings(rows.iter().map(|(l, _)| l.a.1.as_str())),
            strings(rows.iter().map(|(l, _)| l.b.0.as_str())),
            strings(rows.iter().map(|(l, _)| l.b.1.as_str())),
            strings(rows.iter().map(|(l, _)| l.source.as_str())),
            strings(rows.iter().map(|(l, _)| l.uri.as_str())),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|(l, _)| l.row))),
            micros(rows.iter().map(|(l, _)| l.seen)),
            micros(rows.iter().map(|(_, last)| *last)),
        ],
    )?;
    let lake = workspace.lake();
    let source = lake.session().read_batch(batch).map_err(|e| JobError::query("identity: links", e))?;
    let on = ["id_type_a", "id_value_a", "id_type_b", "id_value_b"]
        .iter()
        .map(|c| col(format!("target.{c}")).eq(col(format!("source.{c}"))))
        .reduce(|a, b| a.and(b))
        .unwrap_or(lit(false));
    let names: Vec<String> = spec.schema.fields().iter().map(|f| f.name().clone()).collect();
    lake.merge(&spec.id, source, on)
        .await?
        .with_source_alias("source")
        .with_target_alias("target")
        .when_matched_update(|u| {
            u.predicate("source.last_seen > target.last_seen").update("last_seen", "source.last_seen")
        })
        .and_then(|m| {
            m.when_not_matched_insert(|i| names.iter().fold(i, |i, c| i.set(c.as_str(), format!("source.{c}"))))
        })
        .map_err(|e| EngineError::delta(&spec.id, "merge links", e))?
        .await
        .map_err(|e| EngineError::delta(&spec.id, "merge links", e))?;
    Ok(())
}

/// What the links say about identifiers shared between persons.
pub(crate) struct SharedIdentifiers {
    /// Every hub, earlier ones included.
    hubs: HashSet<Identifier>,
    /// Hubs found in this run.
    new_hubs: u64,
    /// Identifiers touched now that were seen with two or more values of a person-unique type,
    /// and the most values of one such type (a device used by two members: 2).
    shared: HashMap<Identifier, i64>,
}

/// Identifiers touched now that are linked to more than `hub_max_unique` values of a
/// person-unique type, recorded in `curated.identity_hubs` (with the earlier hubs); and the
/// touched identifiers linked to more than one such value.
pub(crate) async fn find_hubs(
    workspace: &Workspace,
    config: &IdentityConfig,
    seen: &Seen,
    txns: &[Transaction],
    now: DateTime<Utc>,
) -> Result<SharedIdentifiers> {
    let session = workspace.catalog.sql_session().await?;
    let query = |sql: String| {
        let session = session.clone();
        async move { session.sql(&sql).await?.collect().await.map_err(|e| EngineError::query("identity: hubs", e)) }
    };
    let mut hubs = HashSet::new();
    for batch in query("SELECT id_type, id_value FROM curated.identity_hubs".into()).await? {
        let (t, v) = (text(&batch, "id_type"), text(&batch, "id_value"));
        if let (Some(t), Some(v)) = (t, v) {
            for i in 0..batch.num_rows() {
                hubs.insert((t.as_string::<i32>().value(i).to_string(), v.as_string::<i32>().value(i).to_string()));
            }
        }
    }
    let mut found: Vec<(Identifier, String, i64)> = Vec::new();
    let mut shared: HashMap<Identifier, i64> = HashMap::new();
    for unique in &config.unique_types {
        let unique_sql = unique.replace('\'', "''");
        // Distinct (identifier, unique value) pairs first, then a plain count: DataFusion's
        // count(DISTINCT) per group is slow on tens of millions of links.
        let sql = format!(
            "SELECT id_type, id_value, count(*) AS n FROM (SELECT DISTINCT id_type, id_value, unique_value FROM (\
               SELECT id_type_a AS id_type, id_value_a AS id_value, id_value_b AS unique_value FROM curated.identity_links WHERE id_type_b = '{unique_sql}' AND id_type_a <> '{unique_sql}' \
               UNION ALL \
               SELECT id_type_b, id_value_b, id_value_a FROM curated.identity_links WHERE id_type_a = '{unique_sql}' AND id_type_b <> '{unique_sql}')) \
             GROUP BY id_type, id_value HAVING count(*) > 1"
        );
        for batch in query(sql).await? {
            let (t, v) = (text(&batch, "id_type"), text(&batch, "id_value"));
            let n = batch.column_by_name("n").and_then(|c| cast(c, &DataType::Int64).ok());
            if let (Some(t), Some(v), Some(n)) = (t, v, n) {
                for i in 0..batch.num_rows() {
                    let id = (t.as_string::<i32>().value(i).to_string(), v.as_string::<i32>().value(i).to_string());
                    if !seen.contains_key(&id) {
                        continue;
                    }
                    let n = n.as_primitive::<Int64Type>().value(i);
                    let most = shared.entry(id.clone()).or_insert(n);
                    *most = (*most).max(n);
                    if n > config.hub_max_unique as i64 && !hubs.contains(&id) && !found.iter().any(|f| f.0 == id) {
                        found.push((id, unique.clone(), n));
                    }
                }
            }
        }
    }
    if !found.is_empty() {
        let spec = curated::hubs_spec();
        let batch = batch_for(
            &spec,
            vec![
                strings(found.iter().map(|f| f.0.0.as_str())),
                strings(found.iter().map(|f| f.0.1.as_str())),
                strings(found.iter().map(|f| f.1.as_str())),
                Arc::new(Int64Array::from_iter_values(found.iter().map(|f| f.2))),
                micros(found.iter().map(|_| now.timestamp_micros())),
            ],
        )?;
        append_once(workspace, &spec.id, batch, txns).await?;
    }
    let new_hubs = found.len() as u64;
    hubs.extend(found.into_iter().map(|f| f.0));
    Ok(SharedIdentifiers { hubs, new_hubs, shared })
}

/// The mapping rows of every component that one of `seen` belongs to.
async fn load_components(workspace: &Workspace, seen: &Seen) -> Result<HashMap<Identifier, Mapping>> {
    let lake = workspace.lake();
    let ctx = lake.session();
    let touched = RecordBatch::try_from_iter(vec![
        ("t_type", strings(seen.keys().map(|i| i.0.as_str()))),
        ("t_value", strings(seen.keys().map(|i| i.1.as_str()))),
    ])
    .map_err(|e| JobError::arrow("identity: touched identifiers", e))?;
    let touched = ctx.read_batch(touched).map_err(|e| JobError::query("identity: touched", e))?;
    let mapping = lake.read_table("curated.id_mapping", &lake.table(&curated::id_mapping_id()).await?, &ctx).await?;
    let query_error = |e| JobError::query("identity: loading components", e);
    // Only the partitions of the id types seen.
    let types: std::collections::BTreeSet<&str> = seen.keys().map(|i| i.0.as_str()).collect();
    let owners = mapping
        .clone()
        .filter(col("id_type").in_list(types.into_iter().map(lit).collect(), false))
        .and_then(|df| {
            df.join(
                touched,
                cdplake_engine::datafusion::common::JoinType::Inner,
                &["id_type", "id_value"],
                &["t_type", "t_value"],
                None,
            )
        })
        .and_then(|df| df.select(vec![col("one_id").alias("owner")]))
        .and_then(|df| df.distinct())
        .map_err(query_error)?;
    let rows = mapping
        .filter(col("is_active").eq(lit(true)))
        .and_then(|df| {
            df.join(owners, cdplake_engine::datafusion::common::JoinType::LeftSemi, &["one_id"], &["owner"], None)
        })
        .map_err(query_error)?
        .collect()
        .await
        .map_err(query_error)?;
    parse_mapping(&rows)
}

/// `curated.id_mapping` rows by identifier.
pub(crate) fn parse_mapping(rows: &[RecordBatch]) -> Result<HashMap<Identifier, Mapping>> {
    let mut out = HashMap::new();
    for batch in rows {
        let (t, v, o, s) =
            (text(batch, "id_type"), text(batch, "id_value"), text(batch, "one_id"), text(batch, "source_channel"));
        let (Some(t), Some(v), Some(o), Some(s)) = (t, v, o, s) else { continue };
        let first = batch
            .column_by_name("first_seen")
            .ok_or_else(|| JobError::Invalid("id_mapping without first_seen".into()))?;
        let last = batch
            .column_by_name("last_seen")
            .ok_or_else(|| JobError::Invalid("id_mapping without last_seen".into()))?;
        let ints = batch
            .column_by_name("user_int_id")
            .ok_or_else(|| JobError::Invalid("id_mapping without user_int_id".into()))?;
        let confidence = batch
            .column_by_name("confidence")
            .and_then(|c| cast(c, &DataType::Float64).ok())
            .ok_or_else(|| JobError::Invalid("id_mapping without confidence".into()))?;
        let active = batch
            .column_by_name("is_active")
            .ok_or_else(|| JobError::Invalid("id_mapping without is_active".into()))?
            .as_boolean();
        let (first, last, ints, confidence) = (
            first.as_primitive::<TimestampMicrosecondType>(),
            last.as_primitive::<TimestampMicrosecondType>(),
            ints.as_primitive::<Int64Type>(),
            confidence.as_primitive::<cdplake_engine::arrow::datatypes::Float64Type>(),
        );
        for i in 0..batch.num_rows() {
            out.insert(
                (t.as_string::<i32>().value(i).to_string(), v.as_string::<i32>().value(i).to_string()),
                Mapping {
                    one_id: o.as_string::<i32>().value(i).to_string(),
                    source_channel: if s.is_null(i) {
                        String::new()
                    } else {
                        s.as_string::<i32>().value(i).to_string()
                    },
                    first_seen: first.value(i),
                    last_seen: last.value(i),
                    user_int_id: ints.value(i),
                    confidence: confidence.value(i),
                    active: active.value(i),
                },
            );
        }
    }
    Ok(out)
}

pub(crate) async fn max_user_int_id(workspace: &Workspace) -> Result<i64> {
    let session = workspace.catalog.sql_session().await?;
    let batches = session
        .sql("SELECT max(user_int_id) FROM curated.id_mapping")
        .await?
        .collect()
        .await
        .map_err(|e| JobError::query("identity: next user_int_id", e))?;
    let column = cast(batches[0].column(0), &DataType::Int64).map_err(|e| JobError::arrow("user_int_id", e))?;
    let column = column.as_primitive::<Int64Type>();
    Ok(if column.is_null(0) { 0 } else { column.value(0) })
}

pub(crate) async fn append_history(
    workspace: &Workspace,
    action: &str,
    history: &[(String, String, String)],
    txns: &[Transaction],
    now: DateTime<Utc>,
) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    let spec = curated::merge_history_spec();
    let batch = batch_for(
        &spec,
        vec![
            strings(history.iter().map(|_| action)),
            strings(history.iter().map(|h| h.0.as_str())),
            strings(history.iter().map(|h| h.1.as_str())),
            strings(history.iter().map(|h| h.2.as_str())),
            micros(history.iter().map(|_| now.timestamp_micros())),
        ],
    )?;
    append_once(workspace, &spec.id, batch, txns).await?;
    Ok(())
}

async fn append_conflicts(
    workspace: &Workspace,
    conflicts: &[(Link, union_find::Refusal)],
    txns: &[Transaction],
    now: DateTime<Utc>,
) -> Result<()> {
    if conflicts.is_empty() {
        return Ok(());
    }
    let list = |ids: &[Identifier]| ids.iter().map(|i| format!("{}:{}", i.0, i.1)).collect::<Vec<_>>().join(",");
    let (left, right): (Vec<String>, Vec<String>) =
        conflicts.iter().map(|(_, r)| (list(&r.left), list(&r.right))).unzip();
    let spec = curated::conflicts_spec();
    let batch = batch_for(
        &spec,
        vec![
            strings(conflicts.iter().map(|(l, _)| l.a.0.as_str())),
            strings(conflicts.iter().map(|(l, _)| l.a.1.as_str())),
            strings(conflicts.iter().map(|(l, _)| l.b.0.as_str())),
            strings(conflicts.iter().map(|(l, _)| l.b.1.as_str())),
            strings(left.iter().map(String::as_str)),
            strings(right.iter().map(String::as_str)),
            strings(conflicts.iter().map(|(l, _)| l.source.as_str())),
            strings(conflicts.iter().map(|(l, _)| l.uri.as_str())),
            Arc::new(Int64Array::from_iter_values(conflicts.iter().map(|(l, _)| l.row))),
            micros(conflicts.iter().map(|_| now.timestamp_micros())),
        ],
    )?;
    append_once(workspace, &spec.id, batch, txns).await?;
    Ok(())
}

/// MERGE the changed rows into `curated.id_mapping` by (id_type, id_value).
pub(crate) async fn merge_mapping(
    workspace: &Workspace,
    table: cdplake_engine::deltalake::DeltaTable,
    rows: &[(Identifier, Mapping)],
    commit: CommitProperties,
) -> Result<cdplake_engine::deltalake::DeltaTable> {
    let spec = curated::id_mapping_spec();
    let batch = batch_for(
        &spec,
        vec![
            strings(rows.iter().map(|r| r.1.one_id.as_str())),
            strings(rows.iter().map(|r| r.0.0.as_str())),
            strings(rows.iter().map(|r| r.0.1.as_str())),
            strings(rows.iter().map(|r| r.1.source_channel.as_str())),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1.confidence))),
            micros(rows.iter().map(|r| r.1.first_seen)),
            micros(rows.iter().map(|r| r.1.last_seen)),
            Arc::new(BooleanArray::from(rows.iter().map(|r| r.1.active).collect::<Vec<_>>())),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1.user_int_id))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| curated::id_bucket(&r.0.0, &r.0.1)))),
        ],
    )?;
    let lake = workspace.lake();
    let source = lake.session().read_batch(batch).map_err(|e| JobError::query("identity: mapping rows", e))?;
    // The bucket in the predicate lets delta-rs skip every partition the rows do not touch.
    let on = col(format!("target.{}", curated::ID_BUCKET))
        .eq(col(format!("source.{}", curated::ID_BUCKET)))
        .and(col("target.id_type").eq(col("source.id_type")))
        .and(col("target.id_value").eq(col("source.id_value")));
    let names: Vec<String> = spec.schema.fields().iter().map(|f| f.name().clone()).collect();
    let commit = commit.with_max_retries(100);
    let (table, _) = lake
        .merge_into(table, source, on)?
        .with_source_alias("source")
        .with_target_alias("target")
        .with_commit_properties(commit)
        .when_matched_update(|u| names.iter().fold(u, |u, c| u.update(c.as_str(), format!("source.{c}"))))
        .and_then(|m| {
            m.when_not_matched_insert(|i| names.iter().fold(i, |i, c| i.set(c.as_str(), format!("source.{c}"))))
        })
        .map_err(|e| EngineError::delta(&spec.id, "merge", e))?
        .await
        .map_err(|e| EngineError::delta(&spec.id, "merge", e))?;
    Ok(table)
}
