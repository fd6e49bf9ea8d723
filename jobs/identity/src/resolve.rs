//! `cdplake identity`: stitch identifiers into persons (one_id), incrementally and stably.
//!
//! A run goes through typed phases:
//! 1. **Observe** ([`observe`]): every version of every row of the batches clean has applied
//!    and identity has not (read from raw with the source's contract, so a CRM member's old
//!    email still links); placeholders, junk and blocklisted values are screened out; every
//!    pair of identifiers on a row is a link, timed by the row's business time. Links are kept
//!    with provenance in `curated.identity_links`.
//! 2. **Hubs** ([`hubs`]): an identifier linked to more distinct values of an id type than one
//!    person may hold (`[identity.types]` limits) is a hub in `curated.identity_hubs` and never
//!    links; a hub already inside a person leaves it and that person is re-stitched ([`split`]).
//! 3. **Stitch**: only the persons the new identifiers reach are loaded from `curated.id_mapping`;
//!    new links are applied strongest id type first ([`union_find`]), and a link that would give
//!    a person more values of a type than its limit is refused (`curated.identity_conflicts`).
//! 4. **Assign**: the oldest one_id of a merged cluster survives (earliest business first_seen,
//!    then the smaller id), merges go to `curated.id_merge_history`; new persons get the next
//!    `user_int_id` and `one_id = ONE<user_int_id>`.
//! 5. **Publish**: only the identifiers whose row changed are MERGEd into `curated.id_mapping`,
//!    with the applied batches recorded in that commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::applied_versions;
use cdplake_engine::arrow::array::{AsArray, Int64Array, RecordBatch};
use cdplake_engine::datafusion::common::HashMap as FastMap;
use cdplake_engine::datafusion::prelude::{col, lit};
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::upsert::{RetryPolicy, Upsert};
use cdplake_zones::Source;
use cdplake_zones::curated::{self, IdMappingRow};
use chrono::{DateTime, Utc};

use crate::hubs::{self, Degrees};
use crate::observe::{self, Evidence, Observations, Screen, priority};
use crate::split;
use crate::store::{HistoryEntry, append_history, append_once, max_user_int_id, merge_mapping};
use crate::union_find::{self, Components, Identifier, NodeId, Refusal};
use crate::unlink;
use cdplake_core::batches::clean_generation;
use cdplake_core::columns::utf8;
use cdplake_core::columns::{batch_for, micros, strings};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{ID_MAPPING, app_ids, clean_table, raw_table};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IdentityReport {
    /// Raw batches read (across sources).
    pub batches: usize,
    /// Rows read (every version, rows clean rejected left out).
    pub rows: u64,
    /// Distinct links (pairs of identifiers on one row) read in this run.
    pub new_links: u64,
    pub identifiers_seen: u64,
    /// Identifier values kept out by a rule (placeholder, junk value, blocklist), in rows.
    pub junk_values_skipped: u64,
    /// The same, by rule.
    pub skipped_by_rule: BTreeMap<String, u64>,
    pub components_touched: u64,
    pub persons_created: u64,
    pub merges: u64,
    /// Links refused because the merge would exceed an id type's limit.
    pub conflicts: u64,
    /// Identifiers newly found to be hubs in this run.
    pub hubs: u64,
    /// Persons split because an identifier was added to the blocklist.
    pub splits: u64,
    /// Persons split because one of their identifiers became a hub.
    pub hub_splits: u64,
    /// Persons gone because every identifier they had became a hub (`retire` in the history).
    pub retired: u64,
    pub mapping_rows_written: u64,
    pub mapping_version: Option<u64>,
}

impl cdplake_core::audit::JobReport for IdentityReport {
    fn row_counts(&self) -> cdplake_core::audit::RowCounts {
        cdplake_core::audit::RowCounts { read: self.rows, written: self.mapping_rows_written }
    }
}

/// The report as a line for people.
pub fn describe_report(r: &IdentityReport) -> String {
    if r.batches == 0 && r.splits == 0 {
        return "identity: nothing new (every clean batch is resolved)".into();
    }
    format!(
        "identity: {} rows from {} batches, {} identifiers, {} links; {} new persons, {} merges, \
         {} refused links (conflicts), {} new hubs ({} persons split by one, {} retired), {} values skipped by rule{}, \
         {} blocklist splits; {} id_mapping rows written",
        r.rows,
        r.batches,
        r.identifiers_seen,
        r.new_links,
        r.persons_created,
        r.merges,
        r.conflicts,
        r.hubs,
        r.hub_splits,
        r.retired,
        r.junk_values_skipped,
        if r.skipped_by_rule.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                r.skipped_by_rule.iter().map(|(rule, n)| format!("{rule}: {n}")).collect::<Vec<_>>().join(", ")
            )
        },
        r.splits,
        r.mapping_rows_written
    )
}

