//! Curated-zone table definitions: the identity graph.

use std::sync::Arc;

use cdplake_engine::arrow::datatypes::{DataType, Field, Schema};
use cdplake_engine::{TableId, TableSpec, timestamp_type};

fn id(name: &str) -> TableId {
    TableId::new("curated", name).expect("static name is valid")
}

pub fn id_mapping_id() -> TableId {
    id("id_mapping")
}
pub fn identity_links_id() -> TableId {
    id("identity_links")
}
pub fn merge_history_id() -> TableId {
    id("id_merge_history")
}
pub fn conflicts_id() -> TableId {
    id("identity_conflicts")
}
pub fn hubs_id() -> TableId {
    id("identity_hubs")
}

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
        id_mapping_id(),
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
    TableSpec::new(identity_links_id(), Arc::new(Schema::new(fields)))
        .partitioned_by(["id_type_a", "id_type_b"])
        .with_description(
            "Links between two identifiers of one person, with provenance (source, file, row); partitioned by \
             the two id types.",
        )
}

/// Every merge (and, later, split) of one_ids.
pub fn merge_history_spec() -> TableSpec {
    TableSpec::new(
        merge_history_id(),
        Arc::new(Schema::new(vec![
            Field::new("action", DataType::Utf8, false),
            Field::new("absorbed_one_id", DataType::Utf8, false),
            Field::new("surviving_one_id", DataType::Utf8, false),
            Field::new("cause", DataType::Utf8, false),
            Field::new("at", timestamp_type(), false),
        ])),
    )
    .with_description("Merges of one_ids: absorbed → surviving, when, and the link that caused it.")
}

/// Links refused because they would give one person two values of a person-unique id type.
pub fn conflicts_spec() -> TableSpec {
    let mut fields = identifier_pair_fields();
    fields.extend([
        Field::new("left_unique_ids", DataType::Utf8, false),
        Field::new("right_unique_ids", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("_source_uri", DataType::Utf8, true),
        Field::new("_source_row", DataType::Int64, true),
        Field::new("at", timestamp_type(), false),
    ]);
    TableSpec::new(conflicts_id(), Arc::new(Schema::new(fields)))
        .with_description("Links refused because both sides already belong to a different member.")
}

/// Identifiers seen with too many persons (shared devices, junk): kept out of stitching.
pub fn hubs_spec() -> TableSpec {
    TableSpec::new(
        hubs_id(),
        Arc::new(Schema::new(vec![
            Field::new("id_type", DataType::Utf8, false),
            Field::new("id_value", DataType::Utf8, false),
            Field::new("unique_type", DataType::Utf8, false),
            Field::new("distinct_values", DataType::Int64, false),
            Field::new("at", timestamp_type(), false),
        ])),
    )
    .with_description("Hub identifiers (e.g. a device seen with more than 5 member_ids), never used to link.")
}

pub fn unlinks_id() -> TableId {
    id("identity_unlinks")
}

/// Links (or, with an empty side b, every link of an identifier) a person asked to undo.
pub fn unlinks_spec() -> TableSpec {
    let mut fields = identifier_pair_fields();
    fields.push(Field::new("at", timestamp_type(), false));
    TableSpec::new(unlinks_id(), Arc::new(Schema::new(fields)))
        .with_description("Undone links: never used again. An empty side b blocks every link of side a.")
}
