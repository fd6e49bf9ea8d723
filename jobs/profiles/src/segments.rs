//! `cdplake segments`: one Roaring bitmap of `user_int_id`s per segment, per as-of date.
//!
//! Segments: every rfm_segment, lifecycle_stage, engagement_segment and monetary_segment value of
//! the profiles as of the date (read from `curated.customer_profiles_daily`), `channel_<channel>`
//! for persons who bought in that channel, every `[segments.custom]` SQL predicate over the
//! profiles, and `all_persons` (what `NOT` in an audience expression is taken against).
//!
//! `curated.segment_bitmaps` holds exactly one row per (segment_tag, as_of): a build replaces
//! the as-of partition in one commit, so rebuilding can never leave the duplicate rows seed 001
//! warns break `group_bitmap_and`. `curated.ads_user_bitmap` (seed 001's table: segment_tag,
//! user_bitmap) holds the last build, so the seed's bitmap statements run as written.

use std::collections::HashSet;
use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{AsArray, RecordBatch};
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::sql::quote_literal;
use cdplake_engine::writes::conform_batches;
use cdplake_engine::{SqlSession, TableId, TableSpec, applied_version, timestamp_type};
use chrono::{DateTime, NaiveDate, Utc};

use cdplake_core::columns::{column_as, micros};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{
    ADS_USER_BITMAP, CUSTOMER_PROFILES, CUSTOMER_PROFILES_DAILY, ID_MAPPING, SEGMENT_BITMAPS, USER_EVENTS, app_ids,
};

/// The segment every person is in.
pub const ALL_PERSONS: &str = "all_persons";

/// Profile columns whose every value is a segment.
pub const SEGMENT_COLUMNS: [&str; 4] = ["rfm_segment", "lifecycle_stage", "engagement_segment", "monetary_segment"];

pub fn segment_bitmaps_spec() -> TableSpec {
    TableSpec::new(
        SEGMENT_BITMAPS.id(),
        Arc::new(Schema::new(vec![
            Field::new("segment_tag", DataType::Utf8, false),
            Field::new("bitmap", DataType::Binary, false),
            Field::new("cardinality", DataType::Int64, false),
            Field::new("definition", DataType::Utf8, false),
            Field::new("as_of", DataType::Utf8, false),
            Field::new("built_at", timestamp_type(), false),
        ])),
    )
    .partitioned_by(["as_of"])
    .with_description(
        "One row per segment and as-of date (YYYY-MM-DD): the user_int_ids in it as a Roaring bitmap \
         (portable serialization), its size and its definition.",
    )
}

