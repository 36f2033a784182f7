//! The one error type of the library; every variant names the check that failed.

use std::path::PathBuf;

use serde::Serialize;

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
    /// The zip container cannot be read as torch reads it; `problem` says why, `what` where.
    #[error("zip: {what}")]
    Zip {
        /// The kind of fault, to tell a cut-short download from a crafted archive.
        problem: ZipProblem,
        /// What is wrong, naming the entry and the offset.
        what: String,
    },
    /// A safetensors file cannot be read, or the streaming writer was fed what its tensors do
    /// not declare; `problem` says which.
    #[error("safetensors: {what}")]
    SafeTensors {
        /// The kind of fault.
        problem: SafeTensorsProblem,
        /// What is wrong.
        what: String,
    },
    /// A checkpoint's object structure is not what torch.save writes.
    #[error("checkpoint structure: {0}")]
    Structure(String),
    /// A tensor cannot be read, adapted or written; `problem` says why.
    #[error("tensor `{key}`: {what}")]
    Tensor {
        /// The state-dict key of the tensor.
        key: String,
        /// The kind of fault.
        problem: TensorProblem,
        /// What is wrong, with the shapes, sizes and offsets involved.
        what: String,
    },
    /// A tensor that reads far more bytes than its storage holds (a stride-0 expansion): more
    /// than `factor` times, the limit `MAX_AMPLIFICATION` that the open option
    /// `max_amplification` raises.
    #[error(
        "tensor `{key}`: reads {bytes} bytes from a storage of {storage_bytes} bytes (shape \
         {shape:?}, stride {strides:?}), more than {factor} times its size (limit \
         `MAX_AMPLIFICATION`; raise max_amplification if this expanded tensor is genuine)"
    )]
    Amplified {
        /// The state-dict key of the tensor.
        key: String,
        /// Bytes the tensor reads.
        bytes: u64,
        /// Bytes its storage holds.
        storage_bytes: u64,
        /// Its shape.
        shape: Vec<usize>,
        /// Its strides.
        strides: Vec<usize>,
        /// The amplification allowed.
        factor: u64,
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
    /// A registry file ([`crate::registry::use_file`]) that `tools/gen_registry.py` did not make.
    #[error("{}: not a registry made by tools/gen_registry.py: {what}", path.display())]
    RegistryFile {
        /// The file named.
        path: PathBuf,
        /// What is wrong with it, naming the line.
        what: String,
    },
    /// A registry file given after one is already in use (or after the first lookup).
    #[error("a registry file is already in use")]
    RegistryInUse,
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
    #[error("{}: SHA-256 is {actual}, expected {expected} ({against})", path.display())]
    Checksum {
        /// The file checked (`(in memory)` for bytes).
        path: PathBuf,
        /// What the file hashes to.
        actual: String,
        /// The hex prefix it should start with.
        expected: String,
        /// Where that expectation came from.
        against: ChecksumSource,
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
        /// What differs, as lines to read: missing, unexpected and reshaped keys, and the
        /// original layouts tried.
        differences: Vec<String>,
        /// What differs, key by key, as `load_state_dict(strict=True)` would report it.
        comparison: Box<crate::comparison::Comparison>,
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
    #[cfg(feature = "download")]
    #[cfg_attr(docsrs, doc(cfg(feature = "download")))]
    #[error("download of {url} failed: {what}")]
    Download {
        /// The URL requested (after redirects), escaped for a terminal.
        url: String,
        /// What went wrong.
        what: String,
    },
    /// An input cannot be found or resolved: a hub name, a folder, the Hugging Face cache, the
    /// hub client's settings.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An output path cannot be written the way asked (a missing parent folder, a folder given
    /// for a file or a file for a folder).
    #[error(transparent)]
    OutputPath(#[from] OutputPathError),
    /// A parity check (feature `torch`) cannot run.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A bug in timmconv: a thread that panicked, embedded data that does not parse, a value
    /// that failed to serialise. Please report it with the message.
    #[error("internal error (a bug in timmconv, please report it): {0}")]
    Internal(String),
    /// A chart could not be drawn (no data to plot, or the plotting library failed).
    #[cfg(feature = "plot")]
    #[cfg_attr(docsrs, doc(cfg(feature = "plot")))]
    #[error("chart: {0}")]
    Chart(String),
}

/// Why a tensor was refused ([`Error::Tensor`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum TensorProblem {
    /// Its storage is missing from the file, lies outside it, is smaller than declared, or does
    /// not inflate.
    Storage,
    /// Its shape, strides and offset do not describe a view inside its storage.
    View,
    /// Reading its bytes failed.
    Read,
    /// A kind or dtype timmconv does not handle here: complex, quantized or sparse tensors, or a
    /// dtype that cannot be resampled or adapted as timm does.
    Unsupported,
    /// It was asked for as an element type it does not hold (an integer tensor as floats).
    ElementType,
    /// Its shape does not fit what is done to it (a resampling, an in_chans adaptation, an
    /// array's dimensions, a module's parameter).
    Shape,
    /// It cannot be written as named or sized (a reserved or duplicate name, a size that
    /// overflows).
    Output,
    /// Its producer gave the streaming writer more or fewer bytes than its shape holds.
    Writer,
}

/// Why a safetensors file was refused, or a write stopped ([`Error::SafeTensors`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum SafeTensorsProblem {
    /// The file is shorter than its header says (a download or copy cut short).
    Truncated,
    /// The header is not valid safetensors: its JSON, a dtype, offsets that overlap, leave gaps
    /// or run past the data (the `safetensors` crate's own checks).
    Invalid,
    /// The streaming writer ([`crate::write::SafetensorsWriter`]) was given more bytes than the
    /// tensors declare, or final metadata whose header outgrows the draft's.
    Writer,
}

