//! `cdplake profiles`: unified events and the customer 360 profile, refreshed incrementally.
//!
//! 1. Events: clean rows of batches not seen yet, and clean rows carrying an identifier whose
//!    person changed in `curated.id_mapping` since the last run, are mapped and resolved, then
//!    MERGEd into `curated.user_events` by (source, event_key); an updated row keeps the one_id
//!    it had in `previous_one_id`.
//! 2. Touched persons: the one_ids (old and new) of the event rows written since the profiles
//!    last read them, of identifiers that changed person, and of new CRM rows.
//! 3. Their profiles are recomputed ([`build::base_sql`]), every other row is kept; the r/f/m
//!    quintiles are ranked over everyone; a merge's absorbed one_id loses its row. A new as-of
//!    date recomputes everyone. The result equals a full rebuild (`--full`), row for row.
//! 4. Quality gates check the candidate before anything is published; then one MERGE
//!    publishes `curated.customer_profiles` and the as-of date's partition of
//!    `curated.customer_profiles_daily` is replaced.
//!
//! Watermarks are Delta application transactions in the commits of the outputs, so a blocked
//! or failed run leaves them unmoved and the next run redoes its work.

pub mod build;
pub mod config;
pub mod events;
pub mod scores;

use std::sync::Arc;

use cdplake_catalog::TableMeta;
use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use cdplake_engine::datafusion::prelude::col;
use cdplake_engine::deltalake::DeltaTable;
use cdplake_engine::deltalake::kernel::Transaction;
use cdplake_engine::deltalake::kernel::transaction::CommitProperties;
use cdplake_engine::lake::{conform_batches, table_arrow_schema};
use cdplake_engine::{EngineError, SqlSession, TableId, TableSpec, TimeTravel, applied_version};
use cdplake_zones::contract::Contract;
use cdplake_zones::{Source, curated};
use chrono::{DateTime, NaiveDate, Utc};

use crate::batches::{batch_ids, pending_batches};
use crate::clean::clean_table_id;
use crate::error::{JobError, Result};
use crate::quality::{self, QualityResult};
use crate::stopwatch::Stopwatch;
use crate::workspace::Workspace;
use build::AttributeInput;
use events::{REFRESH_SEQ, Selection, user_events_id, user_events_spec};
use scores::{SCORE_COLUMNS, score_buyers};

pub fn profiles_id() -> TableId {
    TableId::new("curated", "customer_profiles").expect("static name is valid")
}

pub fn profiles_daily_id() -> TableId {
    TableId::new("curated", "customer_profiles_daily").expect("static name is valid")
}

/// The daily snapshot's partition column: the as-of date as `YYYY-MM-DD` (seed 000's `dt`).
pub const DT: &str = "dt";

const EVENTS_MAPPING_TXN: &str = "cdplake-events-id-mapping";
const PROFILES_MAPPING_TXN: &str = "cdplake-profiles-id-mapping";
const PROFILES_EVENTS_TXN: &str = "cdplake-profiles-user-events";
/// The application transaction on `curated.customer_profiles` whose version is its as-of date
/// (days since 1970-01-01).
pub const AS_OF_TXN: &str = "cdplake-profiles-as-of";

fn events_batch_app_id(source: &str, batch: &str) -> String {
    format!("cdplake-events-{source}-{batch}")
}

fn profiles_batch_app_id(source: &str, batch: &str) -> String {
    format!("cdplake-profiles-{source}-{batch}")
}

#[derive(Debug, Clone)]
pub struct RefreshOptions {
    /// The business date profiles are computed as of (events after it are ignored).
    pub as_of: NaiveDate,
    /// Recompute every event and profile instead of the touched ones.
    pub full: bool,
    /// Publish even when a quality rule fails (the failure is still recorded).
    pub force: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ProfilesReport {
    pub as_of: String,
    pub full_rebuild: bool,
    pub events_written: u64,
    pub anonymous_events_written: u64,
    pub persons_touched: u64,
    pub profiles_written: u64,
    pub profiles_retired: u64,
    pub profiles: u64,
    pub quality: Vec<QualityResult>,
    pub published: bool,
}

pub fn describe_report(r: &ProfilesReport) -> String {
    if !r.published && r.quality.is_empty() {
        return format!("profiles as of {}: nothing new ({} profiles)", r.as_of, r.profiles);
    }
    let mode = if r.full_rebuild { "full rebuild" } else { "incremental" };
    let failed = r.quality.iter().filter(|q| !q.passed).count();
    format!(
        "profiles as of {} ({mode}): {} events written ({} anonymous), {} persons touched, {} profiles written, \
         {} retired, {} in total; quality: {} rules, {} failed{}",
        r.as_of,
        r.events_written,
        r.anonymous_events_written,
        r.persons_touched,
        r.profiles_written,
        r.profiles_retired,
        r.profiles,
        r.quality.len(),
        failed,
        if r.published { "" } else { "; nothing published" }
    )
}

fn days(date: NaiveDate) -> i64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")).num_days()
}

