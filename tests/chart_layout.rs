//! The choice chart checked as a picture is seen (issue 22, item 4): every text's extent inside
//! the canvas, the legend clear of every mark, no frontier label crossed by the frontier line,
//! several labelled ticks on a log axis of about one decade, and no SVG written under a .png
//! name. Extents are estimated from the SVG's own font sizes with `CHAR_EM`, a little wider
//! than DejaVu Sans' characters (rendered with rsvg-convert and looked at while writing this).

mod common;

use std::process::Command;

use timmconv::chart::choice::{self, Better, Chart, Point, CHAR_EM};

const WIDTH: f64 = 1400.0;

fn chart(points: Vec<Point>) -> Chart {
    Chart {
        title: "top1 against samples_per_sec: 296 timm pretrained tags (convnext* efficientnet* \
                resnet* vit_* regnet*, at most 100 M params); Pareto frontier labelled, mark size \
                by parameters"
            .into(),
        source:
            "timm's results tables at each tag's input size: top-1/top-5 from \
                 results-imagenet.csv (ImageNet-1k val), samples/s, GMACs and activations from \
                 benchmark-infer-amp-nchw-pt291-cu130-5090.csv (RTX 5090, PyTorch 2.9.1, AMP, NCHW)"
                .into(),
        x_label: "inference samples/s".into(),
        y_label: "top-1 (%)".into(),
        x_better: Better::Higher,
        points,
    }
}

/// A frontier of long names falling to the right, a cloud below it, and marks in the lower
/// right corner, where the legend used to sit.
fn points() -> Vec<Point> {
    let mut out = Vec::new();
    for i in 0..12 {
        let f = f64::from(i);
        out.push(Point {
            name: format!("vit_mediumd_patch16_reg4_gap_{i}.sbb2_e200_in12k_ft_in1k"),
            family: "vision_transformer".into(),
            x: 1000.0 * (1.0 + f),
            y: 88.0 - 1.5 * f,
            params_m: Some(60.0 - 4.0 * f),
        });
        for j in 1..4 {
            out.push(Point {
                name: format!("resnet{i}_{j}.a1_in1k"),
                family: format!("family{}", (i + j) % 5),
                x: 1000.0 * (1.0 + f) * (1.0 - 0.05 * f64::from(j)),
                y: 88.0 - 1.5 * f - 2.0 * f64::from(j),
                params_m: Some(25.0),
            });
        }
    }
    out.push(Point {
        name: "corner.small".into(),
        family: "family1".into(),
        x: 11800.0,
        y: 60.0,
        params_m: Some(90.0),
    });
    out
}

struct Text {
    s: String,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

fn attr(n: &roxmltree::Node, a: &str) -> f64 {
    n.attribute(a).unwrap_or("0").parse().unwrap()
}

fn texts(doc: &roxmltree::Document) -> Vec<Text> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text") && n.attribute("transform").is_none())
        .map(|n| {
            let s = n.text().unwrap_or("").trim().to_owned();
            let size = attr(&n, "font-size");
            let w = s.chars().count() as f64 * CHAR_EM * size;
            let x = attr(&n, "x");
            let (x0, x1) = match n.attribute("text-anchor") {
                Some("middle") => (x - w / 2.0, x + w / 2.0),
                Some("end") => (x - w, x),
                _ => (x, x + w),
            };
            // plotters puts the top of the text at y (dy="0.76em" moves the baseline down)
            let y = attr(&n, "y");
            Text {
                s,
                x0,
                x1,
                y0: y,
                y1: y + size,
            }
        })
        .collect()
}

