//! Command-line arguments (clap derive); raw values, turned into library types in the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Convert PyTorch timm checkpoints into adapted safetensors, without Python and without
/// running code from a pickle.
#[derive(Debug, Parser)]
#[command(name = "timmconv", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// A registry made by tools/gen_registry.py from your own timm, instead of the embedded
    /// one (also TIMMCONV_REGISTRY).
    #[arg(long, global = true, value_name = "FILE")]
    pub registry: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe a checkpoint: container, pickle globals, chosen state dict, tensors.
    Inspect(InspectArgs),
    /// Adapt a checkpoint (in_chans, num_classes, renames, dtype) and write safetensors.
    Convert(Box<ConvertArgs>),
    /// List timm architectures or pretrained tags (like timm.list_models / list_pretrained).
    Models(ModelsArgs),
    /// Show an architecture's pretrained cfg, num_features, feature_info and results.
    Info(InfoArgs),
    /// Name the timm architectures whose state-dict keys and shapes fit a checkpoint: exact
    /// matches first, then the closest, with what differs (in_chans, num_classes, img_size).
    Identify(IdentifyArgs),
    /// Load converted weights into a TorchScript export of the model, run it through libtorch and
    /// compare with PyTorch's logits (needs the `torch` cargo feature). Default tolerances:
    /// CPU atol 1e-5, rtol 1e-5 (same kernels as PyTorch); CUDA atol 1e-3, rtol 1e-3 (TF32 off).
    /// Exit 0 within tolerance, 1 on a mismatch, 2 on an error.
    Verify(VerifyArgs),
    /// Run the `convert` jobs of a JSON-lines manifest, one shard of them (Slurm array,
    /// Kubernetes Indexed Job or --shard), several at once; skip outputs already done.
    /// Exit 0 when all converted or were skipped, 1 when any failed, 2 on a bad manifest.
    Batch(BatchArgs),
}

/// `timmconv batch`
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// JSON lines: `{"input": "...", "output": "...", "args": ["--model", "..."]}`, where `args`
    /// are `convert`'s flags; relative paths are relative to the manifest's folder.
    pub manifest: PathBuf,
    /// Run shard I of N (job k belongs to shard k mod N); default: from SLURM_ARRAY_TASK_ID or
    /// JOB_COMPLETION_INDEX, else all jobs.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Shard count with JOB_COMPLETION_INDEX (Kubernetes); default: TIMMCONV_SHARD_COUNT.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<usize>,
    /// Conversions at once (default: the cores).
    #[arg(long, short = 'j', value_name = "J")]
    pub jobs: Option<usize>,
    /// Append one JSON object per job to FILE.
    #[arg(long, value_name = "FILE.jsonl")]
    pub report: Option<PathBuf>,
    /// Stop starting jobs after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Convert and decide skips without hashing inputs: outputs record the input's size and
    /// mtime, and an output is current when its options and that record match.
    #[arg(long)]
    pub no_hash: bool,
    /// Print the per-job results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress or summary on stderr.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// One line per job on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Device for `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// CUDA when libtorch sees a GPU, else CPU.
    Auto,
    /// CPU.
    Cpu,
    /// The first CUDA device.
    Cuda,
}

/// `timmconv verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The converted weights: a file (safetensors, or any checkpoint timmconv reads).
    #[arg(value_name = "INPUT")]
    pub weights: PathBuf,
    /// TorchScript export of the timm model built with the target in_chans / num_classes.
    #[arg(long, value_name = "MODULE.pt")]
    pub module: PathBuf,
    /// safetensors with `input` (N x C x H x W, f32) and `logits` (what PyTorch's model gave).
    #[arg(long, value_name = "IO.safetensors")]
    pub fixture: PathBuf,
    /// Where to run.
    #[arg(long, value_enum, value_name = "DEVICE", default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// Absolute tolerance (default: 1e-5 on CPU, 1e-3 on CUDA).
    #[arg(long, value_name = "A")]
    pub atol: Option<f64>,
    /// Relative tolerance (default: 1e-5 on CPU, 1e-3 on CUDA).
    #[arg(long, value_name = "R")]
    pub rtol: Option<f64>,
    /// Ignore weights the module does not have instead of failing.
    #[arg(long)]
    pub allow_unused: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also draw the comparison (logits scatter with y = x, |difference| histogram) to an SVG.
    // `--plot`, as in `models`; `--report` is batch's JSON-lines record, and stays here only
    // as a hidden alias so scripts that used it keep working
    #[arg(long = "plot", alias = "report", value_name = "FILE.svg")]
    pub report: Option<PathBuf>,
}