fn query_error(context: &str) -> impl Fn(EngineError) -> JobError + '_ {
    move |e| JobError::Step { context: context.to_string(), source: Box::new(e) }
}

/// Refresh `curated.user_events`, `curated.customer_profiles` and the daily snapshot.
pub async fn refresh(workspace: &Workspace, options: &RefreshOptions, now: DateTime<Utc>) -> Result<ProfilesReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    if !lake.table_exists(&curated::id_mapping_id()).await? {
        return Err(JobError::NotFound(
            "curated.id_mapping does not exist yet: run `cdplake identity` before `cdplake profiles`".into(),
        ));
    }
    let mut report = ProfilesReport { as_of: options.as_of.to_string(), ..Default::default() };
    let mut watch = Stopwatch::start("profiles");
    let session = SqlSession::new()?;
    let mapping = lake.table(&curated::id_mapping_id()).await?;
    let mapping_version = mapping.version().unwrap_or(0) as i64;
    register_identifiers(workspace, &session, &mapping, "ids").await?;
    watch.lap("identifiers loaded");

    // 1. Events.
    let (events_table, _) = workspace
        .catalog
        .ensure_table(&user_events_spec(), &TableMeta::default().with_primary_key(["source", "event_key"]))
        .await?;
    let events_label = user_events_id().to_string();
    let events_mapping = applied_version(&events_table, &events_label, EVENTS_MAPPING_TXN).await?;
    let full_events = options.full || events_mapping.is_none();
    let changed_for_events = match events_mapping {
        Some(v) if !full_events && v != mapping_version => {
            register_changed_identifiers(workspace, &session, &mapping, v as u64, "changed_for_events").await?
        }
        _ => None,
    };
    let mut txns = vec![Transaction::new(EVENTS_MAPPING_TXN, mapping_version)];
    let mut selects = Vec::new();
    let unique_types = &workspace.config.identity.unique_types();
    for (name, event_mapping) in workspace.config.profiles.event_mappings() {
        let Some(source) = workspace.config.source(&name) else { continue };
        let exists = register_clean(workspace, &session, &source).await?;
        let pending = if exists {
            pending_batches(workspace, &clean_table_id(&source), &events_table, &events_label, |b| {
                events_batch_app_id(&name, b)
            })
            .await?
        } else {
            Vec::new()
        };
        txns.extend(pending.iter().map(|b| Transaction::new(events_batch_app_id(&name, b), 1)));
        let selection = if full_events {
            Selection::All
        } else {
            Selection::Incremental { batches: &pending, changed_ids_table: changed_for_events.as_deref() }
        };
        let table = format!("clean.{name}");
        if let Some(sql) = events::source_events_sql(&source, &table, &event_mapping, "ids", unique_types, &selection) {
            selects.push(sql);
        }
    }
    let seq = events_table.version().unwrap_or(0) as i64 + 1;
    let new_events = if selects.is_empty() {
        Vec::new()
    } else {
        let sql = format!(
            "SELECT *, CAST(NULL AS VARCHAR) AS previous_one_id, CAST({seq} AS BIGINT) AS {REFRESH_SEQ} FROM ({})",
            selects.join(" UNION ALL ")
        );
        session.rows(&sql).await.map_err(query_error("profiles: mapping clean rows to events"))?
    };
    watch.lap("clean rows mapped to events");
    report.events_written = new_events.iter().map(|b| b.num_rows() as u64).sum();
    report.anonymous_events_written =
        new_events.iter().map(|b| b.column_by_name("one_id").map_or(0, |c| c.null_count() as u64)).sum();
    let events_changed = report.events_written > 0 || txns.len() > 1 || events_mapping != Some(mapping_version);
    let events_table = if !events_changed {
        events_table
    } else {
        let commit = CommitProperties::default().with_application_transactions(txns);
        if full_events {
            lake.overwrite(&user_events_id(), new_events, commit).await?
        } else if report.events_written == 0 {
            lake.record_transactions(&user_events_id(), commit).await?
        } else {
            merge_events(workspace, events_table, new_events, commit).await?
        }
    };
    session.register_loaded("curated", "user_events", &events_table).await?;
    watch.lap("user_events written");

    // 2. Which persons to recompute.
    let profiles_label = profiles_id().to_string();
    let stored = if lake.table_exists(&profiles_id()).await? { Some(lake.table(&profiles_id()).await?) } else { None };
    let watermark = |app: &'static str| {
        let stored = stored.clone();
        let label = profiles_label.clone();
        async move {
            match &stored {
                Some(t) => applied_version(t, &label, app).await,
                None => Ok(None),
            }
        }
    };
    let (stored_seq, stored_mapping, stored_as_of) =
        (watermark(PROFILES_EVENTS_TXN).await?, watermark(PROFILES_MAPPING_TXN).await?, watermark(AS_OF_TXN).await?);
    let full = full_events || stored.is_none() || stored_seq.is_none() || stored_as_of != Some(days(options.as_of));
    report.full_rebuild = full;
    let current_seq = max_refresh_seq(&session).await?;

    let mut profile_txns = vec![
        Transaction::new(PROFILES_MAPPING_TXN, mapping_version),
        Transaction::new(PROFILES_EVENTS_TXN, current_seq),
        Transaction::new(AS_OF_TXN, days(options.as_of)),
    ];
    let mut attributes = Vec::new();
    let mut touched_sql = Vec::new();
    for a in &workspace.config.profiles.attributes {
        let Some(source) = workspace.config.source(&a.source) else { continue };
        let exists = register_clean(workspace, &session, &source).await?;
        let table = format!("clean.{}", a.source);
        if exists {
            let pending = match &stored {
                Some(stored) => {
                    pending_batches(workspace, &clean_table_id(&source), stored, &profiles_label, |b| {
                        profiles_batch_app_id(&a.source, b)
                    })
                    .await?
                }
                None => batch_ids(workspace, &clean_table_id(&source)).await?,
            };
            profile_txns.extend(pending.iter().map(|b| Transaction::new(profiles_batch_app_id(&a.source, b), 1)));
            if !pending.is_empty() && stored.is_some() {
                let batches = pending.iter().map(|b| format!("'{}'", b.replace('\'', "''"))).collect::<Vec<_>>();
                touched_sql.push(format!(
                    "SELECT i.one_id FROM {table} s JOIN ids i ON i.id_type = '{}' AND i.id_value = trim(CAST(s.\"{}\" AS VARCHAR)) \
                     WHERE s._batch_id IN ({})",
                    a.key_id_type.replace('\'', "''"),
                    a.key_column,
                    batches.join(", ")
                ));
            }
        }
        attributes.push(AttributeInput {
            table,
            key_column: a.key_column.clone(),
            key_id_type: a.key_id_type.clone(),
            order_by: a.order_by.clone(),
            columns: a.columns.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        });
    }
    let mut attribute_columns: Vec<String> = Vec::new();
    for a in &attributes {
        for (name, _) in &a.columns {
            if !attribute_columns.contains(name) {
                attribute_columns.push(name.clone());
            }
        }
    }

    // New CRM batches add application transactions beyond the three watermarks.
    let watermarks_moved =
        stored_seq != Some(current_seq) || stored_mapping != Some(mapping_version) || profile_txns.len() > 3;

    // 3. Candidate rows, checked by the gates, then published.
    let config = &workspace.config.profiles;
    let commit = CommitProperties::default().with_application_transactions(profile_txns);
    let published = if full {
        let sql =
            build::base_sql(config, options.as_of, "ids", "curated.user_events", &attributes, &attribute_columns, None);
        tracing::debug!(%sql, "profiles: full build");
        let (base_schema, base) =
            session.rows_with_schema(&sql).await.map_err(query_error("profiles: computing profiles"))?;
        report.persons_touched = base.iter().map(|b| b.num_rows() as u64).sum();
        watch.lap("profiles computed");
        session.register_rows("base", loosen(&base_schema), base)?;
        let (narrow_schema, narrow) = session
            .rows_with_schema("SELECT one_id, recency_days, frequency, monetary, last_purchase_date FROM base")
            .await?;
        let ranked = score_buyers(&narrow_schema, &narrow)?;
        session.register_rows("ranked", ranked.schema(), vec![ranked])?;
        let (_, new_scores) = score_columns("s");
        let (scored_schema, candidate) = session
            .rows_with_schema(&format!(
                "SELECT b.*, {new_scores} FROM base b LEFT JOIN ranked s ON s.one_id = b.one_id"
            ))
            .await
            .map_err(query_error("profiles: scoring"))?;
        let candidate_schema = match &stored {
            Some(stored) => table_arrow_schema(stored, &profiles_id())?,
            None => loosen(&scored_schema),
        };
        let candidate = conform_batches(&profiles_id(), &candidate_schema, candidate)?;
        session.register_rows("candidate", candidate_schema.clone(), candidate.clone())?;
        report.profiles = candidate.iter().map(|b| b.num_rows() as u64).sum();
        watch.lap("scores ranked");
        gate(workspace, &session, options, &mut report, now).await?;
        watch.lap("quality rules checked");
        if stored.is_none() {
            let spec = profiles_spec(&candidate_schema);
            workspace.catalog.ensure_table(&spec, &TableMeta::default().with_primary_key(["one_id"])).await?;
        }
        report.profiles_written = report.profiles;
        Some(lake.overwrite(&profiles_id(), candidate, commit).await?)
    } else {
        let stored_table = stored.as_ref().expect("incremental refresh has a stored table");
        session.register_loaded("curated", "customer_profiles", stored_table).await?;
        touched_sql.push(format!(
            "SELECT one_id FROM curated.user_events WHERE {REFRESH_SEQ} > {} AND one_id IS NOT NULL \
             UNION SELECT previous_one_id AS one_id FROM curated.user_events WHERE {REFRESH_SEQ} > {} AND previous_one_id IS NOT NULL",
            stored_seq.unwrap_or(0),
            stored_seq.unwrap_or(0)
        ));
        let changed = match stored_mapping.filter(|v| *v != mapping_version) {
            // The events step already read the changes since this version.
            Some(v) if events_mapping == Some(v) && !full_events => changed_for_events.clone(),
            Some(v) => {
                register_changed_identifiers(workspace, &session, &mapping, v as u64, "changed_for_profiles").await?
            }
            None => None,
        };
        if let Some(changed) = changed {
            touched_sql.push(format!(
                "SELECT old_one_id AS one_id FROM {changed} WHERE old_one_id IS NOT NULL \
                 UNION SELECT new_one_id AS one_id FROM {changed} WHERE new_one_id IS NOT NULL"
            ));
        }
        let touched_rows = session
            .rows(&format!("SELECT DISTINCT one_id FROM ({}) t", touched_sql.join(" UNION ")))
            .await
            .map_err(query_error("profiles: finding touched persons"))?;
        report.persons_touched = touched_rows.iter().map(|b| b.num_rows() as u64).sum();
        watch.lap("touched persons found");
        if report.persons_touched == 0 && !watermarks_moved {
            // Nothing new since the last run: no gate to pass, nothing to commit.
            let count = session.rows("SELECT count(*) FROM curated.customer_profiles").await?;
            report.profiles = count.first().map_or(0, |b| {
                b.column(0).as_primitive::<cdplake_engine::arrow::datatypes::Int64Type>().value(0) as u64
            });
            return Ok(report);
        }
        let touched_schema = Arc::new(Schema::new(vec![Field::new("one_id", DataType::Utf8, true)]));
        let touched_rows = touched_rows
            .iter()
            .map(|b| {
                RecordBatch::try_new(touched_schema.clone(), vec![cast(b.column(0), &DataType::Utf8).expect("utf8")])
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| JobError::arrow("touched persons", e))?;
        // Up to this many touched persons are listed in the events query itself: a literal list
        // is pushed into the Parquet scan, which then decodes the other columns only for the
        // matching rows (a semi-join with `touched` decodes all 20 million).
        const LISTED_PERSONS: u64 = 20_000;
        let events_filter = if report.persons_touched <= LISTED_PERSONS {
            let ids: Vec<String> = touched_rows
                .iter()
                .flat_map(|b| b.column(0).as_string::<i32>().iter().flatten().map(str::to_string).collect::<Vec<_>>())
                .collect();
            format!("IN ({})", build::list(&ids))
        } else {
            "IN (SELECT one_id FROM touched)".to_string()
        };
        session.register_rows("touched", touched_schema, touched_rows)?;
        // The touched persons' events and identifiers, read once: the profile query uses them
        // in a dozen places, and DataFusion does not materialise a CTE.
        for (name, sql) in [
            ("touched_events", format!("SELECT * FROM curated.user_events WHERE one_id {events_filter}")),
            ("touched_ids", "SELECT * FROM ids WHERE one_id IN (SELECT one_id FROM touched)".to_string()),
        ] {
            let (schema, rows) =
                session.rows_with_schema(&sql).await.map_err(query_error("profiles: reading touched persons"))?;
            session.register_rows(name, schema, rows)?;
        }
        watch.lap("touched persons' events read");
        let sql = build::base_sql(
            config,
            options.as_of,
            "touched_ids",
            "touched_events",
            &attributes,
            &attribute_columns,
            Some("IN (SELECT one_id FROM touched)"),
        );
        let recomputed = session.rows(&sql).await.map_err(query_error("profiles: computing touched profiles"))?;
        let table_schema = table_arrow_schema(stored_table, &profiles_id())?;
        let recomputed = conform_batches(&profiles_id(), &table_schema, recomputed)?;
        session.register_rows("recomputed", table_schema, recomputed)?;
        watch.lap("profiles computed");

        // The scores rank everyone, so they are recomputed for everyone from the four columns
        // they depend on, carrying each kept row's old scores along. Kept rows whose scores
        // moved are `moved`; the candidate is a view: kept rows, moved rows with their new
        // scores, and the recomputed rows with theirs.
        // NOT EXISTS, not NOT IN: an anti join without NOT IN's null handling, which DataFusion
        // runs in one partition.
        let kept = "NOT EXISTS (SELECT 1 FROM touched t WHERE t.one_id = p.one_id)";
        let (score_list, new_scores) = score_columns("s");
        let old_scores = SCORE_COLUMNS.map(|c| format!("{c} AS old_{c}")).join(", ");
        let no_scores = SCORE_COLUMNS.map(|c| format!("CAST(NULL AS BIGINT) AS old_{c}")).join(", ");
        let base_columns = "one_id, recency_days, frequency, monetary, last_purchase_date";
        let (everyone_schema, everyone) = session
            .rows_with_schema(&format!(
                "SELECT {base_columns}, true AS kept, {old_scores} FROM curated.customer_profiles p WHERE {kept} \
                 UNION ALL SELECT {base_columns}, false AS kept, {no_scores} FROM recomputed"
            ))
            .await
            .map_err(query_error("profiles: scoring"))?;
        let ranked = score_buyers(&everyone_schema, &everyone)?;
        session.register_rows("ranked", ranked.schema(), vec![ranked])?;
        watch.lap("ranked");
        let steps = [
            (
                "moved",
                format!(
                    "SELECT one_id, {score_list} FROM ranked WHERE kept AND ({})",
                    SCORE_COLUMNS.map(|c| format!("(old_{c} IS DISTINCT FROM {c})")).join(" OR ")
                ),
            ),
            (
                "recomputed_scored",
                format!(
                    "SELECT r.* EXCLUDE ({score_list}), {new_scores} FROM recomputed r \
                     LEFT JOIN (SELECT * FROM ranked WHERE NOT kept) s ON s.one_id = r.one_id"
                ),
            ),
        ];
        for (name, sql) in steps {
            let (schema, rows) = session.rows_with_schema(&sql).await.map_err(query_error("profiles: scoring"))?;
            session.register_rows(name, loosen(&schema), rows)?;
            watch.lap(name);
        }
        session
            .register_view(
                "candidate",
                &format!(
                    "SELECT * FROM curated.customer_profiles p WHERE {kept} \
                       AND NOT EXISTS (SELECT 1 FROM moved m WHERE m.one_id = p.one_id) \
                     UNION ALL SELECT k.* EXCLUDE ({score_list}), {new_scores} FROM moved s \
                       JOIN curated.customer_profiles k ON k.one_id = s.one_id \
                     UNION ALL SELECT * FROM recomputed_scored"
                ),
            )
            .await?;
        report.profiles = session.first_i64("SELECT count(*) FROM candidate").await?.unwrap_or(0) as u64;
        watch.lap("scores ranked");
        gate(workspace, &session, options, &mut report, now).await?;
        watch.lap("quality rules checked");
        publish_changes(workspace, &session, stored_table.clone(), commit, watermarks_moved, &mut report).await?
    };
    watch.lap("customer_profiles written");
    let daily = match published {
        Some(table) => Some(table),
        None if !lake.table_exists(&profiles_daily_id()).await? => Some(lake.table(&profiles_id()).await?),
        None => None,
    };
    if let Some(profiles) = daily {
        write_daily(workspace, &profiles, options.as_of).await?;
        watch.lap("daily snapshot written");
    }
    quality::record(workspace, &report.quality, "profiles", now).await?;
    report.published = true;
    Ok(report)
}

