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

use cdplake_engine::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use cdplake_engine::arrow::compute::{cast, concat_batches, take_record_batch};
use cdplake_engine::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimestampMicrosecondType};
use cdplake_engine::bitmap::from_bytes;
use cdplake_engine::{SqlSession, TableId, timestamp_type};
use chrono::{DateTime, Utc};
use hashbrown::{DefaultHashBuilder, HashTable};
use roaring::RoaringBitmap;

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

fn column<'a>(batch: &'a RecordBatch, name: &str, table: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        JobError::Invalid(format!("profile index: {table} has no column {name}; is the lake from another version?"))
    })
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

impl ProfileIndex {
    /// Build the index from the lake's curated tables as they are now. `events_kept`: how many of
    /// each person's latest events to hold.
    pub async fn build(workspace: &Workspace, events_kept: usize) -> Result<Self> {
        let started = Instant::now();
        let lake = workspace.lake();
        // Versions first: a table committed while we read is caught by the next poll.
        let versions = IndexVersions::current(workspace).await?;
        if versions.id_mapping.is_none() {
            return Err(JobError::NotFound(
                "curated.id_mapping does not exist yet: run `cdplake identity` and `cdplake profiles` first".into(),
            ));
        }
        let session = SqlSession::new()?;
        for (id, version) in source_tables().iter().zip([
            versions.customer_profiles,
            versions.id_mapping,
            versions.user_events,
            versions.segment_bitmaps,
            versions.audience_packages,
        ]) {
            if version.is_some() {
                session.register(lake, id).await?;
            }
        }
        let read = |sql: String, what: &'static str| {
            let session = session.clone();
            async move {
                let (schema, rows) = session
                    .rows_with_schema(&sql)
                    .await
                    .map_err(|e| JobError::Step { context: format!("profile index: {what}"), source: Box::new(e) })?;
                plain(&schema, rows, what)
            }
        };

        // Identifiers, sorted by person.
        let ids = read(
            "SELECT one_id, user_int_id, id_type, id_value, source_channel, confidence, first_seen, last_seen \
             FROM curated.id_mapping WHERE is_active ORDER BY one_id, id_type, id_value"
                .into(),
            "reading curated.id_mapping",
        )
        .await?;
        let one_id = as_utf8(column(&ids, "one_id", "curated.id_mapping")?, "one_id")?;
        let id_type = as_utf8(column(&ids, "id_type", "curated.id_mapping")?, "id_type")?;
        let id_value = as_utf8(column(&ids, "id_value", "curated.id_mapping")?, "id_value")?;
        let user_int_id = cast(column(&ids, "user_int_id", "curated.id_mapping")?, &DataType::Int64)
            .map_err(|e| JobError::arrow("profile index: user_int_id", e))?;
        let user_int_id = user_int_id.as_primitive::<Int64Type>();
        let hasher = DefaultHashBuilder::default();
        let rows = ids.num_rows();
        if rows >= u32::MAX as usize {
            return Err(JobError::Invalid(format!("profile index: {rows} identifiers is more than one index holds")));
        }
        let mut by_identifier = HashTable::with_capacity(rows);
        let mut row_person = Vec::with_capacity(rows);
        let mut persons: Vec<Person> = Vec::new();
        let mut id_types = BTreeSet::new();
        for row in 0..rows {
            if row == 0 || one_id.value(row) != one_id.value(row - 1) {
                persons.push(Person {
                    ids_start: row as u32,
                    ids_end: row as u32,
                    profile: u32::MAX,
                    events_start: 0,
                    events_len: 0,
                    user_int_id: user_int_id.value(row),
                });
            }
            let person = persons.len() as u32 - 1;
            if let Some(p) = persons.last_mut() {
                p.ids_end = row as u32 + 1;
            }
            row_person.push(person);
            let (t, v) = (id_type.value(row), id_value.value(row));
            if !id_types.contains(t) {
                id_types.insert(t.to_string());
            }
            let hash = identifier_hash(&hasher, t, v);
            by_identifier.insert_unique(hash, row as u32, |&r| {
                identifier_hash(&hasher, id_type.value(r as usize), id_value.value(r as usize))
            });
        }
        // one_id → person, for attaching profiles and events.
        let starts: Vec<u32> = persons.iter().map(|p| p.ids_start).collect();
        let mut by_one_id: HashTable<u32> = HashTable::with_capacity(persons.len());
        for (i, start) in starts.iter().enumerate() {
            let key = one_id.value(*start as usize);
            by_one_id.insert_unique(hasher.hash_one(key), i as u32, |&q| {
                hasher.hash_one(one_id.value(starts[q as usize] as usize))
            });
        }
        let person_of = |key: &str| -> Option<u32> {
            by_one_id.find(hasher.hash_one(key), |&q| one_id.value(starts[q as usize] as usize) == key).copied()
        };

