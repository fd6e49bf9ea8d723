//! The in-memory profile index: an identifier resolves to its person in one hash probe, and the
//! person's profile row, identifiers, segments, audiences and latest events are slices of
//! columnar arrays built once from the curated tables.
//!
//! * identifiers: the active rows of `curated.id_mapping`, sorted by one_id, so a person's
//!   identifiers are one contiguous slice; a hash table of row numbers keyed by (id_type, id_value);
//! * profiles: `curated.customer_profiles` as one batch, every column the table has (read by name,
//!   so added columns appear without a code change);
//! * events: each person's latest `events_kept` rows of `curated.user_events`, newest first, as
//!   one batch sorted by person;
//! * segments: the Roaring bitmaps of the latest `curated.segment_bitmaps` build; audiences: the
//!   members of each package's latest build in `curated.audience_packages`, as bitmaps.
//!
//! Nothing here writes to the lake. [`IndexVersions`] records the Delta version of every table the
//! index was built from; a newer version of any of them is what makes `IndexHolder` (in `api`)
//! rebuild it.

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Instant;

use cdplake_engine::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, RecordBatch, StringArray, UInt32Array};
use cdplake_engine::arrow::compute::{cast, concat_batches, take_record_batch};
use cdplake_engine::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimestampMicrosecondType};
use cdplake_engine::bitmap::from_bytes;
use cdplake_engine::{SqlSession, TableId, timestamp_type};
use chrono::{DateTime, Utc};
use hashbrown::{DefaultHashBuilder, HashTable};
use roaring::RoaringBitmap;

use cdplake_core::columns::column;
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{AUDIENCE_PACKAGES, CUSTOMER_PROFILES, ID_MAPPING, SEGMENT_BITMAPS, USER_EVENTS};

/// How many of a person's latest events the index keeps unless told otherwise.
pub const DEFAULT_EVENTS_KEPT: usize = 20;

/// user_events columns that are bookkeeping, not what happened.
const EVENT_BOOKKEEPING: [&str; 2] = ["_refresh_seq", "previous_one_id"];

fn mapping_id() -> TableId {
    ID_MAPPING.id()
}

/// The tables the index reads, in the order of [`IndexVersions`].
pub fn source_tables() -> [TableId; 5] {
    [CUSTOMER_PROFILES.id(), mapping_id(), USER_EVENTS.id(), SEGMENT_BITMAPS.id(), AUDIENCE_PACKAGES.id()]
}

/// The Delta version of each table the index was built from (None: the table does not exist).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndexVersions {
    pub customer_profiles: Option<u64>,
    pub id_mapping: Option<u64>,
    pub user_events: Option<u64>,
    pub segment_bitmaps: Option<u64>,
    pub audience_packages: Option<u64>,
}

impl IndexVersions {
    /// The current versions in the lake (one log read per table, no data files).
    pub async fn current(workspace: &Workspace) -> Result<Self> {
        let mut found = [None; 5];
        for (slot, id) in found.iter_mut().zip(source_tables()) {
            *slot = match workspace.lake().table(&id).await {
                Ok(table) => table.version().map(|v| v as u64),
                Err(cdplake_engine::EngineError::TableNotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
        }
        let [customer_profiles, id_mapping, user_events, segment_bitmaps, audience_packages] = found;
        Ok(Self { customer_profiles, id_mapping, user_events, segment_bitmaps, audience_packages })
    }
}

/// One person: a slice of the identifier rows, a profile row, a slice of the event rows.
#[derive(Debug, Clone, Copy)]
struct Person {
    ids_start: u32,
    ids_end: u32,
    /// Row in `profiles`, or `u32::MAX` for a person without a profile (yet).
    profile: u32,
    events_start: u32,
    events_len: u32,
    user_int_id: i64,
}

/// An audience package's latest build.
#[derive(Debug, Clone)]
struct Audience {
    package_id: String,
    package_name: String,
    as_of: String,
    members: RoaringBitmap,
}

/// Sizes and timings of an index, for `/v1/health` and benchmarks.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexStats {
    pub persons: u64,
    pub identifiers: u64,
    pub profiles: u64,
    pub events: u64,
    pub segments: u64,
    pub audiences: u64,
    pub segments_as_of: Option<String>,
    pub id_types: Vec<String>,
    /// Bytes held by the index's arrays, tables and bitmaps (an estimate of its memory).
    pub memory_bytes: u64,
    pub build_ms: f64,
    pub built_at: DateTime<Utc>,
    pub versions: IndexVersions,
}

/// The in-memory look-up structure; immutable once built, shared behind an `Arc`.
pub struct ProfileIndex {
    ids: RecordBatch,
    id_type: StringArray,
    id_value: StringArray,
    one_id: StringArray,
    /// Identifier row → person.
    row_person: Vec<u32>,
    by_identifier: HashTable<u32>,
    persons: Vec<Person>,
    profiles: RecordBatch,
    events: RecordBatch,
    segments_as_of: Option<String>,
    segments: Vec<(String, RoaringBitmap)>,
    audiences: Vec<Audience>,
    id_types: BTreeSet<String>,
    hasher: DefaultHashBuilder,
    stats: IndexStats,
}

impl std::fmt::Debug for ProfileIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileIndex").field("stats", &self.stats).finish()
    }
}

