//! `timmconv models`

use crate::cli::args::{ModelsArgs, SortField};
use crate::cli::{printer, Outcome};
use crate::registry::{self, Results};

struct Row {
    name: String,
    params_m: Option<f64>,
    results: Results,
}

fn field(r: &Row, f: SortField) -> Option<f64> {
    match f {
        SortField::Top1 => r.results.top1,
        SortField::Params => r.params_m,
        SortField::Gmacs => r.results.gmacs,
        SortField::Macts => r.results.macts,
        SortField::SamplesPerSec => r.results.samples_per_sec,
    }
}

fn fmt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.prec$}"))
}

/// Runs `models`.
pub fn run(a: ModelsArgs) -> anyhow::Result<Outcome> {
    let names = registry::list(&a.patterns, a.pretrained)?;
    let plain = a.sort.is_none() && a.max_params.is_none();
    if a.json && plain {
        printer::json(&names)?;
        return Ok(Outcome::Success);
    }
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
            params_m,
            results,
        });
    }
    if let Some(max) = a.max_params {
        rows.retain(|r| r.params_m.is_some_and(|p| p <= max));
    }
    if let Some(f) = a.sort {
        // best first: highest accuracy/throughput, smallest size/cost; unknowns last
        let descending = matches!(f, SortField::Top1 | SortField::SamplesPerSec);
        rows.sort_by(|x, y| match (field(x, f), field(y, f)) {
            (Some(p), Some(q)) => {
                let o = p.partial_cmp(&q).unwrap_or(std::cmp::Ordering::Equal);
                if descending {
                    o.reverse()
                } else {
                    o
                }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    if a.json {
        printer::json(&rows.iter().map(|r| &r.name).collect::<Vec<_>>())?;
        return Ok(Outcome::Success);
    }
    let columns: Vec<&str> = if a.columns.is_empty() {
        vec![
            "params",
            "top1",
            "top5",
            "img_size",
            "gmacs",
            "macts",
            "samples_per_sec",
        ]
    } else {
        a.columns.iter().map(String::as_str).collect()
    };
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(5).max(5);
    let mut header = format!("{:<width$}", "model");
    for c in &columns {
        header.push_str(&format!(" {c:>15}"));
    }
    printer::line(header)?;
    for r in &rows {
        let mut line = format!("{:<width$}", r.name);
        for c in &columns {
            let cell = match *c {
                "params" => fmt(r.params_m, 2),
                "top1" => fmt(r.results.top1, 2),
                "top5" => fmt(r.results.top5, 2),
                "img_size" => fmt(r.results.img_size.or(r.results.infer_img_size), 0),
                "gmacs" => fmt(r.results.gmacs, 2),
                "macts" => fmt(r.results.macts, 2),
                "samples_per_sec" => fmt(r.results.samples_per_sec, 0),
                "train_samples_per_sec" => fmt(r.results.train_samples_per_sec, 0),
                other => anyhow::bail!("unknown column `{other}` (params, top1, top5, img_size, gmacs, macts, samples_per_sec, train_samples_per_sec)"),
            };
            line.push_str(&format!(" {cell:>15}"));
        }
        printer::line(line)?;
    }
    printer::note(format_args!(
        "{} models; params in millions, macts = activations (millions, predicts GPU memory), samples_per_sec on an RTX 5090 (AMP)",
        rows.len()
    ));
    Ok(Outcome::Success)
}
