//! `timmconv inspect`

use std::collections::BTreeMap;

use serde::Serialize;

use crate::args::InspectArgs;
use crate::{printer, Outcome};
use timmconv::checkpoint::GlobalClass;
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
    /// What timmconv recorded when it wrote the file (model, tag, in_chans, img_size, ...).
    timmconv: Option<timmconv::identify::Recorded>,
    state_key: Option<&'a str>,
    skipped: &'a [checkpoint::Skipped],
    tensors: Vec<TensorRow<'a>>,
    total_tensors: usize,
    total_params: u64,
    total_bytes: u64,
}

/// Runs `inspect`.
pub fn run(mut a: InspectArgs) -> anyhow::Result<Outcome> {
    a.file = timmconv::source::resolve(&a.file, &mut printer::download(false))
        .map_err(crate::wording::flags)?
        .weights;
    if a.scan {
        return scan(&a);
    }
    if a.tree {
        return super::tree::run(&a);
    }
    let opts = a.state.open_options();
    let ckpt = Checkpoint::open(&a.file, &opts).map_err(super::convert::flags)?;
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
        timmconv: timmconv::identify::Recorded::of(&ckpt),
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
    if let Some(r) = &report.timmconv {
        printer::line(format_args!(
            "written by timmconv{}: {}",
            r.version
                .as_deref()
                .map(|v| format!(" {}", printer::printable(v)))
                .unwrap_or_default(),
            printer::printable(&r.describe())
        ))?;
    }
    if !report.top_level_keys.is_empty() {
        printer::line(format_args!(
            "top level: {}",
            printer::printable(&group_keys(report.top_level_keys))
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

/// Up to this many top-level keys are listed one by one; more are grouped by their first part.
const LISTED_KEYS: usize = 12;

/// `a, b, c` for a few keys; for many (a state dict saved at the top level), one entry per
/// first dotted part in order of appearance, with a count: `blocks.* (72), cls_token, ...`.
fn group_keys(keys: &[String]) -> String {
    if keys.len() <= LISTED_KEYS {
        return keys.join(", ");
    }
    let mut groups: Vec<(&str, usize, bool)> = Vec::new();
    for k in keys {
        let (head, nested) = match k.split_once('.') {
            Some((h, _)) => (h, true),
            None => (k.as_str(), false),
        };
        match groups.iter_mut().find(|(h, _, _)| *h == head) {
            Some(g) => {
                g.1 += 1;
                g.2 |= nested;
            }
            None => groups.push((head, 1, nested)),
        }
    }
    let parts: Vec<String> = groups
        .into_iter()
        .map(|(h, n, nested)| match (nested, n) {
            (false, 1) => h.to_owned(),
            (true, _) => format!("{h}.* ({n})"),
            (false, _) => format!("{h} ({n})"),
        })
        .collect();
    format!("{} keys: {}", keys.len(), parts.join(", "))
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

#[cfg(test)]
mod tests {
    use super::group_keys;

    #[test]
    fn a_long_top_level_is_grouped_by_first_part() {
        let few: Vec<String> = ["state_dict", "epoch"].map(String::from).to_vec();
        assert_eq!(group_keys(&few), "state_dict, epoch");
        let mut many: Vec<String> = (0..12)
            .flat_map(|i| [format!("blocks.{i}.w"), format!("blocks.{i}.b")])
            .collect();
        many.extend(["cls_token", "norm.weight", "norm.bias"].map(String::from));
        assert_eq!(
            group_keys(&many),
            "27 keys: blocks.* (24), cls_token, norm.* (2)"
        );
    }
}
