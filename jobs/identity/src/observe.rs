//! What identity reads: every version of every row of the batches not resolved yet.
//!
//! The clean table keeps only the latest version of a key (a CRM member's current email), but
//! every version is evidence of who the person is, and old identifiers keep turning up in other
//! systems. So identity reads the *raw* rows of each batch that clean has applied and types just
//! the columns it needs with the source's own contract: every version links, and rows that clean
//! rejected (the quarantine's `rejected` rows of those batches) are left out, as in clean.
//!
//! Each identifier value is screened before it links (placeholders such as `guest`, `N/A`,
//! `test@test.com` and their hashes, `[identity] junk_values`, the blocklist) while still in
//! plaintext; only then is a PII column hashed as clean hashes it. Every pair of identifiers on
//! one row is a link, timed by the row's business time (`time_column`, else `order_by`, else the
//! ingestion time).

use std::collections::{BTreeMap, HashSet};

use cdplake_engine::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use cdplake_engine::datafusion::common::HashMap as FastMap;
use cdplake_engine::datafusion::execution::SendableRecordBatchStream;
use cdplake_engine::datafusion::prelude::{col, lit};
use cdplake_zones::contract::{Contract, Op, Value};
use cdplake_zones::placeholders::{IdKind, Placeholders, placeholder_rule};
use cdplake_zones::raw;
use cdplake_zones::{Normalize, PiiTreatment, Source};
use futures::TryStreamExt;

use crate::union_find::{Interner, NodeId};
use cdplake_core::columns::{int64, utf8};
use cdplake_core::config::{IdTypeRule, IdentityConfig};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{QUARANTINE, raw_table};

/// When and where an identifier was seen in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sighting {
    /// Business time, µs since the epoch.
    pub first: i64,
    pub last: i64,
    /// The source it was first seen in (index into [`Observations::sources`]).
    pub source: u16,
}

/// Where a link was first seen, and when it was seen first and last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evidence {
    pub first: i64,
    pub last: i64,
    pub source: u16,
    /// Index into [`Observations::uris`].
    pub uri: u32,
    pub row: i64,
}

impl Evidence {
    /// Keep the earliest sighting's provenance (ties: the smaller file and row) and the latest time.
    fn absorb(&mut self, other: Evidence) {
        if (other.first, other.uri, other.row) < (self.first, self.uri, self.row) {
            let last = self.last.max(other.last);
            *self = Evidence { last, ..other };
        } else {
            self.last = self.last.max(other.last);
        }
    }
}

/// Identifier values a rule kept out, per `(id_type, stored value, rule, source)`.
pub(crate) type Skipped = BTreeMap<(String, String, &'static str, String), u64>;

/// Everything one run read.
#[derive(Debug, Default)]
pub(crate) struct Observations {
    pub ids: Interner,
    pub sources: Vec<String>,
    pub uris: Vec<String>,
    uri_index: FastMap<String, u32>,
    pub seen: FastMap<NodeId, Sighting>,
    /// One entry per pair of identifiers (smaller node first).
    pub links: FastMap<(NodeId, NodeId), Evidence>,
    pub skipped: Skipped,
    pub rows: u64,
}

impl Observations {
    fn uri(&mut self, uri: &str) -> u32 {
        if let Some(&i) = self.uri_index.get(uri) {
            return i;
        }
        let i = self.uris.len() as u32;
        self.uris.push(uri.to_string());
        self.uri_index.insert(uri.to_string(), i);
        i
    }

    fn sight(&mut self, n: NodeId, at: i64, source: u16) {
        self.seen
            .entry(n)
            .and_modify(|s| {
                s.first = s.first.min(at);
                s.last = s.last.max(at);
            })
            .or_insert(Sighting { first: at, last: at, source });
    }

    fn link(&mut self, a: NodeId, b: NodeId, evidence: Evidence) {
        let key = if a < b { (a, b) } else { (b, a) };
        self.links.entry(key).and_modify(|e| e.absorb(evidence)).or_insert(evidence);
    }

    /// The index of a source in [`Observations::sources`], added if new.
    fn source_index(&mut self, name: &str) -> u16 {
        match self.sources.iter().position(|s| s == name) {
            Some(i) => i as u16,
            None => {
                self.sources.push(name.to_string());
                (self.sources.len() - 1) as u16
            }
        }
    }

    /// A row's identifiers: each is seen, and each pair of them is a link.
    fn record_row(&mut self, ids: &[NodeId], row: &RowSighting<'_>) {
        for &n in ids {
            self.sight(n, row.at, row.source);
        }
        if ids.len() > 1 {
            let uri = self.uri(row.uri);
            let evidence = Evidence { first: row.at, last: row.at, source: row.source, uri, row: row.line };
            for (i, &a) in ids.iter().enumerate() {
                for &b in &ids[i + 1..] {
                    self.link(a, b, evidence);
                }
            }
        }
    }
}

/// Where and when one row was seen.
struct RowSighting<'a> {
    /// Business time, µs since the epoch.
    at: i64,
    source: u16,
    uri: &'a str,
    line: i64,
}

