//! `cdplake report`: one self-contained HTML file a marketer opens (inline SVG, no script, no
//! network), with the charts seed 000 builds in its BI tool:
//!
//! * persons and profiles over time (persons by the month they were first seen, cumulative;
//!   profiles per daily snapshot);
//! * the RFM grid: recency score × frequency score, cell = persons, colour = average monetary;
//! * segment sizes and audience sizes, and their change since the previous as-of;
//! * lifecycle stages over time, from the daily snapshots;
//! * identity health: persons by number of identifiers, hubs and refused links
//!   ([`cdplake_identity::report::health`]);
//! * the quality gates' history (`_quality.results`).
//!
//! Charts are drawn with plotters' SVG backend ([`charts`]); this module reads the data (read-only)
//! and lays out the page. A chart without data still draws its axes and says so.

pub mod charts;

use std::collections::BTreeMap;

use cdplake_engine::arrow::array::RecordBatch;
use cdplake_engine::sql::quote_literal;
use cdplake_engine::{SqlSession, TableId};
use chrono::NaiveDate;

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
use cdplake_identity::report::IdentityHealth;
use cdplake_zones::tables::{
    AUDIENCE_PACKAGES, CUSTOMER_PROFILES_DAILY, ID_MAPPING, IDENTITY_CONFLICTS, IDENTITY_HUBS, QUALITY_RESULTS,
    SEGMENT_BITMAPS,
};
use charts::{Bars, Series};

/// One chart of the report.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Stable id (`rfm_grid`), the `id` of its section in the HTML.
    pub id: &'static str,
    pub title: String,
    /// What the chart shows, in a sentence.
    pub note: String,
    pub svg: String,
}

/// The rendered report.
#[derive(Debug, Clone)]
pub struct Report {
    pub as_of: String,
    pub html: String,
    pub charts: Vec<Chart>,
}

/// The columns `names` of a query's rows as text (None for null), in that order.
async fn text_rows<const N: usize>(
    session: &SqlSession,
    sql: &str,
    names: [&str; N],
) -> Result<Vec<[Option<String>; N]>> {
    let batches: Vec<RecordBatch> = session
        .rows(sql)
        .await
        .map_err(|e| JobError::Step { context: "report: reading the lake".into(), source: Box::new(e) })?;
    cdplake_core::columns::text_rows(&batches, "report: reading the lake: the query", names)
}

fn num(value: &Option<String>) -> f64 {
    value.as_deref().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "(none)".into())
}