/// A link of this run, deduplicated, in the order stitching applies it.
#[derive(Debug, Clone, Copy)]
struct OrderedLink {
    a: NodeId,
    b: NodeId,
    /// The priorities of its two id types as dense ranks, stronger in the high half: sorting
    /// millions of links compares this instead of looking both types up again.
    ranks: u32,
    /// The rank of its file's name among the run's files.
    uri_rank: u32,
    evidence: Evidence,
}

impl OrderedLink {
    /// Stitching order but for the identifiers: strongest id types, then oldest, then where seen.
    fn sort_key(&self) -> (u32, i64, u16, i64, u32) {
        let e = &self.evidence;
        (self.ranks, e.first, e.source, e.row, self.uri_rank)
    }
}

/// The persons after stitching, before ids are assigned.
struct Stitched {
    /// Owns the run's interner while stitching.
    components: Components,
    existing: FastMap<NodeId, IdMappingRow>,
    conflicts: Vec<(OrderedLink, Refusal)>,
    /// Links that joined two clusters, for naming the cause of a merge.
    causes: Vec<OrderedLink>,
}

/// The rows to write after stitching.
struct Assigned {
    rows: Vec<IdMappingRow>,
    /// Merges, and persons retired because every identifier they had became a hub.
    history: Vec<HistoryEntry>,
}

/// Stitching passes at most: a pass that finds identifiers that would join two persons removes
/// their links and stitches again.
const MAX_PASSES: usize = 3;

/// Run identity resolution on every batch not resolved yet.
pub async fn resolve(workspace: &Workspace, now: DateTime<Utc>) -> Result<IdentityReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let mapping_table = ensure_tables(workspace).await?;
    let config = &workspace.config.identity;
    let mut report = IdentityReport::default();
    let mut watch = cdplake_core::stopwatch::Stopwatch::start("identity");
    // Identifiers newly blocklisted in cdplake.toml split their person, as `unlink A` would.
    report.splits = unlink::apply_blocklist(workspace, now).await?.iter().filter(|r| r.parts > 1).count() as u64;

    // 1. Observe.
    let pending = pending_by_source(workspace, &mapping_table).await?;
    if pending.is_empty() {
        return Ok(report);
    }
    let txns: Vec<Transaction> =
        pending.iter().flat_map(|p| p.batches.iter().map(|b| Transaction::new(p.app_id(b), 1))).collect();
    report.batches = txns.len();
    let mut observations = observe_pending(workspace, &pending, &mut report).await?;
    watch.lap("rows observed");

    // 2. Hubs, before this run's links are stored (the stored ones are earlier runs').
    let mut degrees = hubs::find_hubs(workspace, &mut observations, &config.types).await?;
    watch.lap("hubs found");
    store_links(workspace, &observations).await?;
    store_skipped(workspace, &observations, &txns, now).await?;
    watch.lap("links stored");

    // 3. Stitch the persons the new identifiers reach.
    let mut run = StitchRun { workspace, observations: &mut observations, degrees: &mut degrees, report: &mut report };
    let stitched = run.stitch_passes(&mut watch, now).await?;
    report.hubs = degrees.new_hubs.len() as u64;
    report.conflicts = stitched.conflicts.len() as u64;

    // 4. Assign one_ids; 5. publish.
    let next_int = max_user_int_id(workspace).await? + 1;
    let assigned = assign(&stitched, &observations, &degrees, next_int, &mut report);
    let ids = &stitched.components.ids;
    append_hubs(workspace, ids, &degrees, &txns, now).await?;
    append_history(workspace, &assigned.history, &txns, now).await?;
    append_conflicts(workspace, ids, &stitched.conflicts, &observations, &txns, now).await?;
    watch.lap("one_ids assigned, side tables written");
    report.mapping_rows_written = assigned.rows.len() as u64;
    // A split above committed to the mapping after it was opened.
    let mapping_table =
        if report.splits + report.hub_splits > 0 { lake.table(&ID_MAPPING.id()).await? } else { mapping_table };
    let table = if assigned.rows.is_empty() {
        let commit = CommitProperties::default().with_application_transactions(txns);
        lake.record_transactions(&ID_MAPPING.id(), commit).await?
    } else {
        merge_mapping(workspace, mapping_table, &assigned.rows, txns).await?
    };
    watch.lap("id_mapping merged");
    report.mapping_version = table.version();
    Ok(report)
}