/// Why a zip container was refused ([`Error::Zip`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ZipProblem {
    /// The file ends before the archive does: no end record, or an entry past the end (a
    /// download or copy cut short).
    Truncated,
    /// A record is malformed: sizes that contradict each other, a corrupt deflate stream, a
    /// directory that does not fit.
    Malformed,
    /// Readers could read different files from it: duplicate or case-folded names, overlapping
    /// entries, several directories or end records, data before the archive (a crafted file).
    Ambiguous,
    /// A zip feature torch never writes: encryption, another compression method, several
    /// disks, a big-endian `byteorder` record.
    Unsupported,
    /// Reading the file failed.
    Read,
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
    /// A stream output ([`ConversionPlan::write_to`](crate::ConversionPlan::write_to)) with the
    /// hub layout, which is a folder.
    #[error("the hub layout writes a folder, not a stream: write it to a path")]
    StreamNeedsFileLayout,
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
    /// `features_only` for an architecture timm cannot build a mappable features model of.
    #[error("timm cannot build a features_only model of `{model}` that timmconv can map: {why}")]
    FeaturesUnbuildable {
        /// The architecture.
        model: String,
        /// timm's error.
        why: String,
    },
    /// An `out_indices` entry outside the architecture's feature stages.
    #[error("out index {index} is outside the {stages} feature stages of `{model}`")]
    OutIndexOutOfRange {
        /// The index as given (negative counts from the end).
        index: i64,
        /// The architecture's feature stages.
        stages: usize,
        /// The architecture.
        model: String,
    },
    /// `out_indices` whose highest index timm refuses for the architecture.
    #[error("timm does not build `{model}` features_only with highest out index {highest}")]
    OutIndexUnbuildable {
        /// The architecture.
        model: String,
        /// The highest index asked for (`default` for timm's default).
        highest: String,
    },
    /// A `global_pool` that is not one of timm's pool types.
    #[error("global_pool `{pool}` is not one of avg, max, avgmax, catavgmax or ''")]
    UnknownGlobalPool {
        /// What was given.
        pool: String,
    },
    /// A `global_pool` the registry has no data on for the architecture.
    #[error("`{model}`: timmconv has no data on global_pool `{pool}` for it")]
    NoPoolData {
        /// The architecture.
        model: String,
        /// The pool type.
        pool: String,
    },
    /// A `global_pool` timm's constructor refuses for the architecture.
    #[error("`{model}` cannot be built with global_pool `{pool}` in timm 1.0.31: {why}")]
    PoolUnbuildable {
        /// The architecture.
        model: String,
        /// The pool type.
        pool: String,
        /// timm's error.
        why: String,
    },
    /// A `global_pool` whose model holds (or lacks) a key the checkpoint's model lacks (holds).
    #[error(
        "`{model}` with global_pool `{pool}` {} `{key}` unlike the checkpoint's model; timm \
         cannot load the weights into it",
        if *.added { "holds" } else { "lacks" }
    )]
    PoolChangesKeys {
        /// The architecture.
        model: String,
        /// The pool type.
        pool: String,
        /// The key added or removed.
        key: String,
        /// Whether the model with that pool gains the key (else it loses it).
        added: bool,
    },
    /// A `global_pool` that reshapes a key outside the classifier.
    #[error(
        "`{model}` with global_pool `{pool}` reshapes `{key}`, which is not the classifier; \
         timm cannot load the weights"
    )]
    PoolReshapesBody {
        /// The architecture.
        model: String,
        /// The pool type.
        pool: String,
        /// The reshaped key.
        key: String,
    },
    /// An `img_size`, `patch_size` or `window_size` the architecture's constructor does not take.
    #[error(
        "timm 1.0.31 does not build `{model}` with {setting}: create_model refuses the keyword"
    )]
    KnobNotTaken {
        /// The setting, by its builder name.
        setting: &'static str,
        /// The architecture.
        model: String,
    },
    /// An `img_size`, `patch_size` or `window_size` timmconv cannot adapt the weights to.
    #[error("`{model}` cannot be adapted to another {setting}: {why}")]
    KnobRefused {
        /// The setting, by its builder name.
        setting: &'static str,
        /// The architecture.
        model: String,
        /// Why not.
        why: String,
    },
    /// A resolution change for an architecture timm could not build when the registry was made.
    #[error("`{model}` could not be built by timm: {why}")]
    ResizeUnbuildable {
        /// The architecture.
        model: String,
        /// timm's error.
        why: String,
    },
    /// An `img_size` a hybrid ViT (a backbone's feature map cut in patches) is not built for.
    #[error(
        "`{model}` embeds a backbone's feature map (stride {stride:?}) in patches of {patch:?}: \
         timm 1.0.31 builds it only for image sizes that are multiples of {step:?}"
    )]
    ImgSizeNotMultiple {
        /// The architecture.
        model: String,
        /// The backbone's stride.
        stride: [usize; 2],
        /// The patch size.
        patch: [usize; 2],
        /// The multiple the image size must be of.
        step: [usize; 2],
    },
    /// A non-square `img_size` for an architecture built only for square images.
    #[error("`{model}` is built only for square images in timm 1.0.31 (got {img_size:?})")]
    NonSquareImage {
        /// The architecture.
        model: String,
        /// The image size asked for.
        img_size: [usize; 2],
    },
    /// An `img_size` at which a decomposed relative-position attention would be empty.
    #[error("`{key}`: the attention at image size {img_size:?} would be empty")]
    EmptyAttention {
        /// The table's key.
        key: String,
        /// The image size.
        img_size: [usize; 2],
    },
    /// An `img_size` at which an attention-bias window would be empty.
    #[error("`{key}`: the attention window at image size {img_size:?} would be empty")]
    EmptyAttentionWindow {
        /// The table's key.
        key: String,
        /// The image size.
        img_size: [usize; 2],
    },
    /// A size at which a relative-position table's window would be empty.
    #[error("`{key}`: the window at this size would be empty ({window:?})")]
    EmptyWindow {
        /// The table's key.
        key: String,
        /// The window that came out.
        window: [usize; 2],
    },
    /// A model-name pattern (`*`, `?`, `[...]`) that does not compile.
    #[error("bad pattern `{pattern}`: {why}")]
    BadPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// A `state_key` for a checkpoint whose top-level object is not a dict.
    #[error(
        "checkpoint structure: the checkpoint is a {kind}, not a dict, so state_key cannot apply"
    )]
    StateKeyNotDict {
        /// What the checkpoint is (`list`, `Tensor`, ...).
        kind: String,
    },
}

