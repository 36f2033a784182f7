//! Key renaming: module-prefix swaps and ordered regex rules, as a value that reports what it did.

use regex::Regex;
use serde::Serialize;

use crate::error::{Error, Result};

/// Replaces a module path prefix on whole path components: `fc` matches `fc.weight`, not
/// `fc2.weight`.
pub fn replace_prefix(name: &str, from: &str, to: &str) -> Option<String> {
    if name == from {
        return Some(to.to_owned());
    }
    let rest = name.strip_prefix(from)?.strip_prefix('.')?;
    Some(if to.is_empty() {
        rest.to_owned()
    } else {
        format!("{to}.{rest}")
    })
}

/// One `REGEX=REPLACEMENT` rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pattern: Regex,
    replacement: String,
}

impl Rule {
    /// Parses `REGEX=REPLACEMENT` (split at the first `=` that is not inside the pattern's
    /// escapes; use `\=` for a literal `=` in the pattern). The replacement may use `$1`, `${name}`.
    pub fn parse(spec: &str) -> Result<Rule> {
        let bytes = spec.as_bytes();
        let mut split = None;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'=' => {
                    split = Some(i);
                    break;
                }
                _ => i += 1,
            }
        }
        let Some(at) = split else {
            return Err(Error::Rename(format!(
                "rule `{spec}` has no `=` between the pattern and the replacement"
            )));
        };
        let pattern = spec[..at].replace("\\=", "=");
        Ok(Rule {
            pattern: Regex::new(&pattern)
                .map_err(|e| Error::Rename(format!("rule `{spec}`: {e}")))?,
            replacement: spec[at + 1..].to_owned(),
        })
    }

    /// The rule as written.
    pub fn spec(&self) -> String {
        format!("{}={}", self.pattern.as_str(), self.replacement)
    }

    /// Applies the rule to every match in `name`; `None` if it does not match.
    pub fn apply(&self, name: &str) -> Option<String> {
        if self.pattern.is_match(name) {
            Some(
                self.pattern
                    .replace_all(name, self.replacement.as_str())
                    .into_owned(),
            )
        } else {
            None
        }
    }
}

/// What renaming did to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renamed {
    /// The key before.
    pub from: String,
    /// The key after.
    pub to: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_whole_components_only() {
        assert_eq!(
            replace_prefix("fc.weight", "fc", "head"),
            Some("head.weight".into())
        );
        assert_eq!(replace_prefix("fc2.weight", "fc", "head"), None);
        assert_eq!(
            replace_prefix("conv1.0.weight", "conv1.0", "stem.conv"),
            Some("stem.conv.weight".into())
        );
    }

    #[test]
    fn rules_parse_and_apply() {
        let r = Rule::parse(r"^blocks\.(\d+)\.=layers.$1.").unwrap();
        assert_eq!(
            r.apply("blocks.3.mlp.fc1.weight").as_deref(),
            Some("layers.3.mlp.fc1.weight")
        );
        assert_eq!(r.apply("norm.weight"), None);
        assert!(Rule::parse("nothing").is_err());
        assert!(Rule::parse("(=x").is_err());
    }
}
