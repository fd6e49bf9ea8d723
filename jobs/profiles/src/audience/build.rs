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
use cdplake_engine::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use cdplake_engine::arrow::datatypes::{DataType, Field, Int64Type, Schema};
use cdplake_engine::bitmap::from_bytes;
use cdplake_engine::sql::quote_literal;
use cdplake_engine::{SqlSession, TableSpec, timestamp_type};
use chrono::{DateTime, NaiveDate, Utc};
use roaring::RoaringBitmap;

use crate::audience::expr::Expr;
use crate::segments::{ALL_PERSONS, TaggedBitmap, tagged_bitmaps};
use cdplake_core::columns::{column, column_as, micros, strings};
use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
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
    let missing = || JobError::not_found("no segments yet", "run `cdplake segments` first");
    if !workspace.lake().table_exists(&SEGMENT_BITMAPS.id()).await? {
        return Err(missing());
    }
    session.register(workspace.lake(), &SEGMENT_BITMAPS.id()).await?;
    single_string(session, &format!("SELECT max(as_of) FROM {SEGMENT_BITMAPS}")).await?.ok_or_else(missing)
}

/// Evaluate `rule` on the segment bitmaps as of `as_of` (default: the latest build).
pub async fn evaluate(
    workspace: &Workspace,
    session: &SqlSession,
    rule: &str,
    as_of: Option<NaiveDate>,
) -> Result<(String, RoaringBitmap, f64)> {
    let expr =
        Expr::parse(rule).map_err(|e| JobError::bad_input(format!("audience expression {rule:?}"), e.to_string()))?;
    let latest = latest_segments_as_of(workspace, session).await?;
    let as_of = as_of.map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or(latest);
    let bitmaps = segment_bitmaps(session, &as_of).await?;
    if bitmaps.is_empty() {
        return Err(JobError::not_found(
            format!("no segments as of {as_of}"),
            format!("run `cdplake segments --as-of {as_of}`"),
        ));
    }
    if let Some(unknown) = expr.tags().into_iter().find(|t| !bitmaps.contains_key(*t)) {
        let mut known: Vec<&String> = bitmaps.keys().collect();
        known.sort();
        let known: Vec<String> = known.iter().map(|k| format!("{k:?}")).collect();
        return Err(JobError::bad_input(
            format!("audience expression {rule:?}"),
            format!("no segment {unknown:?} as of {as_of}; segments: {}", known.join(", ")),
        ));
    }
    let universe = bitmaps.get(ALL_PERSONS).cloned().unwrap_or_default();
    let started = Instant::now();
    let members = expr
        .evaluate(&|t: &str| bitmaps.get(t), &universe)
        .map_err(|e| JobError::bad_input(format!("audience expression {rule:?}"), e.to_string()))?
        .into_owned();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok((as_of, members, ms))
}

/// Every segment's bitmap as of `as_of`, by tag.
async fn segment_bitmaps(session: &SqlSession, as_of: &str) -> Result<HashMap<String, RoaringBitmap>> {
    let rows = session
        .rows(&format!("SELECT segment_tag, bitmap FROM {SEGMENT_BITMAPS} WHERE as_of = {}", quote_literal(as_of)))
        .await?;
    let mut bitmaps: HashMap<String, RoaringBitmap> = HashMap::new();
    for TaggedBitmap { tag, bitmap } in tagged_bitmaps(&rows)? {
        let bitmap = from_bytes(&bitmap).map_err(|e| JobError::query("reading a segment bitmap", e))?;
        bitmaps.insert(tag, bitmap);
    }
    Ok(bitmaps)
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
    let build = Build { package_id: package_id(name), name, rule, as_of, now };
    let (packages, changes) = (packages_spec(), changes_spec());
    ensure_tables(workspace, &session, &packages, &changes).await?;
    let changed = Changes::since(previous_build(&session, &build).await?, &members);
    // user_int_id → one_id, for members and leavers alike.
    let one_ids = OneIds::read(&session, &(&members | &changed.left)).await?;
    let member_rows = build.member_rows(&packages, &members, &one_ids)?;
    lake.overwrite_partition(&packages.id, &build.partition(), vec![member_rows]).await?;
    let change_rows = build.change_rows(&changes, &changed, &one_ids)?;
    lake.overwrite_partition(&changes.id, &build.partition(), vec![change_rows]).await?;
    Ok(AudienceReport {
        name: name.to_string(),
        package_id: build.package_id,
        rule: rule.to_string(),
        as_of: build.as_of,
        members: members.len(),
        entered: changed.entered.len(),
        left: changed.left.len(),
        previous_as_of: changed.previous_as_of,
        evaluate_ms,
        stored: true,
    })
}

/// Create the packages and changes tables if needed, and register what a build reads.
async fn ensure_tables(
    workspace: &Workspace,
    session: &SqlSession,
    packages: &TableSpec,
    changes: &TableSpec,
) -> Result<()> {
    workspace
        .catalog
        .ensure_table(packages, &TableMeta::default().with_primary_key(["package_id", "as_of", "one_id"]))
        .await?;
    workspace.catalog.ensure_table(changes, &TableMeta::default()).await?;
    session.register(workspace.lake(), &packages.id).await?;
    session.register(workspace.lake(), &ID_MAPPING.id()).await?;
    Ok(())
}

/// One build of an audience: which, from what rule, as of when.
struct Build<'a> {
    package_id: String,
    name: &'a str,
    rule: &'a str,
    as_of: String,
    now: DateTime<Utc>,
}

/// An audience's build before this one: its as-of date and members (none without one).
struct PreviousBuild {
    as_of: Option<String>,
    members: RoaringBitmap,
}

