//! `timmconv inspect`

use std::collections::BTreeMap;

use serde::Serialize;

use crate::cli::args::InspectArgs;
use crate::cli::{printer, Outcome};
use timmconv::pickle::GlobalClass;
use timmconv::{checkpoint, Checkpoint};

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
    total_params: u64,
    total_bytes: u64,
}

/// Runs `inspect`.
pub fn run(mut a: InspectArgs) -> anyhow::Result<Outcome> {
    a.file = timmconv::source::resolve(&a.file, &mut printer::download(false))?.weights;
    if a.scan {
        return scan(&a);
    }
    if a.tree {
        return super::tree::run(&a);
    }
    let opts = a.state.open_options();
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
                "  {} {:>5}x  {:?}",
                printer::pad(&printer::printable(&g.global), 45),
                g.count,
                g.class
            ))?;
        }
    }
    if !report.top_level_keys.is_empty() {
        printer::line(format_args!(
            "top level: {}",
            printer::printable(&report.top_level_keys.join(", "))
        ))?;
    }
    printer::line(format_args!(
        "state dict: {}",
        report
            .state_key
            .map(|k| format!("`{}`", printer::printable(k)))
            .unwrap_or_else(|| "top level".into())
    ))?;
    for s in report.skipped {
        printer::line(format_args!(
            "  skipped non-tensor `{}` ({})",
            printer::printable(&s.name),
            printer::printable(&s.kind)
        ))?;
    }
    let names: Vec<_> = report
        .tensors
        .iter()
        .map(|t| printer::printable(t.name))
        .collect();
    let width = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    printer::line(format_args!(
        "{}  {:<5} {:<20} {:>12}  layout",
        printer::pad("name", width),
        "dtype",
        "shape",
        "bytes"
    ))?;
    for (t, name) in report.tensors.iter().zip(&names) {
        let mut layout = vec![if t.contiguous {
            "contiguous"
        } else {
            "strided"
        }];
        if t.shared_storage {
            layout.push("shared");
        }
        printer::line(format_args!(
            "{}  {:<5} {:<20} {:>12}  {}",
            printer::pad(name, width),
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
        printer::bytes(report.total_bytes)
    ))?;
    Ok(Outcome::Success)
}

fn scan(a: &InspectArgs) -> anyhow::Result<Outcome> {
    let scan = checkpoint::scan_file(&a.file)?;
    let safe = scan.is_safe();
    if a.json {
        printer::json(&serde_json::json!({
            "file": a.file.display().to_string(),
            "safe": safe,
            "globals": scan.findings,
            "problems": scan.problems,
        }))?;
    } else {
        for f in &scan.findings {
            printer::line(format_args!(
                "{} {} in {} at byte {}",
                printer::pad(&format!("{:?}", f.class).to_lowercase(), 9),
                printer::printable(&f.global),
                printer::printable(&f.pickle),
                f.offset
            ))?;
        }
        for p in &scan.problems {
            printer::line(format_args!(
                "{} {}: {}",
                printer::pad("unreadable", 9),
                printer::printable(&p.place),
                printer::printable(&p.what)
            ))?;
        }
        printer::line(if !scan.problems.is_empty() {
            "UNSAFE: parts of the file could not be vouched for (see above)"
        } else if !safe {
            "UNSAFE: the file references globals that are dangerous or unknown"
        } else {
            "ok: only allowed and harmless-data globals"
        })?;
    }
    Ok(if safe {
        Outcome::Success
    } else {
        Outcome::Finding
    })
}
