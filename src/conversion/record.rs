//! What a conversion records: the report it returns, the metadata it writes into the output
//! (where the weights came from, the settings' fingerprint), the input's hash, and whether an
//! existing output already holds what the conversion would write.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::input::{sha256_file, sha256_hex, Origin};
use super::settings::Settings;
use super::Conversion;
use crate::adapt::{Plan, Report};
use crate::checkpoint::{Checkpoint, Format, Skipped};
use crate::dtype::DType;
pub use crate::error::ChecksumSource;
use crate::error::{Error, Result};

/// What a conversion did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ConvertReport {
    /// The input file (`None` for a checkpoint converted from memory).
    pub input: Option<PathBuf>,
    /// The written file or folder (`None` for an output written to a stream).
    pub output: Option<PathBuf>,
    /// The input's container.
    pub format: Format,
    /// The top-level key the state dict came from.
    pub state_key: Option<String>,
    /// Hex SHA-256 of the input (empty with `no_hash`).
    pub source_sha256: String,
    /// Which expectation the SHA-256 was checked against, if any.
    pub sha256_checked: Option<ChecksumSource>,
    /// Tensors written.
    pub tensors: usize,
    /// Bytes of tensor data written.
    pub bytes: u64,
    /// Non-tensor entries of the state dict, left out.
    pub skipped: Vec<Skipped>,
    /// What the conversion changed: adaptations, drops, renames and casts.
    #[serde(flatten)]
    pub changes: Report,
}

/// The metadata written into the output's `__metadata__`.
pub(super) fn metadata(
    ckpt: &Checkpoint,
    sha: Option<&str>,
    opts: &Settings,
    plan: &Plan,
) -> BTreeMap<String, String> {
    let a = &opts.adapt;
    let mut info = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "model": opts.model,
        "tag": opts.tag,
        "source_format": ckpt.format(),
        "state_key": ckpt.state_key(),
        "in_chans": a.in_chans,
        "base_chans": plan.report.base_chans,
        "num_classes": a.num_classes,
        "first_conv": a.first_conv,
        "classifier": a.classifier,
        "dtype": a.dtype.map(DType::name),
        "adapted": plan.report.adapted,
        "img_size": a.resize.as_ref().and_then(|r| r.img_size),
        "patch_size": a.resize.as_ref().and_then(|r| r.patch_size),
        "window_size": a.resize.as_ref().and_then(|r| r.window_size),
        "resampled": plan.report.resampled,
        "global_pool": a.global_pool.as_ref().map(|(p, _)| p),
        "renamed": plan.report.renamed,
        "dropped": plan.report.dropped,
    });
    if let (Some(applied), Some(fields)) = (&plan.report.original_layout, info.as_object_mut()) {
        // only when there was one: the metadata of other conversions stays as it was
        fields.insert(
            "original_layout".to_owned(),
            serde_json::to_value(applied).unwrap_or_default(),
        );
    }
    let mut meta = BTreeMap::from([
        ("format".to_owned(), "pt".to_owned()),
        ("timmconv".to_owned(), info.to_string()),
    ]);
    if let Some(applied) = &plan.report.original_layout {
        // what a reader audits first: which original layout was converted, and what it held
        meta.insert("layout".to_owned(), applied.to_string());
    }
    if let Some(sha) = sha {
        meta.insert("source_sha256".to_owned(), sha.to_owned());
    } else if let Some((size, mtime)) = ckpt
        .file()
        .and_then(|f| f.metadata().ok())
        .and_then(|m| source_stamp(&m))
    {
        // without a hash, what says which input this came from (`batch --no-hash` compares it)
        meta.insert("source_size".to_owned(), size.to_string());
        meta.insert("source_mtime_ns".to_owned(), mtime.to_string());
    }
    meta.insert("options_sha256".to_owned(), options_fingerprint(opts));
    meta
}

/// An input's size and modification time (nanoseconds since the epoch), as recorded in the
/// metadata of outputs converted without hashing.
pub(super) fn source_stamp(m: &std::fs::Metadata) -> Option<(u64, u128)> {
    let mtime = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    Some((m.len(), mtime))
}

/// SHA-256 of everything in `opts` that shapes the output's tensors (not `overwrite`, `sync`,
/// `expect_sha256` or `no_hash`), with the timmconv version: `batch` skips an existing output
/// only when this matches, so a changed flag or a new timmconv converts again.
pub(super) fn options_fingerprint(opts: &Settings) -> String {
    let mut text = format!(
        "{}\n{:?}\n{:?}\n{:?}\n{:?}",
        env!("CARGO_PKG_VERSION"),
        opts.open,
        opts.adapt,
        opts.model,
        opts.tag
    );
    // what decides the original-layout conversion shapes the tensors too; the default adds
    // nothing, so fingerprints of conversions that never choose stay as they were
    if opts.original != super::OriginalLayoutChoice::Auto || opts.model_keys.is_some() {
        text.push_str(&format!("\n{:?}\n{:?}", opts.original, opts.model_keys));
    }
    sha256_hex(text.as_bytes())
}

