//! `cdplake audience`: audiences as expressions over segment bitmaps, their members
//! (`curated.audience_packages`, seed 001's `ads_audience_package`), who entered and left since
//! the previous build (`curated.audience_changes`, seed 002's sink), and exports.
//!
//! An audience is evaluated on the Roaring bitmaps of `curated.segment_bitmaps`, never by
//! joining profile tables; a build replaces exactly its (package, as-of) rows, so rebuilding is
//! idempotent.


use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{AsArray, Int64Array, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use cdplake_engine::bitmap::from_bytes;
use cdplake_engine::sql::quote_literal;
use cdplake_engine::{SqlSession, TableSpec, timestamp_type};
use chrono::{DateTime, NaiveDate, Utc};
use roaring::RoaringBitmap;

use cdplake_core::error::{JobError, Result};
use cdplake_core::columns::{micros, strings};
use crate::segments::ALL_PERSONS;
use cdplake_core::workspace::Workspace;
use crate::audience::expr::Expr;
use cdplake_zones::tables::{AUDIENCE_CHANGES, AUDIENCE_PACKAGES, ID_MAPPING, SEGMENT_BITMAPS};

fn packages_spec() -> TableSpec {
    TableSpec::new(
        AUDIENCE_PACKAGES.id(),
        Arc::new(Schema::new(vec![
            Field::new("package_id", DataType::Utf8, false),
            Field::new("package_name", DataType::Utf8, false),
            Field::new("segment_rule", DataType::Utf8, false),
            Field::new("one_id", DataType::Utf8, false),
            Field::new("user_int_id", DataType::Int64, false),
            Field::new("as_of", DataType::Utf8, false),
            Field::new("built_at", timestamp_type(), false),
        ])),
    )
    .partitioned_by(["as_of"])
    .with_description("Members of each audience (seed 001's ads_audience_package), one set per package and as-of date.")
}

fn changes_spec() -> TableSpec {
    TableSpec::new(
        AUDIENCE_CHANGES.id(),
        Arc::new(Schema::new(vec![
            Field::new("package_id", DataType::Utf8, false),
            Field::new("package_name", DataType::Utf8, false),
            Field::new("one_id", DataType::Utf8, false),
            Field::new("user_int_id", DataType::Int64, false),
            Field::new("change", DataType::Utf8, false),
            Field::new("as_of", DataType::Utf8, false),
            Field::new("previous_as_of", DataType::Utf8, true),
            Field::new("built_at", timestamp_type(), false),
        ])),
    )
    .partitioned_by(["as_of"])
    .with_description("Who entered and who left each audience since its previous build (change = entered | left).")
}

/// A package id that stays the same for an audience name.
pub fn package_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("PKG-{}", &hex::encode(Sha256::digest(name.as_bytes()))[..10])
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AudienceReport {
    pub name: String,
    pub package_id: String,
    pub rule: String,
    pub as_of: String,
    pub members: u64,
    pub entered: u64,
    pub left: u64,
    pub previous_as_of: Option<String>,
    /// Time to evaluate the expression on the bitmaps, in milliseconds.
    pub evaluate_ms: f64,
    /// Whether the members were stored (false for `--count-only`).
    pub stored: bool,
}

impl cdplake_core::audit::JobReport for AudienceReport {}

pub fn describe_report(r: &AudienceReport) -> String {
    let since = match &r.previous_as_of {
        Some(p) => format!("since {p}: {} entered, {} left", r.entered, r.left),
        None if !r.stored => "counted only, nothing stored".into(),
        None => "first build".into(),
    };
    format!(
        "audience {} ({}) as of {}: {} members, counted in {:.3} ms on bitmaps; {since}",
        r.name, r.package_id, r.as_of, r.members, r.evaluate_ms
    )
}

/// The first value of a query as a string; None without rows or for a null.
pub(crate) async fn single_string(session: &SqlSession, sql: &str) -> Result<Option<String>> {
    Ok(session.first_string(sql).await?)
}

/// The newest as-of date segments were built for.
async fn latest_segments_as_of(workspace: &Workspace, session: &SqlSession) -> Result<String> {
    let missing = || JobError::NotFound("no segments yet: run `cdplake segments` first".into());
    if !workspace.lake().table_exists(&SEGMENT_BITMAPS.id()).await? {
        return Err(missing());
    }
    session.register(workspace.lake(), &SEGMENT_BITMAPS.id()).await?;
    single_string(session, "SELECT max(as_of) FROM curated.segment_bitmaps").await?.ok_or_else(missing)
}

/// Evaluate `rule` on the segment bitmaps as of `as_of` (default: the latest build).
pub async fn evaluate(
    workspace: &Workspace,
    session: &SqlSession,
    rule: &str,
    as_of: Option<NaiveDate>,
) -> Result<(String, RoaringBitmap, f64)> {
    let expr = Expr::parse(rule).map_err(|e| JobError::Invalid(format!("audience expression {rule:?}: {e}")))?;
    let latest = latest_segments_as_of(workspace, session).await?;
    let as_of = as_of.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or(latest);
    let rows = session
        .rows(&format!(
            "SELECT segment_tag, bitmap FROM curated.segment_bitmaps WHERE as_of = {}",
            quote_literal(&as_of)
        ))
        .await?;
    let mut bitmaps: HashMap<String, RoaringBitmap> = HashMap::new();
    for b in &rows {
        let tags = cast(b.column(0), &DataType::Utf8).map_err(|e| JobError::arrow("segment tags", e))?;
        let maps = cast(b.column(1), &DataType::Binary).map_err(|e| JobError::arrow("segment bitmaps", e))?;
        let (tags, maps) = (tags.as_string::<i32>(), maps.as_binary::<i32>());
        for i in 0..b.num_rows() {
            let bitmap = from_bytes(maps.value(i)).map_err(|e| JobError::query("reading a segment bitmap", e))?;
            bitmaps.insert(tags.value(i).to_string(), bitmap);
        }
    }
    if bitmaps.is_empty() {
        return Err(JobError::NotFound(format!("no segments as of {as_of}: run `cdplake segments --as-of {as_of}`")));
    }
    if let Some(unknown) = expr.tags().into_iter().find(|t| !bitmaps.contains_key(*t)) {
        let mut known: Vec<&String> = bitmaps.keys().collect();
        known.sort();
        let known: Vec<String> = known.iter().map(|k| format!("{k:?}")).collect();
        return Err(JobError::Invalid(format!("no segment {unknown:?} as of {as_of}; segments: {}", known.join(", "))));
    }
    let universe = bitmaps.get(ALL_PERSONS).cloned().unwrap_or_default();
    let started = Instant::now();
    let members = expr
        .evaluate(&|t: &str| bitmaps.get(t), &universe)
        .map_err(|e| JobError::Invalid(format!("audience expression {rule:?}: {e}")))?
        .into_owned();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((as_of, members, ms))
}

/// Count audience `name`'s members without storing anything.
pub async fn count_audience(
    workspace: &Workspace,
    name: &str,
    rule: &str,
    as_of: Option<NaiveDate>,
) -> Result<AudienceReport> {
    let session = SqlSession::new()?;
    let (as_of, members, evaluate_ms) = evaluate(workspace, &session, rule, as_of).await?;
    Ok(AudienceReport {
        name: name.to_string(),
        package_id: package_id(name),
        rule: rule.to_string(),
        as_of,
        members: members.len(),
        evaluate_ms,
        ..Default::default()
    })
}

/// Build (or rebuild) audience `name` from `rule`, record its members and what changed.
pub async fn build_audience(
    workspace: &Workspace,
    name: &str,
    rule: &str,
    as_of: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<AudienceReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    let session = SqlSession::new()?;
    let (as_of, members, evaluate_ms) = evaluate(workspace, &session, rule, as_of).await?;
    let id = package_id(name);
    let packages = packages_spec();
    let changes = changes_spec();
    workspace
        .catalog
        .ensure_table(&packages, &TableMeta::default().with_primary_key(["package_id", "as_of", "one_id"]))
        .await?;
    workspace.catalog.ensure_table(&changes, &TableMeta::default()).await?;
    session.register(lake, &packages.id).await?;
    session.register(lake, &ID_MAPPING.id()).await?;

    // The previous build: the latest as-of before this one.
    let previous_as_of = single_string(
        &session,
        &format!(
            "SELECT max(as_of) FROM curated.audience_packages WHERE package_name = {} AND as_of < {}",
            quote_literal(name),
            quote_literal(&as_of)
        ),
    )
    .await?;
    let mut previous = RoaringBitmap::new();
    if let Some(p) = &previous_as_of {
        let rows = session
            .rows(&format!(
                "SELECT user_int_id FROM curated.audience_packages WHERE package_name = {} AND as_of = {}",
                quote_literal(name),
                quote_literal(p)
            ))
            .await?;
        for b in &rows {
            previous.extend(b.column(0).as_primitive::<Int64Type>().values().iter().map(|v| *v as u32));
        }
    }
    let entered = &members - &previous;
    let left = &previous - &members;

    // user_int_id → one_id, for members and leavers alike.
    let wanted = &members | &left;
    let ids_schema = Arc::new(Schema::new(vec![Field::new("user_int_id", DataType::Int64, false)]));
    let ids = Int64Array::from_iter_values(wanted.iter().map(i64::from));
    let batch = RecordBatch::try_new(ids_schema.clone(), vec![Arc::new(ids)])
        .map_err(|e| JobError::arrow("audience ids", e))?;
    session.register_rows("wanted", ids_schema, vec![batch])?;
    let rows = session
        .rows(
            "SELECT w.user_int_id, min(m.one_id) AS one_id FROM wanted w JOIN curated.id_mapping m \
             ON m.user_int_id = w.user_int_id GROUP BY w.user_int_id",
        )
        .await?;
    let mut one_id_of: HashMap<i64, String> = HashMap::new();
    for b in &rows {
        let o = cast(b.column(1), &DataType::Utf8).map_err(|e| JobError::arrow("one_ids", e))?;
        let (u, o) = (b.column(0).as_primitive::<Int64Type>(), o.as_string::<i32>());
        for i in 0..b.num_rows() {
            one_id_of.insert(u.value(i), o.value(i).to_string());
        }
    }
    let one_id =
        |u: u32| one_id_of.get(&i64::from(u)).cloned().unwrap_or_else(|| cdplake_zones::curated::one_id(i64::from(u)));

    let n = members.len() as usize;
    let member_rows = RecordBatch::try_new(
        packages.normalized_schema()?,
        vec![
            strings(std::iter::repeat_n(id.as_str(), n)),
            strings(std::iter::repeat_n(name, n)),
            strings(std::iter::repeat_n(rule, n)),
            Arc::new(cdplake_engine::arrow::array::StringArray::from_iter_values(members.iter().map(one_id))),
            Arc::new(Int64Array::from_iter_values(members.iter().map(i64::from))),
            strings(std::iter::repeat_n(as_of.as_str(), n)),
            micros(std::iter::repeat_n(now.timestamp_micros(), n)),
        ],
    )
    .map_err(|e| JobError::arrow("audience members", e))?;
    let this_build = format!("as_of = {} AND package_name = {}", quote_literal(&as_of), quote_literal(name));
    lake.overwrite_partition(&packages.id, &this_build, vec![member_rows]).await?;

    let changed: Vec<(u32, &str)> =
        entered.iter().map(|u| (u, "entered")).chain(left.iter().map(|u| (u, "left"))).collect();
    let c = changed.len();
    let change_rows = RecordBatch::try_new(
        changes.normalized_schema()?,
        vec![
            strings(std::iter::repeat_n(id.as_str(), c)),
            strings(std::iter::repeat_n(name, c)),
            Arc::new(cdplake_engine::arrow::array::StringArray::from_iter_values(
                changed.iter().map(|(u, _)| one_id(*u)),
            )),
            Arc::new(Int64Array::from_iter_values(changed.iter().map(|(u, _)| i64::from(*u)))),
            strings(changed.iter().map(|(_, k)| *k)),
            strings(std::iter::repeat_n(as_of.as_str(), c)),
            Arc::new(cdplake_engine::arrow::array::StringArray::from(vec![previous_as_of.as_deref(); c])),
            micros(std::iter::repeat_n(now.timestamp_micros(), c)),
        ],
    )
    .map_err(|e| JobError::arrow("audience changes", e))?;
    lake.overwrite_partition(&changes.id, &this_build, vec![change_rows]).await?;

    Ok(AudienceReport {
        name: name.to_string(),
        package_id: id,
        rule: rule.to_string(),
        as_of,
        members: members.len(),
        entered: entered.len(),
        left: left.len(),
        previous_as_of,
        evaluate_ms,
        stored: true,
    })
}