        // Profiles: every column the table has.
        let profiles = if versions.customer_profiles.is_some() {
            read("SELECT * FROM curated.customer_profiles".into(), "reading curated.customer_profiles").await?
        } else {
            RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new("one_id", DataType::Utf8, true)])))
        };
        {
            let profile_one_id = as_utf8(column(&profiles, "one_id", "curated.customer_profiles")?, "one_id")?;
            for row in 0..profiles.num_rows() {
                if profile_one_id.is_null(row) {
                    continue;
                }
                if let Some(p) = person_of(profile_one_id.value(row)) {
                    persons[p as usize].profile = row as u32;
                }
            }
        }

        // Each person's latest events, newest first.
        let events = if versions.user_events.is_some() && events_kept > 0 {
            let (schema, batches) = session
                .rows_with_schema("SELECT * FROM curated.user_events WHERE one_id IS NOT NULL")
                .await
                .map_err(|e| JobError::Step {
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
            let all = plain(&Arc::new(projected), batches, "reading curated.user_events")?;
            let event_one_id = as_utf8(column(&all, "one_id", "curated.user_events")?, "events one_id")?;
            let time = cast(column(&all, "event_time", "curated.user_events")?, &timestamp_type())
                .map_err(|e| JobError::arrow("profile index: event_time", e))?;
            let time = time.as_primitive::<TimestampMicrosecondType>();
            // (person, newest first, row)
            let mut order: Vec<(u32, i64, u32)> = (0..all.num_rows())
                .filter_map(|row| {
                    let person = person_of(event_one_id.value(row))?;
                    let t = if time.is_null(row) { i64::MIN } else { time.value(row) };
                    Some((person, t, row as u32))
                })
                .collect();
            order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
            let mut take = Vec::new();
            let mut i = 0;
            while i < order.len() {
                let person = order[i].0;
                let start = take.len() as u32;
                let mut n = 0;
                while i < order.len() && order[i].0 == person {
                    if n < events_kept {
                        take.push(order[i].2);
                        n += 1;
                    }
                    i += 1;
                }
                let p = &mut persons[person as usize];
                p.events_start = start;
                p.events_len = n as u32;
            }
            take_record_batch(&all, &UInt32Array::from(take))
                .map_err(|e| JobError::arrow("profile index: events", e))?
        } else {
            RecordBatch::new_empty(Arc::new(Schema::empty()))
        };

        // Segments of the latest build.
        let mut segments = Vec::new();
        let mut segments_as_of = None;
        if versions.segment_bitmaps.is_some() {
            let rows = session
                .rows(
                    "SELECT segment_tag, bitmap, as_of FROM curated.segment_bitmaps \
                     WHERE as_of = (SELECT max(as_of) FROM curated.segment_bitmaps) ORDER BY segment_tag",
                )
                .await?;
            for b in &rows {
                let tags = as_utf8(b.column(0), "segment tags")?;
                let maps = cast(b.column(1), &DataType::Binary)
                    .map_err(|e| JobError::arrow("profile index: segment bitmaps", e))?;
                let as_of = as_utf8(b.column(2), "segment as_of")?;
                for r in 0..b.num_rows() {
                    let bitmap = from_bytes(maps.as_binary::<i32>().value(r))
                        .map_err(|e| JobError::query("profile index: reading a segment bitmap", e))?;
                    segments.push((tags.value(r).to_string(), bitmap));
                    segments_as_of = Some(as_of.value(r).to_string());
                }
            }
        }

        // Audiences: each package's latest build.
        let mut audiences: Vec<Audience> = Vec::new();
        if versions.audience_packages.is_some() {
            let rows = session
                .rows(
                    "SELECT p.package_id, p.package_name, p.as_of, p.user_int_id FROM curated.audience_packages p \
                     JOIN (SELECT package_id, max(as_of) AS as_of FROM curated.audience_packages GROUP BY package_id) l \
                     ON l.package_id = p.package_id AND l.as_of = p.as_of ORDER BY p.package_name",
                )
                .await?;
            for b in &rows {
                let (pid, name, as_of) = (
                    as_utf8(b.column(0), "package_id")?,
                    as_utf8(b.column(1), "package_name")?,
                    as_utf8(b.column(2), "as_of")?,
                );
                let users =
                    cast(b.column(3), &DataType::Int64).map_err(|e| JobError::arrow("profile index: users", e))?;
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
            }
        }

        let memory_bytes = batch_bytes(&ids)
            + batch_bytes(&profiles)
            + batch_bytes(&events)
            + (rows as u64) * 4
            + by_identifier.capacity() as u64 * 5
            + (persons.capacity() * std::mem::size_of::<Person>()) as u64
            + segments.iter().map(|(_, b)| b.serialized_size() as u64).sum::<u64>()
            + audiences.iter().map(|a| a.members.serialized_size() as u64).sum::<u64>();
        let stats = IndexStats {
            persons: persons.len() as u64,
            identifiers: rows as u64,
            profiles: profiles.num_rows() as u64,
            events: events.num_rows() as u64,
            segments: segments.len() as u64,
            audiences: audiences.len() as u64,
            segments_as_of: segments_as_of.clone(),
            id_types: id_types.iter().cloned().collect(),
            memory_bytes,
            build_ms: started.elapsed().as_secs_f64() * 1000.0,
            built_at: Utc::now(),
            versions,
        };
        tracing::info!(
            persons = stats.persons,
            identifiers = stats.identifiers,
            profiles = stats.profiles,
            events = stats.events,
            memory_mb = stats.memory_bytes / (1 << 20),
            build_ms = stats.build_ms,
            "profile index built"
        );
        Ok(Self {
            ids,
            id_type,
            id_value,
            one_id,
            row_person,
            by_identifier,
            persons,
            profiles,
            events,
            segments_as_of,
            segments,
            audiences,
            id_types,
            hasher,
            stats,
        })
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
    serde_json::from_slice(&buf).map_err(|e| JobError::Invalid(format!("profile index: rendering rows: {e}")))
}
