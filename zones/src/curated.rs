//! Curated-zone table definitions: the identity graph, and `id_mapping`'s rows as a typed
//! struct beside its schema (no positional columns across crates).

use std::sync::Arc;

use cdplake_engine::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, TimestampMicrosecondType};
use cdplake_engine::arrow::error::ArrowError;
use cdplake_engine::{TableSpec, timestamp_type};

use crate::tables::{
    ID_MAPPING, IDENTITY_CONFLICTS, IDENTITY_HUBS, IDENTITY_LINKS, IDENTITY_SKIPPED, IDENTITY_UNLINKS, MERGE_HISTORY,
};

/// Partition column of `curated.id_mapping` (after id_type): a stable hash of the identifier
/// into [`ID_BUCKETS`] buckets.
pub const ID_BUCKET: &str = "id_bucket";
pub const ID_BUCKETS: u32 = 8;

/// The bucket of an identifier (the first bytes of its SHA-256, so any engine can recompute it).
pub fn id_bucket(id_type: &str, id_value: &str) -> i32 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{id_type}:{id_value}").as_bytes());
    (u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % ID_BUCKETS) as i32
}

/// Seed 001's `dwd_id_mapping` columns plus `user_int_id`; one active row per identifier.
pub fn id_mapping_spec() -> TableSpec {
    TableSpec::new(
        ID_MAPPING.id(),
        Arc::new(Schema::new(vec![
            Field::new("one_id", DataType::Utf8, false),
            Field::new("id_type", DataType::Utf8, false),
            Field::new("id_value", DataType::Utf8, false),
            Field::new("source_channel", DataType::Utf8, true),
            Field::new("confidence", DataType::Float64, false),
            Field::new("first_seen", timestamp_type(), false),
            Field::new("last_seen", timestamp_type(), false),
            Field::new("is_active", DataType::Boolean, false),
            Field::new("user_int_id", DataType::Int64, false),
            Field::new(ID_BUCKET, DataType::Int32, false),
        ])),
    )
    .partitioned_by(["id_type", ID_BUCKET])
    // Profiles read which identifiers changed person from the change data feed instead of
    // comparing two versions of the whole table.
    .with_property("delta.enableChangeDataFeed", "true")
    .with_description(
        "One row per identifier (id_type, id_value): the person (one_id) it belongs to, with the link \
         confidence (1 / the member_ids it was seen with). Partitioned by id_type and id_bucket (a hash \
         of the identifier) so a MERGE rewrites only the files of the types and buckets it touches.",
    )
}

/// The one constructor of a person's id: `ONE` and the person's `user_int_id` in ten digits, so
/// seed 001's `CAST(SUBSTRING(one_id, 4) AS INT)` gives back the user_int_id.
pub fn one_id(user_int_id: i64) -> String {
    format!("ONE{user_int_id:010}")
}

/// One row of `curated.id_mapping`: which person an identifier belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct IdMappingRow {
    pub one_id: String,
    pub id_type: String,
    pub id_value: String,
    /// The source the identifier was first seen in.
    pub source_channel: String,
    /// How sure the stitching is that the identifier is this person's: 1 / the most values of
    /// one person-unique type it was seen with.
    pub confidence: f64,
    /// Business time (µs since the epoch, UTC) of the first and the last row that carried it.
    pub first_seen: i64,
    pub last_seen: i64,
    /// False for an identifier that left its person (it turned out to be a hub).
    pub is_active: bool,
    pub user_int_id: i64,
}

impl IdMappingRow {
    /// The rows as one batch of [`id_mapping_spec`]'s schema (the bucket computed).
    pub fn to_batch(rows: &[IdMappingRow]) -> Result<RecordBatch, ArrowError> {
        let strings = |f: fn(&IdMappingRow) -> &str| -> ArrayRef {
            Arc::new(rows.iter().map(|r| Some(f(r))).collect::<StringArray>())
        };
        let micros = |f: fn(&IdMappingRow) -> i64| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"))
        };
        let schema = id_mapping_spec().schema;
        RecordBatch::try_new(
            schema,
            vec![
                strings(|r| &r.one_id),
                strings(|r| &r.id_type),
                strings(|r| &r.id_value),
                strings(|r| &r.source_channel),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.confidence))),
                micros(|r| r.first_seen),
                micros(|r| r.last_seen),
                Arc::new(BooleanArray::from(rows.iter().map(|r| r.is_active).collect::<Vec<_>>())),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.user_int_id))),
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| id_bucket(&r.id_type, &r.id_value)))),
            ],
        )
    }

    /// The rows of a batch read from `curated.id_mapping` (any column order; extra columns
    /// ignored; a null source_channel reads as empty).
    pub fn from_batch(batch: &RecordBatch) -> Result<Vec<IdMappingRow>, ArrowError> {
        let column = |name: &str, to: &DataType| -> Result<ArrayRef, ArrowError> {
            let c = batch
                .column_by_name(name)
                .ok_or_else(|| ArrowError::SchemaError(format!("{ID_MAPPING} rows without {name}")))?;
            cast(c, to)
        };
        let (one_id, id_type, id_value, channel) = (
            column("one_id", &DataType::Utf8)?,
            column("id_type", &DataType::Utf8)?,
            column("id_value", &DataType::Utf8)?,
            column("source_channel", &DataType::Utf8)?,
        );
        let confidence = column("confidence", &DataType::Float64)?;
        let first = column("first_seen", &timestamp_type())?;
        let last = column("last_seen", &timestamp_type())?;
        let active = column("is_active", &DataType::Boolean)?;
        let user = column("user_int_id", &DataType::Int64)?;
        let (one_id, id_type, id_value, channel) = (
            one_id.as_string::<i32>(),
            id_type.as_string::<i32>(),
            id_value.as_string::<i32>(),
            channel.as_string::<i32>(),
        );
        let (confidence, first, last, active, user) = (
            confidence.as_primitive::<Float64Type>(),
            first.as_primitive::<TimestampMicrosecondType>(),
            last.as_primitive::<TimestampMicrosecondType>(),
            active.as_boolean(),
            user.as_primitive::<Int64Type>(),
        );
        Ok((0..batch.num_rows())
            .map(|i| IdMappingRow {
                one_id: one_id.value(i).to_string(),
                id_type: id_type.value(i).to_string(),
                id_value: id_value.value(i).to_string(),
                source_channel: if channel.is_null(i) { String::new() } else { channel.value(i).to_string() },
                confidence: confidence.value(i),
                first_seen: first.value(i),
                last_seen: last.value(i),
                is_active: active.value(i),
                user_int_id: user.value(i),
            })
            .collect())
    }
}

