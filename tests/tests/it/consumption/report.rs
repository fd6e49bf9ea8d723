//! `cdplake report`: one self-contained HTML file; every chart is drawn (its SVG has marks) and,
//! rendered by a real headless Chromium (Debian's package), is not blank.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::lake_with_everything;
use crate::support::{Backend, repo_root};

const CHARTS: [&str; 8] = [
    "persons_over_time",
    "rfm_grid",
    "segment_sizes",
    "audience_sizes",
    "lifecycle_over_time",
    "identity_sizes",
    "identity_rules",
    "quality_history",
];

/// Render `html` to a PNG of `width` × `height` with headless Chromium.
fn screenshot(html: &Path, png: &Path, width: u32, height: u32) {
    let chromium = std::env::var("CDPLAKE_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {chromium} ({e}): tests/run.sh installs Debian's chromium"));
    assert!(png.exists(), "{chromium} wrote no screenshot:\n{}", String::from_utf8_lossy(&output.stderr));
}

/// RGB pixels of a PNG: (width, height, pixels).
fn pixels(png: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let data = &buf[..info.buffer_size()];
    let px =
        data.chunks(channels).map(|c| if channels >= 3 { [c[0], c[1], c[2]] } else { [c[0], c[0], c[0]] }).collect();
    (info.width, info.height, px)
}

/// Share of pixels in rows `top..bottom` that are not (near) white, and distinct colours there.
fn ink(image: &(u32, u32, Vec<[u8; 3]>), top: u32, bottom: u32) -> (f64, usize) {
    let (w, h, px) = image;
    let mut inked = 0usize;
    let mut colours = std::collections::HashSet::new();
    let rows = top.min(*h)..bottom.min(*h);
    let total = (rows.len() * *w as usize).max(1);
    for y in rows {
        for x in 0..*w {
            let p = px[(y * w + x) as usize];
            if p.iter().any(|c| *c < 235) {
                inked += 1;
            }
            colours.insert(p);
        }
    }
    (inked as f64 / total as f64, colours.len())
}

fn svg_height(svg: &str) -> u32 {
    let at = svg.find("height=\"").unwrap() + 8;
    svg[at..].split('"').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_charts_render_in_headless_chromium() {
    let (_t, ws) = lake_with_everything(Backend::Local, 150).await;
    let report = cdplake_serving::report::build_report(&ws, None).await.unwrap();
    assert_eq!(report.as_of, super::AS_OF);
    let ids: Vec<&str> = report.charts.iter().map(|c| c.id).collect();
    assert_eq!(ids, CHARTS);

    // Self-contained: no script, no fetch of anything.
    let html = &report.html;
    // (The SVG namespace is a name, not an address anything is fetched from.)
    let addresses = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for forbidden in ["<script", "http://", "https://", "<link", "<img", "@import", "url(", " src="] {
        assert!(!addresses.contains(forbidden), "the report contains {forbidden:?}");
    }
    // Every chart is in the page and has drawn marks (plotters' SVG elements).
    for chart in &report.charts {
        assert!(html.contains(&format!("id=\"{}\"", chart.id)), "{} in the page", chart.id);
        assert!(html.contains(&chart.svg), "{}'s SVG inline", chart.id);
        let marks = ["<rect", "<polyline", "<circle", "<path", "<line", "<polygon"]
            .iter()
            .map(|m| chart.svg.matches(m).count())
            .sum::<usize>();
        assert!(marks >= 5, "{}: {marks} drawn elements", chart.id);
        assert!(chart.svg.matches("<text").count() >= 3, "{}: axis labels", chart.id);
    }
    // The RFM grid has its 25 cells and persons in them; the quality history its checks.
    let rfm = &report.charts[1].svg;
    assert!(rfm.matches("<rect").count() >= 25);

    // Rendered by Chromium: the whole page is not blank ...
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, html).unwrap();
    let shot = dir.path().join("report.png");
    screenshot(&page, &shot, 1000, 3400);
    let image = pixels(&shot);
    let (share, colours) = ink(&image, 0, image.1);
    assert!(share > 0.03 && colours > 20, "the page is drawn: {share:.3} inked, {colours} colours");
    if std::env::var_os("CDPLAKE_UPDATE_DOCS").is_some() {
        let out: PathBuf = repo_root().join("docs/report.png");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        screenshot(&page, &out, 1000, 1900);
    }

    // ... and, each chart laid out at a known place, every chart's region is drawn.
    let mut layout = String::from("<!DOCTYPE html><html><body style=\"margin:0;background:#fff\">");
    let mut regions = Vec::new();
    let mut top = 0;
    for chart in &report.charts {
        let height = svg_height(&chart.svg);
        layout.push_str(&format!("<div style=\"position:absolute;left:0;top:{top}px\">{}</div>", chart.svg));
        regions.push((chart.id, top, top + height));
        top += height;
    }
    layout.push_str("</body></html>");
    let page = dir.path().join("charts.html");
    std::fs::write(&page, layout).unwrap();
    let shot = dir.path().join("charts.png");
    screenshot(&page, &shot, 900, top);
    let image = pixels(&shot);
    for (id, from, to) in regions {
        let (share, colours) = ink(&image, from, to);
        assert!(share > 0.01 && colours >= 3, "chart {id} is drawn: {share:.4} of its pixels inked, {colours} colours");
    }
}