fn ads_user_bitmap_spec() -> TableSpec {
    TableSpec::new(
        ADS_USER_BITMAP.id(),
        Arc::new(Schema::new(vec![
            Field::new("segment_tag", DataType::Utf8, false),
            Field::new("user_bitmap", DataType::Binary, false),
        ])),
    )
    .with_description("Seed 001's ads_user_bitmap: the bitmaps of the last `cdplake segments` build, one row per tag.")
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SegmentsReport {
    pub as_of: String,
    /// (segment_tag, cardinality), by tag.
    pub segments: Vec<(String, i64)>,
}

impl cdplake_core::audit::JobReport for SegmentsReport {}

pub fn describe_report(r: &SegmentsReport) -> String {
    let list: Vec<String> = r.segments.iter().map(|(t, n)| format!("{t} {n}")).collect();
    format!("segments as of {}: {} bitmaps ({})", r.as_of, r.segments.len(), list.join(", "))
}

/// The as-of date of the current `curated.customer_profiles`.
pub async fn profiles_as_of(workspace: &Workspace) -> Result<NaiveDate> {
    let missing = || JobError::not_found("no profiles yet", "run `cdplake profiles` before building segments");
    if !workspace.lake().table_exists(&CUSTOMER_PROFILES.id()).await? {
        return Err(missing());
    }
    let table = workspace.lake().table(&CUSTOMER_PROFILES.id()).await?;
    let days = applied_version(&table, &CUSTOMER_PROFILES.id().to_string(), app_ids::PROFILES_AS_OF)
        .await?
        .ok_or_else(missing)?;
    Ok(NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date") + chrono::Duration::days(days))
}

/// Build every segment's bitmap as of `as_of` (default: the profiles' as-of date).
pub async fn build_segments(
    workspace: &Workspace,
    as_of: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<SegmentsReport> {
    workspace.lake().ensure_writable()?;
    let as_of = match as_of {
        Some(d) => d,
        None => profiles_as_of(workspace).await?,
    };
    let dt = as_of.format("%Y-%m-%d").to_string();
    let session = profiles_session(workspace, &dt).await?;
    let sql = segments_sql(&workspace.config.segments.custom, &dt);
    let rows = session.rows(&sql).await.map_err(|e| JobError::bad_input("segments", e.to_string()))?;

    let spec = segment_bitmaps_spec();
    workspace.catalog.ensure_table(&spec, &TableMeta::default().with_primary_key(["segment_tag", "as_of"])).await?;
    // Shaped to the table's types (DataFusion may hand out view types).
    let batches = conform_batches(&spec.id, &spec.normalized_schema()?, with_built_at(&rows, now)?)?;
    let report = segments_report(&dt, &batches)?;
    let built = BuiltSegments { rows: segment_contents(&batches), batches, as_of: dt };
    store_segment_bitmaps(workspace, &session, &spec, &built).await?;
    store_seed_bitmaps(workspace, &session, built).await?;
    Ok(report)
}

/// The segments of one build: batches of `curated.segment_bitmaps`, and their rows sorted to
/// compare with what is stored.
struct BuiltSegments {
    as_of: String,
    batches: Vec<RecordBatch>,
    rows: Vec<SegmentRow>,
}

/// A session with the tables segments are built from, once profiles as of `dt` are known to exist.
async fn profiles_session(workspace: &Workspace, dt: &str) -> Result<SqlSession> {
    let lake = workspace.lake();
    if !lake.table_exists(&CUSTOMER_PROFILES_DAILY.id()).await? {
        return Err(JobError::not_found("no profiles yet", "run `cdplake profiles` before building segments"));
    }
    let session = SqlSession::new()?;
    for id in [CUSTOMER_PROFILES_DAILY.id(), curated_mapping(), USER_EVENTS.id()] {
        session.register(lake, &id).await?;
    }
    let count = format!("SELECT count(*) AS profiles FROM {CUSTOMER_PROFILES_DAILY} WHERE dt = {}", quote_literal(dt));
    if session.first_i64(&count).await?.unwrap_or(0) == 0 {
        return Err(JobError::not_found(
            format!("no profiles as of {dt} in curated.customer_profiles_daily"),
            format!("run `cdplake profiles --as-of {dt}` first"),
        ));
    }
    Ok(session)
}

/// SQL giving every segment's row (segment_tag, bitmap, cardinality, definition, as_of) as of
/// `dt`; `custom` holds the `[segments.custom]` (tag, predicate) pairs.
pub fn segments_sql<'a>(custom: impl IntoIterator<Item = (&'a String, &'a String)>, dt: &str) -> String {
    let profiles = format!(
        "(SELECT d.*, u.user_int_id FROM {CUSTOMER_PROFILES_DAILY} d JOIN \
         (SELECT DISTINCT one_id, user_int_id FROM {ID_MAPPING} WHERE is_active) u ON u.one_id = d.one_id \
         WHERE d.dt = {})",
        quote_literal(dt)
    );
    let mut parts = vec![format!(
        "SELECT {} AS segment_tag, 'every person with a profile' AS definition, group_bitmap_state(user_int_id) AS bitmap FROM {profiles} p",
        quote_literal(ALL_PERSONS)
    )];
    for column in SEGMENT_COLUMNS {
        parts.push(format!(
            "SELECT {column} AS segment_tag, concat('{column} = ''', {column}, '''') AS definition, \
             group_bitmap_state(user_int_id) AS bitmap FROM {profiles} p WHERE {column} IS NOT NULL GROUP BY {column}"
        ));
    }
    parts.push(channel_segments_sql(dt));
    for (tag, predicate) in custom {
        parts.push(format!(
            "SELECT {} AS segment_tag, {} AS definition, group_bitmap_state(user_int_id) AS bitmap FROM {profiles} p WHERE {predicate}",
            quote_literal(tag),
            quote_literal(predicate)
        ));
    }
    format!(
        "SELECT segment_tag, bitmap, bitmap_count(bitmap) AS cardinality, definition, {} AS as_of FROM ({}) s",
        quote_literal(dt),
        parts.join(" UNION ALL ")
    )
}

/// SQL giving a `channel_<channel>` segment for every channel persons bought through up to `dt`.
fn channel_segments_sql(dt: &str) -> String {
    format!(
        "SELECT concat('channel_', e.channel) AS segment_tag, concat('bought through channel ''', e.channel, '''') AS definition, \
         group_bitmap_state(u.user_int_id) AS bitmap FROM {USER_EVENTS} e JOIN \
         (SELECT DISTINCT one_id, user_int_id FROM {ID_MAPPING} WHERE is_active) u ON u.one_id = e.one_id \
         WHERE e.event_type = 'purchase' AND e.channel IS NOT NULL AND e.event_date <= DATE {} GROUP BY e.channel",
        quote_literal(dt)
    )
}

/// The segment rows with a `built_at` column of `now` added.
fn with_built_at(rows: &[RecordBatch], now: DateTime<Utc>) -> Result<Vec<RecordBatch>> {
    rows.iter()
        .map(|b| {
            let mut columns = b.columns().to_vec();
            columns.push(micros(std::iter::repeat_n(now.timestamp_micros(), b.num_rows())));
            let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new("built_at", timestamp_type(), false));
            RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| JobError::arrow("segment rows", e))
}

/// Every segment's size, by tag; an error when two segments have the same tag.
fn segments_report(dt: &str, segments: &[RecordBatch]) -> Result<SegmentsReport> {
    let mut report = SegmentsReport { as_of: dt.to_string(), segments: Vec::new() };
    let mut seen = HashSet::new();
    for batch in segments {
        let tags = batch.column_by_name("segment_tag").expect("selected").as_string::<i32>();
        let counts = batch
            .column_by_name("cardinality")
            .expect("selected")
            .as_primitive::<cdplake_engine::arrow::datatypes::Int64Type>();
        for i in 0..batch.num_rows() {
            let tag = tags.value(i).to_string();
            if !seen.insert(tag.clone()) {
                return Err(JobError::bad_input(
                    format!("segment tag {tag:?}"),
                    "is defined twice (a profile value and a [segments.custom] name?); rename one",
                ));
            }
            report.segments.push((tag, counts.value(i)));
        }
    }
    report.segments.sort();
    Ok(report)
}

/// Replace the as-of partition of `curated.segment_bitmaps` (`spec`) with the built segments,
/// unless it holds them already: rebuilding what is stored commits nothing.
async fn store_segment_bitmaps(
    workspace: &Workspace,
    session: &SqlSession,
    spec: &TableSpec,
    built: &BuiltSegments,
) -> Result<()> {
    if stored_segments(workspace, session, &built.as_of).await? != built.rows {
        let partition = format!("as_of = {}", quote_literal(&built.as_of));
        workspace.lake().overwrite_partition(&spec.id, &partition, built.batches.clone()).await?;
    }
    Ok(())
}

/// Replace `curated.ads_user_bitmap` with the (tag, bitmap) rows of the built segments, unless it
/// holds them already.
async fn store_seed_bitmaps(workspace: &Workspace, session: &SqlSession, built: BuiltSegments) -> Result<()> {
    let seed = ads_user_bitmap_spec();
    workspace.catalog.ensure_table(&seed, &TableMeta::default().with_primary_key(["segment_tag"])).await?;
    let seed_rows: Vec<RecordBatch> = built
        .batches
        .iter()
        .map(|b| {
            RecordBatch::try_new(
                seed.normalized_schema().expect("static schema"),
                vec![
                    b.column_by_name("segment_tag").expect("selected").clone(),
                    b.column_by_name("bitmap").expect("selected").clone(),
                ],
            )
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| JobError::arrow("ads_user_bitmap rows", e))?;
    let wanted: Vec<TaggedBitmap> =
        built.rows.into_iter().map(|s| TaggedBitmap { tag: s.tag, bitmap: s.bitmap }).collect();
    if stored_seed_bitmaps(workspace, session).await? != wanted {
        workspace.lake().overwrite(&seed.id, seed_rows, Default::default()).await?;
    }
    Ok(())
}

fn curated_mapping() -> TableId {
    ID_MAPPING.id()
}

/// A segment row as stored, compared to decide whether a build changes anything.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SegmentRow {
    tag: String,
    bitmap: Vec<u8>,
    definition: String,
}

/// A segment's tag and its bitmap (portable Roaring serialization).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TaggedBitmap {
    pub tag: String,
    pub bitmap: Vec<u8>,
}

/// The segment rows of `batches`, sorted.
fn segment_contents(batches: &[RecordBatch]) -> Vec<SegmentRow> {
    let mut out = Vec::new();
    for b in batches {
        let column = |name: &str| b.column_by_name(name).expect("segment column").clone();
        let (tags, maps, definitions) = (column("segment_tag"), column("bitmap"), column("definition"));
        let (tags, maps, definitions) =
            (tags.as_string::<i32>(), maps.as_binary::<i32>(), definitions.as_string::<i32>());
        for i in 0..b.num_rows() {
            out.push(SegmentRow {
                tag: tags.value(i).to_string(),
                bitmap: maps.value(i).to_vec(),
                definition: definitions.value(i).to_string(),
            });
        }
    }
    out.sort();
    out
}

async fn stored_segments(workspace: &Workspace, session: &SqlSession, dt: &str) -> Result<Vec<SegmentRow>> {
    session.register(workspace.lake(), &SEGMENT_BITMAPS.id()).await?;
    let rows = session
        .rows(&format!(
            "SELECT segment_tag, bitmap, definition FROM {SEGMENT_BITMAPS} WHERE as_of = {}",
            quote_literal(dt)
        ))
        .await?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("segment_tag", DataType::Utf8, true),
        Field::new("bitmap", DataType::Binary, true),
        Field::new("definition", DataType::Utf8, true),
    ]));
    let rows = conform_batches(&SEGMENT_BITMAPS.id(), &schema, rows)?;
    Ok(segment_contents(&rows))
}

