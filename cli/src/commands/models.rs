//! `timmconv models`

use crate::args::{Field, ModelsArgs, XAxis, YAxis};
use crate::{printer, table, Outcome};
use timmconv::chart::choice::{self, Better};
use timmconv::registry::{self, Results};

struct Row {
    name: String,
    family: String,
    params_m: Option<f64>,
    results: Results,
}

fn value(r: &Row, f: Field) -> Option<f64> {
    match f {
        Field::Params => r.params_m,
        Field::Top1 => r.results.top1,
        Field::Top5 => r.results.top5,
        Field::ImgSize => r.results.size(),
        Field::Gmacs => r.results.gmacs,
        Field::Macts => r.results.macts,
        Field::SamplesPerSec => r.results.samples_per_sec,
        Field::TrainSamplesPerSec => r.results.train_samples_per_sec,
    }
}

/// The one spelling of a field, as in `--json` and the column headers.
fn name(f: Field) -> &'static str {
    match f {
        Field::Params => "params",
        Field::Top1 => "top1",
        Field::Top5 => "top5",
        Field::ImgSize => "img_size",
        Field::Gmacs => "gmacs",
        Field::Macts => "macts",
        Field::SamplesPerSec => "samples_per_sec",
        Field::TrainSamplesPerSec => "train_samples_per_sec",
    }
}

fn cell(r: &Row, f: Field) -> String {
    let prec = match f {
        Field::ImgSize | Field::SamplesPerSec | Field::TrainSamplesPerSec => 0,
        _ => 2,
    };
    value(r, f).map_or_else(|| "-".to_owned(), |x| format!("{x:.prec$}"))
}

const DEFAULT_COLUMNS: [Field; 7] = [
    Field::Params,
    Field::Top1,
    Field::Top5,
    Field::ImgSize,
    Field::Gmacs,
    Field::Macts,
    Field::SamplesPerSec,
];

/// Where the figures come from, for notes and the chart's title.
const SOURCE: &str = "timm's results tables at each tag's input size: top-1/top-5 from \
                      results-imagenet.csv (ImageNet-1k val), samples/s, GMACs and activations \
                      from benchmark-infer-amp-nchw-pt291-cu130-5090.csv (RTX 5090, PyTorch 2.9.1, \
                      AMP, NCHW)";

fn rows(a: &ModelsArgs, names: Vec<String>) -> Vec<Row> {
    let mut rows = Vec::with_capacity(names.len());
    let mut current: Option<registry::Arch> = None;
    for name in names {
        let (arch_name, tag_name) = registry::split_name(&name);
        if current.as_ref().is_none_or(|c| c.name != arch_name) {
            current = registry::arch(arch_name);
        }
        let Some(arch) = &current else { continue };
        let tag = if a.pretrained {
            arch.tag(tag_name)
        } else {
            arch.tag(None)
        };
        let results = arch.results_for(tag);
        let params_m = arch
            .param_count
            .map(|p| p as f64 / 1e6)
            .or(results.param_count_m);
        rows.push(Row {
            name,
            family: arch.module.clone().unwrap_or_else(|| arch.name.clone()),
            params_m,
            results,
        });
    }
    rows
}

