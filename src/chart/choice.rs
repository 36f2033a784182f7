//! Accuracy against speed or cost, the chart people draw from timm's results tables by hand: one
//! mark per model, coloured by family and sized by parameters, the Pareto frontier drawn and
//! each model on it labelled with its full name.

use std::collections::BTreeMap;

use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;

use super::{err, name_circles};
use crate::error::{Error, Result};

/// Which way the x figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// More is better (samples/s).
    Higher,
    /// Less is better (GMACs, activations, parameters).
    Lower,
}

/// One model on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Full name (`convnext_tiny.in12k_ft_in1k`), used as its label.
    pub name: String,
    /// Family (timm module), which picks the colour.
    pub family: String,
    /// The x figure.
    pub x: f64,
    /// The y figure (accuracy).
    pub y: f64,
    /// Parameters in millions, which size the mark.
    pub params_m: Option<f64>,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct Chart {
    /// First title line: what is plotted.
    pub title: String,
    /// Second title line: where the figures come from.
    pub source: String,
    /// x axis label.
    pub x_label: String,
    /// y axis label.
    pub y_label: String,
    /// Which way x improves.
    pub x_better: Better,
    /// The models, in the order their marks are drawn.
    pub points: Vec<Point>,
}

/// Whether each `(x, y)` is on the Pareto frontier that maximises y while x is better: no other
/// point is at least as good on both and strictly better on one. Equal points are all on it.
pub fn frontier(points: &[(f64, f64)], x_better: Better) -> Vec<bool> {
    let key = |x: f64| match x_better {
        Better::Higher => -x,
        Better::Lower => x,
    };
    let mut order: Vec<usize> = (0..points.len()).collect();
    // best x first, then best y
    order.sort_by(|&a, &b| {
        key(points[a].0)
            .total_cmp(&key(points[b].0))
            .then(points[b].1.total_cmp(&points[a].1))
    });
    let mut on = vec![false; points.len()];
    // best y among points with strictly better x
    let mut best = f64::NEG_INFINITY;
    let mut i = 0;
    while i < order.len() {
        let x = points[order[i]].0;
        let group_end = order[i..]
            .iter()
            .position(|&k| points[k].0 != x)
            .map_or(order.len(), |p| i + p);
        // the group's best y comes first
        let top = points[order[i]].1;
        if top > best {
            for &k in &order[i..group_end] {
                on[k] = points[k].1 == top;
            }
            best = top;
        }
        i = group_end;
    }
    on
}

/// Colours for families, in the order of their first appearance by name; repeats past the end.
const PALETTE: [RGBColor; 20] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
    RGBColor(99, 121, 57),
    RGBColor(140, 109, 49),
    RGBColor(132, 60, 57),
    RGBColor(123, 65, 115),
    RGBColor(82, 84, 163),
    RGBColor(181, 207, 107),
    RGBColor(231, 186, 82),
    RGBColor(214, 97, 107),
    RGBColor(206, 109, 189),
];

/// Label font size (plotters' size; the SVG says `font-size` [`SVG_FONT_SCALE`] times smaller).
const LABEL_PX: i32 = 12;
/// plotters-svg writes a font of size `s` as `font-size = s / 1.24`.
pub const SVG_FONT_SCALE: f64 = 1.24;
/// Advance of one character, in ems of the written `font-size`: a little above DejaVu Sans'
/// average for names (lower case, digits, `_`), so that an estimated extent is never short.
pub const CHAR_EM: f64 = 0.62;

/// Canvas size.
const SIZE: (u32, u32) = (1400, 900);
/// Width of the legend column, right of the plot, where it covers no mark.
const LEGEND_W: u32 = 250;
/// Families shown in the legend (the most populous; the rest are still coloured).
const LEGEND_MAX: usize = 20;

/// The estimated width in pixels of `text` drawn with plotters' font size `size`.
pub fn text_width(text: &str, size: i32) -> i32 {
    let n = text.chars().count() as f64;
    (n * CHAR_EM * f64::from(size) / SVG_FONT_SCALE).ceil() as i32
}

