//! The picture of a parity check (`verify --report`): PyTorch's logits against libtorch's with
//! the y = x line, and a histogram of |difference| on a log scale with the tolerance marked;
//! pass or fail in the title.

use plotters::prelude::*;

use super::err;
use crate::error::{Error, Result};

/// What to draw.
#[derive(Debug, Clone)]
pub struct Report<'a> {
    /// What was compared (the weights and module), shown under the title.
    pub subject: String,
    /// PyTorch's logits (the fixture's), flattened.
    pub reference: &'a [f64],
    /// libtorch's logits, flattened, same length.
    pub output: &'a [f64],
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Whether every element is within `atol + rtol * |reference|`.
    pub passed: bool,
}

/// Marks drawn at most in the scatter; a longer output is sampled with an even stride.
pub const MAX_SCATTER: usize = 20_000;

/// Differences at or below this are drawn in the lowest bin (and counted as exact when zero).
const FLOOR_LOG10: f64 = -12.0;

/// Histogram bins per decade.
const BINS_PER_DECADE: f64 = 4.0;

/// Counts of |difference| in log10 bins from `FLOOR_LOG10`, and the number exactly zero.
pub fn histogram(reference: &[f64], output: &[f64]) -> (Vec<(f64, usize)>, usize) {
    let mut zero = 0;
    let mut bins: std::collections::BTreeMap<i64, usize> = Default::default();
    for (r, o) in reference.iter().zip(output) {
        let d = (o - r).abs();
        if d == 0.0 {
            zero += 1;
            continue;
        }
        let l = if d.is_finite() { d.log10() } else { 10.0 };
        let b = ((l.max(FLOOR_LOG10)) * BINS_PER_DECADE).floor() as i64;
        *bins.entry(b).or_default() += 1;
    }
    let bins = bins
        .into_iter()
        .map(|(b, n)| (b as f64 / BINS_PER_DECADE, n))
        .collect();
    (bins, zero)
}

/// Draws the report as an SVG document: each scatter mark is a `<circle>`, the histogram's bars
/// are `<rect>`s.
pub fn svg(r: &Report<'_>) -> Result<String> {
    if r.reference.len() != r.output.len() || r.reference.is_empty() {
        return Err(Error::Chart(format!(
            "need as many outputs as references, and some: {} and {}",
            r.output.len(),
            r.reference.len()
        )));
    }
    let n = r.reference.len();
    let stride = n.div_ceil(MAX_SCATTER).max(1);
    let max_abs = r
        .reference
        .iter()
        .zip(r.output)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f64, f64::max);
    let finite = r.reference.iter().chain(r.output).filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(*v), b.max(*v))
    });
    let (lo, hi) = if lo < hi {
        (lo, hi)
    } else {
        (lo - 1.0, lo + 1.0)
    };
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let (bins, zero) = histogram(r.reference, r.output);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1400, 700)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let subject = format!(
            "{}; {n} logits{}",
            r.subject,
            if stride > 1 {
                format!(", every {stride}th drawn in the scatter")
            } else {
                String::new()
            }
        );
        // a long path wraps instead of running off the canvas
        let subject = super::choice::wrap(&subject, 14, 1360);
        let lines = i32::try_from(subject.len()).unwrap_or(1);
        let (top, body) = root.split_vertically(40 + 17 * lines + 13);
        let verdict = if r.passed { "PASS" } else { "FAIL" };
        let colour = if r.passed {
            RGBColor(0, 128, 0)
        } else {
            RGBColor(200, 0, 0)
        };
        top.draw(&Text::new(
            format!(
                "{verdict}: libtorch vs PyTorch logits, max |diff| {max_abs:.3e} (atol {:.0e}, rtol {:.0e})",
                r.atol, r.rtol
            ),
            (20, 10),
            ("sans-serif", 22).into_font().color(&colour),
        ))
        .map_err(err)?;
        for (i, line) in (0..).zip(subject) {
            top.draw(&Text::new(
                line,
                (20, 40 + 17 * i),
                ("sans-serif", 14).into_font().color(&RGBColor(90, 90, 90)),
            ))
            .map_err(err)?;
        }
        let (left, right) = body.split_horizontally(700);

        let mut sc = ChartBuilder::on(&left)
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(err)?;
        sc.configure_mesh()
            .x_desc("PyTorch logit (fixture)")
            .y_desc("libtorch logit")
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        sc.draw_series(LineSeries::new(
            [(lo, lo), (hi, hi)],
            RGBColor(120, 120, 120),
        ))
        .map_err(err)?
        .label("y = x")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], RGBColor(120, 120, 120)));
        sc.draw_series(
            r.reference
                .iter()
                .zip(r.output)
                .step_by(stride)
                .filter(|(a, b)| a.is_finite() && b.is_finite())
                .map(|(a, b)| Circle::new((*a, *b), 2, colour.mix(0.5).filled())),
        )
        .map_err(err)?;
        sc.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(err)?;

        // x: log10 |difference|; the tolerance atol drawn as a vertical line
        let atol_l = r.atol.max(f64::MIN_POSITIVE).log10().max(FLOOR_LOG10);
        let x_lo = bins.first().map_or(atol_l, |b| b.0).min(atol_l).floor() - 1.0;
        let x_hi = bins
            .last()
            .map_or(atol_l, |b| b.0 + 1.0 / BINS_PER_DECADE)
            .max(atol_l)
            .ceil()
            + 1.0;
        let y_hi = bins.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64 * 1.1;
        let mut hc = ChartBuilder::on(&right)
            .margin(20)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .caption(
                format!("|difference| histogram ({zero} of {n} exactly equal, not drawn)"),
                ("sans-serif", 14),
            )
            .build_cartesian_2d(x_lo..x_hi, 0.0..y_hi)
            .map_err(err)?;
        hc.configure_mesh()
            .x_desc("|libtorch - PyTorch| (log scale)")
            .y_desc("logits")
            // whole decades only
            .x_labels(((x_hi - x_lo) as usize + 1).min(16))
            .x_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-6 {
                    format!("1e{:.0}", v.round())
                } else {
                    String::new()
                }
            })
            // counts: whole numbers only
            .y_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-6 {
                    format!("{:.0}", v.round())
                } else {
                    String::new()
                }
            })
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        hc.draw_series(bins.iter().map(|(b, c)| {
            Rectangle::new(
                [(*b, 0.0), (b + 1.0 / BINS_PER_DECADE, *c as f64)],
                colour.mix(0.6).filled(),
            )
        }))
        .map_err(err)?;
        hc.draw_series(LineSeries::new(
            [(atol_l, 0.0), (atol_l, y_hi)],
            BLACK.stroke_width(2),
        ))
        .map_err(err)?
        .label(format!(
            "atol {:.0e} (plus rtol {:.0e} x |logit|)",
            r.atol, r.rtol
        ))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(2)));
        hc.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(out)
}