/// A results figure, spelled as in `--json` (`samples_per_sec`); `-` is accepted for `_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Field {
    /// Parameters (millions).
    Params,
    /// ImageNet top-1 accuracy (%).
    Top1,
    /// ImageNet top-5 accuracy (%).
    Top5,
    /// Image size the figures are from (px).
    #[value(name = "img_size", alias = "img-size")]
    ImgSize,
    /// Giga multiply-accumulates per image.
    Gmacs,
    /// Activations (millions).
    Macts,
    /// Inference throughput (samples/s).
    #[value(name = "samples_per_sec", alias = "samples-per-sec")]
    SamplesPerSec,
    /// Training throughput (samples/s).
    #[value(name = "train_samples_per_sec", alias = "train-samples-per-sec")]
    TrainSamplesPerSec,
}

/// The x axis of `models --plot`: speed or a cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XAxis {
    /// Inference throughput (higher is better).
    #[value(name = "samples_per_sec", alias = "samples-per-sec")]
    SamplesPerSec,
    /// GMACs (lower is better).
    Gmacs,
    /// Activations (lower is better).
    Macts,
    /// Parameters (lower is better).
    Params,
}

/// The y axis of `models --plot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum YAxis {
    /// ImageNet top-1.
    Top1,
    /// ImageNet top-5.
    Top5,
}

/// `timmconv models`
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// fnmatch patterns (`resnet*`, `*vit_*`); several are OR-ed.
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// List `arch.tag` names that have pretrained weights.
    #[arg(long)]
    pub pretrained: bool,
    /// Print a JSON array of names (exactly timm's list when not sorting or filtering).
    #[arg(long)]
    pub json: bool,
    /// Order by a results figure, best first: top1, top5, samples_per_sec and
    /// train_samples_per_sec highest first; params, gmacs and macts lowest first; img_size
    /// smallest first.
    #[arg(long, value_enum, value_name = "FIELD")]
    pub sort: Option<Field>,
    /// Keep models with at most M million parameters.
    #[arg(long, value_name = "M")]
    pub max_params: Option<f64>,
    /// Which figures the table shows, in this order, comma-separated (default: params, top1,
    /// top5, img_size, gmacs, macts, samples_per_sec; on a terminal, those that fit).
    #[arg(long, value_enum, value_name = "FIELD,...", value_delimiter = ',')]
    pub columns: Vec<Field>,
    /// Draw accuracy against speed or cost, with the Pareto frontier labelled, to an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The plot's x axis.
    #[arg(long, value_enum, value_name = "FIELD", default_value_t = XAxis::SamplesPerSec, requires = "plot")]
    pub x: XAxis,
    /// The plot's y axis.
    #[arg(long, value_enum, value_name = "FIELD", default_value_t = YAxis::Top1, requires = "plot")]
    pub y: YAxis,
}