/// Read the pending batches of every source into this run's observations, counting them in
/// `report`.
async fn observe_pending(
    workspace: &Workspace,
    pending: &[Pending],
    report: &mut IdentityReport,
) -> Result<Observations> {
    let screen = Screen::new(&workspace.config.identity, cdplake_zones::normalize::pii_key_from_env());
    let mut observations = Observations::default();
    for p in pending {
        observe::observe_source(workspace, &p.source, &p.batches, &screen, &mut observations).await?;
    }
    report.rows = observations.rows;
    report.identifiers_seen = observations.seen.len() as u64;
    report.new_links = observations.links.len() as u64;
    for ((_, _, rule, _), n) in &observations.skipped {
        report.junk_values_skipped += n;
        *report.skipped_by_rule.entry(rule.to_string()).or_default() += n;
    }
    Ok(observations)
}

/// What the stitching passes of a run read and update.
struct StitchRun<'a> {
    workspace: &'a Workspace,
    observations: &'a mut Observations,
    degrees: &'a mut Degrees,
    report: &'a mut IdentityReport,
}

impl StitchRun<'_> {
    /// Stitch the persons the new identifiers reach. An identifier whose links would join two
    /// persons (a refused link's weaker end) loses every link, and the persons are stitched
    /// again, at most [`MAX_PASSES`] times. Persons holding an identifier of a new hub rule are
    /// re-stitched first.
    async fn stitch_passes(
        &mut self,
        watch: &mut cdplake_core::stopwatch::Stopwatch,
        now: DateTime<Utc>,
    ) -> Result<Stitched> {
        let config = &self.workspace.config.identity;
        let unlinked = crate::unlinks::load_unlinks(self.workspace).await?;
        let mut rules_applied = 0;
        let mut pass = 0;
        loop {
            pass += 1;
            self.split_for_new_rules(rules_applied, now).await?;
            rules_applied = self.degrees.new_hubs.len();
            let existing = load_components(self.workspace, self.observations).await?;
            watch.lap("components loaded");
            let stitched = stitch(self.observations, existing, self.degrees, &unlinked, config);
            watch.lap("union-find");
            let ambiguous = ambiguous_identifiers(&stitched, self.degrees, config);
            if ambiguous.is_empty() || pass == MAX_PASSES {
                return Ok(stitched);
            }
            self.observations.ids = stitched.components.ids;
            for n in ambiguous {
                self.degrees.add_full(n, 2);
            }
        }
    }

    /// Re-stitch the persons holding an identifier of a hub rule found since the first
    /// `rules_applied` ones.
    async fn split_for_new_rules(&mut self, rules_applied: usize, now: DateTime<Utc>) -> Result<()> {
        let found = rules_found(&self.observations.ids, self.degrees, rules_applied);
        if !found.is_empty() {
            let named = self.degrees.rules.named(&self.observations.ids);
            self.report.hub_splits += split::split_for_rules(self.workspace, &found, &named, now).await?;
        }
        Ok(())
    }
}

/// Create the identity tables if needed; the mapping table as loaded.
async fn ensure_tables(workspace: &Workspace) -> Result<DeltaTable> {
    let meta = TableMeta::default().with_primary_key(["id_type", "id_value"]);
    let (mapping_table, _) = workspace.catalog.ensure_table(&curated::id_mapping_spec(), &meta).await?;
    for spec in [
        curated::identity_links_spec(),
        curated::merge_history_spec(),
        curated::conflicts_spec(),
        curated::hubs_spec(),
        curated::unlinks_spec(),
        curated::skipped_spec(),
    ] {
        workspace.catalog.ensure_table(&spec, &TableMeta::default()).await?;
    }
    Ok(mapping_table)
}

/// A source's batches identity has not resolved yet.
struct Pending {
    source: Source,
    /// How often the source was reprocessed: a reprocess makes every batch pending again.
    generation: u64,
    batches: Vec<String>,
}

impl Pending {
    /// The watermark of one batch, recorded on `curated.id_mapping`.
    fn app_id(&self, batch: &str) -> String {
        app_ids::at_generation(app_ids::stitched_batch(&self.source.name, batch), self.generation)
    }
}

/// Per source with identifiers: the raw batches clean has applied and identity has not.
async fn pending_by_source(workspace: &Workspace, mapping: &DeltaTable) -> Result<Vec<Pending>> {
    let lake = workspace.lake();
    let mut pending = Vec::new();
    for source in workspace.config.all_sources() {
        let clean_id = clean_table(&source);
        if !observe::carries_identifiers(&source, &workspace.config.identity) || !lake.table_exists(&clean_id).await? {
            continue;
        }
        let generation = clean_generation(workspace, &source).await?;
        let raw_id = raw_table(&source);
        let name = source.name.clone();
        let unresolved =
            cdplake_core::batches::pending_batches(workspace, &raw_id, mapping, &ID_MAPPING.to_string(), |batch| {
                app_ids::at_generation(app_ids::stitched_batch(&name, batch), generation)
            })
            .await?;
        if unresolved.is_empty() {
            continue;
        }
        let clean = lake.table(&clean_id).await?;
        let app_ids: Vec<String> = unresolved.iter().map(|b| app_ids::cleaned_batch(b)).collect();
        let applied = applied_versions(&clean, &clean_id.to_string(), &app_ids).await?;
        let cleaned: Vec<String> =
            unresolved.into_iter().zip(applied).filter(|(_, applied)| applied.is_some()).map(|(b, _)| b).collect();
        if !cleaned.is_empty() {
            pending.push(Pending { source, generation, batches: cleaned });
        }
    }
    Ok(pending)
}

