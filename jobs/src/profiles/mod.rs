//! `cdplake profiles`: unified events and the customer 360 profile, refreshed incrementally.
//!
//! A refresh runs one sequence of phases, the same for a full build and an incremental one:
//!
//! 0. Events ([`events::update`]): clean rows of batches not seen yet, and clean rows carrying
//!    an identifier whose person changed in `curated.id_mapping` since the last run, are mapped
//!    and resolved, then MERGEd into `curated.user_events` by (source, event_key); an updated
//!    row keeps the one_id it had in `previous_one_id`.
//! 1. Watermarks ([`watermarks::Watermarks`]): what the published profiles read and what is
//!    there now. A new as-of date, `--full` or remapped events make the build a full one.
//! 2. Persons ([`touched::Scope`]): everyone, or the one_ids (old and new) of the event rows
//!    written since the profiles last read them, of identifiers that changed person, and of
//!    new CRM rows; none when nothing was read since (the run then commits nothing).
//! 3. Candidate rows ([`candidate::compute`]): those persons' profiles ([`build::ProfileSql`]).
//! 4. Scores ([`scores::rank`]): the r/f/m quintiles ranked over everyone; the candidate is the
//!    kept rows, the kept rows whose scores moved, and the recomputed rows. The result equals a
//!    full rebuild (`--full`), row for row.
//! 5. Publish ([`publish`]): the quality gates check the candidate; then one commit replaces
//!    (full) or MERGEs into (incremental) `curated.customer_profiles`, a merge's absorbed one_id
//!    losing its row, and the as-of date's partition of `curated.customer_profiles_daily` is
//!    replaced.
//!
//! Watermarks are Delta application transactions in the commits of the outputs, so a blocked
//! or failed run leaves them unmoved and the next run redoes its work.

pub mod build;
pub mod candidate;
pub mod config;
pub mod country;
pub mod events;
pub mod ids;
pub mod publish;
pub mod scores;
pub mod touched;
pub mod validate;
pub mod watermarks;

use cdplake_engine::{EngineError, SqlSession, TableId};
use cdplake_zones::contract::Contract;
use cdplake_zones::{Source, curated};
use chrono::{DateTime, NaiveDate, Utc};

use crate::clean::clean_table_id;
use crate::error::{JobError, Result};
use crate::quality::{self, QualityResult};
use crate::stopwatch::Stopwatch;
use crate::workspace::Workspace;
use touched::Scope;
use watermarks::{Marks, Watermarks, days};

pub use watermarks::AS_OF_TXN;

pub fn profiles_id() -> TableId {
    TableId::new("curated", "customer_profiles").expect("static name is valid")
}

pub fn profiles_daily_id() -> TableId {
    TableId::new("curated", "customer_profiles_daily").expect("static name is valid")
}

/// The daily snapshot's partition column: the as-of date as `YYYY-MM-DD` (seed 000's `dt`).
pub const DT: &str = "dt";

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
    country::register(&session);
    let mapping = lake.table(&curated::id_mapping_id()).await?;
    let mapping_version = mapping.version().unwrap_or(0) as i64;
    ids::register_identifiers(workspace, &session, &mapping).await?;
    watch.lap("identifiers loaded");

    let events = events::update(workspace, &session, &mapping, mapping_version, options.full).await?;
    (report.events_written, report.anonymous_events_written) = (events.written, events.anonymous);
    watch.lap("user_events written");

    let current = Marks {
        events_seq: events::max_refresh_seq(&session).await?,
        mapping: mapping_version,
        as_of: days(options.as_of),
    };
    let marks = Watermarks::read(workspace, &session, current).await?;
    let scope = if marks.full(options.full, &events) {
        Scope::Everyone
    } else {
        touched::find(workspace, &session, &marks, &events, &mapping).await?
    };
    report.full_rebuild = matches!(scope, Scope::Everyone);
    if matches!(scope, Scope::Unchanged) {
        // Nothing new since the last run: no gate to pass, nothing to commit.
        report.profiles =
            session.first_i64("SELECT count(*) FROM curated.customer_profiles").await?.unwrap_or(0) as u64;
        return Ok(report);
    }
    watch.lap("persons to compute found");

    let computed = candidate::compute(&session, &workspace.config, options.as_of, &scope, &marks).await?;
    report.persons_touched = scope.count().unwrap_or(computed);
    watch.lap("profiles computed");
    scores::rank(&session, &scope).await?;
    report.profiles =
        session.first_i64(&format!("SELECT count(*) FROM {}", scores::CANDIDATE)).await?.unwrap_or(0) as u64;
    watch.lap("scores ranked");

    gate(workspace, &session, options, &mut report, now).await?;
    watch.lap("quality rules checked");
    let published = publish::publish(workspace, &session, &scope, &marks, &mut report).await?;
    watch.lap("customer_profiles written");
    let daily = match published {
        Some(table) => Some(table),
        None if !lake.table_exists(&profiles_daily_id()).await? => Some(lake.table(&profiles_id()).await?),
        None => None,
    };
    if let Some(profiles) = daily {
        publish::write_daily(workspace, &profiles, options.as_of).await?;
        watch.lap("daily snapshot written");
    }
    quality::record(workspace, &report.quality, "profiles", now).await?;
    report.published = true;
    Ok(report)
}

/// Run the quality rules on the registered candidate; a failed rule blocks the publish (the
/// results are still recorded) unless `--force`.
async fn gate(
    workspace: &Workspace,
    session: &SqlSession,
    options: &RefreshOptions,
    report: &mut ProfilesReport,
    now: DateTime<Utc>,
) -> Result<()> {
    report.quality = quality::check(workspace, session, &profiles_id(), scores::CANDIDATE).await?;
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

/// Register `clean.<source>`, or an empty stand-in with its contract's schema when the source
/// has no clean table yet (so every profile column keeps its type). Returns whether it exists.
async fn register_clean(workspace: &Workspace, session: &SqlSession, source: &Source) -> Result<bool> {
    let id = clean_table_id(source);
    if let Some(table) = workspace.lake().table_if_exists(&id).await? {
        session.register_loaded(id.zone(), id.name(), &table).await?;
        return Ok(true);
    }
    let schema = Contract::new(source, None).clean_schema();
    session.register_rows(&id.to_string(), schema, Vec::new())?;
    Ok(false)
}