/// Where the SHA-256 an input was checked against came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ChecksumSource {
    /// [`Conversion::expect_sha256`](crate::Conversion::expect_sha256).
    #[serde(rename = "expect_sha256")]
    Expected,
    /// The hash in the input's file name (`resnet50-0676ba61.pth`, as torch hub names files).
    #[serde(rename = "the hash in the file name")]
    FileName,
}

impl std::fmt::Display for ChecksumSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChecksumSource::Expected => "expect_sha256",
            ChecksumSource::FileName => "the hash in the file name",
        })
    }
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", s.join(", "))
    }
}

impl Error {
    /// A safetensors fault of kind `problem`.
    pub(crate) fn safetensors(problem: SafeTensorsProblem, what: String) -> Error {
        Error::SafeTensors { problem, what }
    }

    /// A zip fault of kind `problem`.
    pub(crate) fn zip(problem: ZipProblem, what: String) -> Error {
        Error::Zip { problem, what }
    }

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
            | Error::RegistryFile { .. }
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

    pub(crate) fn tensor(
        problem: TensorProblem,
        key: impl Into<String>,
        what: impl Into<String>,
    ) -> Error {
        Error::Tensor {
            key: key.into(),
            problem,
            what: what.into(),
        }
    }

    /// The file an error is about, wherever the variant keeps it: the [`WithPath`](Error::WithPath)
    /// wrapper, or a variant's own `path` (I/O, outputs, checksums). `None` for errors about
    /// settings or the registry.
    ///
    /// The shape is fixed: an error about a checkpoint's content (its zip, pickle, tensors,
    /// keys against a model, a setting the plan of that file refutes) raised while reading or
    /// converting a file arrives as [`WithPath`](Error::WithPath) around the cause; match
    /// `e.root()` for the cause and `e.path()` for the file. Errors about settings alone
    /// ([`Setting`] from [`Conversion::check`](crate::Conversion::check),
    /// [`UnknownModel`](Error::UnknownModel)) come bare.
    ///
    /// ```
    /// let err = timmconv::Checkpoint::open("Cargo.toml", &Default::default()).unwrap_err();
    /// assert!(err.path().is_some_and(|p| p.ends_with("Cargo.toml")));
    /// assert!(matches!(err.root(), timmconv::Error::UnknownFormat(_)));
    /// ```
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::WithPath { path, .. }
            | Error::Io { path, .. }
            | Error::Checksum { path, .. }
            | Error::OutputExists { path }
            | Error::OutputIsInput { path }
            | Error::OutputNotAFolder { path }
            | Error::OutputNotRegular { path, .. }
            | Error::NotARegularFile { path, .. }
            | Error::OutputHoldsOthers { path, .. }
            | Error::InputInOutput { path, .. } => Some(path),
            _ => None,
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

/// Why an input cannot be resolved; the message names the library's settings, which the CLI maps
/// to its flags.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A `hf-hub:` name that is not `hf-hub:ORG/REPO[@REVISION]`.
    #[error("`{spec}`: a hub name is hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION")]
    BadHubId {
        /// The name as given.
        spec: String,
    },
    /// A folder given as the input holds none of the weight files a hub repo has.
    #[error("{} is a folder without {}: give the checkpoint file", path.display(), files.join(" or "))]
    FolderWithoutWeights {
        /// The folder.
        path: PathBuf,
        /// The weight files looked for, in order.
        files: Vec<String>,
    },
    /// The input is a FIFO, socket or device; it was not opened.
    #[error(
        "{} is not a regular file (a pipe, socket or device); give a checkpoint file",
        path.display()
    )]
    InputNotRegular {
        /// The input.
        path: PathBuf,
    },
    /// A `config.json` that is JSON, but not an object.
    #[error("{}: not a JSON object", path.display())]
    ConfigNotObject {
        /// The file.
        path: PathBuf,
    },
    /// A `config.json` that is not JSON.
    #[error("{}: {source}", path.display())]
    ConfigJson {
        /// The file.
        path: PathBuf,
        /// What the JSON parser said.
        source: serde_json::Error,
    },
    /// A hub repo not in the cache while `HF_HUB_OFFLINE` forbids downloading it.
    #[error(
        "hf-hub:{repo}@{revision}: neither {} is in the cache {} and HF_HUB_OFFLINE is set",
        files.join(" nor "),
        cache.display()
    )]
    OfflineNotCached {
        /// `ORG/REPO`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The weight files looked for.
        files: Vec<String>,
        /// The cache looked in.
        cache: PathBuf,
    },
    /// A hub repo not in the cache, and the library built without the `download` feature.
    #[error(
        "hf-hub:{repo}@{revision}: not in the cache {}, and this build has no `download` \
         feature: fetch it with huggingface_hub or build timmconv with the `download` feature",
        cache.display()
    )]
    NoDownload {
        /// `ORG/REPO`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The cache looked in.
        cache: PathBuf,
    },
    /// The hub repo has none of the weight files timm looks for.
    #[error("hf-hub:{repo}@{revision}: the hub has neither {} ({url})", files.join(" nor "))]
    NotOnHub {
        /// `ORG/REPO`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The weight files asked for, in order.
        files: Vec<String>,
        /// The URL of the first of them.
        url: String,
    },
    /// `HF_ENDPOINT` is not a plain http(s) URL.
    #[error("HF_ENDPOINT `{endpoint}` {why}")]
    BadEndpoint {
        /// The value, escaped for a terminal.
        endpoint: String,
        /// What is wrong with it.
        why: String,
    },
    /// A token that an HTTP header cannot carry.
    #[error("the token in {from} holds characters an HTTP header cannot carry")]
    BadToken {
        /// Where it came from: the environment variable or the token file.
        from: String,
    },
}