fn days(date: &str) -> Option<f64> {
    let day = NaiveDate::parse_from_str(date.get(..10)?, "%Y-%m-%d").ok()?;
    Some((day - NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days() as f64)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The tables the report reads, registered in one session, and which of the optional ones exist.
struct ReportTables {
    session: SqlSession,
    segments: bool,
    packages: bool,
    quality: bool,
}

impl ReportTables {
    /// Register every table that exists; the daily profiles and the mapping must.
    async fn register(workspace: &Workspace) -> Result<Self> {
        let lake = workspace.lake();
        let session = SqlSession::new()?;
        let mut present: BTreeMap<&'static str, bool> = BTreeMap::new();
        let tables: [(&'static str, TableId); 7] = [
            ("daily", CUSTOMER_PROFILES_DAILY.id()),
            ("mapping", ID_MAPPING.id()),
            ("segments", SEGMENT_BITMAPS.id()),
            ("packages", AUDIENCE_PACKAGES.id()),
            ("quality", QUALITY_RESULTS.id()),
            ("hubs", IDENTITY_HUBS.id()),
            ("conflicts", IDENTITY_CONFLICTS.id()),
        ];
        for (name, id) in &tables {
            let exists = lake.table_exists(id).await?;
            if exists {
                session.register(lake, id).await?;
            }
            present.insert(name, exists);
        }
        if !present["daily"] || !present["mapping"] {
            return Err(JobError::not_found(
                "no profiles yet",
                "run `cdplake identity` and `cdplake profiles` before `cdplake report`",
            ));
        }
        Ok(Self { session, segments: present["segments"], packages: present["packages"], quality: present["quality"] })
    }
}

/// The daily snapshot the report is as of: `as_of` if there is one, else the latest.
async fn snapshot_date(session: &SqlSession, as_of: Option<NaiveDate>) -> Result<String> {
    let dates: Vec<String> =
        text_rows(session, &format!("SELECT DISTINCT dt FROM {CUSTOMER_PROFILES_DAILY} ORDER BY dt"), ["dt"])
            .await?
            .into_iter()
            .filter_map(|[dt]| dt)
            .collect();
    match as_of {
        Some(d) => {
            let d = d.format("%Y-%m-%d").to_string();
            if !dates.contains(&d) {
                return Err(JobError::not_found(
                    format!("no profiles snapshot for {d}"),
                    format!("the snapshots are {} (or run `cdplake profiles --as-of {d}`)", dates.join(", ")),
                ));
            }
            Ok(d)
        }
        None => dates
            .last()
            .cloned()
            .ok_or_else(|| JobError::not_found("no profiles snapshot yet", "run `cdplake profiles` first")),
    }
}

/// Build the report as of a daily-snapshot date (default: the latest).
pub async fn build_report(workspace: &Workspace, as_of: Option<NaiveDate>) -> Result<Report> {
    let tables = ReportTables::register(workspace).await?;
    let session = &tables.session;
    let as_of = snapshot_date(session, as_of).await?;
    let persons = persons_over_time(session, &as_of).await?;
    let rfm = rfm_grid(session, &as_of).await?;
    let segments = segment_sizes(&tables, &as_of).await?;
    let audiences = audience_sizes(&tables, &as_of).await?;
    let lifecycle = lifecycle_over_time(session).await?;
    let health = cdplake_identity::report::health(workspace, 10).await?;
    let identity_sizes = identity_sizes(&health)?;
    let identity_rules = identity_rules(&health)?;
    let quality = quality_history(&tables).await?;
    let figures = [
        ("persons", health.persons.to_string()),
        ("identifiers", health.active_identifiers.to_string()),
        ("profiles", persons.profiles_now.map(|n| (n as u64).to_string()).unwrap_or_default()),
        ("segments", segments.bars.to_string()),
        ("audiences", audiences.bars.to_string()),
        ("quality failures", quality.failed.to_string()),
    ];
    let charts = vec![
        persons.chart,
        rfm,
        segments.chart,
        audiences.chart,
        lifecycle,
        identity_sizes,
        identity_rules,
        quality.chart,
    ];
    let html = page(workspace, &as_of, &charts, &figures);
    Ok(Report { as_of, html, charts })
}

/// The persons-over-time chart and the profiles of the report's snapshot.
struct PersonsOverTime {
    chart: Chart,
    /// Profiles in the snapshot the report is as of.
    profiles_now: Option<f64>,
}

/// Persons by the month they were first seen (cumulative) and profiles per daily snapshot.
async fn persons_over_time(session: &SqlSession, as_of: &str) -> Result<PersonsOverTime> {
    let persons = text_rows(
        session,
        &format!(
            "SELECT CAST(date_trunc('month', f) AS DATE) AS m, count(*) AS persons FROM \
             (SELECT one_id, min(first_seen) AS f FROM {ID_MAPPING} WHERE is_active GROUP BY one_id) \
             GROUP BY 1 ORDER BY 1"
        ),
        ["m", "persons"],
    )
    .await?;
    let mut cumulative = 0.0;
    let persons_line: Vec<(f64, f64)> = persons
        .iter()
        .filter_map(|[month, persons]| {
            cumulative += num(persons);
            Some((days(month.as_deref()?)?, cumulative))
        })
        .collect();
    let profiles_per_dt = text_rows(
        session,
        &format!("SELECT dt, count(*) AS profiles FROM {CUSTOMER_PROFILES_DAILY} GROUP BY dt ORDER BY dt"),
        ["dt", "profiles"],
    )
    .await?;
    let profile_points: Vec<(f64, f64)> =
        profiles_per_dt.iter().filter_map(|[dt, profiles]| Some((days(dt.as_deref()?)?, num(profiles)))).collect();
    let chart = Chart {
        id: "persons_over_time",
        title: "Persons and profiles over time".into(),
        note: "Persons by the month their first identifier was seen (cumulative), and the profiles of each daily \
               snapshot."
            .into(),
        svg: charts::time_lines(
            "persons_over_time",
            &[
                Series { name: "persons (cumulative, by first seen)".into(), points: persons_line },
                Series { name: "profiles in the daily snapshot".into(), points: profile_points },
            ],
            "persons",
        )?,
    };
    let profiles_now = profiles_per_dt.iter().find(|[dt, _]| dt.as_deref() == Some(as_of)).map(|[_, n]| num(n));
    Ok(PersonsOverTime { chart, profiles_now })
}

/// Persons per recency × frequency score in the snapshot, coloured by average monetary value.
async fn rfm_grid(session: &SqlSession, as_of: &str) -> Result<Chart> {
    let dt = quote_literal(as_of);
    let cells = text_rows(
        session,
        &format!(
            "SELECT r_score, f_score, count(*) AS persons, avg(monetary) AS avg_monetary \
             FROM {CUSTOMER_PROFILES_DAILY} \
             WHERE dt = {dt} AND r_score IS NOT NULL AND f_score IS NOT NULL GROUP BY 1, 2"
        ),
        ["r_score", "f_score", "persons", "avg_monetary"],
    )
    .await?;
    let grid: Vec<(u32, u32, u64, f64)> = cells
        .iter()
        .map(|[r, f, persons, monetary]| (num(r) as u32, num(f) as u32, num(persons) as u64, num(monetary)))
        .collect();
    let unscored = text_rows(
        session,
        &format!("SELECT count(*) AS unscored FROM {CUSTOMER_PROFILES_DAILY} WHERE dt = {dt} AND r_score IS NULL"),
        ["unscored"],
    )
    .await?;
    Ok(Chart {
        id: "rfm_grid",
        title: format!("RFM grid as of {as_of}"),
        note: format!(
            "Persons per recency score (5 = bought most recently) and frequency score (5 = most purchase days); \
             the colour is the cell's average monetary value. {} persons without purchases are not scored.",
            unscored.first().map(|[n]| num(n) as u64).unwrap_or(0)
        ),
        svg: charts::rfm_grid("rfm_grid", &grid)?,
    })
}

/// A bar chart and how many bars it has.
struct BarChart {
    chart: Chart,
    bars: usize,
}

/// The segment sizes of the latest build up to the snapshot, and of the build before it.
#[derive(Default)]
struct SegmentBuilds {
    bars: Vec<Bars>,
    as_of: Option<String>,
    previous: Option<String>,
}

async fn segment_sizes(tables: &ReportTables, as_of: &str) -> Result<BarChart> {
    let builds = if tables.segments { segment_builds(&tables.session, as_of).await? } else { SegmentBuilds::default() };
    let chart = Chart {
        id: "segment_sizes",
        title: format!("Segment sizes{}", builds.as_of.as_deref().map(|d| format!(" as of {d}")).unwrap_or_default()),
        note: match (&builds.as_of, &builds.previous) {
            (Some(_), Some(p)) => format!("Persons per segment; the grey bar is the previous build ({p})."),
            (Some(_), None) => "Persons per segment (the first build: no change to show yet).".into(),
            _ => "No segments built yet: run `cdplake segments`.".into(),
        },
        svg: charts::bars("segment_sizes", &builds.bars, "persons")?,
    };
    Ok(BarChart { chart, bars: builds.bars.len() })
}

async fn segment_builds(session: &SqlSession, as_of: &str) -> Result<SegmentBuilds> {
    let built: Vec<String> = text_rows(
        session,
        &format!(
            "SELECT DISTINCT as_of FROM {SEGMENT_BITMAPS} WHERE as_of <= {} ORDER BY as_of DESC LIMIT 2",
            quote_literal(as_of)
        ),
        ["as_of"],
    )
    .await?
    .into_iter()
    .filter_map(|[as_of]| as_of)
    .collect();
    let now = segment_sizes_at(session, built.first()).await?;
    let before = segment_sizes_at(session, built.get(1)).await?;
    Ok(SegmentBuilds {
        bars: bars_with_change(&now, &before),
        as_of: built.first().cloned(),
        previous: built.get(1).cloned(),
    })
}

/// Persons per segment tag in the build of `date` (none without a date).
async fn segment_sizes_at(session: &SqlSession, date: Option<&String>) -> Result<BTreeMap<String, f64>> {
    let Some(date) = date else { return Ok(BTreeMap::new()) };
    let rows = text_rows(
        session,
        &format!("SELECT segment_tag, cardinality FROM {SEGMENT_BITMAPS} WHERE as_of = {}", quote_literal(date)),
        ["segment_tag", "cardinality"],
    )
    .await?;
    Ok(rows.iter().map(|[tag, persons]| (text(tag), num(persons))).collect())
}

/// Members of each audience's latest build up to the snapshot, and of its build before.
async fn audience_sizes(tables: &ReportTables, as_of: &str) -> Result<BarChart> {
    let (bars, note) = if tables.packages {
        (
            audience_bars(&tables.session, as_of).await?,
            "Members of each audience's latest build; the grey bar is its previous build.",
        )
    } else {
        (Vec::new(), "No audiences built yet: run `cdplake audience build NAME --expr ...`.")
    };
    let chart = Chart {
        id: "audience_sizes",
        title: "Audience sizes".into(),
        note: note.into(),
        svg: charts::bars("audience_sizes", &bars, "members")?,
    };
    Ok(BarChart { chart, bars: bars.len() })
}

async fn audience_bars(session: &SqlSession, as_of: &str) -> Result<Vec<Bars>> {
    let rows = text_rows(
        session,
        &format!(
            "SELECT package_name, as_of, count(*) AS members FROM {AUDIENCE_PACKAGES} WHERE as_of <= {} \
             GROUP BY 1, 2 ORDER BY 1, 2",
            quote_literal(as_of)
        ),
        ["package_name", "as_of", "members"],
    )
    .await?;
    let mut by_package: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for [package, built, members] in &rows {
        by_package.entry(text(package)).or_default().push((text(built), num(members)));
    }
    let now: BTreeMap<String, f64> = by_package.iter().filter_map(|(k, v)| Some((k.clone(), v.last()?.1))).collect();
    let before: BTreeMap<String, f64> = by_package
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.len().checked_sub(2).and_then(|i| v.get(i))?.1)))
        .collect();
    Ok(bars_with_change(&now, &before))
}

