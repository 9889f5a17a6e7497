//! The curation report: the funnel on the terminal, and report.html with its plots (the
//! funnel, removals by rule, each rule statistic's histogram with its threshold), tables by
//! language and domain, and each block's own figures (duplicate clusters…).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Result};
use fmlab_curate::pipeline::{BlockStats, Report};
use plotters::prelude::*;

use crate::plot::{write_png_atomically, BarPlot};

/// The funnel as a table on stdout.
pub fn print_funnel(r: &Report) {
    println!(
        "{:<22} {:>10} {:>10} {:>12} {:>12}  dropped by rule",
        "block", "docs in", "docs out", "MB in", "MB out"
    );
    for b in &r.blocks {
        let rules: Vec<String> = b.dropped.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "{:<22} {:>10} {:>10} {:>12.2} {:>12.2}  {}",
            b.name,
            b.flow.documents_in,
            b.flow.documents_out,
            b.flow.bytes_in as f64 / 1e6,
            b.flow.bytes_out as f64 / 1e6,
            rules.join(", ")
        );
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes OUT/report.html and its PNGs under OUT/plots/.
pub fn write_html(out: &Path, r: &Report) -> Result<()> {
    let plots = out.join("plots");
    std::fs::create_dir_all(&plots)?;
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>fmlab curate report</title>\
         <style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}\
         td:first-child{text-align:left}img{max-width:100%}</style></head><body>\n<h1>Curation report</h1>\n",
    );
    let _ = writeln!(
        html,
        "<p>{} input file(s), {} rank(s){}.</p>",
        r.inputs.len(),
        r.world_size,
        if r.dry_run {
            ", dry run (nothing dropped; decisions recorded)"
        } else {
            ""
        }
    );
    let cats: Vec<String> = r.blocks.iter().map(|b| b.name.clone()).collect();
    if !cats.is_empty() {
        BarPlot {
            title: "Documents in and out of every block",
            y_label: "documents",
            categories: cats.clone(),
            series: vec![
                (
                    "in".into(),
                    r.blocks
                        .iter()
                        .map(|b| b.flow.documents_in as f64)
                        .collect(),
                ),
                (
                    "out".into(),
                    r.blocks
                        .iter()
                        .map(|b| b.flow.documents_out as f64)
                        .collect(),
                ),
            ],
        }
        .write_png(&plots.join("funnel.png"))?;
        html += "<h2>Funnel</h2><img src=\"plots/funnel.png\">\n";
    }
    html += "<table><tr><th>block</th><th>docs in</th><th>docs out</th><th>MB in</th><th>MB out</th><th>dropped by rule</th></tr>\n";
    for b in &r.blocks {
        let rules: Vec<String> = b
            .dropped
            .iter()
            .map(|(k, v)| format!("{} {v}", esc(k)))
            .collect();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td></tr>",
            esc(&b.name),
            b.flow.documents_in,
            b.flow.documents_out,
            b.flow.bytes_in as f64 / 1e6,
            b.flow.bytes_out as f64 / 1e6,
            rules.join(", ")
        );
    }
    html += "</table>\n";
    for b in &r.blocks {
        block_section(&mut html, &plots, b)?;
    }
    html += "</body></html>\n";
    fmlab_formats::write_atomically(&out.join("report.html"), html.as_bytes())?;
    Ok(())
}

fn flow_table(
    html: &mut String,
    title: &str,
    rows: &std::collections::BTreeMap<String, fmlab_curate::pipeline::Flow>,
) {
    if rows.len() < 2 && rows.keys().all(|k| k == "?") {
        return;
    }
    let _ = writeln!(
        html,
        "<table><tr><th>{title}</th><th>docs in</th><th>docs out</th><th>dropped</th></tr>"
    );
    for (k, f) in rows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td></tr>",
            esc(k),
            f.documents_in,
            f.documents_out,
            100.0 * (f.documents_in - f.documents_out) as f64 / f.documents_in.max(1) as f64
        );
    }
    html.push_str("</table>\n");
}

fn block_section(html: &mut String, plots: &Path, b: &BlockStats) -> Result<()> {
    let _ = writeln!(
        html,
        "<h2>{} <small>({})</small></h2>",
        esc(&b.name),
        esc(&b.kind)
    );
    if !b.dropped.is_empty() {
        let name = format!("drops-{}.png", file_safe(&b.name));
        BarPlot {
            title: &format!("{}: documents dropped by rule", b.name),
            y_label: "documents",
            categories: b.dropped.keys().cloned().collect(),
            series: vec![(
                "dropped".into(),
                b.dropped.values().map(|v| *v as f64).collect(),
            )],
        }
        .write_png(&plots.join(&name))?;
        let _ = writeln!(html, "<img src=\"plots/{name}\">");
    }
    flow_table(html, "language", &b.by_language);
    flow_table(html, "domain", &b.by_domain);
    for (stat, h) in &b.histograms {
        let points = h.points();
        if points.len() < 2 {
            continue;
        }
        let name = format!("hist-{}-{}.png", file_safe(&b.name), file_safe(stat));
        let threshold = b.thresholds.get(stat).copied();
        histogram_png(
            &plots.join(&name),
            &format!("{}: {stat}", b.name),
            &points,
            threshold,
        )?;
        let _ = writeln!(html, "<img src=\"plots/{name}\">");
    }
    if !b.extra.is_empty() {
        let text = serde_json::to_string_pretty(&b.extra)?;
        let _ = writeln!(
            html,
            "<details><summary>figures</summary><pre>{}</pre></details>",
            esc(&text)
        );
    }
    Ok(())
}

/// A histogram of (value, count) points in 40 bins over the values' range (from the 0.5th
/// to the 99.5th percentile, so one outlier does not flatten it), with the threshold as a
/// red line.
fn histogram_png(
    path: &Path,
    title: &str,
    points: &[(f64, u64)],
    threshold: Option<f64>,
) -> Result<()> {
    let total: u64 = points.iter().map(|p| p.1).sum();
    let quantile = |q: f64| {
        let target = (q * total as f64) as u64;
        let mut seen = 0;
        for (v, n) in points {
            seen += n;
            if seen > target {
                return *v;
            }
        }
        points.last().map(|p| p.0).unwrap_or(0.0)
    };
    let mut lo = quantile(0.005);
    let mut hi = quantile(0.995);
    if let Some(t) = threshold {
        lo = lo.min(t);
        hi = hi.max(t);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let bins = 40;
    let width = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for (v, n) in points {
        let i = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
        counts[i] += n;
    }
    let y_max = counts.iter().copied().max().unwrap_or(1) as f64 * 1.1;
    write_png_atomically(path, |tmp| {
        let err = |e: &dyn std::fmt::Display| anyhow!("drawing the plot: {e}");
        let root = BitMapBackend::new(tmp, (760, 360)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, 0f64..y_max.max(1.0))
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("documents")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, c)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.95, *c as f64)],
                    RGBColor(31, 119, 180).filled(),
                )
            }))
            .map_err(|e| err(&e))?;
        if let Some(t) = threshold {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, 0.0), (t, y_max)],
                    RED.stroke_width(2),
                )))
                .map_err(|e| err(&e))?;
        }
        root.present().map_err(|e| err(&e))?;
        Ok(())
    })
}
