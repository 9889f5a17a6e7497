//! PNG plots with plotters. The font is DejaVu Sans from the `dejavu` crate, registered once,
//! so plots render the same on machines without system fonts (CI has none).

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;

/// The colours of the series (matplotlib's first five).
const PALETTE: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// The series legend, the same on every plot.
fn legend<'a, DB: DrawingBackend + 'a, X: Ranged, Y: Ranged>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(|e| anyhow!("drawing the plot: {e}"))
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a fixed, valid TTF embedded in the binary; failure would only mean
        // labels go missing, which the plot code reports as an error when drawing text.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// Draws a PNG with `draw` into a temporary file in the same folder, then renames it over
/// `path`: plotters writes the file itself, and the rename keeps the write atomic.
pub fn write_png_atomically(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    register_font();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.tmp-{}.png",
        file_name.unwrap_or_else(|| "plot".into()),
        std::process::id()
    ));
    let drawn = draw(&tmp);
    if drawn.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    drawn?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// A named line: (label, points).
pub type Series<'a> = (&'a str, Vec<(f64, f64)>);

/// Named lines in panels stacked vertically, sharing a linear x axis.
pub struct PanelPlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    /// (y label, lines).
    pub panels: Vec<(&'a str, Vec<Series<'a>>)>,
}

impl PanelPlot<'_> {
    pub fn write_png(&self, path: &Path) -> Result<()> {
        write_png_atomically(path, |tmp| self.draw(tmp))
    }

    fn draw(&self, file: &Path) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| anyhow!("drawing the plot: {e}");
        let xs = || {
            self.panels
                .iter()
                .flat_map(|(_, series)| series.iter().flat_map(|(_, pts)| pts.iter().map(|p| p.0)))
                .filter(|x| x.is_finite())
        };
        let x_min = xs().fold(f64::INFINITY, f64::min);
        let x_max = xs().fold(f64::NEG_INFINITY, f64::max);
        if x_min.partial_cmp(&x_max) != Some(std::cmp::Ordering::Less) {
            return Err(anyhow!("nothing to plot: fewer than two distinct x values"));
        }
        let x_pad = (x_max - x_min) * 0.05;
        let height = 360 * self.panels.len() as u32 + 60;
        let root = BitMapBackend::new(file, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let root = root
            .titled(self.title, ("sans-serif", 22))
            .map_err(|e| err(&e))?;
        let areas = root.split_evenly((self.panels.len(), 1));
        for (area, (y_label, series)) in areas.iter().zip(&self.panels) {
            let ys: Vec<f64> = series
                .iter()
                .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
                .filter(|y| y.is_finite())
                .collect();
            let y_min = ys.iter().copied().fold(f64::INFINITY, f64::min);
            let y_max = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let (y_min, y_max) = if y_min.is_finite() {
                (y_min, y_max)
            } else {
                (0.0, 1.0)
            };
            let pad = ((y_max - y_min) * 0.1).max(1e-3);
            let mut chart = ChartBuilder::on(area)
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(64)
                .build_cartesian_2d(
                    (x_min - x_pad)..(x_max + x_pad),
                    (y_min - pad)..(y_max + pad),
                )
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc(self.x_label)
                .y_desc(*y_label)
                .y_label_formatter(&|y| format!("{y:.2}"))
                .label_style(("sans-serif", 15))
                .draw()
                .map_err(|e| err(&e))?;
            for (i, (label, pts)) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let pts: Vec<(f64, f64)> =
                    pts.iter().copied().filter(|p| p.1.is_finite()).collect();
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(3)))
                    .map_err(|e| err(&e))?
                    .label(*label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(|e| err(&e))?;
            }
            legend(&mut chart)?;
        }
        root.present().map_err(|e| err(&e))?;
        Ok(())
    }
}

/// Grouped bars: one group per category, one bar per series in each (a value that is not
/// finite draws no bar: a figure the series does not have).
pub struct BarPlot<'a> {
    pub title: &'a str,
    pub y_label: &'a str,
    pub categories: Vec<String>,
    /// (series label, one value per category).
    pub series: Vec<(String, Vec<f64>)>,
}

