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
    /// A conversion's settings contradict each other or need what was not given.
    #[error(transparent)]
    Setting(#[from] Setting),
    /// The output already exists and replacing it was not asked for.
    #[error("output {} exists; set overwrite to replace it", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// A file that must be a regular file (a config, a registry, a manifest, a cache ref) is a
    /// FIFO, socket, device or folder, or a link to one; it was not read.
    #[error("{}: is {what}, not a regular file; refusing to read it", path.display())]
    NotARegularFile {
        /// The path named.
        path: PathBuf,
        /// What is there (`"a FIFO"`).
        what: &'static str,
    },
    /// The output path holds something other than a regular file (a FIFO, a device, a socket, a
    /// symbolic link, or a folder where a file is written), which is never replaced.
    #[error(
        "output {} is {what}; timmconv only ever replaces a regular file, so it leaves this \
         in place (remove it yourself, or choose another output)",
        path.display()
    )]
    OutputNotRegular {
        /// The output path.
        path: PathBuf,
        /// What is there, in words.
        what: String,
    },
    /// A hub folder's output path holds a file, which the hub layout does not replace.
    #[error(
        "output {} exists and is not a folder; the hub layout only replaces a folder it wrote",
        path.display()
    )]
    OutputNotAFolder {
        /// The output path.
        path: PathBuf,
    },
    /// A hub folder to replace holds something a hub export does not write.
    #[error(
        "output folder {} holds {entry}, which a hub export does not write; refusing to \
         replace the folder (move it away, or choose another output)",
        path.display()
    )]
    OutputHoldsOthers {
        /// The output folder.
        path: PathBuf,
        /// The entry found there (escaped for printing).
        entry: String,
    },
    /// The input lies inside the hub folder to replace.
    #[error(
        "the input {} lies in the output folder {}; timmconv never replaces its input",
        input.display(),
        path.display()
    )]
    InputInOutput {
        /// The input file.
        input: PathBuf,
        /// The output folder.
        path: PathBuf,
    },
    /// The output is the input file.
    #[error("output {} is the input file; timmconv never modifies its input", path.display())]
    OutputIsInput {
        /// The output path.
        path: PathBuf,
    },
    /// A weight cannot be adapted to the requested input channels.
    #[error(
        "cannot adapt `{key}` with shape {shape:?} to in_chans={in_chans} (base {base}): {why}; \
         set drop_unadaptable to drop it and let the model initialise it, as timm does"
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
    /// A zip member's bytes differ from the CRC-32 its archive records for them: the file was
    /// corrupted or altered after it was written. torch does not check this and would load the
    /// altered bytes.
    #[error(
        "zip member `{member}` fails its CRC-32 check (the archive records {expected:08x}, its \
         bytes give {actual:08x}): the file is corrupt or was altered"
    )]
    ZipCrc {
        /// The member's name in the central directory.
        member: String,
        /// The CRC-32 the central directory records.
        expected: u32,
        /// The CRC-32 of the bytes read.
        actual: u32,
    },
    /// An unknown model name in the registry.
    #[error("unknown model `{name}`{}", suggest(.suggestions))]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The closest known names.
        suggestions: Vec<String>,
    },
    /// A checkpoint whose keys or shapes do not fit the model it is converted for, as
    /// `load_state_dict(strict=True)` would find.
    #[error(
        "the checkpoint is not a `{model}` state dict (as load_state_dict(strict=True) checks \
         it): {}; `timmconv identify` names the architectures it fits, allow_mismatch converts \
         anyway",
        differences.join("; ")
    )]
    ModelMismatch {
        /// The model as named (`arch` or `arch.tag`).
        model: String,
        /// What differs: missing, unexpected and reshaped keys.
        differences: Vec<String>,
    },
    /// A checkpoint in an original project's layout (DINOv2, OpenAI CLIP, ...) lacks a tensor
    /// the conversion needs, or holds one of another shape.
    #[error("original layout `{layout}`: {what}")]
    OriginalLayout {
        /// The layout (`dinov2`, `openai_clip`, ...).
        layout: String,
        /// What is missing or wrong, naming the tensor.
        what: String,
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

/// A conversion setting that contradicts another or needs what was not given; the message names
/// the library's settings (`in_chans`, `model`), which the CLI maps to its flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Setting {
    /// An original layout forced by a name timmconv does not know.
    #[error("no original layout is called `{name}`; known: {}", known.join(", "))]
    UnknownOriginalLayout {
        /// The name asked for.
        name: String,
        /// The layouts there are.
        known: Vec<String>,
    },
    /// A model whose registry entry has no pretrained cfg to take the stem and head from.
    #[error("`{model}` has no pretrained cfg; set first_conv and classifier")]
    NoPretrainedCfg {
        /// The model as named.
        model: String,
    },
    /// `img_size`, `patch_size`, `window_size` or `global_pool` without a model.
    #[error(
        "img_size, patch_size, window_size and global_pool need a model: what each changes \
         comes from the registry"
    )]
    ResolutionNeedsModel,
    /// `features_only` without a model.
    #[error("features_only needs a model: the features layout comes from the registry")]
    FeaturesNeedModel,
    /// `features_only` for an architecture only a `config.json` describes.
    #[error("features_only needs an architecture the registry knows")]
    FeaturesNeedKnownArch,
    /// `features_only` with an empty list of `out_indices`.
    #[error("out_indices needs at least one index")]
    EmptyOutIndices,
    /// `features_only` with the hub layout.
    #[error(
        "features_only writes a features model's weights; timm's hub folders hold \
         classification models, use the file layout"
    )]
    HubFeatures,
    /// The hub layout without a model.
    #[error("the hub layout writes timm's config.json, which needs a model NAME[.TAG]")]
    HubNeedsModel,
    /// The hub layout with renames.
    #[error(
        "the hub layout writes a folder timm loads by its own key names; renames would break \
         that: use the file layout to rename"
    )]
    HubRenames,
    /// An `expect_sha256` that is not 8 to 64 hex digits.
    #[error("expect_sha256 `{hex}` is not 8 to 64 hex digits")]
    BadSha256 {
        /// What was given.
        hex: String,
    },
    /// No hashing, but a hash to check (given, or in the input's file name).
    #[error(
        "an input that is not hashed cannot be checked against a SHA-256 (expect_sha256, or \
         the hash in its file name)"
    )]
    NoHashWithChecksum,
    /// An `in_chans` or `base_chans` of 0.
    #[error("in_chans and the base channel count must be positive")]
    ZeroChannels,
    /// A count or size setting of 0 (`in_chans`, `base_chans`, `img_size`, `patch_size`,
    /// `window_size`).
    #[error("{setting} must be positive")]
    NotPositive {
        /// The setting, by its builder name.
        setting: &'static str,
    },
    /// An `img_size`, `patch_size` or `window_size` beyond what timmconv accepts.
    #[error("{setting} {value:?} of `{model}` is larger than timmconv accepts ({max})")]
    TooLarge {
        /// The setting, by its builder name.
        setting: &'static str,
        /// The model it was set for.
        model: String,
        /// What was given.
        value: [usize; 2],
        /// The largest accepted.
        max: usize,
    },
    /// An image smaller than one patch: the model would have no patch grid to embed.
    #[error(
        "img_size {img_size:?} of `{model}` is smaller than one patch ({patch_size:?}): the \
         image would hold no patch"
    )]
    ImageSmallerThanPatch {
        /// The setting that made it so: `img_size`, or `patch_size` when only that was set.
        setting: &'static str,
        /// The model.
        model: String,
        /// The image size (height, width).
        img_size: [usize; 2],
        /// The patch size (height, width).
        patch_size: [usize; 2],
    },
    /// An `in_chans` change without a first conv to adapt.
    #[error("in_chans needs to know the first conv: set a model or first_conv")]
    InChansNeedsFirstConv,
    /// A `num_classes` without a known classifier.
    #[error("num_classes needs to know the classifier: set a model or classifier")]
    NumClassesNeedsClassifier,
    /// `rename_stem` or `rename_classifier` with other than one module to rename.
    #[error(
        "{setting} needs exactly one module to rename, the cfg has {} ({})",
        modules.len(),
        modules.join(", ")
    )]
    RenameNeedsOneModule {
        /// `rename_stem` or `rename_classifier`.
        setting: &'static str,
        /// The modules there are.
        modules: Vec<String>,
    },
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
            Error::Io { .. }
            | Error::WithPath { .. }
            | Error::Checksum { .. }
            | Error::OutputExists { .. }
            | Error::OutputIsInput { .. }
            | Error::OutputNotAFolder { .. }
            | Error::OutputNotRegular { .. }
            | Error::NotARegularFile { .. }
            | Error::OutputHoldsOthers { .. }
            | Error::InputInOutput { .. } => self,
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