/// A resolved identifier: enough to render the person.
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    person: u32,
    row: u32,
}

fn identifier_hash(hasher: &DefaultHashBuilder, id_type: &str, id_value: &str) -> u64 {
    hasher.hash_one((id_type, id_value))
}

fn as_utf8(column: &ArrayRef, what: &str) -> Result<StringArray> {
    let cast = cast(column, &DataType::Utf8).map_err(|e| JobError::arrow(format!("profile index: {what}"), e))?;
    Ok(cast.as_string::<i32>().clone())
}

/// Where the index read a table's batch from, as a missing column's error names it.
fn read_from(table: &str) -> String {
    format!("profile index: {table} (is the lake from another version?)")
}

/// Every column with view types made plain (Utf8View → Utf8), so slices render and concatenate.
fn plain(schema: &SchemaRef, batches: Vec<RecordBatch>, what: &str) -> Result<RecordBatch> {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
                DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
                other => other.clone(),
            };
            Field::new(f.name(), t, true)
        })
        .collect();
    let target = Arc::new(Schema::new(fields));
    let shaped = batches
        .iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(c, f)| cast(c, f.data_type()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new(target.clone(), columns)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| JobError::arrow(format!("profile index: {what}"), e))?;
    concat_batches(&target, &shaped).map_err(|e| JobError::arrow(format!("profile index: {what}"), e))
}

fn batch_bytes(batch: &RecordBatch) -> u64 {
    batch.get_array_memory_size() as u64
}

/// The active identifiers, sorted by person so a person's identifiers are one slice.
fn identifiers_sql() -> String {
    format!(
        "SELECT one_id, user_int_id, id_type, id_value, source_channel, confidence, first_seen, \
         last_seen FROM {ID_MAPPING} WHERE is_active ORDER BY one_id, id_type, id_value"
    )
}

/// The events that have a person.
fn events_sql() -> String {
    format!("SELECT * FROM {USER_EVENTS} WHERE one_id IS NOT NULL")
}

/// The segments of the latest build.
fn segments_sql() -> String {
    format!(
        "SELECT segment_tag, bitmap, as_of FROM {SEGMENT_BITMAPS} \
         WHERE as_of = (SELECT max(as_of) FROM {SEGMENT_BITMAPS}) ORDER BY segment_tag"
    )
}

/// The members of each audience package's latest build.
fn audiences_sql() -> String {
    format!(
        "SELECT p.package_id AS package_id, p.package_name AS package_name, p.as_of AS as_of, \
         p.user_int_id AS user_int_id FROM {AUDIENCE_PACKAGES} p \
         JOIN (SELECT package_id, max(as_of) AS as_of FROM {AUDIENCE_PACKAGES} GROUP BY package_id) l \
         ON l.package_id = p.package_id AND l.as_of = p.as_of ORDER BY p.package_name"
    )
}

impl IndexVersions {
    /// The versions in the order of [`source_tables`].
    fn in_source_order(&self) -> [Option<u64>; 5] {
        [self.customer_profiles, self.id_mapping, self.user_events, self.segment_bitmaps, self.audience_packages]
    }
}

/// A SQL session with every source table that exists registered.
struct IndexReader {
    session: SqlSession,
}