/// The (tag, bitmap) rows of `curated.ads_user_bitmap`, sorted.
async fn stored_seed_bitmaps(workspace: &Workspace, session: &SqlSession) -> Result<Vec<TaggedBitmap>> {
    session.register(workspace.lake(), &ADS_USER_BITMAP.id()).await?;
    let rows = session.rows(&format!("SELECT segment_tag, user_bitmap AS bitmap FROM {ADS_USER_BITMAP}")).await?;
    let mut out = tagged_bitmaps(&rows)?;
    out.sort();
    Ok(out)
}

/// The rows of a query selecting `segment_tag` and `bitmap`, whatever string and binary types
/// they were read as.
pub(crate) fn tagged_bitmaps(rows: &[RecordBatch]) -> Result<Vec<TaggedBitmap>> {
    let mut out = Vec::new();
    for b in rows {
        let tags = column_as(b, "profiles: segment tags", "segment_tag", &DataType::Utf8)?;
        let maps = column_as(b, "profiles: segment bitmaps", "bitmap", &DataType::Binary)?;
        let (tags, maps) = (tags.as_string::<i32>(), maps.as_binary::<i32>());
        for i in 0..b.num_rows() {
            out.push(TaggedBitmap { tag: tags.value(i).to_string(), bitmap: maps.value(i).to_vec() });
        }
    }
    Ok(out)
}
