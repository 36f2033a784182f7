//! timm hub folders.

use std::path::Path;

use crate::convert::{ConvertOptions, ConvertReport};
use crate::error::{Error, Result};

/// Converts into a hub folder.
pub fn convert_hub(_input: &Path, _output: &Path, _opts: &ConvertOptions, _progress: impl FnMut(u64, u64)) -> Result<ConvertReport> {
    Err(Error::Options("--layout hub needs --model".into()))
}