fn identifier_pair_fields() -> Vec<Field> {
    vec![
        Field::new("id_type_a", DataType::Utf8, false),
        Field::new("id_value_a", DataType::Utf8, false),
        Field::new("id_type_b", DataType::Utf8, false),
        Field::new("id_value_b", DataType::Utf8, false),
    ]
}

/// Every link between two identifiers, with where it was first seen.
pub fn identity_links_spec() -> TableSpec {
    let mut fields = identifier_pair_fields();
    fields.extend([
        Field::new("source", DataType::Utf8, false),
        Field::new("_source_uri", DataType::Utf8, true),
        Field::new("_source_row", DataType::Int64, true),
        Field::new("first_seen", timestamp_type(), false),
        Field::new("last_seen", timestamp_type(), false),
    ]);
    // By the pair of id types: a batch's MERGE reads only the kinds of links it brings, and the
    // hub count reads only the links to a person-unique type.
    TableSpec::new(IDENTITY_LINKS.id(), Arc::new(Schema::new(fields)))
        .partitioned_by(["id_type_a", "id_type_b"])
        .with_description(
            "Links between two identifiers of one person, with provenance (source, file, row); partitioned by \
             the two id types.",
        )
}

/// Every merge (and, later, split) of one_ids.
pub fn merge_history_spec() -> TableSpec {
    TableSpec::new(
        MERGE_HISTORY.id(),
        Arc::new(Schema::new(vec![
            Field::new("action", DataType::Utf8, false),
            Field::new("absorbed_one_id", DataType::Utf8, false),
            Field::new("surviving_one_id", DataType::Utf8, false),
            Field::new("cause", DataType::Utf8, false),
            Field::new("at", timestamp_type(), false),
        ])),
    )
    .with_description(
        "What happened to one_ids: merge (absorbed → surviving, and the link that caused it), split (a part \
         left absorbed as surviving), retire (every identifier became a hub; surviving is empty); when, and why.",
    )
}

/// Links refused because the merge would give one person more values of an id type than its limit.
pub fn conflicts_spec() -> TableSpec {
    let mut fields = identifier_pair_fields();
    fields.extend([
        Field::new("limited_type", DataType::Utf8, false),
        Field::new("left_values", DataType::Utf8, false),
        Field::new("right_values", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("_source_uri", DataType::Utf8, true),
        Field::new("_source_row", DataType::Int64, true),
        Field::new("at", timestamp_type(), false),
    ]);
    TableSpec::new(IDENTITY_CONFLICTS.id(), Arc::new(Schema::new(fields))).with_description(
        "Links refused because the two persons together would hold more values of limited_type than its limit.",
    )
}

/// Identifiers linked to more values of some id type than one person may hold (a kiosk tablet
/// seen with dozens of member_ids, a `guest` member seen with hundreds of devices, an email
/// that many customers typed): kept out of stitching.
pub fn hubs_spec() -> TableSpec {
    TableSpec::new(
        IDENTITY_HUBS.id(),
        Arc::new(Schema::new(vec![
            Field::new("id_type", DataType::Utf8, false),
            Field::new("id_value", DataType::Utf8, false),
            Field::new("linked_type", DataType::Utf8, false),
            Field::new("distinct_values", DataType::Int64, false),
            Field::new("limit", DataType::Int64, false),
            Field::new("at", timestamp_type(), false),
        ])),
    )
    .with_description(
        "Hub identifiers: linked to more distinct values of linked_type than one person may hold (its limit); \
         never used to link.",
    )
}

/// Identifier values that never link because a rule says they identify no one (placeholders,
/// junk values, the blocklist), counted per run.
pub fn skipped_spec() -> TableSpec {
    TableSpec::new(
        IDENTITY_SKIPPED.id(),
        Arc::new(Schema::new(vec![
            Field::new("id_type", DataType::Utf8, false),
            Field::new("id_value", DataType::Utf8, false),
            Field::new("rule", DataType::Utf8, false),
            Field::new("source", DataType::Utf8, false),
            Field::new("rows", DataType::Int64, false),
            Field::new("at", timestamp_type(), false),
        ])),
    )
    .with_description(
        "Identifier values skipped by a rule (placeholder, junk value, blocklist) per identity run and source; \
         values of hashed columns are stored hashed.",
    )
}

/// Links (or, with an empty side b, every link of an identifier) a person asked to undo.
pub fn unlinks_spec() -> TableSpec {
    let mut fields = identifier_pair_fields();
    fields.push(Field::new("at", timestamp_type(), false));
    TableSpec::new(IDENTITY_UNLINKS.id(), Arc::new(Schema::new(fields)))
        .with_description("Undone links: never used again. An empty side b blocks every link of side a.")
}