impl BarPlot<'_> {
    pub fn write_png(&self, path: &Path) -> Result<()> {
        write_png_atomically(path, |tmp| self.draw(tmp))
    }

    fn draw(&self, file: &Path) -> Result<()> {
        let err = |e: &dyn std::fmt::Display| anyhow!("drawing the plot: {e}");
        let n_cat = self.categories.len();
        let n_ser = self.series.len().max(1);
        if n_cat == 0 {
            return Err(anyhow!("nothing to plot"));
        }
        let y_max = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            * 1.35;
        // Wide enough for each category's label.
        let pixels = (130 * n_cat as u32 + 120).max(960);
        let root = BitMapBackend::new(file, (pixels, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..n_cat as f64, 0f64..y_max.max(1e-9))
            .map_err(|e| err(&e))?;
        let cats = self.categories.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n_cat * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 && i < cats.len() {
                    cats[i].clone()
                } else {
                    String::new()
                }
            })
            .y_desc(self.y_label)
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
        let width = 0.8 / n_ser as f64;
        for (s, (label, values)) in self.series.iter().enumerate() {
            let color = PALETTE[s % PALETTE.len()];
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(c, &v)| {
                            let x0 = c as f64 + 0.1 + s as f64 * width;
                            Rectangle::new([(x0, 0.0), (x0 + width * 0.95, v)], color.filled())
                        }),
                )
                .map_err(|e| err(&e))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 16, y + 6)], color.filled())
                });
        }
        // Above the bars (the headroom keeps them clear), whatever their heights.
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
        Ok(())
    }
}

/// A scatter of observed points and one fitted curve, x on a log axis.
pub struct LogXPlot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub points: &'a [(f64, f64)],
    pub points_label: &'a str,
    pub curve: &'a [(f64, f64)],
    pub curve_label: &'a str,
}

impl LogXPlot<'_> {
    /// Renders to `path` (PNG, 960×640), written atomically.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        write_png_atomically(path, |tmp| self.draw(tmp))
    }

    fn bounds(&self) -> Result<(f64, f64, f64, f64)> {
        let all = self.points.iter().chain(self.curve.iter());
        let (mut x_min, mut x_max, mut y_min, mut y_max) = (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        );
        for &(x, y) in all {
            if x.is_finite() && x > 0.0 && y.is_finite() {
                x_min = x_min.min(x);
                x_max = x_max.max(x);
                y_min = y_min.min(y);
                y_max = y_max.max(y);
            }
        }
        if x_min.partial_cmp(&x_max) != Some(std::cmp::Ordering::Less) {
            return Err(anyhow!("nothing to plot: fewer than two distinct x values"));
        }
        Ok((x_min, x_max, y_min, y_max))
    }

    fn draw(&self, file: &Path) -> Result<()> {
        let (x_min, x_max, y_min, y_max) = self.bounds()?;
        let pad = ((y_max - y_min) * 0.08).max(1e-3);
        {
            let root = BitMapBackend::new(file, (960, 640)).into_drawing_area();
            let err = |e: &dyn std::fmt::Display| anyhow!("drawing the plot: {e}");
            root.fill(&WHITE).map_err(|e| err(&e))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.title, ("sans-serif", 22))
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(64)
                .build_cartesian_2d(
                    (x_min / 1.5..x_max * 1.5).log_scale(),
                    (y_min - pad)..(y_max + pad),
                )
                .map_err(|e| err(&e))?;
            chart
                .configure_mesh()
                .x_desc(self.x_label)
                .y_desc(self.y_label)
                .x_label_formatter(&|x| format!("{x:.0e}"))
                .y_label_formatter(&|y| format!("{y:.2}"))
                .label_style(("sans-serif", 15))
                .draw()
                .map_err(|e| err(&e))?;
            let [blue, orange, ..] = PALETTE;
            chart
                .draw_series(
                    self.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, blue.filled())),
                )
                .map_err(|e| err(&e))?
                .label(self.points_label)
                .legend(move |(x, y)| Circle::new((x, y), 4, blue.filled()));
            chart
                .draw_series(LineSeries::new(
                    self.curve.iter().copied(),
                    orange.stroke_width(3),
                ))
                .map_err(|e| err(&e))?
                .label(self.curve_label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(3))
                });
            legend(&mut chart)?;
            root.present().map_err(|e| err(&e))?;
        }
        Ok(())
    }
}