/// Runs `models`.
pub fn run(a: ModelsArgs) -> anyhow::Result<Outcome> {
    if let Some(path) = &a.plot {
        crate::check_svg_name(path)?;
    }
    let names = registry::list(&a.patterns, a.pretrained)?;
    let plain = a.sort.is_none() && a.max_params.is_none();
    if a.json && plain && a.plot.is_none() {
        printer::json(&names)?;
        return Ok(Outcome::Success);
    }
    let mut rows = rows(&a, names);
    if let Some(max) = a.max_params {
        rows.retain(|r| r.params_m.is_some_and(|p| p <= max));
    }
    if let Some(f) = a.sort {
        // best first: highest accuracy/throughput, smallest size/cost; unknowns last; ties keep
        // timm's order (the sort is stable)
        let descending = matches!(
            f,
            Field::Top1 | Field::Top5 | Field::SamplesPerSec | Field::TrainSamplesPerSec
        );
        rows.sort_by(|x, y| match (value(x, f), value(y, f)) {
            (Some(p), Some(q)) if descending => q.total_cmp(&p),
            (Some(p), Some(q)) => p.total_cmp(&q),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    if let Some(path) = &a.plot {
        return plot(&a, &rows, path);
    }
    if a.json {
        printer::json(&rows.iter().map(|r| &r.name).collect::<Vec<_>>())?;
        return Ok(Outcome::Success);
    }
    let columns: &[Field] = if a.columns.is_empty() {
        &DEFAULT_COLUMNS
    } else {
        &a.columns
    };
    let mut cells = vec![std::iter::once("model".to_owned())
        .chain(columns.iter().map(|c| name(*c).to_owned()))
        .collect::<Vec<_>>()];
    for r in &rows {
        cells.push(
            std::iter::once(r.name.clone())
                .chain(columns.iter().map(|c| cell(r, *c)))
                .collect(),
        );
    }
    let (lines, dropped) = table::fit(&cells, table::terminal_width());
    for l in lines {
        printer::line(l)?;
    }
    if !dropped.is_empty() {
        printer::note(format_args!(
            "left out to fit the terminal: {} (choose with --columns, or pipe the output)",
            dropped.join(", ")
        ));
    }
    printer::note(format_args!(
        "{} models; params in millions, macts = millions of activations (predicts GPU memory); \
         figures at each tag's input size from timm's results tables (samples/s: RTX 5090, AMP)",
        rows.len()
    ));
    Ok(Outcome::Success)
}

fn plot(a: &ModelsArgs, rows: &[Row], path: &std::path::Path) -> anyhow::Result<Outcome> {
    let (x, x_label, x_better) = match a.x {
        XAxis::SamplesPerSec => (
            Field::SamplesPerSec,
            "inference samples/s (RTX 5090, AMP)",
            Better::Higher,
        ),
        XAxis::Gmacs => (Field::Gmacs, "GMACs per image", Better::Lower),
        XAxis::Macts => (Field::Macts, "activations (millions)", Better::Lower),
        XAxis::Params => (Field::Params, "parameters (millions)", Better::Lower),
    };
    let (y, y_label) = match a.y {
        YAxis::Top1 => (Field::Top1, "ImageNet-1k top-1 (%)"),
        YAxis::Top5 => (Field::Top5, "ImageNet-1k top-5 (%)"),
    };
    let points: Vec<choice::Point> = rows
        .iter()
        .filter_map(|r| {
            Some(choice::Point {
                name: r.name.clone(),
                family: r.family.clone(),
                x: value(r, x)?,
                y: value(r, y)?,
                params_m: r.params_m,
            })
        })
        .collect();
    let what = if a.patterns.is_empty() {
        "all".to_owned()
    } else {
        a.patterns.join(" ")
    };
    let chart = choice::Chart {
        title: format!(
            "{} against {}: {} timm {} ({what}{}); Pareto frontier labelled, mark size by parameters",
            name(y),
            name(x),
            points.len(),
            if a.pretrained {
                "pretrained tags"
            } else {
                "architectures (default tag)"
            },
            a.max_params
                .map(|m| format!(", at most {m} M params"))
                .unwrap_or_default(),
        ),
        source: SOURCE.to_owned(),
        x_label: x_label.to_owned(),
        y_label: y_label.to_owned(),
        x_better,
        points,
    };
    let svg = timmconv::chart::choice::svg(&chart)?;
    crate::write_file(path, svg.as_bytes())?;
    printer::note(format_args!(
        "{} models plotted ({} without both figures left out) -> {}",
        chart.points.len(),
        rows.len() - chart.points.len(),
        path.display()
    ));
    Ok(Outcome::Success)
}
