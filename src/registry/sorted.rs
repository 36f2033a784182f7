//! A look-up in sorted JSON lines without indexing them first: a binary search over the text's
//! bytes, so finding one architecture touches a few dozen lines, not the megabytes of all of
//! them (what [`super::Lines`] pays once, for listings).

use std::cmp::Ordering;

/// The line of `name` in `text`: a header line, then lines opening with `{"name":"…"` in byte
/// order of the names, as [`super::Lines`] reads them (lines that open otherwise, blank ones,
/// are skipped; a line's trailing `\r` is not part of it).
pub(crate) fn find(text: &'static str, name: &str) -> Option<&'static str> {
    let mut lo = text.find('\n')? + 1;
    let mut hi = text.len();
    // the line sought, if there, starts in [lo, hi); both are line starts (or the end)
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let start = text
            .get(lo..mid)
            .and_then(|t| t.rfind('\n'))
            .map_or(lo, |i| lo + i + 1);
        // the first named line at or after `start`, before `hi`
        let mut at = start;
        let found = loop {
            if at >= hi {
                break None;
            }
            let rest = text.get(at..hi)?;
            let end = rest.find('\n').map_or(hi, |i| at + i);
            let line = text.get(at..end)?;
            let line = line.strip_suffix('\r').unwrap_or(line);
            if let Some(n) = super::name_of(line) {
                break Some((at, end, n, line));
            }
            at = end + 1;
        };
        match found {
            None => hi = start,
            Some((at, end, n, line)) => match n.cmp(name) {
                Ordering::Equal => return Some(line),
                Ordering::Less => lo = end + 1,
                Ordering::Greater => hi = at,
            },
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name of the embedded registry is found, and is the line `Lines` finds.
    #[test]
    fn finds_what_the_index_finds() {
        let lines = super::super::Lines::new(super::super::DATA.lines().skip(1));
        let mut n = 0;
        for (name, line) in lines.iter() {
            assert_eq!(find(super::super::DATA, name), Some(line), "{name}");
            n += 1;
        }
        assert_eq!(n, 1371);
        for missing in ["", "a", "resnet50x", "zzz", "resnet5", "{"] {
            assert_eq!(find(super::super::DATA, missing), None, "{missing}");
        }
    }

    #[test]
    fn skips_blank_and_other_lines() {
        let text: &'static str = "{\"timm\":1}\n\n{\"name\":\"a\"}\r\n\n  \n{\"name\":\"b\",\"x\":1}\nzz\n{\"name\":\"c\"}";
        assert_eq!(find(text, "a"), Some("{\"name\":\"a\"}"));
        assert_eq!(find(text, "b"), Some("{\"name\":\"b\",\"x\":1}"));
        assert_eq!(find(text, "c"), Some("{\"name\":\"c\"}"));
        assert_eq!(find(text, "d"), None);
        assert_eq!(find(text, "0"), None);
        assert_eq!(find("", "a"), None);
        assert_eq!(find("{}", "a"), None);
    }
}