/// `(r_score, f_score, m_score, "{alias}.r_score, {alias}.f_score, {alias}.m_score")`.
fn score_columns(alias: &str) -> (String, String) {
    (SCORE_COLUMNS.join(", "), SCORE_COLUMNS.iter().map(|c| format!("{alias}.{c}")).collect::<Vec<_>>().join(", "))
}

/// Run the quality rules on the registered `candidate`; a failed rule blocks the publish (the
/// results are still recorded) unless `--force`.
async fn gate(
    workspace: &Workspace,
    session: &SqlSession,
    options: &RefreshOptions,
    report: &mut ProfilesReport,
    now: DateTime<Utc>,
) -> Result<()> {
    report.quality = quality::check(workspace, session, &profiles_id(), "candidate").await?;
    if report.quality.iter().any(|q| !q.passed) && !options.force {
        quality::record(workspace, &report.quality, "profiles", now).await?;
        return Err(JobError::QualityGate(format!(
            "{} not published (it keeps its previous version): {}; fix the input or rerun with --force",
            profiles_id(),
            quality::describe_failures(&report.quality)
        )));
    }
    Ok(())
}

/// A query's schema with every column nullable (DataFusion's nullability depends on the plan).
fn loosen(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema.fields().iter().map(|f| Field::new(f.name(), f.data_type().clone(), true)).collect::<Vec<_>>(),
    ))
}

