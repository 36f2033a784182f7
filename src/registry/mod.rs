//! Embedded timm registry (work in progress).

use crate::adapt::Adaptation;
use crate::error::{Error, Result};

/// Fills `adapt` from the pretrained cfg of `name`.
#[cfg(feature = "cli")]
pub fn apply_cfg(name: &str, _adapt: &mut Adaptation, _a: &crate::cli::args::ConvertArgs) -> Result<(String, Option<String>)> {
    Err(Error::UnknownModel { name: name.to_owned(), suggestions: vec![] })
}