impl IndexReader {
    async fn open(workspace: &Workspace, versions: &IndexVersions) -> Result<Self> {
        let session = SqlSession::new()?;
        for (id, version) in source_tables().iter().zip(versions.in_source_order()) {
            if version.is_some() {
                session.register(workspace.lake(), id).await?;
            }
        }
        Ok(Self { session })
    }

    /// A query's rows as one plain batch; `what` names the read in errors.
    async fn read(&self, sql: &str, what: &str) -> Result<RecordBatch> {
        let (schema, rows) = self
            .session
            .rows_with_schema(sql)
            .await
            .map_err(|e| JobError::Step { context: format!("profile index: {what}"), source: Box::new(e) })?;
        plain(&schema, rows, what)
    }

    /// `curated.customer_profiles` with every column it has (one `one_id` column if it does not exist).
    async fn profiles(&self, exists: bool) -> Result<RecordBatch> {
        if exists {
            self.read(&format!("SELECT * FROM {CUSTOMER_PROFILES}"), &format!("reading {CUSTOMER_PROFILES}")).await
        } else {
            Ok(RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new("one_id", DataType::Utf8, true)]))))
        }
    }

    /// The events that have a person, without the bookkeeping columns, as one plain batch.
    async fn events(&self) -> Result<RecordBatch> {
        let (schema, batches) = self.session.rows_with_schema(&events_sql()).await.map_err(|e| JobError::Step {
            context: "profile index: reading curated.user_events".into(),
            source: Box::new(e),
        })?;
        let keep: Vec<usize> = schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| !EVENT_BOOKKEEPING.contains(&f.name().as_str()))
            .map(|(i, _)| i)
            .collect();
        let projected = schema.project(&keep).map_err(|e| JobError::arrow("profile index: events", e))?;
        let batches = batches
            .iter()
            .map(|b| b.project(&keep))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| JobError::arrow("profile index: events", e))?;
        plain(&Arc::new(projected), batches, &format!("reading {USER_EVENTS}"))
    }
}

/// The identifier rows' columns a look-up probes, and the persons the rows group into.
struct Identifiers {
    one_id: StringArray,
    id_type: StringArray,
    id_value: StringArray,
    /// Identifier row → person.
    row_person: Vec<u32>,
    /// Identifier rows keyed by the hash of (id_type, id_value).
    by_identifier: HashTable<u32>,
    persons: Vec<Person>,
    id_types: BTreeSet<String>,
}

impl Identifiers {
    /// Group the rows of [`identifiers_sql`] (sorted by one_id) into persons and hash every identifier.
    fn index(ids: &RecordBatch, hasher: &DefaultHashBuilder) -> Result<Self> {
        let table = &ID_MAPPING.to_string();
        let one_id = as_utf8(column(ids, &read_from(table), "one_id")?, "one_id")?;
        let id_type = as_utf8(column(ids, &read_from(table), "id_type")?, "id_type")?;
        let id_value = as_utf8(column(ids, &read_from(table), "id_value")?, "id_value")?;
        let user_int_id = cast(column(ids, &read_from(table), "user_int_id")?, &DataType::Int64)
            .map_err(|e| JobError::arrow("profile index: user_int_id", e))?;
        let user_int_id = user_int_id.as_primitive::<Int64Type>();
        let rows = ids.num_rows();
        if rows >= u32::MAX as usize {
            return Err(JobError::bad_input(
                "profile index",
                format!("{rows} identifiers is more than one index holds"),
            ));
        }
        let mut index = Self {
            one_id,
            id_type,
            id_value,
            row_person: Vec::with_capacity(rows),
            by_identifier: HashTable::with_capacity(rows),
            persons: Vec::new(),
            id_types: BTreeSet::new(),
        };
        for row in 0..rows {
            index.add_row(row, user_int_id, hasher);
        }
        Ok(index)
    }