/// Why an output path cannot be written the way asked; checked before anything is read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputPathError {
    /// The output's folder does not exist.
    #[error(
        "cannot write {}: the folder {} does not exist; create it first (mkdir -p {})",
        output.display(),
        parent.display(),
        parent.display()
    )]
    ParentMissing {
        /// The output path.
        output: PathBuf,
        /// Its folder.
        parent: PathBuf,
    },
    /// The output's parent is a file, not a folder.
    #[error("cannot write {}: {} is not a folder", output.display(), parent.display())]
    ParentNotAFolder {
        /// The output path.
        output: PathBuf,
        /// Its parent.
        parent: PathBuf,
    },
    /// A folder given where the file layout writes a file.
    #[error(
        "{} is a folder: give a file name (such as {}), or use the hub layout to write a hub \
         folder",
        path.display(),
        path.join("model.safetensors").display()
    )]
    IsAFolder {
        /// The output path.
        path: PathBuf,
    },
    /// Something other than a folder where the hub layout writes a folder.
    #[error(
        "{} is not a folder: the hub layout writes a folder; give a new folder name",
        path.display()
    )]
    NotAFolder {
        /// The output path.
        path: PathBuf,
    },
}

/// Why a parity check (feature `torch`) cannot run; the message names the library's options
/// (`allow_unused`, the CUDA device), which the CLI maps to its flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// libtorch refused a call.
    #[error("libtorch: {what}")]
    Libtorch {
        /// What libtorch said.
        what: String,
    },
    /// The CUDA device was asked for and libtorch sees none.
    #[error("the CUDA device was asked for, but no CUDA device is available to libtorch")]
    NoCuda,
    /// A tensor of the weights that the module does not have, and unused weights not allowed.
    #[error("tensor `{key}`: the module has no `{name}` (set allow_unused to ignore)")]
    NotInModule {
        /// The tensor's name in the weights.
        key: String,
        /// The name the module would have it under (the weights' renames undone).
        name: String,
    },
    /// The module's output and the fixture's logits differ in shape.
    #[error("the module gives shape {output:?}, the fixture's logits are {reference:?}")]
    OutputShape {
        /// The module's output shape.
        output: Vec<i64>,
        /// The fixture's logits shape.
        reference: Vec<i64>,
    },
    /// The `tch` crate's `CModule` is not laid out as timmconv's shim expects.
    #[error("this tch version's CModule layout is not the one timmconv was written for")]
    ModuleLayout,
    /// The shim could not list the module's buffers.
    #[error("libtorch failed to list the module's buffers")]
    Buffers,
}
