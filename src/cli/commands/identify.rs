//! `timmconv identify`

use crate::cli::args::IdentifyArgs;
use crate::cli::{printer, Outcome};
use timmconv::Checkpoint;

/// Runs `identify`.
pub fn run(a: IdentifyArgs) -> anyhow::Result<Outcome> {
    let source = timmconv::source::resolve(&a.input, &mut printer::download(a.json))?;
    let ckpt = Checkpoint::open(&source.weights, &a.state.open_options())?;
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
        let first = c.differences.first().map(String::as_str).unwrap_or("");
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
    Ok(Outcome::Success)
}