    /// Add identifier row `row` to its person (a new one when its one_id differs from the row before).
    fn add_row(&mut self, row: usize, user_int_id: &PrimitiveArray<Int64Type>, hasher: &DefaultHashBuilder) {
        if row == 0 || self.one_id.value(row) != self.one_id.value(row - 1) {
            self.persons.push(Person {
                ids_start: row as u32,
                ids_end: row as u32,
                profile: u32::MAX,
                events_start: 0,
                events_len: 0,
                user_int_id: user_int_id.value(row),
            });
        }
        let person = self.persons.len() as u32 - 1;
        if let Some(p) = self.persons.last_mut() {
            p.ids_end = row as u32 + 1;
        }
        self.row_person.push(person);
        let (id_type, id_value) = (&self.id_type, &self.id_value);
        let (t, v) = (id_type.value(row), id_value.value(row));
        if !self.id_types.contains(t) {
            self.id_types.insert(t.to_string());
        }
        let hash = identifier_hash(hasher, t, v);
        self.by_identifier.insert_unique(hash, row as u32, |&r| {
            identifier_hash(hasher, id_type.value(r as usize), id_value.value(r as usize))
        });
    }
}

/// one_id → person, for attaching profiles and events.
struct PersonsByOneId<'a> {
    one_id: &'a StringArray,
    /// Each person's first identifier row, where its one_id is read.
    starts: Vec<u32>,
    table: HashTable<u32>,
    hasher: &'a DefaultHashBuilder,
}

impl<'a> PersonsByOneId<'a> {
    fn new(one_id: &'a StringArray, persons: &[Person], hasher: &'a DefaultHashBuilder) -> Self {
        let starts: Vec<u32> = persons.iter().map(|p| p.ids_start).collect();
        let mut table: HashTable<u32> = HashTable::with_capacity(persons.len());
        for (i, start) in starts.iter().enumerate() {
            let key = one_id.value(*start as usize);
            table.insert_unique(hasher.hash_one(key), i as u32, |&q| {
                hasher.hash_one(one_id.value(starts[q as usize] as usize))
            });
        }
        Self { one_id, starts, table, hasher }
    }

    fn find(&self, key: &str) -> Option<u32> {
        self.table
            .find(self.hasher.hash_one(key), |&q| self.one_id.value(self.starts[q as usize] as usize) == key)
            .copied()
    }
}

/// Point each person at their profile row.
fn attach_profiles(profiles: &RecordBatch, by_one_id: &PersonsByOneId, persons: &mut [Person]) -> Result<()> {
    let profile_one_id = as_utf8(column(profiles, &read_from(&CUSTOMER_PROFILES.to_string()), "one_id")?, "one_id")?;
    for row in 0..profiles.num_rows() {
        if profile_one_id.is_null(row) {
            continue;
        }
        if let Some(p) = by_one_id.find(profile_one_id.value(row)) {
            persons[p as usize].profile = row as u32;
        }
    }
    Ok(())
}

/// An event row with what orders it: its person, then its time, newest first.
#[derive(Debug, Clone, Copy)]
struct EventRow {
    person: u32,
    /// Microseconds; `i64::MIN` for a null time.
    time: i64,
    row: u32,
}

/// The events of known persons, by person, newest first (ties by row).
fn events_by_person(events: &RecordBatch, by_one_id: &PersonsByOneId) -> Result<Vec<EventRow>> {
    let event_one_id = as_utf8(column(events, &read_from(&USER_EVENTS.to_string()), "one_id")?, "events one_id")?;
    let time = cast(column(events, &read_from(&USER_EVENTS.to_string()), "event_time")?, &timestamp_type())
        .map_err(|e| JobError::arrow("profile index: event_time", e))?;
    let time = time.as_primitive::<TimestampMicrosecondType>();
    let mut order: Vec<EventRow> = (0..events.num_rows())
        .filter_map(|row| {
            let person = by_one_id.find(event_one_id.value(row))?;
            let t = if time.is_null(row) { i64::MIN } else { time.value(row) };
            Some(EventRow { person, time: t, row: row as u32 })
        })
        .collect();
    order.sort_unstable_by(|a, b| a.person.cmp(&b.person).then(b.time.cmp(&a.time)).then(a.row.cmp(&b.row)));
    Ok(order)
}

/// The rows to keep (each person's first `events_kept` of `order`); sets each person's slice of them.
fn keep_latest(order: &[EventRow], persons: &mut [Person], events_kept: usize) -> Vec<u32> {
    let mut take = Vec::new();
    for group in order.chunk_by(|a, b| a.person == b.person) {
        let kept = group.len().min(events_kept);
        let p = &mut persons[group[0].person as usize];
        p.events_start = take.len() as u32;
        p.events_len = kept as u32;
        take.extend(group[..kept].iter().map(|e| e.row));
    }
    take
}