/// Persons per lifecycle stage in each daily snapshot.
async fn lifecycle_over_time(session: &SqlSession) -> Result<Chart> {
    let stages = text_rows(
        session,
        &format!(
            "SELECT dt, coalesce(lifecycle_stage, '(none)') AS stage, count(*) AS persons \
             FROM {CUSTOMER_PROFILES_DAILY} GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        ["dt", "stage", "persons"],
    )
    .await?;
    let mut by_stage: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for [dt, stage, persons] in &stages {
        if let Some(d) = dt.as_deref().and_then(days) {
            by_stage.entry(text(stage)).or_default().push((d, num(persons)));
        }
    }
    Ok(Chart {
        id: "lifecycle_over_time",
        title: "Lifecycle stages over time".into(),
        note: format!("Persons per lifecycle stage in each daily snapshot ({CUSTOMER_PROFILES_DAILY})."),
        svg: charts::time_lines(
            "lifecycle_over_time",
            &by_stage.into_iter().map(|(name, points)| Series { name, points }).collect::<Vec<_>>(),
            "persons",
        )?,
    })
}

/// Persons by how many identifiers they hold.
fn identity_sizes(health: &IdentityHealth) -> Result<Chart> {
    let size_bars: Vec<Bars> = health
        .persons_by_size
        .iter()
        .map(|b| Bars { label: format!("{} ids", b.identifiers), now: b.persons as f64, before: None })
        .collect();
    Ok(Chart {
        id: "identity_sizes",
        title: "Identity: persons by number of identifiers".into(),
        note: format!(
            "{} persons hold {} active identifiers. A person with dozens of identifiers is usually strangers glued \
             together: `cdplake identity report` lists the largest.",
            health.persons, health.active_identifiers
        ),
        svg: charts::bars("identity_sizes", &size_bars, "persons")?,
    })
}

/// Hub identifiers, links refused per type and rows skipped per placeholder rule.
fn identity_rules(health: &IdentityHealth) -> Result<Chart> {
    let mut rule_bars = vec![Bars { label: "hub identifiers".into(), now: health.hubs as f64, before: None }];
    rule_bars.extend(health.refused_by_type.iter().map(|(t, n)| Bars {
        label: format!("refused links ({t})"),
        now: *n as f64,
        before: None,
    }));
    if health.refused_by_type.is_empty() {
        rule_bars.push(Bars { label: "refused links".into(), now: 0.0, before: None });
    }
    rule_bars.extend(health.skipped_rows_by_rule.iter().map(|(r, n)| Bars {
        label: format!("skipped: {r}"),
        now: *n as f64,
        before: None,
    }));
    Ok(Chart {
        id: "identity_rules",
        title: "Identity: hubs, refused links, skipped values".into(),
        note: "Identifiers kept from linking because they are linked to more values than one person may hold (hubs), \
               links refused by a per-type limit, and rows whose identifier a placeholder rule skipped."
            .into(),
        svg: charts::bars("identity_rules", &rule_bars, "count")?,
    })
}

/// The quality-history chart and how many checks failed.
struct QualityHistory {
    chart: Chart,
    failed: usize,
}

/// Every quality check run before profiles were published, passed or failed.
async fn quality_history(tables: &ReportTables) -> Result<QualityHistory> {
    let quality = if tables.quality {
        text_rows(
            &tables.session,
            &format!(
                "SELECT concat(\"table\", ' ', rule) AS rule_name, CAST(at AS VARCHAR) AS at_text, passed, value, threshold \
                 FROM {QUALITY_RESULTS} ORDER BY at"
            ),
            ["rule_name", "at_text", "passed", "value", "threshold"],
        )
        .await?
    } else {
        Vec::new()
    };
    let runs: Vec<charts::Check> =
        quality.iter().filter_map(|[rule, at, passed, _, _]| quality_check(rule, at.as_deref()?, passed)).collect();
    let failed = runs.iter().filter(|c| !c.passed).count();
    let chart = Chart {
        id: "quality_history",
        title: "Quality gates' history".into(),
        note: format!(
            "Each rule checked before profiles were published: green passed, red failed (the previous version was \
             kept). {} checks, {failed} failed.",
            runs.len()
        ),
        svg: charts::quality("quality_history", &runs)?,
    };
    Ok(QualityHistory { chart, failed })
}

/// One check of `_quality.results`; None when its time does not parse.
fn quality_check(rule: &Option<String>, at: &str, passed: &Option<String>) -> Option<charts::Check> {
    let at = chrono::DateTime::parse_from_rfc3339(&at.replace(' ', "T")).ok().map(|t| t.timestamp() as f64).or_else(
        || {
            chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| t.and_utc().timestamp() as f64)
        },
    )?;
    Some(charts::Check { rule: text(rule), at, passed: passed.as_deref() == Some("true") })
}