/// The hub rules found since the first `already` ones, by identifier.
fn rules_found(ids: &union_find::Interner, degrees: &Degrees, already: usize) -> Vec<split::RuleFound> {
    degrees.new_hubs[already..]
        .iter()
        .map(|h| split::RuleFound {
            identifier: ids.identifier(h.node),
            linked_type: h.linked_type.clone(),
            distinct_values: h.distinct_values,
            limit: h.limit,
        })
        .collect()
}

/// Identifiers a refused link shows would join two persons. Of its two ends, the one a hub rule
/// already names (an email two members share, kept for its other links), else the one of lower
/// priority (an open id rather than an email; both when equal); never a person key such as a
/// member_id (limit 1), which only ever joins its own person.
fn ambiguous_identifiers(
    stitched: &Stitched,
    degrees: &Degrees,
    config: &cdplake_core::config::IdentityConfig,
) -> Vec<NodeId> {
    let ids = &stitched.components.ids;
    let rank = |n: NodeId| priority(&config.types, ids.id_type(n));
    let person_key = |n: NodeId| config.types.get(ids.id_type(n)).is_some_and(|r| r.limit == 1);
    let suspect = |n: NodeId| degrees.rules.names(n) && !degrees.rules.is_full(n);
    let mut found: Vec<NodeId> = Vec::new();
    for (link, _) in &stitched.conflicts {
        let (a, b) = (link.a, link.b);
        let ends: Vec<NodeId> = if suspect(a) || suspect(b) {
            [a, b].into_iter().filter(|&n| suspect(n)).collect()
        } else {
            let (ra, rb) = (rank(a), rank(b));
            [(a, ra >= rb), (b, rb >= ra)].into_iter().filter(|&(_, weaker)| weaker).map(|(n, _)| n).collect()
        };
        found.extend(ends.into_iter().filter(|&n| !person_key(n) && !degrees.rules.is_full(n)));
    }
    found.sort_unstable();
    found.dedup();
    found
}

/// Apply the links to the loaded persons, strongest id type first, then oldest first. The run's
/// interner moves into the components (and back out for another pass).
fn stitch(
    observations: &mut Observations,
    existing: FastMap<NodeId, IdMappingRow>,
    degrees: &Degrees,
    unlinked: &crate::unlinks::Unlinks,
    config: &cdplake_core::config::IdentityConfig,
) -> Stitched {
    let ids = std::mem::take(&mut observations.ids);
    let mut components = Components::with_interner(ids, &config.types);
    // The persons as they are: their identifiers together, whatever the limits say now.
    let mut by_person: BTreeMap<&str, Vec<NodeId>> = BTreeMap::new();
    for (&n, row) in &existing {
        by_person.entry(row.one_id.as_str()).or_default().push(n);
    }
    for members in by_person.values() {
        components.add(members[0]);
        for &other in &members[1..] {
            components.add(other);
            components.join_unchecked(members[0], other);
        }
    }
    for &n in observations.seen.keys() {
        if !degrees.rules.is_full(n) {
            components.add(n);
        }
    }
    let ordered = ordered_links(observations, &components.ids, degrees, unlinked, config);
    let mut conflicts = Vec::new();
    let mut causes = Vec::new();
    for link in ordered {
        match components.union_nodes(link.a, link.b) {
            Ok(true) => causes.push(link),
            Ok(false) => {}
            Err(refusal) => conflicts.push((link, refusal)),
        }
    }
    Stitched { components, existing, conflicts, causes }
}