/// Each person's latest `events_kept` events, newest first, as one batch sorted by person.
async fn latest_events(
    reader: &IndexReader,
    by_one_id: &PersonsByOneId<'_>,
    persons: &mut [Person],
    events_kept: usize,
) -> Result<RecordBatch> {
    let all = reader.events().await?;
    let order = events_by_person(&all, by_one_id)?;
    let take = keep_latest(&order, persons, events_kept);
    take_record_batch(&all, &UInt32Array::from(take)).map_err(|e| JobError::arrow("profile index: events", e))
}

/// The latest segment build: its as_of and each segment's bitmap, by tag.
#[derive(Debug, Default)]
struct LatestSegments {
    as_of: Option<String>,
    bitmaps: Vec<(String, RoaringBitmap)>,
}

async fn read_segments(session: &SqlSession) -> Result<LatestSegments> {
    let table = &SEGMENT_BITMAPS.to_string();
    let rows = session.rows(&segments_sql()).await?;
    let mut latest = LatestSegments::default();
    for b in &rows {
        let tags = as_utf8(column(b, &read_from(table), "segment_tag")?, "segment tags")?;
        let maps = cast(column(b, &read_from(table), "bitmap")?, &DataType::Binary)
            .map_err(|e| JobError::arrow("profile index: segment bitmaps", e))?;
        let as_of = as_utf8(column(b, &read_from(table), "as_of")?, "segment as_of")?;
        for r in 0..b.num_rows() {
            let bitmap = from_bytes(maps.as_binary::<i32>().value(r))
                .map_err(|e| JobError::query("profile index: reading a segment bitmap", e))?;
            latest.bitmaps.push((tags.value(r).to_string(), bitmap));
            latest.as_of = Some(as_of.value(r).to_string());
        }
    }
    Ok(latest)
}

async fn read_audiences(session: &SqlSession) -> Result<Vec<Audience>> {
    let rows = session.rows(&audiences_sql()).await?;
    let mut audiences: Vec<Audience> = Vec::new();
    for b in &rows {
        add_audience_members(&mut audiences, b)?;
    }
    Ok(audiences)
}

/// Add a batch of [`audiences_sql`] rows to their packages (a package first seen is added).
fn add_audience_members(audiences: &mut Vec<Audience>, b: &RecordBatch) -> Result<()> {
    let table = &AUDIENCE_PACKAGES.to_string();
    let pid = as_utf8(column(b, &read_from(table), "package_id")?, "package_id")?;
    let name = as_utf8(column(b, &read_from(table), "package_name")?, "package_name")?;
    let as_of = as_utf8(column(b, &read_from(table), "as_of")?, "as_of")?;
    let users = cast(column(b, &read_from(table), "user_int_id")?, &DataType::Int64)
        .map_err(|e| JobError::arrow("profile index: users", e))?;
    let users = users.as_primitive::<Int64Type>();
    for r in 0..b.num_rows() {
        let position = match audiences.iter().position(|a| a.package_id == pid.value(r)) {
            Some(p) => p,
            None => {
                audiences.push(Audience {
                    package_id: pid.value(r).to_string(),
                    package_name: name.value(r).to_string(),
                    as_of: as_of.value(r).to_string(),
                    members: RoaringBitmap::new(),
                });
                audiences.len() - 1
            }
        };
        if let Ok(u) = u32::try_from(users.value(r)) {
            audiences[position].members.insert(u);
        }
    }
    Ok(())
}

/// Everything the index holds but its stats.
struct IndexParts {
    ids: RecordBatch,
    identifiers: Identifiers,
    profiles: RecordBatch,
    events: RecordBatch,
    segments: LatestSegments,
    audiences: Vec<Audience>,
}

impl IndexParts {
    /// Bytes held by the arrays, tables and bitmaps.
    fn memory_bytes(&self) -> u64 {
        let identifiers = &self.identifiers;
        batch_bytes(&self.ids)
            + batch_bytes(&self.profiles)
            + batch_bytes(&self.events)
            + (self.ids.num_rows() as u64) * 4
            + identifiers.by_identifier.capacity() as u64 * 5
            + (identifiers.persons.capacity() * std::mem::size_of::<Person>()) as u64
            + self.segments.bitmaps.iter().map(|(_, b)| b.serialized_size() as u64).sum::<u64>()
            + self.audiences.iter().map(|a| a.members.serialized_size() as u64).sum::<u64>()
    }