/// Bars for the keys of `now`, largest first, with the previous value where there was one.
fn bars_with_change(now: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> Vec<Bars> {
    let mut bars: Vec<Bars> = now
        .iter()
        .map(|(label, n)| Bars { label: label.clone(), now: *n, before: before.get(label).copied() })
        .collect();
    bars.sort_by(|a, b| b.now.total_cmp(&a.now).then_with(|| a.label.cmp(&b.label)));
    bars
}

fn page(workspace: &Workspace, as_of: &str, charts: &[Chart], figures: &[(&str, String)]) -> String {
    let mut html = String::with_capacity(charts.iter().map(|c| c.svg.len()).sum::<usize>() + 8192);
    html.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>cdplake report as of {as_of}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222;background:#fff;max-width:1000px}}\
         h1{{font-size:24px;margin:0 0 4px}} .lake{{color:#666;font-size:13px;margin-bottom:16px}}\
         .figures{{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0 20px}}\
         .figure{{border:1px solid #ddd;border-radius:6px;padding:8px 14px}}\
         .figure b{{display:block;font-size:20px}} .figure span{{color:#666;font-size:12px}}\
         section.chart{{margin:0 0 28px}} section.chart h2{{font-size:18px;margin:0 0 4px}}\
         section.chart p{{color:#555;font-size:13px;margin:0 0 8px}} svg{{display:block}}\
         </style></head><body>\n<h1>Customer data as of {as_of}</h1>\n<div class=\"lake\">lake {} · \
         generated by cdplake report</div>\n<div class=\"figures\">",
        escape(&workspace.lake().location().root().to_string())
    ));
    for (name, value) in figures {
        html.push_str(&format!("<div class=\"figure\"><b>{}</b><span>{}</span></div>", escape(value), escape(name)));
    }
    html.push_str("</div>\n");
    for chart in charts {
        html.push_str(&format!(
            "<section class=\"chart\" id=\"{0}\" data-chart=\"{0}\"><h2>{1}</h2><p>{2}</p>\n{3}\n</section>\n",
            chart.id,
            escape(&chart.title),
            escape(&chart.note),
            chart.svg
        ));
    }
    html.push_str("</body></html>\n");
    html
}
