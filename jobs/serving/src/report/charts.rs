//! The report's charts, drawn with plotters' SVG backend: each function returns one `<svg>`.
//! Empty data still gives a chart (axes and a "no data" note), never a blank area.

use plotters::coord::Shift;
use plotters::prelude::*;

use cdplake_core::error::{JobError, Result};

pub const WIDTH: u32 = 900;
const HEIGHT: u32 = 380;
const FONT: &str = "sans-serif";

/// A named line of (x, y) points; x in days since 1970-01-01.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One bar (and the previous value of the same thing, drawn grey behind it).
#[derive(Debug, Clone)]
pub struct Bars {
    pub label: String,
    pub now: f64,
    pub before: Option<f64>,
}

/// One quality rule checked once.
#[derive(Debug, Clone)]
pub struct Check {
    pub rule: String,
    /// Seconds since the epoch.
    pub at: f64,
    pub passed: bool,
}

fn fail<E: std::fmt::Debug>(chart: &'static str) -> impl Fn(E) -> JobError {
    move |e| JobError::encoding(format!("report chart {chart}"), format!("{e:?}"))
}

fn date_label(days: f64) -> String {
    chrono::NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|d| d.checked_add_signed(chrono::Duration::days(days.round() as i64)))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn no_data(area: &DrawingArea<SVGBackend, Shift>, message: &str, chart: &'static str) -> Result<()> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        message.to_string(),
        (w as i32 / 2 - 4 * message.len() as i32, h as i32 / 2),
        (FONT, 16).into_font().color(&RGBColor(120, 120, 120)),
    ))
    .map_err(fail(chart))
}

fn colour(i: usize) -> RGBColor {
    const COLOURS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    COLOURS[i % COLOURS.len()]
}

/// Lines over time (x: days since the epoch), with a marker on every point and a legend.
pub fn time_lines(chart: &'static str, series: &[Series], y_desc: &str) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(fail(chart))?;
        let points = series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, 0f64);
        for (x, y) in points {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y1 = y1.max(*y);
        }
        let empty = x0 > x1;
        if empty {
            (x0, x1, y1) = (0.0, 30.0, 1.0);
        }
        let pad = ((x1 - x0) * 0.05).max(15.0);
        let mut plot = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d((x0 - pad)..(x1 + pad), 0f64..(y1 * 1.12).max(1.0))
            .map_err(fail(chart))?;
        plot.configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .x_label_formatter(&|x| date_label(*x))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .y_desc(y_desc)
            .label_style((FONT, 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(fail(chart))?;
        if empty {
            no_data(&root, "no data yet", chart)?;
        }
        for (i, s) in series.iter().enumerate().filter(|(_, s)| !s.points.is_empty()) {
            let c = colour(i);
            plot.draw_series(LineSeries::new(s.points.iter().copied(), c.stroke_width(2)))
                .map_err(fail(chart))?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
            plot.draw_series(s.points.iter().map(|p| Circle::new(*p, 4, c.filled()))).map_err(fail(chart))?;
        }
        if !empty {
            plot.configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .label_font((FONT, 12))
                .draw()
                .map_err(fail(chart))?;
        }
        root.present().map_err(fail(chart))?;
    }
    Ok(svg)
}