/// `text` broken at spaces into lines of at most `width` pixels at font size `size`.
pub(crate) fn wrap(text: &str, size: i32, width: i32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if !line.is_empty() && text_width(&candidate, size) > width {
            lines.push(std::mem::replace(&mut line, word.to_owned()));
        } else {
            line = candidate;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

fn radius(params_m: Option<f64>) -> i32 {
    // area grows with parameters: 1 M -> 3 px, 100 M -> 8 px, 1 B -> 15 px
    let r = params_m.map_or(3.0, |p| 2.5 + 0.4 * p.max(0.0).sqrt());
    r.clamp(2.5, 16.0).round() as i32
}

/// An axis tick: whole numbers without a fraction, small ones with up to three decimals.
fn tick(v: &f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// Pads a range so marks at its ends stay inside, multiplicatively on a log axis.
fn padded(lo: f64, hi: f64, log: bool) -> (f64, f64) {
    if log {
        (lo / 1.25, hi * 1.25)
    } else {
        let pad = ((hi - lo) * 0.05).max(0.5);
        (lo - pad, hi + pad)
    }
}

/// The labelled ticks of a log axis over `lo..hi`: 1, 2 and 5 times each power of ten inside
/// it (more where it spans less than a decade: every whole multiple), so that even an axis of one
/// decade has several labels.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let decades = (hi / lo).log10();
    let steps: &[f64] = if decades < 1.5 {
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    } else if decades < 4.0 {
        &[1.0, 2.0, 5.0]
    } else {
        &[1.0]
    };
    let mut out = Vec::new();
    let mut p = 10f64.powf(lo.log10().floor());
    while p <= hi {
        for m in steps {
            let v = m * p;
            if v >= lo && v <= hi {
                out.push(v);
            }
        }
        p *= 10.0;
    }
    out
}

/// Draws the chart as an SVG document. Each mark is a `<circle data-name="…">`.
pub fn svg(chart: &Chart) -> Result<String> {
    if chart.points.is_empty() {
        return Err(Error::Chart(
            "no model has both figures to plot; widen the patterns or pick other axes".into(),
        ));
    }
    let xs = chart.points.iter().map(|p| p.x);
    let ys = chart.points.iter().map(|p| p.y);
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    let (y_lo, y_hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    // a log axis where the figure spans a decade or more (and is positive)
    let log = x_lo > 0.0 && x_hi / x_lo >= 10.0;
    let (x_lo, x_hi) = padded(x_lo, x_hi, log);
    let (y_lo, y_hi) = padded(y_lo, y_hi, false);
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        if log {
            let ticks = log_ticks(x_lo, x_hi);
            draw(
                &root,
                chart,
                (x_lo..x_hi).log_scale().with_key_points(ticks),
                y_lo..y_hi,
            )?;
        } else {
            draw(&root, chart, x_lo..x_hi, y_lo..y_hi)?;
        }
        root.present().map_err(err)?;
    }
    let names: Vec<&str> = chart.points.iter().map(|p| p.name.as_str()).collect();
    Ok(name_circles(&out, &names))
}

/// A box in pixels: `(x0, x1, y0, y1)`.
type Box2 = (i32, i32, i32, i32);

fn overlaps(a: Box2, b: Box2) -> bool {
    a.0 < b.1 && b.0 < a.1 && a.2 < b.3 && b.2 < a.3
}

/// Whether the segment `p..q` passes through the box (Liang-Barsky clipping).
fn crosses(p: (i32, i32), q: (i32, i32), b: Box2) -> bool {
    let (x0, y0) = (f64::from(p.0), f64::from(p.1));
    let (dx, dy) = (f64::from(q.0) - x0, f64::from(q.1) - y0);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (pk, qk) in [
        (-dx, x0 - f64::from(b.0)),
        (dx, f64::from(b.1) - x0),
        (-dy, y0 - f64::from(b.2)),
        (dy, f64::from(b.3) - y0),
    ] {
        if pk == 0.0 {
            if qk < 0.0 {
                return false;
            }
        } else {
            let t = qk / pk;
            if pk < 0.0 {
                t0 = t0.max(t);
            } else {
                t1 = t1.min(t);
            }
            if t0 > t1 {
                return false;
            }
        }
    }
    true
}

fn draw<DB, X>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    chart: &Chart,
    x_range: X,
    y_range: std::ops::Range<f64>,
) -> Result<()>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    root.fill(&WHITE).map_err(err)?;
    let (w, _) = root.dim_in_pixel();
    let text_room = i32::try_from(w).unwrap_or(i32::MAX) - 40;
    // the title and the source line, wrapped to the canvas
    let title = wrap(&chart.title, 22, text_room);
    let source = wrap(&chart.source, 14, text_room);
    let mut y = 10;
    let mut header = Vec::new();
    for line in &title {
        header.push((line.clone(), y, 22, BLACK));
        y += 26;
    }
    y += 2;
    for line in &source {
        header.push((line.clone(), y, 14, RGBColor(90, 90, 90)));
        y += 17;
    }
    let (top, body) = root.split_vertically(y + 6);
    for (line, y, size, colour) in header {
        top.draw(&Text::new(
            line,
            (20, y),
            ("sans-serif", size).into_font().color(&colour),
        ))
        .map_err(err)?;
    }
    let (plot, side) = body.split_horizontally(w.saturating_sub(LEGEND_W));
    let mut cc = ChartBuilder::on(&plot)
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, y_range)
        .map_err(err)?;
    cc.configure_mesh()
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(err)?;

    // families: colour by first appearance in name order; legend for the most populous
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &chart.points {
        *counts.entry(p.family.as_str()).or_default() += 1;
    }
    let colour: BTreeMap<&str, RGBColor> = counts
        .keys()
        .enumerate()
        .map(|(i, f)| (*f, PALETTE[i % PALETTE.len()]))
        .collect();
    let mut legend: Vec<(&str, usize)> = counts.iter().map(|(f, n)| (*f, *n)).collect();
    legend.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let hidden = legend.len().saturating_sub(LEGEND_MAX);
    legend.truncate(LEGEND_MAX);
    legend.sort();

    // the marks, one circle each, in the points' order
    cc.draw_series(chart.points.iter().map(|p| {
        let c = colour.get(p.family.as_str()).copied().unwrap_or(BLACK);
        Circle::new((p.x, p.y), radius(p.params_m), c.mix(0.6).filled())
    }))
    .map_err(err)?;

    // the frontier: a staircase through its points (the best y reachable at each x), each point
    // labelled with its full name
    let pts: Vec<(f64, f64)> = chart.points.iter().map(|p| (p.x, p.y)).collect();
    let on = frontier(&pts, chart.x_better);
    let mut front: Vec<&Point> = chart
        .points
        .iter()
        .zip(&on)
        .filter(|(_, o)| **o)
        .map(|(p, _)| p)
        .collect();
    front.sort_by(|a, b| {
        a.x.total_cmp(&b.x)
            .then(a.y.total_cmp(&b.y))
            .then(a.name.cmp(&b.name))
    });
    let mut steps = Vec::with_capacity(front.len() * 2);
    for w in front.windows(2) {
        let [a, b] = w else { continue };
        steps.push((a.x, a.y));
        steps.push(match chart.x_better {
            Better::Higher => (a.x, b.y),
            Better::Lower => (b.x, a.y),
        });
    }
    if let Some(last) = front.last() {
        steps.push((last.x, last.y));
    }
    let step_px: Vec<(i32, i32)> = steps.iter().map(|s| cc.backend_coord(s)).collect();
    cc.draw_series(LineSeries::new(steps, BLACK.stroke_width(2)))
        .map_err(err)?;

    // labels: beside their point, at the first of the four corners around it that crosses
    // neither the frontier nor a label already placed and stays in the plot, moved away from
    // the point (with a leader line) when all four are taken
    let (xr, yr) = cc.plotting_area().get_pixel_range();
    let area: Box2 = (xr.start, xr.end, yr.start, yr.end);
    let inside = |b: Box2| b.0 >= area.0 && b.1 <= area.1 && b.2 >= area.2 && b.3 <= area.3;
    let free = |b: Box2, placed: &[Box2]| {
        inside(b)
            && !placed.iter().any(|&q| overlaps(b, q))
            && !step_px.windows(2).any(|s| crosses(s[0], s[1], b))
    };
    let mut placed: Vec<Box2> = Vec::new();
    for p in front.iter().rev() {
        let (px, py) = cc.backend_coord(&(p.x, p.y));
        let width = text_width(&p.name, LABEL_PX);
        let height = (f64::from(LABEL_PX) / SVG_FONT_SCALE).ceil() as i32 + 2;
        let gap = radius(p.params_m) + 3;
        // (x0, y0) of each corner, and the direction it moves in when taken
        let corners = [
            ((px + gap, py - gap - height), -1),
            ((px + gap, py + gap), 1),
            ((px - gap - width, py - gap - height), -1),
            ((px - gap - width, py + gap), 1),
        ];
        let mut chosen = None;
        'search: for shift in 0..60 {
            for &((x0, y0), dir) in &corners {
                let y0 = y0 + dir * shift * (height / 2).max(1);
                let b = (x0, x0 + width, y0, y0 + height);
                if free(b, &placed) {
                    chosen = Some((b, shift > 0));
                    break 'search;
                }
            }
        }
        // nowhere free (a crowded chart): the first corner, as before
        let (b, moved) = chosen.unwrap_or((
            (
                corners[0].0 .0,
                corners[0].0 .0 + width,
                corners[0].0 .1,
                corners[0].0 .1 + height,
            ),
            false,
        ));
        placed.push(b);
        if moved {
            // a leader line from the moved label back to its point
            let lx = if b.0 > px { b.0 } else { b.1 };
            let ly = if b.2 > py { b.2 } else { b.3 };
            root.draw(&PathElement::new(
                [(px, py), (lx, ly)],
                RGBColor(150, 150, 150),
            ))
            .map_err(err)?;
        }
        root.draw(&Text::new(
            p.name.clone(),
            (b.0, b.2 + 1),
            ("sans-serif", LABEL_PX).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    }

    // the legend, in its own column right of the plot: it covers no mark
    let mut entries: Vec<(String, Option<RGBColor>)> = legend
        .iter()
        .map(|(f, n)| (format!("{f} ({n})"), colour.get(f).copied()))
        .collect();
    if hidden > 0 {
        entries.push((format!("{hidden} more families"), None));
    }
    let row = 18;
    let lx = 10;
    let ly = 20;
    let inner_w = i32::try_from(LEGEND_W).unwrap_or(250) - 2 * lx;
    let rows = i32::try_from(entries.len()).unwrap_or(0) + 2;
    side.draw(&Rectangle::new(
        [(lx, ly), (lx + inner_w, ly + 10 + rows * row)],
        RGBColor(200, 200, 200),
    ))
    .map_err(err)?;
    let mut y = ly + 8;
    let font = ("sans-serif", 12).into_font().color(&BLACK);
    for (text, c) in &entries {
        if let Some(c) = c {
            side.draw(&Rectangle::new(
                [(lx + 8, y + 1), (lx + 18, y + 11)],
                c.filled(),
            ))
            .map_err(err)?;
        }
        side.draw(&Text::new(text.clone(), (lx + 26, y), font.clone()))
            .map_err(err)?;
        y += row;
    }
    side.draw(&PathElement::new(
        [(lx + 6, y + 6), (lx + 20, y + 6)],
        BLACK.stroke_width(2),
    ))
    .map_err(err)?;
    side.draw(&Text::new(
        "Pareto frontier".to_owned(),
        (lx + 26, y),
        font.clone(),
    ))
    .map_err(err)?;
    y += row;
    side.draw(&Text::new(
        "mark area: parameters".to_owned(),
        (lx + 26, y),
        font,
    ))
    .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontier_keeps_ties_and_drops_dominated() {
        let pts = [
            (10.0, 80.0),
            (10.0, 80.0), // equal to the first: on it too
            (10.0, 79.0), // same speed, worse
            (5.0, 80.0),  // slower, not better
            (1.0, 90.0),
        ];
        assert_eq!(
            frontier(&pts, Better::Higher),
            [true, true, false, false, true]
        );
        // with x a cost, the cheapest is also the best here and dominates all
        assert_eq!(
            frontier(&pts, Better::Lower),
            [false, false, false, false, true]
        );
    }
}