    fn stats(&self, versions: IndexVersions, started: Instant) -> IndexStats {
        IndexStats {
            persons: self.identifiers.persons.len() as u64,
            identifiers: self.ids.num_rows() as u64,
            profiles: self.profiles.num_rows() as u64,
            events: self.events.num_rows() as u64,
            segments: self.segments.bitmaps.len() as u64,
            audiences: self.audiences.len() as u64,
            segments_as_of: self.segments.as_of.clone(),
            id_types: self.identifiers.id_types.iter().cloned().collect(),
            memory_bytes: self.memory_bytes(),
            build_ms: started.elapsed().as_secs_f64() * 1000.0,
            built_at: Utc::now(),
            versions,
        }
    }
}

impl ProfileIndex {
    /// Build the index from the lake's curated tables as they are now. `events_kept`: how many of
    /// each person's latest events to hold.
    pub async fn build(workspace: &Workspace, events_kept: usize) -> Result<Self> {
        let started = Instant::now();
        // Versions first: a table committed while we read is caught by the next poll.
        let versions = IndexVersions::current(workspace).await?;
        if versions.id_mapping.is_none() {
            return Err(JobError::not_found(
                "curated.id_mapping does not exist yet",
                "run `cdplake identity` and `cdplake profiles` first",
            ));
        }
        let reader = IndexReader::open(workspace, &versions).await?;
        let ids = reader.read(&identifiers_sql(), &format!("reading {ID_MAPPING}")).await?;
        let hasher = DefaultHashBuilder::default();
        let mut identifiers = Identifiers::index(&ids, &hasher)?;
        let by_one_id = PersonsByOneId::new(&identifiers.one_id, &identifiers.persons, &hasher);
        let profiles = reader.profiles(versions.customer_profiles.is_some()).await?;
        attach_profiles(&profiles, &by_one_id, &mut identifiers.persons)?;
        let events = if versions.user_events.is_some() && events_kept > 0 {
            latest_events(&reader, &by_one_id, &mut identifiers.persons, events_kept).await?
        } else {
            RecordBatch::new_empty(Arc::new(Schema::empty()))
        };
        let segments = match versions.segment_bitmaps {
            Some(_) => read_segments(&reader.session).await?,
            None => LatestSegments::default(),
        };
        let audiences = match versions.audience_packages {
            Some(_) => read_audiences(&reader.session).await?,
            None => Vec::new(),
        };
        let parts = IndexParts { ids, identifiers, profiles, events, segments, audiences };
        let stats = parts.stats(versions, started);
        tracing::info!(
            persons = stats.persons,
            identifiers = stats.identifiers,
            profiles = stats.profiles,
            events = stats.events,
            memory_mb = stats.memory_bytes / (1 << 20),
            build_ms = stats.build_ms,
            "profile index built"
        );
        Ok(Self::assemble(parts, hasher, stats))
    }

    fn assemble(parts: IndexParts, hasher: DefaultHashBuilder, stats: IndexStats) -> Self {
        let IndexParts { ids, identifiers, profiles, events, segments, audiences } = parts;
        let Identifiers { one_id, id_type, id_value, row_person, by_identifier, persons, id_types } = identifiers;
        Self {
            ids,
            id_type,
            id_value,
            one_id,
            row_person,
            by_identifier,
            persons,
            profiles,
            events,
            segments_as_of: segments.as_of,
            segments: segments.bitmaps,
            audiences,
            id_types,
            hasher,
            stats,
        }
    }

    pub fn stats(&self) -> &IndexStats {
        &self.stats
    }

    pub fn versions(&self) -> IndexVersions {
        self.stats.versions
    }

    /// Is `id_type` a type some identifier in the index has?
    pub fn knows_type(&self, id_type: &str) -> bool {
        self.id_types.contains(id_type)
    }

    pub fn id_types(&self) -> impl Iterator<Item = &str> {
        self.id_types.iter().map(String::as_str)
    }

    /// The person an identifier belongs to: one hash probe.
    pub fn find(&self, id_type: &str, id_value: &str) -> Option<Hit> {
        let hash = identifier_hash(&self.hasher, id_type, id_value);
        let row = *self.by_identifier.find(hash, |&r| {
            self.id_type.value(r as usize) == id_type && self.id_value.value(r as usize) == id_value
        })?;
        Some(Hit { person: self.row_person[row as usize], row })
    }