/// The screening rules: which values identify no one, and how PII columns are hashed.
pub(crate) struct Screen<'a> {
    config: &'a IdentityConfig,
    placeholders: Placeholders,
    junk: HashSet<String>,
    blocked: HashSet<String>,
    pii_key: Option<Vec<u8>>,
}

impl<'a> Screen<'a> {
    pub(crate) fn new(config: &'a IdentityConfig, pii_key: Option<Vec<u8>>) -> Self {
        let placeholders = if config.placeholder_rules {
            Placeholders::new(pii_key.as_deref(), &config.junk_values)
        } else {
            Placeholders::default()
        };
        Self {
            config,
            placeholders,
            junk: config.junk_values.iter().map(|v| v.trim().to_lowercase()).collect(),
            blocked: config.blocklist.iter().map(|v| v.trim().to_string()).collect(),
            pii_key,
        }
    }

    /// The value to link (hashed if the column is hashed), or the rule that keeps it out.
    fn value(&self, id_type: &str, plain: &str, kind: IdKind, hash: bool) -> std::result::Result<String, Skip> {
        let plain = plain.trim();
        let stored =
            |v: &str| if hash { cdplake_zones::normalize::pii_hash(v, self.pii_key.as_deref()) } else { v.into() };
        let skip = |rule: &'static str| Err(Skip { rule, stored: stored(plain) });
        if plain.is_empty() {
            return skip("empty");
        }
        if !self.junk.is_empty() && self.junk.contains(&plain.to_lowercase()) {
            return skip("junk value");
        }
        if self.config.placeholder_rules {
            if let Some(rule) = placeholder_rule(plain, kind) {
                return skip(rule);
            }
            // Only a 64-digit hex value can be a SHA-256 / HMAC-SHA256 hash.
            if plain.len() == 64 && self.placeholders.is_placeholder_hash(&plain.to_ascii_lowercase()) {
                return skip("hash of a placeholder");
            }
        }
        let value = stored(plain);
        if !self.blocked.is_empty()
            && (self.blocked.contains(&value) || self.blocked.contains(&format!("{id_type}:{value}")))
        {
            return Err(Skip { rule: "blocklist", stored: value });
        }
        Ok(value)
    }
}

struct Skip {
    rule: &'static str,
    stored: String,
}

/// Where a row's identifiers are, by position in the narrowed contract's columns.
enum IdSlot {
    /// A column of one id type.
    Column { index: usize, id_type: String, kind: IdKind, hash: bool },
    /// A column holding an id only when another column equals a value (a login's member id).
    When { index: usize, id_type: String, when: usize, equals: String },
    /// A link file's side: the id type is in another column.
    Pair { index: usize, type_index: usize },
}

/// A source's contract cut down to the columns identity reads, all optional.
struct Plan {
    narrowed: Source,
    slots: Vec<IdSlot>,
    times: Vec<usize>,
}

fn kind_of(normalize: Normalize) -> IdKind {
    match normalize {
        Normalize::Email => IdKind::Email,
        Normalize::Phone => IdKind::Phone,
        _ => IdKind::Other,
    }
}

