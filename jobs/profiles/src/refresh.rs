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

use cdplake_engine::SqlSession;
use chrono::{DateTime, Utc};

use cdplake_core::error::{JobError, Result};
use cdplake_core::stopwatch::Stopwatch;
use cdplake_core::workspace::Workspace;
use cdplake_zones::tables::{CUSTOMER_PROFILES, CUSTOMER_PROFILES_DAILY, ID_MAPPING};

use crate::quality;
use crate::report::{ProfilesReport, RefreshOptions};
use crate::touched::Scope;
use crate::watermarks::{self, Marks, Watermarks, days};
use crate::{candidate, country, events, ids, publish, scores, superseded, touched};

/// Refresh `curated.user_events`, `curated.customer_profiles` and the daily snapshot.
pub async fn refresh(workspace: &Workspace, options: &RefreshOptions, now: DateTime<Utc>) -> Result<ProfilesReport> {
    let lake = workspace.lake();
    lake.ensure_writable()?;
    if !lake.table_exists(&ID_MAPPING.id()).await? {
        return Err(JobError::not_found(
            "curated.id_mapping does not exist yet",
            "run `cdplake identity` before `cdplake profiles`",
        ));
    }
    let mut report = ProfilesReport { as_of: options.as_of.to_string(), ..Default::default() };
    let mut watch = Stopwatch::start("profiles");
    let session = SqlSession::new()?;
    country::register(&session);
    let mapping = lake.table(&ID_MAPPING.id()).await?;
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
    let label = CUSTOMER_PROFILES.id().to_string();
    superseded::check_not_superseded(workspace, &label, marks.read.map(|r| r.mapping), mapping_version).await?;
    let scope = if marks.full(options.full, &events) {
        Scope::Everyone
    } else {
        touched::find(workspace, &session, &marks, &events, &mapping).await?
    };
    report.full_rebuild = matches!(scope, Scope::Everyone);
    if matches!(scope, Scope::Unchanged) {
        // Nothing new since the last run: no gate to pass, nothing to commit.
        report.profiles =
            session.first_i64(&format!("SELECT count(*) FROM {CUSTOMER_PROFILES}")).await?.unwrap_or(0) as u64;
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

    gate(workspace, &session, options, mapping_version, &mut report, now).await?;
    watch.lap("quality rules checked");
    // A full publish replaces the table as it is then: a concurrent run that published from a
    // newer mapping meanwhile would be overwritten without a conflict, so look again first.
    check_published_not_newer(workspace, mapping_version).await?;
    let published = publish::publish(workspace, &session, &scope, &marks, &mut report).await?;
    watch.lap("customer_profiles written");
    let daily = match published {
        Some(table) => Some(table),
        None if !lake.table_exists(&CUSTOMER_PROFILES_DAILY.id()).await? => {
            Some(lake.table(&CUSTOMER_PROFILES.id()).await?)
        }
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

/// Fails as superseded when the profiles as published now were computed from a newer
/// id_mapping than this run's `mapping_version`.
async fn check_published_not_newer(workspace: &Workspace, mapping_version: i64) -> Result<()> {
    let read = watermarks::published_marks(workspace).await?.map(|m| m.mapping);
    superseded::check_not_superseded(workspace, &CUSTOMER_PROFILES.id().to_string(), read, mapping_version).await
}

/// Run the quality rules on the registered candidate; a failed rule blocks the publish (the
/// results are still recorded) unless `--force`. A run that a concurrent one superseded while it
/// computed fails as superseded instead: its row counts were compared with newer persons'.
async fn gate(
    workspace: &Workspace,
    session: &SqlSession,
    options: &RefreshOptions,
    mapping_version: i64,
    report: &mut ProfilesReport,
    now: DateTime<Utc>,
) -> Result<()> {
    report.quality = quality::check(workspace, session, &CUSTOMER_PROFILES.id(), scores::CANDIDATE).await?;
    if report.quality.iter().any(|q| !q.passed) && !options.force {
        check_published_not_newer(workspace, mapping_version).await?;
        quality::record(workspace, &report.quality, "profiles", now).await?;
        return Err(JobError::QualityGate {
            table: CUSTOMER_PROFILES.id().to_string(),
            failures: quality::describe_failures(&report.quality),
        });
    }
    Ok(())
}