fn profiles_spec(schema: &SchemaRef) -> TableSpec {
    let fields: Vec<Field> =
        schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(f.name() != "one_id")).collect();
    TableSpec::new(profiles_id(), Arc::new(Schema::new(fields))).with_description(
        "One row per person (one_id) as of a business date: CRM attributes, purchases, RFM scores and the \
         seeds' segments, engagement, support, lifecycle_stage.",
    )
}

/// Active identifiers that are not hubs, as `name` (id_type, id_value, one_id, first_seen).
async fn register_identifiers(
    workspace: &Workspace,
    session: &SqlSession,
    mapping: &DeltaTable,
    name: &str,
) -> Result<()> {
    session.register_loaded("curated", "id_mapping", mapping).await?;
    let hubs = workspace.lake().table_exists(&curated::hubs_id()).await?;
    if hubs {
        session.register(workspace.lake(), &curated::hubs_id()).await?;
    }
    let not_hub = if hubs {
        " AND NOT EXISTS (SELECT 1 FROM curated.identity_hubs h WHERE h.id_type = m.id_type AND h.id_value = m.id_value)"
    } else {
        ""
    };
    let sql =
        format!("SELECT one_id, id_type, id_value, first_seen FROM curated.id_mapping m WHERE is_active{not_hub}");
    let (schema, rows) = session.rows_with_schema(&sql).await.map_err(query_error("profiles: reading identifiers"))?;
    session.register_rows(name, schema, rows)?;
    Ok(())
}