/// This run's links that no hub rule or unlink removes, in stitching order: strongest id types
/// first, then oldest, then where seen, then by identifiers.
fn ordered_links(
    observations: &Observations,
    ids: &union_find::Interner,
    degrees: &Degrees,
    unlinked: &crate::unlinks::Unlinks,
    config: &cdplake_core::config::IdentityConfig,
) -> Vec<OrderedLink> {
    let unlinked = unlinked.interned(ids);
    // Priorities by type number, as dense ranks (a link's pair of them packs into one number).
    let priorities: Vec<u32> =
        (0..ids.type_count()).map(|t| priority(&config.types, ids.type_name(t as u16))).collect();
    let type_rank: Vec<u32> = order_of_keys(&priorities);
    // The order of files, as numbers: the sort breaks ties on it (the links of one row tie on
    // everything but their identifiers) millions of times.
    let uri_order = order_of(observations.uris.iter().map(String::as_str));
    let node_key = ids.order_key();
    let node_cmp = |a: NodeId, b: NodeId| node_key(a).cmp(&node_key(b));
    let mut ordered: Vec<OrderedLink> = observations
        .links
        .iter()
        .filter(|((a, b), _)| !degrees.rules.blocks(ids, *a, *b) && !unlinked.blocks(*a, *b))
        .map(|(&(a, b), &evidence)| {
            let (a, b) = if node_cmp(a, b).is_le() { (a, b) } else { (b, a) };
            let (ra, rb) = (type_rank[ids.type_of(a) as usize], type_rank[ids.type_of(b) as usize]);
            let ranks = (ra.min(rb) << 16) | ra.max(rb);
            OrderedLink { a, b, ranks, uri_rank: uri_order[evidence.uri as usize], evidence }
        })
        .collect();
    ordered.sort_unstable_by(|x, y| {
        x.sort_key().cmp(&y.sort_key()).then_with(|| node_cmp(x.a, y.a)).then_with(|| node_cmp(x.b, y.b))
    });
    ordered
}

/// The rank of each item in sorted order, by position: `order_of(["b", "a"]) == [1, 0]`.
fn order_of<'a>(items: impl Iterator<Item = &'a str>) -> Vec<u32> {
    let items: Vec<&str> = items.collect();
    order_of_keys(&items)
}

/// The dense rank of each key among the distinct keys, by position: `[30, 10, 30] → [1, 0, 1]`.
fn order_of_keys<K: Ord>(keys: &[K]) -> Vec<u32> {
    let mut distinct: Vec<&K> = keys.iter().collect();
    distinct.sort_unstable();
    distinct.dedup();
    keys.iter().map(|k| distinct.binary_search(&k).unwrap_or_default() as u32).collect()
}

/// One one_id per cluster: the oldest existing one survives, new clusters get the next ids.
fn assign(
    stitched: &Stitched,
    observations: &Observations,
    degrees: &Degrees,
    next_int: i64,
    report: &mut IdentityReport,
) -> Assigned {
    let mut assigning = Assigning {
        stitched,
        observations,
        degrees,
        cause_of: merge_causes(stitched),
        next_int,
        assigned: Assigned { rows: Vec::new(), history: Vec::new() },
    };
    for cluster in stitched.components.clusters() {
        // Identifiers that hub rules cut off from everyone are nobody's: no person for them.
        // (An existing person is always whole inside one cluster: its identifiers are joined first.)
        if cluster.iter().all(|&n| degrees.rules.names(n)) {
            assigning.retire(&cluster, report);
        } else {
            assigning.person(cluster, report);
        }
    }
    assigning.assigned
}

/// The first link (in stitching order) that reached each existing person: the merge's cause.
fn merge_causes(stitched: &Stitched) -> HashMap<&str, &OrderedLink> {
    let mut cause_of: HashMap<&str, &OrderedLink> = HashMap::new();
    for link in &stitched.causes {
        for n in [link.a, link.b] {
            if let Some(row) = stitched.existing.get(&n) {
                cause_of.entry(row.one_id.as_str()).or_insert(link);
            }
        }
    }
    cause_of
}

/// Assigning one_ids cluster by cluster: what it reads and what it has written so far.
struct Assigning<'a> {
    stitched: &'a Stitched,
    observations: &'a Observations,
    degrees: &'a Degrees,
    cause_of: HashMap<&'a str, &'a OrderedLink>,
    /// The user_int_id of the next new person.
    next_int: i64,
    assigned: Assigned,
}

