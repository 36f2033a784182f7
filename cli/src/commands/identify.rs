//! `timmconv identify`

use crate::args::IdentifyArgs;
use crate::{printer, Outcome};
use timmconv::Checkpoint;

/// Runs `identify`.
pub fn run(a: IdentifyArgs) -> anyhow::Result<Outcome> {
    let source = timmconv::source::resolve(&a.input, &mut printer::download(a.json))
        .map_err(super::convert::flags)?;
    let ckpt = Checkpoint::open(&source.weights, &a.state.open_options())
        .map_err(super::convert::flags)?;
    let found = timmconv::identify::identify(&ckpt, a.limit)?;
    if a.json {
        printer::json(&found)?;
        return Ok(Outcome::Success);
    }
    if found.is_empty() {
        printer::line("no timm architecture shares even half its keys with this checkpoint")?;
        return Ok(Outcome::Success);
    }
    let width = found
        .iter()
        .map(|c| c.architecture.chars().count())
        .max()
        .unwrap_or(0);
    for c in &found {
        // close: the model adapted (in_chans, num_classes, img_size); far: not this model
        let what = match (c.exact, c.adaptable) {
            (true, _) => "exact",
            (false, true) => "close",
            (false, false) => "far  ",
        };
        let layout = c.layout.as_ref().map(|l| format!("[layout {l}] "));
        let first = c.differences.first().map(String::as_str).unwrap_or("");
        let first = format!("{}{first}", layout.unwrap_or_default());
        let first = first.trim_end();
        printer::line(format_args!(
            "{what}  {}  {}",
            printer::pad(&c.architecture, width),
            printer::printable(first)
        ))?;
        for d in c.differences.iter().skip(1) {
            printer::line(format_args!(
                "{}  {}",
                printer::pad("", width + 7),
                printer::printable(d)
            ))?;
        }
    }
    if let Some(c) = found.first() {
        if let Some(l) = &c.layout {
            printer::line(format_args!(
                "\nrecognised the original layout {l}: timm's checkpoint_filter_fn for `{}` \
                 converts it, and so does\n  timmconv convert {} --model {} -o OUTPUT.safetensors{}",
                c.architecture,
                printer::printable(&a.input.display().to_string()),
                c.architecture,
                if c.exact {
                    ""
                } else {
                    "\n(the closest architecture, not an exact fit: the differences above still apply)"
                }
            ))?;
        }
    }
    Ok(Outcome::Success)
}