/// The columns of `source` that carry identifiers, or `None` when it carries none.
fn plan(source: &Source, config: &IdentityConfig) -> Option<Plan> {
    let by_clean_name = |name: &str| source.columns.iter().position(|c| c.clean_name().as_deref() == Some(name));
    let pair_columns = ["id_type_a", "id_value_a", "id_type_b", "id_value_b"];
    let is_pair_file = pair_columns.iter().all(|c| source.column(c).is_some());
    let mut wanted: Vec<usize> = Vec::new();
    let mut want = |i: usize| match wanted.iter().position(|&w| w == i) {
        Some(p) => p,
        None => {
            wanted.push(i);
            wanted.len() - 1
        }
    };
    let mut slots = Vec::new();
    if is_pair_file {
        for side in ["a", "b"] {
            let value = source.columns.iter().position(|c| c.name == format!("id_value_{side}"))?;
            let types = source.columns.iter().position(|c| c.name == format!("id_type_{side}"))?;
            slots.push(IdSlot::Pair { index: want(value), type_index: want(types) });
        }
    } else {
        for (i, column) in source.columns.iter().enumerate() {
            if let (Some(id_type), Some(_)) = (&column.id_type, column.clean_name()) {
                let hash = column.pii == Some(PiiTreatment::Hash);
                slots.push(IdSlot::Column {
                    index: want(i),
                    id_type: id_type.clone(),
                    kind: kind_of(column.normalize),
                    hash,
                });
            }
        }
        for rule in config.conditional_ids.iter().filter(|r| r.source == source.name) {
            let (Some(value), Some(when)) = (by_clean_name(&rule.column), by_clean_name(&rule.when_column)) else {
                continue;
            };
            slots.push(IdSlot::When {
                index: want(value),
                id_type: rule.id_type.clone(),
                when: want(when),
                equals: rule.equals.clone(),
            });
        }
    }
    if slots.is_empty() {
        return None;
    }
    // A phone without a country code is read in the row's country (see `Contract::typed`).
    let has_phone = source.columns.iter().any(|c| c.id_type.is_some() && c.normalize == Normalize::Phone);
    if let Some(country) = source.columns.iter().position(|c| c.normalize == Normalize::Country)
        && has_phone
    {
        want(country);
    }
    let times: Vec<usize> = source
        .time_columns()
        .iter()
        .filter_map(|name| source.columns.iter().position(|c| c.name == *name))
        .map(&mut want)
        .collect();
    let mut narrowed = source.clone();
    narrowed.columns = wanted
        .iter()
        .map(|&i| {
            let mut column = source.columns[i].clone();
            // Identity only reads: a value that fails here is simply not an identifier (the row's
            // fate is clean's, read from the quarantine); PII is hashed after screening.
            column.required = false;
            column.non_negative = false;
            if column.pii == Some(PiiTreatment::Hash) {
                column.pii = None;
            }
            column
        })
        .collect();
    narrowed.primary_key.clear();
    narrowed.order_by = None;
    narrowed.time_column = None;
    Some(Plan { narrowed, slots, times })
}

/// Whether a source has identifier columns at all.
pub(crate) fn carries_identifiers(source: &Source, config: &IdentityConfig) -> bool {
    plan(source, config).is_some()
}

/// Read the rows of `batches` of `source` into `observations`.
pub(crate) async fn observe_source(
    workspace: &Workspace,
    source: &Source,
    batches: &[String],
    screen: &Screen<'_>,
    observations: &mut Observations,
) -> Result<()> {
    let Some(plan) = plan(source, &workspace.config.identity) else { return Ok(()) };
    let rejected = rejected_rows(workspace, source, batches).await?;
    let mut raw_batches = read_raw(workspace, source, &plan, batches).await?;
    let reader = SourceReader {
        contract: Contract::new(&plan.narrowed, None),
        plan: &plan,
        source_name: &source.name,
        source_index: observations.source_index(&source.name),
        rejected: &rejected,
        screen,
    };
    let context = || format!("identity: reading {}", raw_table(source));
    while let Some(batch) = raw_batches.try_next().await.map_err(|e| JobError::query(context(), e))? {
        reader.observe_batch(&batch, observations)?;
    }
    Ok(())
}

/// The rows clean rejected: their lines by file.
type Rejected = std::collections::HashMap<String, HashSet<i64>>;