/// A 5 × 5 grid: x = recency score, y = frequency score; each cell's colour is its average
/// monetary (light = low, dark = high), its text the persons in it.
pub fn rfm_grid(chart: &'static str, cells: &[(u32, u32, u64, f64)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 460)).into_drawing_area();
        root.fill(&WHITE).map_err(fail(chart))?;
        let (grid_area, legend_area) = root.split_horizontally(700);
        let mut plot = ChartBuilder::on(&grid_area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0.5f64..5.5f64, 0.5f64..5.5f64)
            .map_err(fail(chart))?;
        plot.configure_mesh()
            .disable_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|x| format!("R{:.0}", x))
            .y_label_formatter(&|y| format!("F{:.0}", y))
            .x_desc("recency score (5 = most recent)")
            .y_desc("frequency score")
            .label_style((FONT, 12))
            .draw()
            .map_err(fail(chart))?;
        let (low, high) = cells.iter().fold((f64::MAX, f64::MIN), |(lo, hi), c| (lo.min(c.3), hi.max(c.3)));
        let shade = |m: f64| -> RGBColor {
            let t = if high > low { ((m - low) / (high - low)).clamp(0.0, 1.0) } else { 0.5 };
            let mix = |a: f64, b: f64| (a + (b - a) * t) as u8;
            RGBColor(mix(255.0, 8.0), mix(245.0, 48.0), mix(200.0, 107.0))
        };
        // Empty cells are drawn too, so the grid is always whole.
        for r in 1..=5u32 {
            for f in 1..=5u32 {
                let cell = cells.iter().find(|c| c.0 == r && c.1 == f);
                let fill = cell.map(|c| shade(c.3)).unwrap_or(RGBColor(245, 245, 245));
                let (x, y) = (r as f64, f as f64);
                plot.draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.48, y - 0.48), (x + 0.48, y + 0.48)],
                    fill.filled(),
                )))
                .map_err(fail(chart))?;
                let persons = cell.map(|c| c.2).unwrap_or(0);
                let dark = cell.is_some_and(|c| high > low && (c.3 - low) / (high - low) > 0.55);
                let ink = if dark { WHITE } else { BLACK };
                plot.draw_series(std::iter::once(Text::new(
                    format!("{persons}"),
                    (x - 0.08, y + 0.05),
                    (FONT, 15).into_font().color(&ink),
                )))
                .map_err(fail(chart))?;
            }
        }
        // Colour legend: low to high average monetary.
        let (w, _) = legend_area.dim_in_pixel();
        for i in 0..100 {
            let t = i as f64 / 99.0;
            let m = low + (high - low).max(0.0) * t;
            let y = 380 - (i * 3) as i32;
            legend_area
                .draw(&Rectangle::new([(40, y), (70, y + 3)], shade(if cells.is_empty() { 0.0 } else { m }).filled()))
                .map_err(fail(chart))?;
        }
        let label = |v: f64| if cells.is_empty() { "-".to_string() } else { format!("{v:.0}") };
        legend_area
            .draw(&Text::new(format!("avg monetary {}", label(high)), (10, 58), (FONT, 12)))
            .map_err(fail(chart))?;
        legend_area.draw(&Text::new(label(low), (78, 376), (FONT, 12))).map_err(fail(chart))?;
        let _ = w;
        if cells.is_empty() {
            no_data(&grid_area, "no scored persons yet", chart)?;
        }
        root.present().map_err(fail(chart))?;
    }
    Ok(svg)
}

/// Horizontal bars, largest first, with the previous value as a grey bar behind and the change
/// in the label.
pub fn bars(chart: &'static str, bars: &[Bars], x_desc: &str) -> Result<String> {
    let mut svg = String::new();
    let rows = bars.len().max(1);
    let height = (70 + 26 * rows as u32).max(220);
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(fail(chart))?;
        let max = bars.iter().map(|b| b.now.max(b.before.unwrap_or(0.0))).fold(0f64, f64::max).max(1.0);
        let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
        let mut plot = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(210)
            .build_cartesian_2d(0f64..max * 1.25, -0.5f64..(rows as f64 - 0.5))
            .map_err(fail(chart))?;
        plot.configure_mesh()
            .disable_y_mesh()
            .y_labels(rows)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() > 0.01 || i < 0.0 {
                    return String::new();
                }
                labels.get(rows - 1 - i as usize).cloned().unwrap_or_default()
            })
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc(x_desc)
            .label_style((FONT, 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(fail(chart))?;
        if bars.is_empty() {
            no_data(&root, "nothing built yet", chart)?;
        }
        for (i, b) in bars.iter().enumerate() {
            let y = (rows - 1 - i) as f64;
            if let Some(before) = b.before {
                plot.draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y - 0.4), (before, y + 0.4)],
                    RGBColor(200, 200, 200).filled(),
                )))
                .map_err(fail(chart))?;
            }
            plot.draw_series(std::iter::once(Rectangle::new([(0.0, y - 0.25), (b.now, y + 0.25)], colour(0).filled())))
                .map_err(fail(chart))?;
            let change = match b.before {
                Some(before) if b.now >= before => format!(" (+{:.0})", b.now - before),
                Some(before) => format!(" (−{:.0})", before - b.now),
                None => String::new(),
            };
            plot.draw_series(std::iter::once(Text::new(
                format!("{:.0}{change}", b.now),
                (b.now.max(b.before.unwrap_or(0.0)) + max * 0.01, y + 0.2),
                (FONT, 12),
            )))
            .map_err(fail(chart))?;
        }
        root.present().map_err(fail(chart))?;
    }
    Ok(svg)
}

