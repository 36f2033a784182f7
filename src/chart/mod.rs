//! SVG charts (feature `plot`, on with the CLI; no libtorch needed): the accuracy-against-cost
//! chart for choosing a backbone ([`choice`]) and the parity report of `verify` ([`parity`]).
//!
//! Charts are drawn with plotters' SVG backend and its built-in font metrics, so the same data
//! gives the same bytes on every machine.
//!
//! ```
//! use timmconv::chart::choice::{frontier, Better};
//! // (x = samples/s, y = top-1): the middle model is slower and worse than the first
//! let on = frontier(&[(100.0, 80.0), (50.0, 79.0), (10.0, 85.0)], Better::Higher);
//! assert_eq!(on, [true, false, true]);
//! ```

pub mod choice;
pub mod parity;

use crate::error::Error;

/// A plotting failure as this crate's error.
fn err(e: impl std::fmt::Display) -> Error {
    Error::Chart(e.to_string())
}

/// Escapes text for an XML attribute or text node.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Tags the `<circle` elements of `svg`, in drawing order, with `data-name` attributes, so a
/// reader (or a test) can tell which mark is which model.
fn name_circles(svg: &str, names: &[&str]) -> String {
    let mut out = String::with_capacity(svg.len() + names.len() * 32);
    let mut rest = svg;
    let mut names = names.iter();
    while let Some(i) = rest.find("<circle") {
        let (head, tail) = rest.split_at(i + "<circle".len());
        out.push_str(head);
        if let Some(n) = names.next() {
            out.push_str(&format!(" data-name=\"{}\"", xml_escape(n)));
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}