/// `(file, row)` of the rows clean rejected in these batches.
async fn rejected_rows(workspace: &Workspace, source: &Source, batches: &[String]) -> Result<Rejected> {
    let mut rejected = Rejected::new();
    let Some(quarantine) = workspace.lake().read_if_exists(&QUARANTINE.id()).await? else {
        return Ok(rejected);
    };
    // Only the source's partition of the quarantine, read directly (no SQL session to set up).
    let context = "identity: reading the quarantine";
    let rows = quarantine
        .filter(
            col("source")
                .eq(lit(source.name.clone()))
                .and(col("kind").eq(lit("rejected")))
                .and(col("batch_id").in_list(batches.iter().map(|b| lit(b.clone())).collect(), false)),
        )
        .and_then(|df| df.select_columns(&["_source_uri", "_source_row"]))
        .map_err(|e| JobError::query(context, e))?
        .collect()
        .await
        .map_err(|e| JobError::query(context, e))?;
    for batch in &rows {
        let (uris, lines) = (utf8(batch, "identity", "_source_uri")?, int64(batch, "identity", "_source_row")?);
        let (uris, lines) = (uris.as_string::<i32>(), lines.as_primitive::<Int64Type>());
        for i in 0..batch.num_rows() {
            rejected.entry(uris.value(i).to_string()).or_default().insert(lines.value(i));
        }
    }
    Ok(rejected)
}

/// The raw rows of the batches, only the columns the plan reads (every alias) and lineage, as a
/// stream (a source's raw rows are never held at once).
async fn read_raw(
    workspace: &Workspace,
    source: &Source,
    plan: &Plan,
    batches: &[String],
) -> Result<SendableRecordBatchStream> {
    let raw_id = raw_table(source);
    let df = workspace.lake().read(&raw_id).await?;
    let present: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
    let mut columns: Vec<String> = plan.narrowed.columns.iter().flat_map(|c| c.raw_names()).collect();
    columns.extend(["op", "before", "after"].map(String::from));
    columns.extend([raw::SOURCE_URI, raw::SOURCE_ROW, raw::INGESTED_AT].map(String::from));
    columns.retain(|c| present.contains(c));
    columns.dedup();
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let context = format!("identity: reading {raw_id}");
    df.filter(col(raw::BATCH_ID).in_list(batches.iter().map(|b| lit(b.clone())).collect(), false))
        .and_then(|df| df.select_columns(&names))
        .map_err(|e| JobError::query(context.clone(), e))?
        .execute_stream()
        .await
        .map_err(|e| JobError::query(context, e))
}

/// One source's reading: its plan and contract, the rows clean rejected and the screening rules.
struct SourceReader<'a> {
    contract: Contract<'a>,
    plan: &'a Plan,
    source_name: &'a str,
    /// Index into [`Observations::sources`].
    source_index: u16,
    rejected: &'a Rejected,
    screen: &'a Screen<'a>,
}

impl SourceReader<'_> {
    /// Read the rows of one raw batch into `observations`, leaving out rejected and deleted rows.
    fn observe_batch(&self, batch: &RecordBatch, observations: &mut Observations) -> Result<()> {
        let lineage = Lineage::read(batch)?;
        let (uris, lines, ingested) = (
            lineage.uris.as_string::<i32>(),
            lineage.lines.as_primitive::<Int64Type>(),
            lineage.ingested.as_primitive::<TimestampMicrosecondType>(),
        );
        let data_names: Vec<String> =
            batch.schema().fields().iter().map(|f| f.name().clone()).filter(|n| !raw::is_lineage(n)).collect();
        let data: Vec<_> = data_names.iter().map(|n| raw_text(batch, n)).collect::<Result<_>>()?;
        let data: Vec<_> = data.iter().map(|a| a.as_string::<i32>()).collect();
        let Ok(layout) = self.contract.layout(&data_names) else { return Ok(()) };
        let mut values: Vec<Option<&str>> = vec![None; data.len()];
        let mut warnings = Vec::new();
        let mut ids: Vec<NodeId> = Vec::new();
        for r in 0..batch.num_rows() {
            let line = lines.value(r);
            if self.is_rejected(uris.value(r), line) {
                continue;
            }
            for (v, column) in values.iter_mut().zip(&data) {
                *v = (!column.is_null(r)).then(|| column.value(r));
            }
            warnings.clear();
            let Ok(mut row) = self.contract.typed(&layout, &values, &mut warnings) else { continue };
            if row.op == Op::Delete {
                continue;
            }
            observations.rows += 1;
            let at = self.plan.times.iter().find_map(|&i| micros(&row.values[i])).unwrap_or_else(|| ingested.value(r));
            self.screened_identifiers(&mut row.values, &mut ids, observations);
            let sighting = RowSighting { at, source: self.source_index, uri: uris.value(r), line };
            observations.record_row(&ids, &sighting);
        }
        Ok(())
    }

    /// Did clean reject this row of this file?
    fn is_rejected(&self, uri: &str, line: i64) -> bool {
        !self.rejected.is_empty() && self.rejected.get(uri).is_some_and(|rows| rows.contains(&line))
    }

    /// The identifiers of a typed row that pass screening, each once, into `ids`; the values a
    /// rule keeps out are counted in `observations.skipped`.
    fn screened_identifiers(&self, values: &mut [Value], ids: &mut Vec<NodeId>, observations: &mut Observations) {
        ids.clear();
        for slot in &self.plan.slots {
            let Some((id_type, plain, kind, hash)) = slot_value(slot, values) else { continue };
            match self.screen.value(&id_type, &plain, kind, hash) {
                Ok(value) => {
                    let n = observations.ids.intern_named(&id_type, &value);
                    if !ids.contains(&n) {
                        ids.push(n);
                    }
                }
                Err(skip) => {
                    let key = (id_type, skip.stored, skip.rule, self.source_name.to_string());
                    *observations.skipped.entry(key).or_default() += 1;
                }
            }
        }
    }
}

