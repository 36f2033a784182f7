//! The one error type of the library; every variant names the check that failed.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading, adapting or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O failure, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Any error, with the file it came from.
    #[error("{path}: {source}")]
    WithPath {
        /// The file being read or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },
    /// The bytes are not a format this crate reads.
    #[error("not a checkpoint: {0}")]
    UnknownFormat(String),
    /// A format that is recognised but deliberately not read.
    #[error("unsupported format: {0}")]
    UnsupportedFormat(String),
    /// The pickle stream is malformed.
    #[error("pickle: {what} at byte offset {offset}")]
    Pickle {
        /// Byte offset of the opcode in the pickle stream.
        offset: usize,
        /// What was expected or found.
        what: String,
    },
    /// The pickle references a global that is not on the allowlist; nothing was imported or run.
    #[error(
        "pickle references forbidden global `{module}.{name}` at byte offset {offset}; \
         timmconv never imports or calls code from a checkpoint"
    )]
    ForbiddenGlobal {
        /// Module part of the global.
        module: String,
        /// Attribute part of the global.
        name: String,
        /// Byte offset of the opcode in the pickle stream.
        offset: usize,
    },
    /// A named resource limit was exceeded.
    #[error("limit exceeded: {what} ({value} > {limit}, the limit `{name}`)")]
    Limit {
        /// Name of the limit constant.
        name: &'static str,
        /// What was being counted.
        what: String,
        /// The value found.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// The zip container is malformed.
    #[error("zip: {0}")]
    Zip(String),
    /// A safetensors input is malformed.
    #[error("safetensors: {0}")]
    SafeTensors(String),
    /// A checkpoint's object structure is not what torch.save writes.
    #[error("checkpoint structure: {0}")]
    Structure(String),
    /// A tensor cannot be read (bad view, unsupported kind).
    #[error("tensor `{key}`: {what}")]
    Tensor {
        /// The state-dict key of the tensor.
        key: String,
        /// What is wrong.
        what: String,
    },
    /// A tensor name that is not in the state dict.
    #[error("no tensor named `{0}`")]
    NoSuchTensor(String),
    /// A state-dict key requested with `state_key` is absent.
    #[error("checkpoint has no entry `{key}`; top-level entries: {available}")]
    NoSuchStateKey {
        /// The key asked for.
        key: String,
        /// The keys that exist.
        available: String,
    },
    /// Options given to an operation contradict each other or the checkpoint.
    #[error("{0}")]
    Options(String),
    /// A weight cannot be adapted to the requested input channels.
    #[error(
        "cannot adapt `{key}` with shape {shape:?} to in_chans={in_chans} (base {base}): {why}; \
         pass --drop-unadaptable to drop it and let the model initialise it, as timm does"
    )]
    Unadaptable {
        /// The weight's key.
        key: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The requested channel count.
        in_chans: usize,
        /// The base channel count of the pretrained weights.
        base: usize,
        /// Why it cannot be adapted.
        why: String,
    },
    /// A rename rule is invalid or two tensors map to the same name.
    #[error("rename: {0}")]
    Rename(String),
    /// The input's checksum does not match what was expected.
    #[error("{path}: SHA-256 is {actual}, expected {expected}")]
    Checksum {
        /// The file checked.
        path: PathBuf,
        /// What the file hashes to.
        actual: String,
        /// What it should hash to.
        expected: String,
    },
    /// An unknown model name in the registry.
    #[error("unknown model `{name}`{}", suggest(.suggestions))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The closest known names.
        suggestions: Vec<String>,
    },
    /// A hub download failed: the server's answer, the transfer, or a check of what it sent
    /// (a header unsafe as a cache path, a body whose length or SHA-256 is not what was said).
    #[error("download of {url} failed: {what}")]
    Download {
        /// The URL requested (after redirects), escaped for a terminal.
        url: String,
        /// What went wrong.
        what: String,
    },
    /// A chart could not be drawn (no data to plot, or the plotting library failed).
    #[error("chart: {0}")]
    Chart(String),
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", s.join(", "))
    }
}

impl Error {
    /// Attaches the path an error came from, unless it already names one.
    pub fn with_path(self, path: impl Into<PathBuf>) -> Error {
        match self {
            Error::Io { .. } | Error::WithPath { .. } | Error::Checksum { .. } => self,
            other => Error::WithPath {
                path: path.into(),
                source: Box::new(other),
            },
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn limit(
        name: &'static str,
        what: impl Into<String>,
        value: u64,
        limit: u64,
    ) -> Error {
        Error::Limit {
            name,
            what: what.into(),
            value,
            limit,
        }
    }

    /// `Ok` when `value <= limit`, else the named [`Error::Limit`] (`what` is only formatted
    /// then).
    pub(crate) fn at_most<S: Into<String>>(
        name: &'static str,
        value: usize,
        limit: usize,
        what: impl FnOnce() -> S,
    ) -> Result<()> {
        if value > limit {
            return Err(Error::limit(name, what(), value as u64, limit as u64));
        }
        Ok(())
    }

    pub(crate) fn tensor(key: impl Into<String>, what: impl Into<String>) -> Error {
        Error::Tensor {
            key: key.into(),
            what: what.into(),
        }
    }

    /// The innermost error, skipping path context.
    pub fn root(&self) -> &Error {
        match self {
            Error::WithPath { source, .. } => source.root(),
            other => other,
        }
    }
}

/// `s` with every character that could move the cursor or reorder text on a terminal (control
/// characters, DEL, C1 controls, bidirectional overrides) written as a `\u{..}` escape, so a
/// name read from a file cannot forge lines of a report or an error message.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    fn hostile(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if hostile(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A named byte budget: what a parse may hold, charged as it goes and never refunded.
#[derive(Debug)]
pub(crate) struct Budget {
    name: &'static str,
    limit: usize,
    used: std::cell::Cell<usize>,
}

impl Budget {
    pub(crate) fn new(name: &'static str, limit: usize) -> Budget {
        Budget {
            name,
            limit,
            used: std::cell::Cell::new(0),
        }
    }

    /// Charges `bytes`; the named limit error once the budget is spent.
    pub(crate) fn charge<S: Into<String>>(
        &self,
        bytes: usize,
        what: impl FnOnce() -> S,
    ) -> Result<()> {
        let used = self.used.get().saturating_add(bytes);
        Error::at_most(self.name, used, self.limit, what)?;
        self.used.set(used);
        Ok(())
    }
}