fn segments(points: &str) -> Vec<((f64, f64), (f64, f64))> {
    let p: Vec<(f64, f64)> = points
        .split_whitespace()
        .map(|xy| {
            let (x, y) = xy.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    p.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Whether an axis-aligned segment passes through the box (the frontier is a staircase).
fn crosses(((ax, ay), (bx, by)): ((f64, f64), (f64, f64)), t: &Text) -> bool {
    let (x0, x1) = (ax.min(bx), ax.max(bx));
    let (y0, y1) = (ay.min(by), ay.max(by));
    x0 < t.x1 && t.x0 < x1 && y0 < t.y1 && t.y0 < y1 || {
        // a diagonal piece: sample it
        (0..=20).any(|k| {
            let f = f64::from(k) / 20.0;
            let (x, y) = (ax + (bx - ax) * f, ay + (by - ay) * f);
            x > t.x0 && x < t.x1 && y > t.y0 && y < t.y1
        }) && ax != bx
            && ay != by
    }
}

#[test]
fn the_chart_fits_its_canvas_and_nothing_covers_what_it_shows() {
    let c = chart(points());
    let svg = choice::svg(&c).unwrap();
    // to look at it: TIMMCONV_CHART_DUMP=chart.svg, then rsvg-convert chart.svg -o chart.png
    if let Some(path) = std::env::var_os("TIMMCONV_CHART_DUMP") {
        std::fs::write(path, &svg).unwrap();
    }
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts = texts(&doc);
    // every text (the long title and source line too) ends inside the canvas
    for t in &texts {
        assert!(
            t.x0 >= 0.0 && t.x1 <= WIDTH,
            "`{}` spans x {:.0}..{:.0} of {WIDTH}",
            t.s,
            t.x0,
            t.x1
        );
    }
    let title: Vec<&Text> = texts.iter().filter(|t| t.s.starts_with("top1")).collect();
    assert_eq!(title.len(), 1, "the title's first line");
    // the legend box covers no mark
    let legend = doc
        .descendants()
        .find(|n| n.has_tag_name("rect") && n.attribute("stroke") == Some("#C8C8C8"))
        .expect("the legend's frame");
    let (lx, ly) = (attr(&legend, "x"), attr(&legend, "y"));
    let (lw, lh) = (attr(&legend, "width"), attr(&legend, "height"));
    let circles: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .collect();
    assert_eq!(circles.len(), c.points.len());
    for m in &circles {
        let (cx, cy, r) = (attr(m, "cx"), attr(m, "cy"), attr(m, "r"));
        let clear = cx + r < lx || cx - r > lx + lw || cy + r < ly || cy - r > ly + lh;
        assert!(clear, "the legend covers {:?}", m.attribute("data-name"));
    }
    // the frontier line crosses none of its labels
    let frontier = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .max_by_key(|n| n.attribute("points").unwrap_or("").len())
        .expect("the frontier");
    let segs = segments(frontier.attribute("points").unwrap());
    assert!(segs.len() >= 20, "a staircase through 12 points");
    let names: Vec<&str> = c.points.iter().map(|p| p.name.as_str()).collect();
    let labels: Vec<&Text> = texts
        .iter()
        .filter(|t| names.contains(&t.s.as_str()))
        .collect();
    assert_eq!(labels.len(), 12, "every frontier model is labelled");
    for t in &labels {
        for s in &segs {
            assert!(
                !crosses(*s, t),
                "the frontier {s:?} crosses the label `{}`",
                t.s
            );
        }
    }
    // no two labels overlap
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            let apart = a.x1 <= b.x0 || b.x1 <= a.x0 || a.y1 <= b.y0 || b.y1 <= a.y0;
            assert!(apart, "`{}` and `{}` overlap", a.s, b.s);
        }
    }
}

#[test]
fn a_log_axis_of_about_one_decade_labels_several_ticks() {
    // x from 1000 to 12000: a log axis (a factor of 10 or more), barely more than a decade
    let svg = choice::svg(&chart(points())).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let all: Vec<String> = texts(&doc).into_iter().map(|t| t.s).collect();
    let ticks: Vec<&str> = ["1000", "2000", "3000", "5000", "10000"]
        .into_iter()
        .filter(|t| all.iter().any(|s| s == t))
        .collect();
    assert_eq!(ticks.len(), 5, "{all:?}");
    assert_eq!(
        choice::log_ticks(450.0, 60000.0),
        [500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0]
    );
    assert_eq!(choice::log_ticks(3.0, 12.0).len(), 8, "3..9, 10");
}

#[test]
fn plot_refuses_a_picture_name_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["chart.png", "chart.jpg", "chart"] {
        let out = dir.path().join(name);
        let o = Command::new(common::bin())
            .args(["models", "resnet1*", "--pretrained", "--plot"])
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("draws SVG only") && err.contains(".svg"),
            "{err}"
        );
        assert!(!out.exists(), "{name} was written");
    }
    let out = dir.path().join("chart.SVG");
    let o = Command::new(common::bin())
        .args(["models", "resnet1*", "--pretrained", "--plot"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("<svg"));
}

#[test]
fn verify_plot_wraps_a_long_subject_inside_the_canvas() {
    let reference: Vec<f64> = (0..40).map(|i| f64::from(i) * 0.1 - 2.0).collect();
    let output: Vec<f64> = reference.iter().map(|v| v + 1e-7).collect();
    let dir = "/data/experiments/2026-12/checkpoints/convnext_tiny.in12k_ft_in1k/converted";
    let svg = timmconv::chart::parity::svg(&timmconv::chart::parity::Report {
        subject: format!(
            "{dir}/weights.safetensors in {dir}/module.pt on cpu, fixture {dir}/io.safetensors"
        ),
        reference: &reference,
        output: &output,
        atol: 1e-5,
        rtol: 1e-5,
        passed: true,
    })
    .unwrap();
    if let Some(path) = std::env::var_os("TIMMCONV_PARITY_DUMP") {
        std::fs::write(path, &svg).unwrap();
    }
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts = texts(&doc);
    for t in &texts {
        assert!(
            t.x0 >= 0.0 && t.x1 <= WIDTH,
            "`{}` spans x {:.0}..{:.0} of {WIDTH}",
            t.s,
            t.x0,
            t.x1
        );
    }
    let all: String = texts
        .iter()
        .map(|t| t.s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(all.contains("io.safetensors; 40 logits"), "{all}");
}