impl Assigning<'_> {
    /// A cluster no identifier of which may link: the persons it held are retired and their
    /// rows go inactive.
    fn retire(&mut self, cluster: &[NodeId], report: &mut IdentityReport) {
        let retired: Vec<&IdMappingRow> =
            cluster.iter().filter_map(|n| self.stitched.existing.get(n)).filter(|r| r.is_active).collect();
        let persons: std::collections::BTreeSet<&str> = retired.iter().map(|r| r.one_id.as_str()).collect();
        report.retired += persons.len() as u64;
        let history = &mut self.assigned.history;
        history.extend(persons.into_iter().map(|p| HistoryEntry::retire(p, "every identifier is a hub")));
        self.assigned.rows.extend(retired.into_iter().map(|r| IdMappingRow { is_active: false, ..r.clone() }));
    }

    /// A cluster's person: the oldest of the persons it holds survives (earliest first_seen,
    /// then the smaller one_id) and the others merge into it; without one, a new person. Only
    /// the rows that changed are written.
    fn person(&mut self, cluster: Vec<NodeId>, report: &mut IdentityReport) {
        let stitched = self.stitched;
        let mut owners: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for n in &cluster {
            if let Some(row) = stitched.existing.get(n) {
                let entry = owners.entry(row.one_id.as_str()).or_insert((row.first_seen, row.user_int_id));
                entry.0 = entry.0.min(row.first_seen);
            }
        }
        let (one_id, user_int_id) = match owners.iter().min_by(|a, b| (a.1.0, a.0).cmp(&(b.1.0, b.0))) {
            Some((one_id, (_, int_id))) => (one_id.to_string(), *int_id),
            None => {
                let id = self.next_int;
                self.next_int += 1;
                report.persons_created += 1;
                (curated::one_id(id), id)
            }
        };
        for absorbed in owners.keys().filter(|o| **o != one_id) {
            let cause = match self.cause_of.get(absorbed) {
                Some(link) => describe_link(&stitched.components.ids, link, self.observations),
                None => "links in this run".into(),
            };
            self.assigned.history.push(HistoryEntry::new("merge", absorbed, &one_id, cause));
            report.merges += 1;
        }
        for n in cluster {
            let row = self.mapping_row(n, &one_id, user_int_id);
            if stitched.existing.get(&n) != Some(&row) {
                self.assigned.rows.push(row);
            }
        }
    }

    /// The mapping row of identifier `n` in person `one_id`: the stored row's, with this run's
    /// sightings (first and last seen widened; a newly seen identifier's confidence recounted).
    fn mapping_row(&self, n: NodeId, one_id: &str, user_int_id: i64) -> IdMappingRow {
        let ids = &self.stitched.components.ids;
        let old = self.stitched.existing.get(&n);
        let new = self.observations.seen.get(&n);
        IdMappingRow {
            one_id: one_id.to_string(),
            id_type: ids.id_type(n).to_string(),
            id_value: ids.value(n).to_string(),
            source_channel: old
                .map(|r| r.source_channel.clone())
                .or_else(|| new.map(|s| self.observations.sources[s.source as usize].clone()))
                .unwrap_or_default(),
            confidence: match new {
                Some(_) => 1.0 / self.degrees.shared.get(&n).copied().unwrap_or(1).max(1) as f64,
                None => old.map_or(1.0, |r| r.confidence),
            },
            first_seen: old.map(|r| r.first_seen).into_iter().chain(new.map(|s| s.first)).min().unwrap_or_default(),
            last_seen: old.map(|r| r.last_seen).into_iter().chain(new.map(|s| s.last)).max().unwrap_or_default(),
            is_active: true,
            user_int_id,
        }
    }
}

/// `a = b (source file row N)`: a link and where it was first seen.
fn describe_link(ids: &union_find::Interner, link: &OrderedLink, observations: &Observations) -> String {
    let e = &link.evidence;
    format!(
        "{} = {} ({} {} row {})",
        ids.label(link.a),
        ids.label(link.b),
        observations.sources[e.source as usize],
        observations.uris[e.uri as usize],
        e.row
    )
}

/// Lists of identifiers or persons up to this size are looked up with a literal `IN (...)`,
/// which delta-rs hands to the Delta kernel as equalities that skip files by their column
/// statistics: a micro-batch reads only the files its values are in (a batch's own files hold
/// few values), not every file of the table. Longer lists (a full build) use a join.
const PRUNABLE_LIST: usize = 1000;

/// The mapping rows of every person one of the identifiers seen now belongs to, by node.
async fn load_components(
    workspace: &Workspace,
    observations: &mut Observations,
) -> Result<FastMap<NodeId, IdMappingRow>> {
    let lake = workspace.lake();
    let ctx = lake.session();
    // The latest version (a split may have committed since the run opened the table).
    let mapping_table = &lake.table(&ID_MAPPING.id()).await?;
    let owners = owners_of_seen(workspace, mapping_table, observations).await?;
    if owners.is_empty() {
        return Ok(FastMap::default());
    }
    let query_error = |e| JobError::query("identity: loading the persons touched", e);
    let active = lake.read_table(ID_MAPPING, mapping_table, &ctx).await?.filter(col("is_active").eq(lit(true)));
    let rows = if owners.len() <= PRUNABLE_LIST {
        active.and_then(|df| df.filter(col("one_id").in_list(owners.iter().map(|o| lit(o.as_str())).collect(), false)))
    } else {
        let owners = RecordBatch::try_from_iter(vec![("owner", strings(owners.iter().map(String::as_str)))])
            .map_err(|e| JobError::arrow("identity: owners", e))?;
        let owners = ctx.read_batch(owners).map_err(query_error)?;
        active.and_then(|df| {
            df.join(owners, cdplake_engine::datafusion::common::JoinType::LeftSemi, &["one_id"], &["owner"], None)
        })
    };
    let batches = rows.map_err(query_error)?.collect().await.map_err(query_error)?;
    let mut existing = FastMap::default();
    for batch in &batches {
        for row in IdMappingRow::from_batch(batch).map_err(|e| JobError::arrow("curated.id_mapping rows", e))? {
            let n = observations.ids.intern_named(&row.id_type, &row.id_value);
            existing.insert(n, row);
        }
    }
    Ok(existing)
}

