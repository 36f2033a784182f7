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

/// Label font size and the width of one of its characters, in pixels (for laying labels out).
const LABEL_PX: i32 = 12;
const LABEL_CHAR_PX: i32 = 7;

/// Families shown in the legend (the most populous; the rest are still coloured).
const LEGEND_MAX: usize = 20;

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
        let root = SVGBackend::with_string(&mut out, (1400, 900)).into_drawing_area();
        if log {
            draw(&root, chart, (x_lo..x_hi).log_scale(), y_lo..y_hi)?;
        } else {
            draw(&root, chart, x_lo..x_hi, y_lo..y_hi)?;
        }
        root.present().map_err(err)?;
    }
    let names: Vec<&str> = chart.points.iter().map(|p| p.name.as_str()).collect();
    Ok(name_circles(&out, &names))
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
    let (top, body) = root.split_vertically(64);
    top.draw(&Text::new(
        chart.title.clone(),
        (20, 10),
        ("sans-serif", 22).into_font().color(&BLACK),
    ))
    .map_err(err)?;
    top.draw(&Text::new(
        chart.source.clone(),
        (20, 38),
        ("sans-serif", 14).into_font().color(&RGBColor(90, 90, 90)),
    ))
    .map_err(err)?;
    let mut cc = ChartBuilder::on(&body)
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
    legend.truncate(LEGEND_MAX);
    legend.sort();

    // the marks, one circle each, in the points' order
    cc.draw_series(chart.points.iter().map(|p| {
        let c = colour.get(p.family.as_str()).copied().unwrap_or(BLACK);
        Circle::new((p.x, p.y), radius(p.params_m), c.mix(0.6).filled())
    }))
    .map_err(err)?;
    // the legend: squares, so circles stay one per model
    for (family, n) in &legend {
        let c = colour.get(family).copied().unwrap_or(BLACK);
        cc.draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
            .map_err(err)?
            .label(format!("{family} ({n})"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], c.filled()));
    }

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
    cc.draw_series(LineSeries::new(steps, BLACK.stroke_width(2)))
        .map_err(err)?
        .label("Pareto frontier")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], BLACK.stroke_width(2)));
    // labels: right of the point (left of it in the right third), moved down past labels already
    // placed so that none overlap
    let (w, _) = root.dim_in_pixel();
    let mut placed: Vec<(i32, i32, i32, i32)> = Vec::new();
    for p in front.iter().rev() {
        let (px, py) = cc.backend_coord(&(p.x, p.y));
        let width = LABEL_CHAR_PX * i32::try_from(p.name.len()).unwrap_or(i32::MAX / 8);
        let right_side = i64::from(px) < i64::from(w) * 2 / 3;
        let x0 = if right_side { px + 8 } else { px - 8 - width };
        let mut y0 = py - LABEL_PX / 2;
        for _ in 0..40 {
            let clash = placed.iter().any(|&(a0, a1, b0, b1)| {
                x0 < a1 && a0 < x0 + width && y0 < b1 && b0 < y0 + LABEL_PX
            });
            if !clash {
                break;
            }
            y0 += LABEL_PX;
        }
        placed.push((x0, x0 + width, y0, y0 + LABEL_PX));
        if (y0 - (py - LABEL_PX / 2)).abs() > 1 {
            // a leader line from the moved label back to its point
            let lx = if right_side { x0 } else { x0 + width };
            root.draw(&PathElement::new(
                [(px, py), (lx, y0 + LABEL_PX / 2)],
                RGBColor(150, 150, 150),
            ))
            .map_err(err)?;
        }
        root.draw(&Text::new(
            p.name.clone(),
            (x0, y0),
            ("sans-serif", LABEL_PX).into_font().color(&BLACK),
        ))
        .map_err(err)?;
    }
    cc.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 12))
        .draw()
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