/// `timmconv identify`
#[derive(Debug, Args)]
pub struct IdentifyArgs {
    /// The checkpoint: a file, a hub folder, or hf-hub:ORG/REPO[@REVISION].
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Print a JSON array, best first, of {"architecture", "exact", "adaptable", "recorded",
    /// "differences"}.
    #[arg(long)]
    pub json: bool,
    /// How many candidates to list (0: every one that shares at least half its keys).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub limit: usize,
    /// Which state dict to read.
    #[command(flatten)]
    pub state: StateArgs,
}

/// `timmconv info`
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// NAME or NAME.TAG.
    #[arg(value_name = "NAME[.TAG]")]
    pub name: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Which state dict to read from a training checkpoint.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Ignore `state_dict_ema` and `model_ema` (timm's use_ema=False).
    #[arg(long)]
    pub no_ema: bool,
    /// Take the state dict from this top-level key.
    #[arg(long, value_name = "KEY")]
    pub state_key: Option<String>,
    /// How many times its storage's bytes one tensor (and the whole state dict) may read:
    /// stride-0 views repeat elements, and a tiny file could otherwise describe terabytes.
    #[arg(long, value_name = "N", default_value_t = timmconv::checkpoint::MAX_AMPLIFICATION)]
    pub max_amplification: u64,
}

impl StateArgs {
    /// The library's options for opening a checkpoint.
    pub fn open_options(&self) -> timmconv::OpenOptions {
        let opts = timmconv::OpenOptions::default()
            .use_ema(!self.no_ema)
            .max_amplification(self.max_amplification);
        match &self.state_key {
            Some(key) => opts.state_key(key),
            None => opts,
        }
    }
}

/// `timmconv inspect`
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The checkpoint: a file (.pth/.pt/.bin zip or legacy torch.save, or .safetensors), a hub
    /// folder, or hf-hub:ORG/REPO[@REVISION].
    #[arg(value_name = "INPUT")]
    pub file: PathBuf,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only list and classify the pickle's globals (allowed, data, dangerous, unknown) without
    /// loading tensors; exit 1 when anything dangerous or unknown appears.
    #[arg(long)]
    pub scan: bool,
    /// Show parameters and bytes per module prefix as an indented tree.
    #[arg(long, conflicts_with = "scan")]
    pub tree: bool,
    /// With --tree: how many levels of module names to show.
    #[arg(long, value_name = "N", requires = "tree")]
    pub depth: Option<usize>,
    /// With --tree: mark the stem and classifier of this timm model's pretrained cfg.
    #[arg(long, value_name = "NAME[.TAG]", requires = "tree")]
    pub model: Option<String>,
    /// Which state dict to read.
    #[command(flatten)]
    pub state: StateArgs,
}

/// Output dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DTypeArg {
    /// Keep each tensor's dtype.
    Keep,
    /// float32
    F32,
    /// float16
    F16,
    /// bfloat16
    Bf16,
}

/// Output layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// One safetensors file.
    File,
    /// A folder with model.safetensors and config.json that timm loads as `local-dir:`.
    Hub,
}

