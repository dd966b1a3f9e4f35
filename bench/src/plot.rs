//! PNG plots of the benchmark results, read back from the JSON files the subcommands
//! write: forwarding rate by frame size, latency CDFs, session scaling and the
//! offered-load sweep. A missing JSON file skips its plot.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

#[derive(clap::Args)]
pub struct Options {
    /// Folder with the JSON results; the PNGs are written next to them.
    #[arg(long, default_value = "target/bench")]
    pub dir: PathBuf,
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 540;
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub fn run(options: &Options) -> Result<(), String> {
    let dir = &options.dir;
    let mut written = Vec::new();
    if let Some(forward) = read(dir, "forward.json")? {
        written.push(throughput(&forward, &dir.join("throughput.png"))?);
        written.push(latency_cdf(&forward, &dir.join("latency-cdf.png"))?);
    }
    if let Some(sessions) = read(dir, "sessions.json")? {
        written.push(session_scaling(&sessions, &dir.join("sessions.png"))?);
    }
    if let Some(sweep) = read(dir, "sweep.json")? {
        written.push(load_sweep(&sweep, &dir.join("sweep.png"))?);
    }
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn read(dir: &Path, name: &str) -> Result<Option<Value>, String> {
    let path = dir.join(name);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|e| format!("{}: {e}", path.display()))
}

fn number(value: &Value, path: &[&str]) -> f64 {
    let mut at = value;
    for key in path {
        at = &at[*key];
    }
    at.as_f64().unwrap_or(0.0)
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or("").to_owned()
}

fn rows(value: &Value, key: &str) -> Vec<Value> {
    value[key].as_array().cloned().unwrap_or_default()
}

fn draw_error(error: impl std::fmt::Display) -> String {
    format!("plot: {error}")
}

/// Forwarded Mpps by frame size, one line per leg and one dashed line per reference.
fn throughput(forward: &Value, path: &Path) -> Result<PathBuf, String> {
    let rows = rows(forward, "rows");
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    // A series keeps the first point at each size: rows of one backend that differ only in
    // their crypto path share one reference line.
    let mut push = |name: String, point: (f64, f64)| match series.iter_mut().find(|s| s.0 == name) {
        Some(entry) if entry.1.iter().any(|p| p.0 == point.0) => {}
        Some(entry) => entry.1.push(point),
        None => series.push((name, vec![point])),
    };
    for row in &rows {
        let size = number(row, &["frame_bytes"]);
        let backend = text(row, "backend");
        let leg = match text(row, "crypto_path").as_str() {
            "" => format!("svrd {backend}"),
            crypto => format!("svrd {backend} {crypto}"),
        };
        push(leg, (size, number(row, &["pipeline_pps", "median"]) / 1e6));
        let reference = format!("{} ({backend})", text(row, "reference"));
        push(reference, (size, number(row, &["reference_pps", "median"]) / 1e6));
    }
    let max_y = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(0.1, f64::max) * 1.15;
    let max_x = series.iter().flat_map(|s| s.1.iter().map(|p| p.0)).fold(100.0, f64::max) * 1.05;

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Forwarding rate by frame size (two routers)", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("frame bytes")
        .y_desc("Mpps (median)")
        .draw()
        .map_err(draw_error)?;
    for (index, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(draw_error)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart
            .draw_series(points.iter().map(|p| Circle::new(*p, 4, colour.filled())))
            .map_err(draw_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)?;
    Ok(path.to_path_buf())
}

/// Latency CDF of every leg and size, log-scaled latency.
fn latency_cdf(forward: &Value, path: &Path) -> Result<PathBuf, String> {
    let rows = rows(forward, "rows");
    let curves: Vec<(String, Vec<(f64, f64)>)> = rows
        .iter()
        .map(|row| {
            let backend = text(row, "backend");
            let crypto = text(row, "crypto_path");
            let name = format!("{backend} {crypto} {} B", number(row, &["frame_bytes"]));
            let points = rows_of_pairs(&row["cdf"]);
            (name, points)
        })
        .filter(|(_, points)| !points.is_empty())
        .collect();
    let min_x = curves.iter().flat_map(|c| c.1.iter().map(|p| p.0)).fold(f64::MAX, f64::min);
    let max_x = curves.iter().flat_map(|c| c.1.iter().map(|p| p.0)).fold(1.0, f64::max);
    let min_x = if min_x.is_finite() && min_x > 0.0 && min_x < max_x { min_x } else { 0.1 };

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Latency CDF, generator to receiver", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((min_x..max_x * 1.2).log_scale(), 0.0..1.0)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("latency µs (log)")
        .y_desc("fraction of packets")
        .draw()
        .map_err(draw_error)?;
    for (index, (name, points)) in curves.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(draw_error)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)?;
    Ok(path.to_path_buf())
}

fn rows_of_pairs(value: &Value) -> Vec<(f64, f64)> {
    value
        .as_array()
        .map(|points| {
            points
                .iter()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .filter(|(x, _)| *x > 0.0)
                .collect()
        })
        .unwrap_or_default()
}

/// Lookup time and bytes per session against table size.
fn session_scaling(sessions: &Value, path: &Path) -> Result<PathBuf, String> {
    let sizes = rows(sessions, "sizes");
    let lookup: Vec<(f64, f64)> = sizes
        .iter()
        .map(|s| (number(s, &["sessions"]), number(s, &["lookup_ns", "median"])))
        .collect();
    let bytes: Vec<(f64, f64)> = sizes
        .iter()
        .map(|s| (number(s, &["sessions"]), number(s, &["bytes_per_session"])))
        .collect();
    let max_x = lookup.iter().map(|p| p.0).fold(10.0, f64::max) * 2.0;
    let max_ns = lookup.iter().map(|p| p.1).fold(1.0, f64::max) * 1.2;
    let max_bytes = bytes.iter().map(|p| p.1).fold(1024.0, f64::max) * 1.2;

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Session table scaling", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d((500.0..max_x).log_scale(), 0.0..max_ns)
        .map_err(draw_error)?
        .set_secondary_coord((500.0..max_x).log_scale(), 0.0..max_bytes);
    chart
        .configure_mesh()
        .x_desc("sessions (log)")
        .y_desc("lookup ns (median)")
        .draw()
        .map_err(draw_error)?;
    chart.configure_secondary_axes().y_desc("heap bytes per session").draw().map_err(draw_error)?;
    let (first, second) = (COLOURS[0], COLOURS[1]);
    chart
        .draw_series(LineSeries::new(lookup.clone(), first.stroke_width(2)))
        .map_err(draw_error)?
        .label("lookup ns")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], first));
    chart
        .draw_series(lookup.iter().map(|p| Circle::new(*p, 4, first.filled())))
        .map_err(draw_error)?;
    chart
        .draw_secondary_series(LineSeries::new(bytes.clone(), second.stroke_width(2)))
        .map_err(draw_error)?
        .label("bytes per session")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], second));
    chart
        .draw_secondary_series(LineSeries::new(
            vec![(500.0, 1024.0), (max_x, 1024.0)],
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(draw_error)?
        .label("1 KiB target")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)?;
    Ok(path.to_path_buf())
}