/// The previous build of `build`'s audience: the latest as-of before this one.
async fn previous_build(session: &SqlSession, build: &Build<'_>) -> Result<PreviousBuild> {
    let as_of = single_string(
        session,
        &format!(
            "SELECT max(as_of) FROM {AUDIENCE_PACKAGES} WHERE package_name = {} AND as_of < {}",
            quote_literal(build.name),
            quote_literal(&build.as_of)
        ),
    )
    .await?;
    let mut members = RoaringBitmap::new();
    if let Some(p) = &as_of {
        let rows = session
            .rows(&format!(
                "SELECT user_int_id FROM {AUDIENCE_PACKAGES} WHERE package_name = {} AND as_of = {}",
                quote_literal(build.name),
                quote_literal(p)
            ))
            .await?;
        for b in &rows {
            let ids = column(b, "profiles", "user_int_id")?.as_primitive::<Int64Type>();
            members.extend(ids.values().iter().map(|v| *v as u32));
        }
    }
    Ok(PreviousBuild { as_of, members })
}

/// Who entered and who left an audience since its previous build.
struct Changes {
    entered: RoaringBitmap,
    left: RoaringBitmap,
    previous_as_of: Option<String>,
}

impl Changes {
    fn since(previous: PreviousBuild, members: &RoaringBitmap) -> Self {
        Changes {
            entered: members - &previous.members,
            left: &previous.members - members,
            previous_as_of: previous.as_of,
        }
    }
}

/// The one_id of each user_int_id, as `curated.id_mapping` gives it.
struct OneIds(HashMap<i64, String>);

impl OneIds {
    /// The one_ids of `wanted`.
    async fn read(session: &SqlSession, wanted: &RoaringBitmap) -> Result<Self> {
        let ids_schema = Arc::new(Schema::new(vec![Field::new("user_int_id", DataType::Int64, false)]));
        let ids = Int64Array::from_iter_values(wanted.iter().map(i64::from));
        let batch = RecordBatch::try_new(ids_schema.clone(), vec![Arc::new(ids)])
            .map_err(|e| JobError::arrow("audience ids", e))?;
        session.register_rows("wanted", ids_schema, vec![batch])?;
        let rows = session
            .rows(&format!(
                "SELECT w.user_int_id AS user_int_id, min(m.one_id) AS one_id FROM wanted w JOIN {ID_MAPPING} m \
                 ON m.user_int_id = w.user_int_id GROUP BY w.user_int_id"
            ))
            .await?;
        let mut one_id_of: HashMap<i64, String> = HashMap::new();
        for b in &rows {
            let o = column_as(b, "profiles: one_ids", "one_id", &DataType::Utf8)?;
            let (u, o) = (column(b, "profiles", "user_int_id")?.as_primitive::<Int64Type>(), o.as_string::<i32>());
            for i in 0..b.num_rows() {
                one_id_of.insert(u.value(i), o.value(i).to_string());
            }
        }
        Ok(OneIds(one_id_of))
    }

    /// The one_id of `u`; without a mapping row, the one constructed from it (`ONE` + its digits).
    fn of(&self, u: u32) -> String {
        self.0.get(&i64::from(u)).cloned().unwrap_or_else(|| cdplake_zones::curated::one_id(i64::from(u)))
    }
}

impl Build<'_> {
    /// The rows of this build, in both the packages and the changes table.
    fn partition(&self) -> String {
        format!("as_of = {} AND package_name = {}", quote_literal(&self.as_of), quote_literal(self.name))
    }

    /// The `curated.audience_packages` rows (`spec`) of `members`.
    fn member_rows(&self, spec: &TableSpec, members: &RoaringBitmap, one_ids: &OneIds) -> Result<RecordBatch> {
        let n = members.len() as usize;
        RecordBatch::try_new(
            spec.normalized_schema()?,
            vec![
                strings(std::iter::repeat_n(self.package_id.as_str(), n)),
                strings(std::iter::repeat_n(self.name, n)),
                strings(std::iter::repeat_n(self.rule, n)),
                Arc::new(StringArray::from_iter_values(members.iter().map(|u| one_ids.of(u)))),
                Arc::new(Int64Array::from_iter_values(members.iter().map(i64::from))),
                strings(std::iter::repeat_n(self.as_of.as_str(), n)),
                micros(std::iter::repeat_n(self.now.timestamp_micros(), n)),
            ],
        )
        .map_err(|e| JobError::arrow("audience members", e))
    }

    /// The `curated.audience_changes` rows (`spec`): who entered, then who left.
    fn change_rows(&self, spec: &TableSpec, changes: &Changes, one_ids: &OneIds) -> Result<RecordBatch> {
        let changed: Vec<(u32, &str)> =
            changes.entered.iter().map(|u| (u, "entered")).chain(changes.left.iter().map(|u| (u, "left"))).collect();
        let c = changed.len();
        RecordBatch::try_new(
            spec.normalized_schema()?,
            vec![
                strings(std::iter::repeat_n(self.package_id.as_str(), c)),
                strings(std::iter::repeat_n(self.name, c)),
                Arc::new(StringArray::from_iter_values(changed.iter().map(|(u, _)| one_ids.of(*u)))),
                Arc::new(Int64Array::from_iter_values(changed.iter().map(|(u, _)| i64::from(*u)))),
                strings(changed.iter().map(|(_, k)| *k)),
                strings(std::iter::repeat_n(self.as_of.as_str(), c)),
                Arc::new(StringArray::from(vec![changes.previous_as_of.as_deref(); c])),
                micros(std::iter::repeat_n(self.now.timestamp_micros(), c)),
            ],
        )
        .map_err(|e| JobError::arrow("audience changes", e))
    }
}
