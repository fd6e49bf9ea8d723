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

use cdplake_engine::arrow::array::{Array, AsArray, RecordBatch};
use cdplake_engine::arrow::compute::cast;
use cdplake_engine::arrow::datatypes::DataType;
use cdplake_engine::sql::quote_literal;
use cdplake_engine::{SqlSession, TableId};
use chrono::NaiveDate;

use cdplake_core::error::{JobError, Result};
use cdplake_core::workspace::Workspace;
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

/// Every column of a query's rows as text (None for null).
async fn text_rows(session: &SqlSession, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let batches: Vec<RecordBatch> = session
        .rows(sql)
        .await
        .map_err(|e| JobError::Step { context: "report: reading the lake".into(), source: Box::new(e) })?;
    let mut rows = Vec::new();
    for b in &batches {
        let columns = b
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| JobError::arrow("report: reading the lake", e))?;
        for r in 0..b.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| if c.is_null(r) { None } else { Some(c.as_string::<i32>().value(r).to_string()) })
                    .collect(),
            );
        }
    }
    Ok(rows)
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

/// Build the report as of a daily-snapshot date (default: the latest).
pub async fn build_report(workspace: &Workspace, as_of: Option<NaiveDate>) -> Result<Report> {
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
        return Err(JobError::NotFound(
            "no profiles yet: run `cdplake identity` and `cdplake profiles` before `cdplake report`".into(),
        ));
    }
    let dates: Vec<String> = text_rows(&session, "SELECT DISTINCT dt FROM curated.customer_profiles_daily ORDER BY dt")
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    let as_of = match as_of {
        Some(d) => {
            let d = d.format("%Y-%m-%d").to_string();
            if !dates.contains(&d) {
                return Err(JobError::NotFound(format!(
                    "no profiles snapshot for {d}; the snapshots are {} (or run `cdplake profiles --as-of {d}`)",
                    dates.join(", ")
                )));
            }
            d
        }
        None => dates.last().cloned().ok_or_else(|| JobError::NotFound("no profiles snapshot yet".into()))?,
    };
    let dt = quote_literal(&as_of);
    let mut charts = Vec::new();

    // Persons and profiles over time.
    let persons = text_rows(
        &session,
        "SELECT CAST(date_trunc('month', f) AS DATE) AS m, count(*) FROM \
         (SELECT one_id, min(first_seen) AS f FROM curated.id_mapping WHERE is_active GROUP BY one_id) \
         GROUP BY 1 ORDER BY 1",
    )
    .await?;
    let mut cumulative = 0.0;
    let persons_line: Vec<(f64, f64)> = persons
        .iter()
        .filter_map(|r| {
            cumulative += num(&r[1]);
            Some((days(r[0].as_deref()?)?, cumulative))
        })
        .collect();
    let profiles_per_dt =
        text_rows(&session, "SELECT dt, count(*) FROM curated.customer_profiles_daily GROUP BY dt ORDER BY dt").await?;
    let profile_points: Vec<(f64, f64)> =
        profiles_per_dt.iter().filter_map(|r| Some((days(r[0].as_deref()?)?, num(&r[1])))).collect();
    charts.push(Chart {
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
    });

    // RFM grid.
    let cells = text_rows(
        &session,
        &format!(
            "SELECT r_score, f_score, count(*), avg(monetary) FROM curated.customer_profiles_daily \
             WHERE dt = {dt} AND r_score IS NOT NULL AND f_score IS NOT NULL GROUP BY 1, 2"
        ),
    )
    .await?;
    let grid: Vec<(u32, u32, u64, f64)> =
        cells.iter().map(|r| (num(&r[0]) as u32, num(&r[1]) as u32, num(&r[2]) as u64, num(&r[3]))).collect();
    let unscored = text_rows(
        &session,
        &format!("SELECT count(*) FROM curated.customer_profiles_daily WHERE dt = {dt} AND r_score IS NULL"),
    )
    .await?;
    charts.push(Chart {
        id: "rfm_grid",
        title: format!("RFM grid as of {as_of}"),
        note: format!(
            "Persons per recency score (5 = bought most recently) and frequency score (5 = most purchase days); \
             the colour is the cell's average monetary value. {} persons without purchases are not scored.",
            unscored.first().map(|r| num(&r[0]) as u64).unwrap_or(0)
        ),
        svg: charts::rfm_grid("rfm_grid", &grid)?,
    });

    // Segments and audiences: sizes now and at the previous as-of.
    let (segment_bars, segments_as_of, segments_previous) = if present["segments"] {
        let built: Vec<String> = text_rows(
            &session,
            &format!(
                "SELECT DISTINCT as_of FROM curated.segment_bitmaps WHERE as_of <= {dt} ORDER BY as_of DESC LIMIT 2"
            ),
        )
        .await?
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
        let size_at = |date: Option<&String>| {
            let session = session.clone();
            let date = date.cloned();
            async move {
                let Some(date) = date else { return Ok(BTreeMap::new()) };
                let rows = text_rows(
                    &session,
                    &format!(
                        "SELECT segment_tag, cardinality FROM curated.segment_bitmaps WHERE as_of = {}",
                        quote_literal(&date)
                    ),
                )
                .await?;
                Ok::<_, JobError>(rows.iter().map(|r| (text(&r[0]), num(&r[1]))).collect::<BTreeMap<_, _>>())
            }
        };
        let now = size_at(built.first()).await?;
        let before = size_at(built.get(1)).await?;
        (bars_with_change(&now, &before), built.first().cloned(), built.get(1).cloned())
    } else {
        (Vec::new(), None, None)
    };
    charts.push(Chart {
        id: "segment_sizes",
        title: format!("Segment sizes{}", segments_as_of.as_deref().map(|d| format!(" as of {d}")).unwrap_or_default()),
        note: match (&segments_as_of, &segments_previous) {
            (Some(_), Some(p)) => format!("Persons per segment; the grey bar is the previous build ({p})."),
            (Some(_), None) => "Persons per segment (the first build: no change to show yet).".into(),
            _ => "No segments built yet: run `cdplake segments`.".into(),
        },
        svg: charts::bars("segment_sizes", &segment_bars, "persons")?,
    });
    let (audience_bars, audience_note) = if present["packages"] {
        let rows = text_rows(
            &session,
            &format!(
                "SELECT package_name, as_of, count(*) FROM curated.audience_packages WHERE as_of <= {dt} \
                 GROUP BY 1, 2 ORDER BY 1, 2"
            ),
        )
        .await?;
        let mut by_package: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        for r in &rows {
            by_package.entry(text(&r[0])).or_default().push((text(&r[1]), num(&r[2])));
        }
        let now: BTreeMap<String, f64> =
            by_package.iter().filter_map(|(k, v)| Some((k.clone(), v.last()?.1))).collect();
        let before: BTreeMap<String, f64> = by_package
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.len().checked_sub(2).and_then(|i| v.get(i))?.1)))
            .collect();
        (
            bars_with_change(&now, &before),
            "Members of each audience's latest build; the grey bar is its previous build.",
        )
    } else {
        (Vec::new(), "No audiences built yet: run `cdplake audience build NAME --expr ...`.")
    };
    charts.push(Chart {
        id: "audience_sizes",
        title: "Audience sizes".into(),
        note: audience_note.into(),
        svg: charts::bars("audience_sizes", &audience_bars, "members")?,
    });

    // Lifecycle stages over time.
    let stages = text_rows(
        &session,
        "SELECT dt, coalesce(lifecycle_stage, '(none)'), count(*) FROM curated.customer_profiles_daily \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .await?;
    let mut by_stage: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for r in &stages {
        if let Some(d) = r[0].as_deref().and_then(days) {
            by_stage.entry(text(&r[1])).or_default().push((d, num(&r[2])));
        }
    }
    charts.push(Chart {
        id: "lifecycle_over_time",
        title: "Lifecycle stages over time".into(),
        note: "Persons per lifecycle stage in each daily snapshot (curated.customer_profiles_daily).".into(),
        svg: charts::time_lines(
            "lifecycle_over_time",
            &by_stage.into_iter().map(|(name, points)| Series { name, points }).collect::<Vec<_>>(),
            "persons",
        )?,
    });

    // Identity health.
    let health = cdplake_identity::report::health(workspace, 10).await?;
    let size_bars: Vec<Bars> = health
        .persons_by_size
        .iter()
        .map(|b| Bars { label: format!("{} ids", b.identifiers), now: b.persons as f64, before: None })
        .collect();
    charts.push(Chart {
        id: "identity_sizes",
        title: "Identity: persons by number of identifiers".into(),
        note: format!(
            "{} persons hold {} active identifiers. A person with dozens of identifiers is usually strangers glued \
             together: `cdplake identity report` lists the largest.",
            health.persons, health.active_identifiers
        ),
        svg: charts::bars("identity_sizes", &size_bars, "persons")?,
    });
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
    charts.push(Chart {
        id: "identity_rules",
        title: "Identity: hubs, refused links, skipped values".into(),
        note: "Identifiers kept from linking because they are linked to more values than one person may hold (hubs), \
               links refused by a per-type limit, and rows whose identifier a placeholder rule skipped."
            .into(),
        svg: charts::bars("identity_rules", &rule_bars, "count")?,
    });

    // Quality gates' history.
    let quality = if present["quality"] {
        text_rows(
            &session,
            "SELECT concat(\"table\", ' ', rule) AS rule_name, CAST(at AS VARCHAR) AS at_text, passed, value, threshold \
             FROM _quality.results ORDER BY at",
        )
        .await?
    } else {
        Vec::new()
    };
    let runs: Vec<charts::Check> = quality
        .iter()
        .filter_map(|r| {
            Some(charts::Check {
                rule: text(&r[0]),
                at: chrono::DateTime::parse_from_rfc3339(&r[1].as_deref()?.replace(' ', "T"))
                    .ok()
                    .map(|t| t.timestamp() as f64)
                    .or_else(|| {
                        chrono::NaiveDateTime::parse_from_str(r[1].as_deref()?, "%Y-%m-%dT%H:%M:%S%.f")
                            .ok()
                            .map(|t| t.and_utc().timestamp() as f64)
                    })?,
                passed: r[2].as_deref() == Some("true"),
            })
        })
        .collect();
    let failed = runs.iter().filter(|c| !c.passed).count();
    charts.push(Chart {
        id: "quality_history",
        title: "Quality gates' history".into(),
        note: format!(
            "Each rule checked before profiles were published: green passed, red failed (the previous version was \
             kept). {} checks, {failed} failed.",
            runs.len()
        ),
        svg: charts::quality("quality_history", &runs)?,
    });

    let profiles_now = profiles_per_dt.iter().find(|r| r[0].as_deref() == Some(as_of.as_str())).map(|r| num(&r[1]));
    let html = page(
        workspace,
        &as_of,
        &charts,
        &[
            ("persons", health.persons.to_string()),
            ("identifiers", health.active_identifiers.to_string()),
            ("profiles", profiles_now.map(|n| (n as u64).to_string()).unwrap_or_default()),
            ("segments", segment_bars.len().to_string()),
            ("audiences", audience_bars.len().to_string()),
            ("quality failures", failed.to_string()),
        ],
    );
    Ok(Report { as_of, html, charts })
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
