//! `timmconv info`

use serde_json::json;

use crate::args::InfoArgs;
use crate::{printer, Outcome};
use timmconv::registry::{self, Results};

/// Runs `info`.
pub fn run(a: InfoArgs) -> anyhow::Result<Outcome> {
    let (arch, tag) = registry::lookup(&a.name)?;
    let results = arch.results_for(tag.as_ref());
    let knobs = registry::resize::layout(&arch.name)
        .map(|l| l.knob_info())
        .unwrap_or_default();
    if a.json {
        let mut v = json!({
            "architecture": arch.name,
            "tag": tag.as_ref().map(|t| t.tag.clone()),
            "num_features": arch.num_features,
            "feature_info": arch.feature_info,
            "pretrained_cfg": tag.as_ref().map(|t| t.cfg.clone()),
            "param_count": arch.param_count,
            "global_pool": arch.global_pool,
            "has_weights": tag.as_ref().map(|t| t.has_weights),
            "tags": arch.tags.iter().map(|t| t.tag.clone()).collect::<Vec<_>>(),
        });
        if !results.is_empty() {
            v["results"] = serde_json::to_value(&results)?;
            v["results_by_size"] = serde_json::to_value(arch.results_by_size_for(tag.as_ref()))?;
        }
        v["resolution"] = serde_json::to_value(&knobs)?;
        printer::json(&v)?;
        return Ok(Outcome::Success);
    }
    let tag_name = tag.as_ref().map(|t| t.tag.as_str()).unwrap_or("-");
    printer::line(format_args!("{}.{}", arch.name, tag_name))?;
    if let Some(p) = arch.param_count {
        printer::line(format_args!("  params        {:.2} M", p as f64 / 1e6))?;
    }
    if let Some(n) = arch.num_features {
        printer::line(format_args!("  num_features  {n}"))?;
    }
    if let Some(t) = &tag {
        let show = |k: &str| {
            t.cfg
                .get(k)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into())
        };
        for k in [
            "input_size",
            "interpolation",
            "crop_pct",
            "mean",
            "std",
            "num_classes",
            "first_conv",
            "classifier",
            "license",
        ] {
            printer::line(format_args!("  {k:<13} {}", show(k)))?;
        }
        if t.label_offset() > 0 {
            printer::line(format_args!("  label_offset  {}", t.label_offset()))?;
        }
        let source = t
            .cfg
            .get("hf_hub_id")
            .or(t.cfg.get("url"))
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty());
        printer::line(format_args!(
            "  weights       {}",
            if t.has_weights {
                source.unwrap_or("yes")
            } else {
                "none (untrained cfg)"
            }
        ))?;
    }
    if let Some(fi) = &arch.feature_info {
        printer::line("  feature_info  (num_chs, reduction, module)")?;
        for f in fi {
            printer::line(format_args!(
                "    {:>6} {:>4}  {}",
                f.num_chs.map_or("-".into(), |x| x.to_string()),
                f.reduction.map_or("-".into(), |x| x.to_string()),
                f.module.as_deref().unwrap_or("-")
            ))?;
        }
    }
    for k in &knobs {
        let default = k.default.map_or("-".to_owned(), |[h, w]| {
            if h == w {
                h.to_string()
            } else {
                format!("{h},{w}")
            }
        });
        let flag = format!("--{}", k.knob.replace('_', "-"));
        match &k.refused {
            None => printer::line(format_args!("  {flag:<13} default {default}"))?,
            Some(why) => printer::line(format_args!(
                "  {flag:<13} default {default}; refused: {why}"
            ))?,
        }
    }
    let by_size = arch.results_by_size_for(tag.as_ref());
    if !by_size.is_empty() {
        let want = tag.as_ref().and_then(|t| t.input_size());
        printer::line(format_args!(
            "  results       {}",
            match (want, results.size()) {
                (Some(w), Some(s)) if w as f64 != s => format!(
                    "(none at the tag's {w}px; the nearest size, {}px, is marked *)",
                    px(Some(s))
                ),
                _ => "(the tag's input size is marked *)".to_owned(),
            }
        ))?;
        for line in results_table(by_size, &results) {
            printer::line(format_args!("    {line}"))?;
        }
    }
    if arch.tags.len() > 1 {
        printer::line(format_args!(
            "  tags          {}",
            arch.tags
                .iter()
                .map(|t| t.tag.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
    }
    Ok(Outcome::Success)
}

fn px(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x}"))
}

/// One row per size, every figure from that size's rows of the tables; the headline row starred.
fn results_table(by_size: &[Results], headline: &Results) -> Vec<String> {
    let head = [
        "px",
        "top1",
        "top5",
        "crop",
        "GMACs",
        "M acts",
        "samples/s",
        "train/s",
    ];
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|h| (*h).to_owned()).collect()];
    for r in by_size {
        let star = if r == headline { "*" } else { " " };
        rows.push(vec![
            format!("{star}{}", px(r.size())),
            px(r.top1),
            px(r.top5),
            px(r.crop_pct),
            px(r.gmacs),
            px(r.macts),
            px(r.samples_per_sec),
            px(r.train_samples_per_sec),
        ]);
    }
    crate::table::render(&rows)
}