/// Identifiers whose person differs between `curated.id_mapping` at `version` and now (new,
/// moved, or gone), registered as `name` (id_type, id_value, old_one_id, new_one_id); `None`
/// when there are none. Read from the table's change data feed (the rows of the commits since),
/// or, for a table without one, by comparing the two versions whole.
async fn register_changed_identifiers(
    workspace: &Workspace,
    session: &SqlSession,
    mapping: &DeltaTable,
    version: u64,
    name: &str,
) -> Result<Option<String>> {
    let feed = format!("{name}_feed");
    let sql = if session.register_changes(&feed, mapping, version + 1).await? {
        // Each identifier's first change since `version`: its pre-image is what it was then
        // (an insert: nothing).
        format!(
            "SELECT f.id_type, f.id_value, f.old_one_id, n.one_id AS new_one_id FROM (\
               SELECT id_type, id_value, CASE WHEN _change_type = 'update_preimage' AND is_active THEN one_id END AS old_one_id \
               FROM (SELECT id_type, id_value, one_id, is_active, _change_type, row_number() OVER (\
                 PARTITION BY id_type, id_value ORDER BY _commit_version, \
                 CASE WHEN _change_type = 'update_preimage' THEN 0 ELSE 1 END) AS __first FROM {feed}) \
               WHERE __first = 1) f \
             LEFT JOIN ids n ON n.id_type = f.id_type AND n.id_value = f.id_value \
             WHERE n.one_id IS DISTINCT FROM f.old_one_id"
        )
    } else {
        let earlier = workspace.lake().table_as_of(&curated::id_mapping_id(), TimeTravel::Version(version)).await?;
        session.register_loaded("history", &format!("id_mapping_v{version}"), &earlier).await?;
        format!(
            "SELECT coalesce(n.id_type, o.id_type) AS id_type, coalesce(n.id_value, o.id_value) AS id_value, \
               o.one_id AS old_one_id, n.one_id AS new_one_id \
             FROM ids n FULL OUTER JOIN (SELECT id_type, id_value, one_id FROM history.id_mapping_v{version} WHERE is_active) o \
               ON n.id_type = o.id_type AND n.id_value = o.id_value \
             WHERE n.one_id IS DISTINCT FROM o.one_id"
        )
    };
    let rows = session.rows(&sql).await.map_err(query_error("profiles: identifiers that changed person"))?;
    let schema = Arc::new(Schema::new(
        ["id_type", "id_value", "old_one_id", "new_one_id"].map(|c| Field::new(c, DataType::Utf8, true)).to_vec(),
    ));
    let rows = rows
        .iter()
        .map(|b| {
            let columns =
                (0..4).map(|i| cast(b.column(i), &DataType::Utf8)).collect::<std::result::Result<Vec<_>, _>>()?;
            RecordBatch::try_new(schema.clone(), columns)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| JobError::arrow("changed identifiers", e))?;
    if rows.iter().all(|b| b.num_rows() == 0) {
        return Ok(None);
    }
    session.register_rows(name, schema, rows)?;
    Ok(Some(name.to_string()))
}

/// Register `clean.<source>`, or an empty stand-in with its contract's schema when the source
/// has no clean table yet (so every profile column keeps its type). Returns whether it exists.
async fn register_clean(workspace: &Workspace, session: &SqlSession, source: &Source) -> Result<bool> {
    let id = clean_table_id(source);
    if workspace.lake().table_exists(&id).await? {
        session.register(workspace.lake(), &id).await?;
        return Ok(true);
    }
    let schema = Contract::new(source, None).clean_schema();
    session.register_rows(&id.to_string(), schema, Vec::new())?;
    Ok(false)
}

async fn max_refresh_seq(session: &SqlSession) -> Result<i64> {
    let sql = format!("SELECT max({REFRESH_SEQ}) FROM curated.user_events");
    Ok(session.first_i64(&sql).await?.unwrap_or(0))
}

/// MERGE event rows by (source, event_key); an updated row remembers its previous one_id.
async fn merge_events(
    workspace: &Workspace,
    table: DeltaTable,
    rows: Vec<RecordBatch>,
    commit: CommitProperties,
) -> Result<DeltaTable> {
    let id = user_events_id();
    let lake = workspace.lake();
    let schema = table_arrow_schema(&table, &id)?;
    let rows = conform_batches(&id, &schema, rows)?;
    let source = lake.session().read_batches(rows).map_err(|e| JobError::query("profiles: event rows", e))?;
    let on = col("target.source").eq(col("source.source")).and(col("target.event_key").eq(col("source.event_key")));
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let (table, _) = lake
        .merge_into(table, source, on)?
        .with_source_alias("source")
        .with_target_alias("target")
        .with_commit_properties(commit.with_max_retries(100))
        .when_matched_update(|u| {
            names.iter().fold(u, |u, c| {
                let value =
                    if c == events::PREVIOUS_ONE_ID { "target.one_id".to_string() } else { format!("source.{c}") };
                u.update(c.as_str(), value)
            })
        })
        .and_then(|m| {
            m.when_not_matched_insert(|i| names.iter().fold(i, |i, c| i.set(c.as_str(), format!("source.{c}"))))
        })
        .map_err(|e| EngineError::delta(&id, "merge", e))?
        .await
        .map_err(|e| EngineError::delta(&id, "merge", e))?;
    Ok(table)
}

/// What a row of the MERGE source does to the stored profiles.
const ACTION: &str = "__action";

/// MERGE what changed into the stored profiles: the touched persons' rows (`recomputed_scored`,
/// updated or inserted), the new scores of persons whose rank moved (`moved`), and the deletion
/// of touched persons who no longer exist (absorbed by a merge). Counts go to `report`. With
/// nothing to change the watermarks are still committed when they `moved`. Returns the new table
/// when rows changed.
async fn publish_changes(
    workspace: &Workspace,
    session: &SqlSession,
    stored: DeltaTable,
    commit: CommitProperties,
    moved: bool,
    report: &mut ProfilesReport,
) -> Result<Option<DeltaTable>> {
    let id = profiles_id();
    let schema = table_arrow_schema(&stored, &id)?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(ACTION, DataType::Utf8, false));
    let source_schema = Arc::new(Schema::new(fields));
    let queries = [
        format!("SELECT *, 'row' AS {ACTION} FROM recomputed_scored"),
        format!("SELECT *, 'scores' AS {ACTION} FROM moved"),
        format!(
            "SELECT one_id, 'delete' AS {ACTION} FROM curated.customer_profiles \
             WHERE one_id IN (SELECT one_id FROM touched) AND one_id NOT IN (SELECT one_id FROM recomputed)"
        ),
    ];
    let mut rows = Vec::new();
    let mut counts = [0u64; 3];
    for (query, count) in queries.iter().zip(counts.iter_mut()) {
        let batches = session.rows(query).await.map_err(query_error("profiles: rows to publish"))?;
        *count = batches.iter().map(|b| b.num_rows() as u64).sum();
        rows.extend(conform_batches(&id, &source_schema, batches)?);
    }
    report.profiles_written = counts[0] + counts[1];
    report.profiles_retired = counts[2];
    let lake = workspace.lake();
    if rows.is_empty() {
        if moved {
            lake.record_transactions(&id, commit).await?;
        }
        return Ok(None);
    }
    let source = lake.session().read_batches(rows).map_err(|e| JobError::query("profiles: rows to publish", e))?;
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let is = |action: &str| format!("source.{ACTION} = '{action}'");
    let (table, _) = lake
        .merge_into(stored, source, col("target.one_id").eq(col("source.one_id")))?
        .with_source_alias("source")
        .with_target_alias("target")
        .with_commit_properties(commit.with_max_retries(100))
        .when_matched_delete(|d| d.predicate(is("delete")))
        .and_then(|m| {
            m.when_matched_update(|u| {
                names.iter().fold(u.predicate(is("row")), |u, c| u.update(c.as_str(), format!("source.{c}")))
            })
        })
        .and_then(|m| {
            m.when_matched_update(|u| {
                SCORE_COLUMNS.iter().fold(u.predicate(is("scores")), |u, c| u.update(*c, format!("source.{c}")))
            })
        })
        .and_then(|m| {
            m.when_not_matched_insert(|i| {
                names.iter().fold(i.predicate(is("row")), |i, c| i.set(c.as_str(), format!("source.{c}")))
            })
        })
        .map_err(|e| EngineError::delta(&id, "merge", e))?
        .await
        .map_err(|e| EngineError::delta(&id, "merge", e))?;
    Ok(Some(table))
}

/// Make the as-of date's partition of `curated.customer_profiles_daily` a copy of `profiles` as
/// it is now (its files copied, not its rows rewritten).
async fn write_daily(workspace: &Workspace, profiles: &DeltaTable, as_of: NaiveDate) -> Result<()> {
    let schema = table_arrow_schema(profiles, &profiles_id())?;
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(DT, DataType::Utf8, false));
    let spec = TableSpec::new(profiles_daily_id(), Arc::new(Schema::new(fields)))
        .partitioned_by([DT])
        .with_description("curated.customer_profiles as of each business date, partitioned by dt (YYYY-MM-DD).");
    workspace.catalog.ensure_table(&spec, &TableMeta::default().with_primary_key(["dt", "one_id"])).await?;
    let dt = as_of.format("%Y-%m-%d").to_string();
    workspace.lake().copy_into_partition(profiles, &profiles_daily_id(), DT, &dt).await?;
    Ok(())
}