/// Checks the input's SHA-256 against what is expected of it: the one given, else the hash in
/// its file name; which one it was, or `None` when nothing was expected.
pub(super) fn check_sha(
    input: &Origin,
    sha: &str,
    opts: &Settings,
) -> Result<Option<ChecksumSource>> {
    let expected = opts
        .expect_sha256
        .clone()
        .map(|e| (e.to_ascii_lowercase(), ChecksumSource::Expected))
        .or_else(|| {
            let name = input.path().and_then(super::settings::hash_in_file_name)?;
            Some((name, ChecksumSource::FileName))
        });
    // both are 8 to 64 hex digits: expect_sha256 is checked before any work, and
    // hash_in_file_name only matches such names
    let Some((want, source)) = expected else {
        return Ok(None);
    };
    if !sha.starts_with(&want) {
        return Err(Error::Checksum {
            path: input.name(),
            actual: sha.to_owned(),
            expected: want,
            against: source,
        });
    }
    Ok(Some(source))
}

/// What lies at a conversion's output path, as [`Conversion::output_state`] judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputState {
    /// Nothing timmconv wrote: nothing there, or a file without timmconv's `options_sha256`
    /// metadata. Writing there needs [`overwrite`](super::WriteOptions::overwrite), and a
    /// batch leaves it alone.
    NotOurs,
    /// An output timmconv wrote for another input, other settings or another version, or one
    /// cut short (its length is not what its header says): converting again replaces it.
    Stale,
    /// This conversion's output, whole: converting again would write the same tensors.
    Current,
}

/// [`OutputState`], with the input bytes read to decide it (the input is hashed unless the
/// conversion does not hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputCheck {
    /// What lies at the output.
    pub state: OutputState,
    /// Bytes of the input read (hashed) to decide.
    pub input_bytes_read: u64,
}

impl Conversion {
    /// Whether the output at `output` (a file, or the weights of a hub folder) already holds
    /// what this conversion would write: its header is read back as every reader checks it, the
    /// file is as long as the header says, its `options_sha256` matches
    /// [`options_sha256`](Self::options_sha256), and it records this input: the input's SHA-256,
    /// or (without [`hash_input`](Self::hash_input)) its size and modification time. Nothing is
    /// written; an unreadable output or input is never current.
    ///
    /// ```
    /// use timmconv::conversion::OutputState;
    /// use timmconv::{Conversion, WriteOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let out = dir.path().join("resnet1.safetensors");
    /// let c = Conversion::from_file("fixtures/ckpt/test_resnet.f32.zip.pth").model("test_resnet")?;
    /// assert_eq!(c.clone().in_chans(1).output_state(&out).state, OutputState::NotOurs);
    /// c.clone().in_chans(1).plan()?.write(&out, &WriteOptions::default())?;
    /// assert_eq!(c.clone().in_chans(1).output_state(&out).state, OutputState::Current);
    /// assert_eq!(c.in_chans(2).output_state(&out).state, OutputState::Stale);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn output_state(&self, output: &Path) -> OutputCheck {
        let weights = match self.layout {
            super::Layout::File => output.to_path_buf(),
            super::Layout::Hub => output.join(super::output::FOLDER_FILES[0]),
        };
        let mut check = OutputCheck {
            state: OutputState::NotOurs,
            input_bytes_read: 0,
        };
        let Ok(out) = crate::write::read_written(&weights) else {
            return check;
        };
        let Some(recorded_options) = out.metadata.get("options_sha256") else {
            return check;
        };
        check.state = OutputState::Stale;
        let current_options = self.options_sha256().ok();
        if !out.complete || current_options.as_ref() != Some(recorded_options) {
            return check;
        }
        let meta = out.metadata;
        let input = match &self.input {
            super::Input::File(p) => p,
            super::Input::Bytes(bytes) => {
                // bytes carry no size and time of their own: only a hash tells them apart
                check.input_bytes_read = bytes.len() as u64;
                let same = self.hash_input
                    && meta.get("source_sha256") == Some(&sha256_hex(bytes.as_slice()));
                if same {
                    check.state = OutputState::Current;
                }
                return check;
            }
        };
        let current = if self.hash_input {
            let Some(recorded) = meta.get("source_sha256") else {
                return check;
            };
            check.input_bytes_read = std::fs::metadata(input).map_or(0, |m| m.len());
            sha256_file(input).is_ok_and(|sha| *recorded == sha)
        } else {
            // the input's size and mtime, as the output recorded them when converted without a
            // hash
            let stamp = std::fs::metadata(input).ok().and_then(|m| source_stamp(&m));
            match (stamp, meta.get("source_size"), meta.get("source_mtime_ns")) {
                (Some((size, mtime)), Some(s), Some(m)) => {
                    *s == size.to_string() && *m == mtime.to_string()
                }
                _ => false,
            }
        };
        if current {
            check.state = OutputState::Current;
        }
        check
    }
}