/// A raw batch's lineage columns: the file and line of each row and when it was ingested.
struct Lineage {
    uris: ArrayRef,
    lines: ArrayRef,
    ingested: ArrayRef,
}

impl Lineage {
    fn read(batch: &RecordBatch) -> Result<Self> {
        let uris = raw_text(batch, raw::SOURCE_URI)?;
        let lines = cast(raw_column(batch, raw::SOURCE_ROW)?, &DataType::Int64)
            .map_err(|e| JobError::arrow("raw lineage", e))?;
        let ingested = raw_column(batch, raw::INGESTED_AT)?.clone();
        Ok(Self { uris, lines, ingested })
    }
}

/// The column `name` of a raw batch.
fn raw_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    let i = batch.schema().index_of(name).map_err(|e| JobError::arrow("raw lineage", e))?;
    Ok(batch.column(i))
}

/// The column `name` of a raw batch as strings.
fn raw_text(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    cast(raw_column(batch, name)?, &DataType::Utf8).map_err(|e| JobError::arrow("raw column", e))
}

/// `(id_type, plaintext, kind, hash)` of one slot of a typed row, if it holds a value.
fn slot_value(slot: &IdSlot, values: &mut [Value]) -> Option<(String, String, IdKind, bool)> {
    // A column is read by one slot only, except a login's `when` column: text is copied out.
    let text = |values: &mut [Value], i: usize| match &values[i] {
        Value::Null => None,
        Value::Text(t) => Some(t.clone()),
        Value::Int(v) => Some(v.to_string()),
        other => Some(format!("{other:?}")),
    };
    match slot {
        IdSlot::Column { index, id_type, kind, hash } => Some((id_type.clone(), text(values, *index)?, *kind, *hash)),
        IdSlot::When { index, id_type, when, equals } => {
            let matches = matches!(&values[*when], Value::Text(w) if w.trim().eq_ignore_ascii_case(equals));
            if !matches {
                return None;
            }
            Some((id_type.clone(), text(values, *index)?, IdKind::Other, false))
        }
        IdSlot::Pair { index, type_index } => {
            Some((text(values, *type_index)?.trim().to_lowercase(), text(values, *index)?, IdKind::Other, false))
        }
    }
}

fn micros(value: &Value) -> Option<i64> {
    match value {
        Value::Timestamp(t) => Some(*t),
        Value::Date(d) => Some(*d as i64 * 86_400_000_000),
        _ => None,
    }
}

/// The priority of an id type (1 strongest); types without a rule come last.
pub(crate) fn priority(rules: &BTreeMap<String, IdTypeRule>, id_type: &str) -> u32 {
    rules.get(id_type).map_or(u32::MAX, |r| r.priority)
}
