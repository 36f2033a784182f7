//! Text tables sized to their content: the first column left-aligned, the rest right-aligned,
//! nothing ever cut. A table wider than the terminal leaves out whole trailing columns, and says
//! which, rather than truncating a name.

/// The width to fit: the terminal's when stdout is one, else none (a pipe gets everything).
pub fn terminal_width() -> Option<usize> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() {
        return None;
    }
    terminal_size::terminal_size().map(|(w, _)| usize::from(w.0))
}

/// Renders `rows` (the first is the header); with `width`, keeps the leading columns that fit
/// (the first always). Returns the lines and the header names of the columns left out.
pub fn fit(rows: &[Vec<String>], width: Option<usize>) -> (Vec<String>, Vec<String>) {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut keep = ncols.min(1);
    let mut used = widths.first().copied().unwrap_or(0);
    for w in widths.iter().skip(1) {
        if width.is_some_and(|max| used + 2 + w > max) {
            break;
        }
        used += 2 + w;
        keep += 1;
    }
    let dropped = rows
        .first()
        .map(|h| h.iter().skip(keep).cloned().collect())
        .unwrap_or_default();
    let lines = rows
        .iter()
        .map(|r| {
            let mut line = String::new();
            for (c, (cell, w)) in r.iter().zip(&widths).take(keep).enumerate() {
                if c == 0 {
                    line.push_str(&format!("{cell:<w$}"));
                } else {
                    line.push_str(&format!("  {cell:>w$}"));
                }
            }
            line.trim_end().to_owned()
        })
        .collect();
    (lines, dropped)
}

/// Renders `rows` with no width limit.
pub fn render(rows: &[Vec<String>]) -> Vec<String> {
    fit(rows, None).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<String>> {
        [
            ["model", "top1", "samples_per_sec"],
            ["a_very_long_name", "80.1", "12"],
        ]
        .iter()
        .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
        .collect()
    }

    #[test]
    fn columns_are_sized_to_their_content() {
        assert_eq!(
            render(&rows()),
            [
                "model             top1  samples_per_sec",
                "a_very_long_name  80.1               12"
            ]
        );
    }

    #[test]
    fn a_narrow_terminal_drops_whole_columns_never_names() {
        let (lines, dropped) = fit(&rows(), Some(24));
        assert_eq!(lines, ["model             top1", "a_very_long_name  80.1"]);
        assert_eq!(dropped, ["samples_per_sec"]);
        let (lines, dropped) = fit(&rows(), Some(3));
        assert_eq!(lines, ["model", "a_very_long_name"]);
        assert_eq!(dropped.len(), 2);
    }
}