/// One row per rule, one mark per check over time: a green dot passed, a red cross failed.
pub fn quality(chart: &'static str, checks: &[Check]) -> Result<String> {
    let mut rules: Vec<String> = checks.iter().map(|c| c.rule.clone()).collect();
    rules.sort();
    rules.dedup();
    let rows = rules.len().max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, (80 + 40 * rows as u32).max(220))).into_drawing_area();
        root.fill(&WHITE).map_err(fail(chart))?;
        let (t0, t1) = checks.iter().fold((f64::MAX, f64::MIN), |(a, b), c| (a.min(c.at), b.max(c.at)));
        let (t0, t1) = if t0 > t1 { (0.0, 86_400.0) } else { (t0, t1) };
        let pad = ((t1 - t0) * 0.05).max(3_600.0);
        let mut plot = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(300)
            .build_cartesian_2d((t0 - pad)..(t1 + pad), -0.5f64..(rows as f64 - 0.5))
            .map_err(fail(chart))?;
        plot.configure_mesh()
            .disable_y_mesh()
            .y_labels(rows)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() > 0.01 || i < 0.0 {
                    return String::new();
                }
                rules.get(i as usize).cloned().unwrap_or_default()
            })
            .x_labels(5)
            .x_label_formatter(&|t| {
                chrono::DateTime::from_timestamp(*t as i64, 0)
                    .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
                    .unwrap_or_default()
            })
            .label_style((FONT, 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(fail(chart))?;
        if checks.is_empty() {
            no_data(&root, "no quality checks recorded yet", chart)?;
        }
        let green = RGBColor(44, 160, 44);
        let red = RGBColor(214, 39, 40);
        for c in checks {
            let y = rules.iter().position(|r| *r == c.rule).unwrap_or(0) as f64;
            if c.passed {
                plot.draw_series(std::iter::once(Circle::new((c.at, y), 6, green.filled()))).map_err(fail(chart))?;
            } else {
                plot.draw_series(std::iter::once(Cross::new((c.at, y), 7, red.stroke_width(3))))
                    .map_err(fail(chart))?;
            }
        }
        root.present().map_err(fail(chart))?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_draw_with_and_without_data() {
        let line = time_lines("t", &[Series { name: "a".into(), points: vec![(19_000.0, 3.0), (19_030.0, 5.0)] }], "n")
            .unwrap();
        assert!(line.starts_with("<svg") && line.contains("<polyline"), "{line}");
        assert!(time_lines("t", &[], "n").unwrap().contains("no data yet"));
        let grid = rfm_grid("g", &[(5, 5, 12, 900.0), (1, 1, 40, 20.0)]).unwrap();
        assert!(grid.matches("<rect").count() >= 25);
        let b = bars("b", &[Bars { label: "x".into(), now: 4.0, before: Some(2.0) }], "n").unwrap();
        assert!(b.contains("(+2)"));
        let q = quality("q", &[Check { rule: "r".into(), at: 1e9, passed: false }]).unwrap();
        assert!(q.contains("<line") || q.contains("<polyline") || q.contains("<path"), "{q}");
    }
}
