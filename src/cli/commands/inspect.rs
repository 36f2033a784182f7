//! `timmconv inspect`

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::args::InspectArgs;
use crate::cli::{printer, Outcome};
use crate::pickle::GlobalClass;
use crate::{checkpoint, Checkpoint, OpenOptions};

#[derive(Serialize)]
struct GlobalCount {
    global: String,
    class: GlobalClass,
    count: usize,
}

#[derive(Serialize)]
struct TensorRow<'a> {
    name: &'a str,
    dtype: &'static str,
    shape: &'a [usize],
    bytes: usize,
    contiguous: bool,
    shared_storage: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    file: String,
    format: checkpoint::Format,
    pickle_protocol: Option<u8>,
    globals: Vec<GlobalCount>,
    top_level_keys: &'a [String],
    state_key: Option<&'a str>,
    skipped: &'a [checkpoint::Skipped],
    tensors: Vec<TensorRow<'a>>,
    total_tensors: usize,
    total_params: usize,
    total_bytes: usize,
}

/// Runs `inspect`.
pub fn run(mut a: InspectArgs) -> anyhow::Result<Outcome> {
    a.file = crate::source::resolve(&a.file, &mut printer::download(false))?.weights;
    if a.scan {
        return scan(&a);
    }
    let opts = OpenOptions {
        use_ema: !a.state.no_ema,
        state_key: a.state.state_key.clone(),
    };
    let ckpt = Checkpoint::open(&a.file, &opts)?;
    let mut counts: BTreeMap<String, (GlobalClass, usize)> = BTreeMap::new();
    for g in ckpt.globals() {
        counts
            .entry(format!("{}.{}", g.module, g.name))
            .or_insert((g.class, 0))
            .1 += 1;
    }
    let report = Report {
        file: a.file.display().to_string(),
        format: ckpt.format(),
        pickle_protocol: ckpt.protocol(),
        globals: counts
            .into_iter()
            .map(|(global, (class, count))| GlobalCount {
                global,
                class,
                count,
            })
            .collect(),
        top_level_keys: ckpt.top_level_keys(),
        state_key: ckpt.state_key(),
        skipped: ckpt.skipped(),
        tensors: ckpt
            .tensors()
            .iter()
            .map(|t| TensorRow {
                name: &t.name,
                dtype: t.dtype.name(),
                shape: &t.shape,
                bytes: t.nbytes(),
                contiguous: t.is_contiguous(),
                shared_storage: t.shared,
            })
            .collect(),
        total_tensors: ckpt.tensors().len(),
        total_params: ckpt.total_numel(),
        total_bytes: ckpt.total_bytes(),
    };
    if a.json {
        printer::json(&report)?;
        return Ok(Outcome::Success);
    }
    printer::line(format_args!("file:      {}", report.file))?;
    printer::line(format_args!(
        "format:    {}{}",
        report.format,
        report
            .pickle_protocol
            .map(|p| format!(" (pickle protocol {p})"))
            .unwrap_or_default()
    ))?;
    if !report.globals.is_empty() {
        printer::line("globals:")?;
        for g in &report.globals {
            printer::line(format_args!(
                "  {:<45} {:>5}x  {:?}",
                g.global, g.count, g.class
            ))?;
        }
    }
    if !report.top_level_keys.is_empty() {
        printer::line(format_args!(
            "top level: {}",
            report.top_level_keys.join(", ")
        ))?;
    }
    printer::line(format_args!(
        "state dict: {}",
        report
            .state_key
            .map(|k| format!("`{k}`"))
            .unwrap_or_else(|| "top level".into())
    ))?;
    for s in report.skipped {
        printer::line(format_args!(
            "  skipped non-tensor `{}` ({})",
            s.name, s.kind
        ))?;
    }
    let width = report
        .tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    printer::line(format_args!(
        "{:<width$}  {:<5} {:<20} {:>12}  layout",
        "name", "dtype", "shape", "bytes"
    ))?;
    for t in &report.tensors {
        let mut layout = vec![if t.contiguous {
            "contiguous"
        } else {
            "strided"
        }];
        if t.shared_storage {
            layout.push("shared");
        }
        printer::line(format_args!(
            "{:<width$}  {:<5} {:<20} {:>12}  {}",
            t.name,
            t.dtype,
            format!("{:?}", t.shape),
            t.bytes,
            layout.join(",")
        ))?;
    }
    printer::line(format_args!(
        "{} tensors, {} parameters, {}",
        report.total_tensors,
        report.total_params,
        printer::bytes(report.total_bytes as u64)
    ))?;
    Ok(Outcome::Success)
}

fn scan(a: &InspectArgs) -> anyhow::Result<Outcome> {
    let findings = checkpoint::scan_file(&a.file)?;
    let bad = findings
        .iter()
        .any(|f| matches!(f.class, GlobalClass::Dangerous | GlobalClass::Unknown));
    if a.json {
        printer::json(&serde_json::json!({
            "file": a.file.display().to_string(),
            "safe": !bad,
            "globals": findings,
        }))?;
    } else {
        for f in &findings {
            printer::line(format_args!(
                "{:<10} {:<45} {} offset {}",
                format!("{:?}", f.class).to_lowercase(),
                f.global,
                f.pickle,
                f.offset
            ))?;
        }
        printer::line(if bad {
            "UNSAFE: the file references globals that are dangerous or unknown"
        } else {
            "ok: only allowed and harmless-data globals"
        })?;
    }
    Ok(if bad {
        Outcome::Finding
    } else {
        Outcome::Success
    })
}