/// `timmconv convert`
#[derive(Debug, Clone, Args)]
pub struct ConvertArgs {
    /// The checkpoint to convert: a file, a hub folder, or hf-hub:ORG/REPO[@REVISION] (from the
    /// Hugging Face cache, downloaded into it when missing unless HF_HUB_OFFLINE is set).
    #[arg(value_name = "INPUT")]
    pub input: PathBuf,
    /// Where to write (a .safetensors file, or a folder with --layout hub).
    #[arg(short, long, value_name = "OUTPUT")]
    pub output: PathBuf,
    /// timm model NAME[.TAG] whose pretrained cfg gives first_conv, classifier, input channels,
    /// num_classes and label_offset.
    #[arg(long, value_name = "NAME[.TAG]")]
    pub model: Option<String>,
    /// Input channels of the target model (timm's in_chans).
    #[arg(long, value_name = "N")]
    pub in_chans: Option<usize>,
    /// Classes of the target model; 0 for a headless backbone. A different count than the
    /// pretrained one drops the classifier.
    #[arg(long, value_name = "N")]
    pub num_classes: Option<usize>,
    /// First conv module (repeatable); overrides the cfg's first_conv.
    #[arg(long = "first-conv", value_name = "NAME")]
    pub first_conv: Vec<String>,
    /// Classifier module (repeatable); overrides the cfg's classifier.
    #[arg(long = "classifier", value_name = "NAME")]
    pub classifier: Vec<String>,
    /// Channels the weights were trained with (default: the cfg's `input_size[0]`, else 3).
    #[arg(long, value_name = "N")]
    pub base_chans: Option<usize>,
    /// Classes the weights were trained with (default: the cfg's num_classes).
    #[arg(long, value_name = "N")]
    pub pretrained_num_classes: Option<usize>,
    /// Rows to drop from the classifier when num_classes is unchanged (default: the cfg's).
    #[arg(long, value_name = "N")]
    pub label_offset: Option<usize>,
    /// Drop first-conv weights that cannot be adapted (timm re-initialises them) instead of failing.
    #[arg(long)]
    pub drop_unadaptable: bool,
    /// Convert even when the checkpoint's keys or shapes do not fit --model (by default that is
    /// an error, as load_state_dict(strict=True) would raise; here the differences are warnings).
    #[arg(long)]
    pub allow_mismatch: bool,
    /// Convert from an original project's layout (DINOv2, OpenAI CLIP, ...) as timm's
    /// checkpoint_filter_fn does: `auto` detects it from the keys for --model's family, `off`
    /// never converts, or a layout's name forces it (see docs/conversion.md).
    #[arg(long, value_name = "NAME", default_value = "auto")]
    pub original_layout: String,
    /// Rename the first conv module to NAME.
    #[arg(long, value_name = "NAME")]
    pub rename_stem: Option<String>,
    /// Rename the classifier module to NAME.
    #[arg(long, value_name = "NAME")]
    pub rename_classifier: Option<String>,
    /// Rename keys with REGEX=REPLACEMENT (repeatable, applied in order; `$1` refers to groups).
    #[arg(long = "rename", value_name = "REGEX=REPLACEMENT")]
    pub rename: Vec<String>,
    /// Write only the weights of timm's `create_model(NAME, features_only=True)`, under its key
    /// names (needs --model).
    #[arg(long)]
    pub features_only: bool,
    /// With --features-only: timm's out_indices (comma-separated; negative count from the end).
    #[arg(
        long,
        value_name = "I,J,...",
        value_delimiter = ',',
        allow_hyphen_values = true,
        requires = "features_only"
    )]
    pub out_indices: Option<Vec<i64>>,
    /// Output dtype of floating-point tensors (integers are never cast).
    #[arg(long, value_enum, value_name = "DTYPE", default_value_t = DTypeArg::Keep)]
    pub dtype: DTypeArg,
    /// Target input size `H[,W]` (timm's img_size; needs --model): position embeddings and
    /// relative-position tables are resampled as timm does at load time.
    #[arg(long, value_name = "H[,W]", value_delimiter = ',', num_args = 1)]
    pub img_size: Option<Vec<usize>>,
    /// Target patch size `P[,Q]` (timm's patch_size; needs --model): the patch embedding is
    /// resampled through a pseudo-inverse.
    #[arg(long, value_name = "P[,Q]", value_delimiter = ',', num_args = 1)]
    pub patch_size: Option<Vec<usize>>,
    /// Global pooling of the target model: avg, max, avgmax, catavgmax or '' (timm's
    /// global_pool; needs --model). A pool that changes the classifier's input (catavgmax)
    /// drops the classifier, as timm re-initialises it.
    #[arg(long, value_name = "TYPE")]
    pub global_pool: Option<String>,
    /// Target attention window `N[,M]` (timm's window_size; needs --model).
    #[arg(long, value_name = "N[,M]", value_delimiter = ',', num_args = 1)]
    pub window_size: Option<Vec<usize>>,
    /// Which state dict to read.
    #[command(flatten)]
    pub state: StateArgs,
    /// Output layout.
    #[arg(long, value_enum, value_name = "LAYOUT", default_value_t = LayoutArg::File)]
    pub layout: LayoutArg,
    /// Refuse the input unless its SHA-256 starts with HEX.
    #[arg(long, value_name = "HEX")]
    pub expect_sha256: Option<String>,
    /// Replace an existing output.
    #[arg(long)]
    pub force: bool,
    /// Do not hash the input: faster (SHA-256 runs at about 1 GB/s), but the output then has no
    /// source_sha256 and nothing can be checked against one.
    #[arg(long, conflicts_with = "expect_sha256")]
    pub no_hash: bool,
    /// Check the CRC-32 of every zip member of the input, reading for it what the conversion
    /// does not read anyway: hashing already checks every stored member from its one read, so
    /// this matters with --no-hash, where it adds a read of the file (docs/security.md).
    #[arg(long)]
    pub check_crc: bool,
    /// fsync the output before renaming it into place (durable across a power loss; slower).
    #[arg(long)]
    pub fsync: bool,
    /// Print the conversion report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress or summary on stderr.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// List every renamed and dropped key.
    #[arg(short, long)]
    pub verbose: bool,
}
