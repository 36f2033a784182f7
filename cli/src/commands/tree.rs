//! `timmconv inspect --tree`: parameters and bytes per module prefix, indented, with the stem
//! and classifier of a timm cfg marked.

use crate::args::InspectArgs;
use crate::{printer, table, Outcome};
use timmconv::{checkpoint, registry, Checkpoint};

/// Levels shown without `--depth`.
const DEFAULT_DEPTH: usize = 2;

/// What the cfg says a prefix is: itself the stem or classifier, or the module holding it.
fn mark(prefix: &str, shown_deepest: bool, role: &str, names: &[String]) -> Option<String> {
    for n in names {
        if n == prefix {
            return Some(format!("{role} ({n})"));
        }
        if shown_deepest && n.starts_with(prefix) && n[prefix.len()..].starts_with('.') {
            return Some(format!("holds the {role} ({n})"));
        }
    }
    None
}

/// Runs `inspect --tree`.
pub fn run(a: &InspectArgs) -> anyhow::Result<Outcome> {
    let depth = a
        .depth
        .unwrap_or(DEFAULT_DEPTH)
        .clamp(1, checkpoint::MAX_MODULE_DEPTH);
    // the cfg first, so that a wrong name fails before anything is printed
    let cfg = match &a.model {
        Some(m) => {
            let (arch, tag) = registry::lookup(m)?;
            let tag = tag.ok_or_else(|| anyhow::anyhow!("`{m}` has no pretrained cfg"))?;
            Some((arch.name, tag))
        }
        None => None,
    };
    let ckpt = Checkpoint::open(&a.file, &a.state.open_options()).map_err(super::convert::flags)?;
    let tree = checkpoint::modules(ckpt.tensors(), depth);
    let (stem, head) = cfg
        .as_ref()
        .map(|(_, t)| (t.first_conv(), t.classifier()))
        .unwrap_or_default();
    let marks: Vec<Option<String>> = tree
        .iter()
        .map(|m| {
            let deepest = m.depth == depth;
            mark(&m.prefix, deepest, "stem", &stem)
                .or_else(|| mark(&m.prefix, deepest, "classifier", &head))
        })
        .collect();
    if a.json {
        let rows: Vec<_> = tree
            .iter()
            .zip(&marks)
            .map(|(m, mk)| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                v["mark"] = serde_json::to_value(mk).unwrap_or_default();
                v
            })
            .collect();
        printer::json(&serde_json::json!({
            "file": a.file.display().to_string(),
            "model": cfg.as_ref().map(|(arch, t)| format!("{arch}.{}", t.tag)),
            "depth": depth,
            "modules": rows,
            "total_params": ckpt.total_numel(),
            "total_bytes": ckpt.total_bytes(),
        }))?;
        return Ok(Outcome::Success);
    }
    let total = ckpt.total_numel().max(1) as f64;
    let mut rows = vec![vec![
        "module".to_owned(),
        "params".to_owned(),
        "%".to_owned(),
        "bytes".to_owned(),
        "tensors".to_owned(),
    ]];
    for m in &tree {
        let name = m.prefix.rsplit('.').next().unwrap_or(&m.prefix);
        rows.push(vec![
            format!("{}{}", "  ".repeat(m.depth - 1), printer::printable(name)),
            m.params.to_string(),
            format!("{:.1}", m.params as f64 * 100.0 / total),
            printer::bytes(m.bytes),
            m.tensors.to_string(),
        ]);
    }
    let lines = table::render(&rows);
    let mut marks = std::iter::once(&None).chain(&marks);
    for l in lines {
        match marks.next() {
            Some(Some(mk)) => printer::line(format_args!("{l}  <- {mk}"))?,
            _ => printer::line(l)?,
        }
    }
    printer::line(format_args!(
        "{} tensors, {} parameters, {}{}",
        ckpt.tensors().len(),
        ckpt.total_numel(),
        printer::bytes(ckpt.total_bytes()),
        match &cfg {
            Some((arch, t)) => format!("; stem and classifier from {arch}.{}'s cfg", t.tag),
            None => String::new(),
        }
    ))?;
    Ok(Outcome::Success)
}