/// The persons (one_ids) the identifiers seen now already belong to. Only the partitions
/// (id_type, id_bucket) of the identifiers seen are read, and of those, for a short list, the
/// files whose id_value statistics may hold one. (Values are hashes, so a file's min/max spans
/// much of the range and a filter makes each file read dearer; measured on 100 micro-batches it
/// still saves a fifth of the mapping's reads here, while on `identity_links`, whose partitions
/// are not bucketed, it cost more than it saved.)
async fn owners_of_seen(
    workspace: &Workspace,
    mapping_table: &DeltaTable,
    observations: &Observations,
) -> Result<Vec<String>> {
    let lake = workspace.lake();
    let ctx = lake.session();
    let ids = &observations.ids;
    let touched = RecordBatch::try_from_iter(vec![
        ("t_type", strings(observations.seen.keys().map(|&n| ids.id_type(n)))),
        ("t_value", strings(observations.seen.keys().map(|&n| ids.value(n)))),
    ])
    .map_err(|e| JobError::arrow("identity: touched identifiers", e))?;
    let query_error = |e| JobError::query("identity: finding the persons touched", e);
    let touched = ctx.read_batch(touched).map_err(query_error)?;
    let types: std::collections::BTreeSet<&str> = observations.seen.keys().map(|&n| ids.id_type(n)).collect();
    let buckets: std::collections::BTreeSet<i32> =
        observations.seen.keys().map(|&n| curated::id_bucket(ids.id_type(n), ids.value(n))).collect();
    let mut mapping = lake
        .read_table(ID_MAPPING, mapping_table, &ctx)
        .await?
        .filter(col("id_type").in_list(types.into_iter().map(lit).collect(), false))
        .and_then(|df| df.filter(col(curated::ID_BUCKET).in_list(buckets.into_iter().map(lit).collect(), false)))
        .map_err(query_error)?;
    if observations.seen.len() <= PRUNABLE_LIST {
        let values: std::collections::BTreeSet<&str> = observations.seen.keys().map(|&n| ids.value(n)).collect();
        mapping = mapping
            .filter(col("id_value").in_list(values.into_iter().map(lit).collect(), false))
            .map_err(query_error)?;
    }
    let batches = mapping
        .join(
            touched,
            cdplake_engine::datafusion::common::JoinType::Inner,
            &["id_type", "id_value"],
            &["t_type", "t_value"],
            None,
        )
        .and_then(|df| df.select(vec![col("one_id")]))
        .and_then(|df| df.distinct())
        .map_err(query_error)?
        .collect()
        .await
        .map_err(query_error)?;
    let mut owners = Vec::new();
    for batch in &batches {
        let column = utf8(batch, "identity", "one_id")?;
        owners.extend(column.as_string::<i32>().iter().flatten().map(str::to_string));
    }
    owners.sort();
    Ok(owners)
}

async fn append_conflicts(
    workspace: &Workspace,
    ids: &union_find::Interner,
    conflicts: &[(OrderedLink, Refusal)],
    observations: &Observations,
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
            strings(conflicts.iter().map(|(l, _)| ids.id_type(l.a))),
            strings(conflicts.iter().map(|(l, _)| ids.value(l.a))),
            strings(conflicts.iter().map(|(l, _)| ids.id_type(l.b))),
            strings(conflicts.iter().map(|(l, _)| ids.value(l.b))),
            strings(conflicts.iter().map(|(_, r)| r.id_type.as_str())),
            strings(left.iter().map(String::as_str)),
            strings(right.iter().map(String::as_str)),
            strings(conflicts.iter().map(|(l, _)| observations.sources[l.evidence.source as usize].as_str())),
            strings(conflicts.iter().map(|(l, _)| observations.uris[l.evidence.uri as usize].as_str())),
            Arc::new(Int64Array::from_iter_values(conflicts.iter().map(|(l, _)| l.evidence.row))),
            micros(conflicts.iter().map(|_| now.timestamp_micros())),
        ],
    )?;
    append_once(workspace, &spec.id, batch, txns).await?;
    Ok(())
}