/// p50, p99 and p99.9 latency against offered load, with the received rate.
fn load_sweep(sweep: &Value, path: &Path) -> Result<PathBuf, String> {
    let points = rows(sweep, "points");
    let series = [("p50", "p50_us"), ("p99", "p99_us"), ("p99.9", "p999_us")].map(|(name, key)| {
        let line: Vec<(f64, f64)> = points
            .iter()
            .map(|p| (number(p, &["offered_pps"]) / 1e3, number(p, &["latency", key]).max(0.1)))
            .collect();
        (name, line)
    });
    let received: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (number(p, &["offered_pps"]) / 1e3, number(p, &["received_pps"]) / 1e3))
        .collect();
    let max_x = received.iter().map(|p| p.0).fold(1.0, f64::max) * 1.05;
    let max_y = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(1.0, f64::max) * 2.0;
    let min_y = series.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(f64::MAX, f64::min);
    let min_y = if min_y.is_finite() { (min_y / 2.0).max(0.1) } else { 0.1 };
    let max_received = received.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let title = format!(
        "Latency against offered load, {} B through svrd on AF_XDP",
        number(sweep, &["frame_bytes"])
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .right_y_label_area_size(60)
        .build_cartesian_2d(0.0..max_x, (min_y..max_y).log_scale())
        .map_err(draw_error)?
        .set_secondary_coord(0.0..max_x, 0.0..max_received);
    chart
        .configure_mesh()
        .x_desc("offered kpps")
        .y_desc("latency µs (log)")
        .draw()
        .map_err(draw_error)?;
    chart.configure_secondary_axes().y_desc("received kpps").draw().map_err(draw_error)?;
    for (index, (name, line)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))
            .map_err(draw_error)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart
            .draw_series(line.iter().map(|p| Circle::new(*p, 3, colour.filled())))
            .map_err(draw_error)?;
    }
    let grey = BLACK.mix(0.5);
    chart
        .draw_secondary_series(LineSeries::new(received, grey.stroke_width(2)))
        .map_err(draw_error)?
        .label("received kpps")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    if let Some(knee) = sweep["knee_pps"].as_f64() {
        chart
            .draw_series(LineSeries::new(
                vec![(knee / 1e3, min_y), (knee / 1e3, max_y)],
                COLOURS[3].mix(0.6).stroke_width(1),
            ))
            .map_err(draw_error)?
            .label("knee")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], COLOURS[3]));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    root.present().map_err(draw_error)?;
    Ok(path.to_path_buf())
}