    pub fn one_id(&self, hit: Hit) -> &str {
        self.one_id.value(self.persons[hit.person as usize].ids_start as usize)
    }

    pub fn user_int_id(&self, hit: Hit) -> i64 {
        self.persons[hit.person as usize].user_int_id
    }

    /// The matched identifier's own row (type, value).
    pub fn matched(&self, hit: Hit) -> (&str, &str) {
        (self.id_type.value(hit.row as usize), self.id_value.value(hit.row as usize))
    }

    /// The person's profile row as a JSON object (every column, nulls included), if they have one.
    pub fn profile_json(&self, hit: Hit) -> Result<Option<serde_json::Value>> {
        let row = self.persons[hit.person as usize].profile;
        if row == u32::MAX {
            return Ok(None);
        }
        let mut rows = rows_json(&self.profiles.slice(row as usize, 1))?;
        Ok(rows.pop())
    }

    /// The person's identifiers (without their one_id and user_int_id, which the answer carries once).
    pub fn identifiers_json(&self, hit: Hit) -> Result<Vec<serde_json::Value>> {
        let p = self.persons[hit.person as usize];
        let slice = self.ids.slice(p.ids_start as usize, (p.ids_end - p.ids_start) as usize);
        let keep: Vec<usize> = slice
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.name() != "one_id" && f.name() != "user_int_id")
            .map(|(i, _)| i)
            .collect();
        let slice = slice.project(&keep).map_err(|e| JobError::arrow("profile index: identifiers", e))?;
        rows_json(&slice)
    }

    /// The person's latest `n` events, newest first (at most what the index keeps).
    pub fn events_json(&self, hit: Hit, n: usize) -> Result<Vec<serde_json::Value>> {
        let p = self.persons[hit.person as usize];
        let len = (p.events_len as usize).min(n);
        if len == 0 || self.events.num_columns() == 0 {
            return Ok(Vec::new());
        }
        rows_json(&self.events.slice(p.events_start as usize, len))
    }

    /// The segments of the latest build the person is in.
    pub fn segments_of(&self, hit: Hit) -> (Option<&str>, Vec<&str>) {
        let user = self.persons[hit.person as usize].user_int_id;
        let tags = match u32::try_from(user) {
            Ok(u) => self.segments.iter().filter(|(_, b)| b.contains(u)).map(|(t, _)| t.as_str()).collect(),
            Err(_) => Vec::new(),
        };
        (self.segments_as_of.as_deref(), tags)
    }

    /// The audience packages (latest build of each) the person is in: (package_id, name, as_of).
    pub fn audiences_of(&self, hit: Hit) -> Vec<(&str, &str, &str)> {
        let user = self.persons[hit.person as usize].user_int_id;
        let Ok(u) = u32::try_from(user) else { return Vec::new() };
        self.audiences
            .iter()
            .filter(|a| a.members.contains(u))
            .map(|a| (a.package_id.as_str(), a.package_name.as_str(), a.as_of.as_str()))
            .collect()
    }

    /// Some identifiers of the index (for examples in messages and for load generators).
    pub fn sample_identifiers(&self, n: usize) -> Vec<(String, String)> {
        let rows = self.ids.num_rows();
        if rows == 0 {
            return Vec::new();
        }
        let step = (rows / n.max(1)).max(1);
        (0..rows)
            .step_by(step)
            .take(n)
            .map(|r| (self.id_type.value(r).to_string(), self.id_value.value(r).to_string()))
            .collect()
    }
}

/// Rows of a batch as JSON objects, every column present (nulls as null).
fn rows_json(batch: &RecordBatch) -> Result<Vec<serde_json::Value>> {
    use cdplake_engine::arrow::json::writer::{JsonArray, WriterBuilder};
    let mut buf = Vec::with_capacity(256 * batch.num_rows().max(1));
    {
        let mut writer = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut buf);
        writer.write(batch).map_err(|e| JobError::arrow("profile index: rendering rows", e))?;
        writer.finish().map_err(|e| JobError::arrow("profile index: rendering rows", e))?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| JobError::encoding("profile index rows", e))
}