/// The hubs found in this run, in `curated.identity_hubs`.
async fn append_hubs(
    workspace: &Workspace,
    ids: &union_find::Interner,
    degrees: &Degrees,
    txns: &[Transaction],
    now: DateTime<Utc>,
) -> Result<()> {
    if degrees.new_hubs.is_empty() {
        return Ok(());
    }
    let hubs = &degrees.new_hubs;
    let spec = curated::hubs_spec();
    let batch = batch_for(
        &spec,
        vec![
            strings(hubs.iter().map(|h| ids.id_type(h.node))),
            strings(hubs.iter().map(|h| ids.value(h.node))),
            strings(hubs.iter().map(|h| h.linked_type.as_str())),
            Arc::new(Int64Array::from_iter_values(hubs.iter().map(|h| h.distinct_values as i64))),
            Arc::new(Int64Array::from_iter_values(hubs.iter().map(|h| h.limit as i64))),
            micros(hubs.iter().map(|_| now.timestamp_micros())),
        ],
    )?;
    append_once(workspace, &spec.id, batch, txns).await
}

/// The values kept out by a rule in this run, counted per type, value, rule and source.
async fn store_skipped(
    workspace: &Workspace,
    observations: &Observations,
    txns: &[Transaction],
    now: DateTime<Utc>,
) -> Result<()> {
    if observations.skipped.is_empty() {
        return Ok(());
    }
    let skipped: Vec<_> = observations.skipped.iter().collect();
    let spec = curated::skipped_spec();
    let batch = batch_for(
        &spec,
        vec![
            strings(skipped.iter().map(|(k, _)| k.0.as_str())),
            strings(skipped.iter().map(|(k, _)| k.1.as_str())),
            strings(skipped.iter().map(|(k, _)| k.2)),
            strings(skipped.iter().map(|(k, _)| k.3.as_str())),
            Arc::new(Int64Array::from_iter_values(skipped.iter().map(|(_, n)| **n as i64))),
            micros(skipped.iter().map(|_| now.timestamp_micros())),
        ],
    )?;
    append_once(workspace, &spec.id, batch, txns).await
}

/// Upsert this run's links by their two identifiers: new ones inserted; a known one keeps the
/// earliest sighting (with its provenance) and the latest.
async fn store_links(workspace: &Workspace, observations: &Observations) -> Result<()> {
    if observations.links.is_empty() {
        return Ok(());
    }
    let ids = &observations.ids;
    // Identifiers in `Interner::cmp` order: millions of rows.
    let node_key = ids.order_key();
    let mut rows: Vec<(NodeId, NodeId, &Evidence)> = observations
        .links
        .iter()
        .map(|(&(a, b), e)| if node_key(a) <= node_key(b) { (a, b, e) } else { (b, a, e) })
        .collect();
    rows.sort_unstable_by(|x, y| node_key(x.0).cmp(&node_key(y.0)).then_with(|| node_key(x.1).cmp(&node_key(y.1))));
    let spec = curated::identity_links_spec();
    let batch = batch_for(
        &spec,
        vec![
            strings(rows.iter().map(|r| ids.id_type(r.0))),
            strings(rows.iter().map(|r| ids.value(r.0))),
            strings(rows.iter().map(|r| ids.id_type(r.1))),
            strings(rows.iter().map(|r| ids.value(r.1))),
            strings(rows.iter().map(|r| observations.sources[r.2.source as usize].as_str())),
            strings(rows.iter().map(|r| observations.uris[r.2.uri as usize].as_str())),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2.row))),
            micros(rows.iter().map(|r| r.2.first)),
            micros(rows.iter().map(|r| r.2.last)),
        ],
    )?;
    let names: Vec<String> = spec.schema.fields().iter().map(|f| f.name().clone()).collect();
    let earlier = "source.first_seen < target.first_seen";
    let pick = |column: &str| format!("CASE WHEN {earlier} THEN source.{column} ELSE target.{column} END");
    // The rows do not depend on what the table held (a match keeps the earliest sighting), so
    // a conflict with a concurrent run is rerun here on the new version.
    workspace
        .lake()
        .upsert(&spec.id, vec![batch])
        .on_columns(&["id_type_a", "id_type_b", "id_value_a", "id_value_b"])
        .with_retry(RetryPolicy::rerun(20))
        .update(
            Some(format!("{earlier} OR source.last_seen > target.last_seen")),
            [
                ("source".to_string(), pick("source")),
                ("_source_uri".to_string(), pick("_source_uri")),
                ("_source_row".to_string(), pick("_source_row")),
                ("first_seen".to_string(), pick("first_seen")),
                (
                    "last_seen".to_string(),
                    "CASE WHEN source.last_seen > target.last_seen THEN source.last_seen ELSE target.last_seen END"
                        .to_string(),
                ),
            ],
        )
        .insert(None, Upsert::from_source(&names))
        .await?;
    Ok(())
}
