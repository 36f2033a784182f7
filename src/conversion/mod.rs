//! The one entry point for a conversion: [`Conversion`] takes what a user asks for (a timm model
//! name, `in_chans`, `num_classes`, a resolution, renames, a dtype), resolves it against the
//! embedded registry (its pretrained cfg fills in the first conv, the classifier, the trained
//! channels and classes, the label offset and the input size), plans every tensor against the
//! checkpoint, and writes the plan as a safetensors file or a timm hub folder.
//!
//! The CLI's `convert` and `batch` are flag-for-setter translations onto this builder: whatever
//! they do, a library user does with the same result.

mod file;
mod fit;
mod folder;
mod input;
mod output;
mod record;
mod settings;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::adapt::{Knobs, Plan, Rule};
use crate::checkpoint::{Checkpoint, OpenOptions};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::registry::{self, Arch, Tag};
use crate::source::Source;

use input::{Input, Origin};
pub use output::check_output_path;
pub use record::{ChecksumSource, ConvertReport, OutputCheck, OutputState};
use settings::Settings;

/// What a conversion writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Layout {
    /// One safetensors file.
    #[default]
    File,
    /// A folder holding `model.safetensors` and the `config.json` timm's `save_for_hf` writes,
    /// which `timm.create_model('local-dir:FOLDER', pretrained=True)` loads. Needs a
    /// [`model`](Conversion::model) with a pretrained cfg, and no renames or features-only.
    Hub,
}

/// Whether to convert a checkpoint from an original project's layout (Meta's DINOv2, OpenAI
/// CLIP, ...) into timm's, as the target family's `checkpoint_filter_fn` does ([`crate::original`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OriginalLayoutChoice {
    /// Detect it from the keys, as timm's filter of the [`model`](Conversion::model)'s family
    /// does (nothing is detected without a model).
    #[default]
    Auto,
    /// Never convert: the checkpoint is in timm's layout.
    Off,
    /// Convert from this layout (a name of [`crate::original::layouts`]), with or without a
    /// model.
    Force(String),
}

/// How the output takes its place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Replace an existing output (a file, or a hub folder holding only what an export
    /// writes); without it an existing output is an error and stays as it was.
    pub overwrite: bool,
    /// Flush the data to the disk before the output gets its name (survives a power loss).
    pub fsync: bool,
}

impl WriteOptions {
    /// Sets [`overwrite`](Self::overwrite).
    ///
    /// ```
    /// let opts = timmconv::WriteOptions::default().overwrite(true).fsync(true);
    /// assert!(opts.overwrite && opts.fsync);
    /// ```
    pub fn overwrite(mut self, yes: bool) -> Self {
        self.overwrite = yes;
        self
    }

    /// Sets [`fsync`](Self::fsync).
    pub fn fsync(mut self, yes: bool) -> Self {
        self.fsync = yes;
        self
    }
}

/// A conversion being described: start from an input, set what the target model looks like,
/// then [`plan`](Conversion::plan) it and [`write`](ConversionPlan::write) the result.
///
/// Settings left unset come from the model's pretrained cfg when a [`model`](Self::model) is
/// given (or a hub repo's `config.json` names one); explicit settings always win over the cfg.
///
/// ```
/// use timmconv::{Conversion, WriteOptions};
///
/// let dir = tempfile::tempdir()?;
/// let out = dir.path().join("resnet4.safetensors");
/// let report = Conversion::from_file("fixtures/ckpt/test_resnet.f32.zip.pth")
///     .model("test_resnet.r160_in1k")?
///     .in_chans(4)
///     .num_classes(0)
///     .plan()?
///     .write(&out, &WriteOptions::default())?;
/// assert_eq!(report.changes.adapted.len(), 1); // the stem, summed and repeated to 4 channels
/// assert_eq!(report.changes.dropped.len(), 2); // fc.weight and fc.bias: a headless model
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Conversion {
    input: Input,
    config: Option<Map<String, Value>>,
    /// The `config.json` read beside the weights: input too, never an output.
    config_file: Option<PathBuf>,
    open: OpenOptions,
    model: Option<(Arch, Option<Tag>, String)>,
    in_chans: Option<usize>,
    num_classes: Option<usize>,
    first_conv: Vec<String>,
    classifier: Vec<String>,
    base_chans: Option<usize>,
    pretrained_num_classes: Option<usize>,
    label_offset: Option<usize>,
    drop_unadaptable: bool,
    allow_mismatch: bool,
    rename_stem: Option<String>,
    rename_classifier: Option<String>,
    rules: Vec<Rule>,
    dtype: Option<DType>,
    features_only: Option<Option<Vec<i64>>>,
    global_pool: Option<String>,
    knobs: Knobs,
    layout: Layout,
    expect_sha256: Option<String>,
    hash_input: bool,
    check_crc: bool,
    original: OriginalLayoutChoice,
    model_keys: Option<crate::registry::keys::Keys>,
}

impl Conversion {
    /// Converts the checkpoint file at `input` (a `torch.save` zip or legacy file, or
    /// safetensors). Nothing is read until [`plan`](Self::plan).
    ///
    /// ```
    /// let c = timmconv::Conversion::from_file("fixtures/ckpt/test_resnet.f32.zip.pth");
    /// let plan = c.in_chans(1).first_conv(["conv1.0"]).plan()?;
    /// assert_eq!(plan.in_chans(), 1);
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    pub fn from_file(input: impl AsRef<Path>) -> Conversion {
        Conversion::from_input(Input::File(input.as_ref().to_path_buf()))
    }

    /// Converts a checkpoint held in memory (a `torch.save` zip or legacy file, or safetensors,
    /// as bytes): a checkpoint received over the network, say. The bytes are parsed with the
    /// same bounds as a file; nothing is written anywhere but the output.
    ///
    /// ```
    /// use timmconv::Conversion;
    ///
    /// let bytes = std::fs::read("fixtures/ckpt/test_resnet.f32.zip.pth")?;
    /// let plan = Conversion::from_bytes(bytes).model("test_resnet")?.in_chans(1).plan()?;
    /// let mut out = Vec::new();
    /// let report = plan.write_to(&mut out)?;
    /// let written = timmconv::Checkpoint::from_bytes(out, &Default::default())?;
    /// assert_eq!(written.array::<f32>("conv1.0.weight")?.shape(), [16, 1, 3, 3]);
    /// assert_eq!(report.input, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Conversion {
        Conversion::from_input(Input::Bytes(std::sync::Arc::new(bytes.into())))
    }

    /// Converts a checkpoint read whole from `reader` into memory (see
    /// [`from_bytes`](Self::from_bytes)).
    ///
    /// # Errors
    ///
    /// The reader's I/O error.
    pub fn from_reader(mut reader: impl std::io::Read) -> Result<Conversion> {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(input::IN_MEMORY, e))?;
        Ok(Conversion::from_bytes(bytes))
    }

    fn from_input(input: Input) -> Conversion {
        Conversion {
            input,
            config: None,
            config_file: None,
            open: OpenOptions::default(),
            model: None,
            in_chans: None,
            num_classes: None,
            first_conv: Vec::new(),
            classifier: Vec::new(),
            base_chans: None,
            pretrained_num_classes: None,
            label_offset: None,
            drop_unadaptable: false,
            allow_mismatch: false,
            rename_stem: None,
            rename_classifier: None,
            rules: Vec::new(),
            dtype: None,
            features_only: None,
            global_pool: None,
            knobs: Knobs::default(),
            layout: Layout::File,
            expect_sha256: None,
            hash_input: true,
            check_crc: false,
            original: OriginalLayoutChoice::Auto,
            model_keys: None,
        }
    }

    /// Converts a resolved input ([`source::resolve`](crate::source::resolve): a hub repo or
    /// folder). Its `config.json`, when there is one, names the model and supplies the
    /// pretrained cfg unless [`model`](Self::model) says otherwise.
    ///
    /// ```
    /// use timmconv::{source::Source, Conversion};
    ///
    /// let source = Source { weights: "fixtures/ckpt/test_resnet.f32.zip.pth".into(), config: None };
    /// let plan = Conversion::from_source(source).model("test_resnet")?.plan()?;
    /// assert_eq!(plan.model(), Some("test_resnet"));
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    pub fn from_source(source: Source) -> Conversion {
        let mut c = Conversion::from_file(source.weights);
        if source.config.is_some() {
            c.config_file = c
                .input
                .path()
                .map(|p| p.with_file_name(crate::source::CONFIG_FILE));
        }
        c.config = source.config;
        c
    }

    /// Which state dict to read and the reading budgets (EMA weights, a top-level key,
    /// `max_amplification`).
    pub fn open_options(mut self, open: OpenOptions) -> Self {
        self.open = open;
        self
    }

    /// The timm model `NAME[.TAG]` the weights are for, looked up in the embedded registry: its
    /// pretrained cfg gives the first conv, classifier, trained channels and classes, label
    /// offset and input size; its recorded state-dict keys check the checkpoint as
    /// `load_state_dict(strict=True)` would (see [`allow_mismatch`](Self::allow_mismatch)).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownModel`], with the closest known names, when the registry has no such
    /// architecture or tag.
    ///
    /// ```
    /// let err = timmconv::Conversion::from_file("x.pth").model("resnet5O").unwrap_err();
    /// assert!(err.to_string().contains("did you mean"));
    /// ```
    pub fn model(mut self, name: &str) -> Result<Self> {
        let (arch, tag) = registry::lookup(name)?;
        self.model = Some((arch, tag, name.to_owned()));
        Ok(self)
    }

    /// Input channels of the target model (timm's `in_chans`): the first conv is adapted as
    /// timm's `adapt_input_conv` does.
    pub fn in_chans(mut self, n: usize) -> Self {
        self.in_chans = Some(n);
        self
    }

    /// Classes of the target model; 0 for a headless backbone. A count other than the
    /// pretrained one drops the classifier, as timm does.
    pub fn num_classes(mut self, n: usize) -> Self {
        self.num_classes = Some(n);
        self
    }

    /// The first conv modules, instead of the cfg's `first_conv`.
    pub fn first_conv<S: Into<String>>(mut self, modules: impl IntoIterator<Item = S>) -> Self {
        self.first_conv = modules.into_iter().map(Into::into).collect();
        self
    }

    /// The classifier modules, instead of the cfg's `classifier`.
    pub fn classifier<S: Into<String>>(mut self, modules: impl IntoIterator<Item = S>) -> Self {
        self.classifier = modules.into_iter().map(Into::into).collect();
        self
    }

    /// Channels the weights were trained with (default: the cfg's `input_size[0]`, else 3).
    pub fn base_chans(mut self, n: usize) -> Self {
        self.base_chans = Some(n);
        self
    }

    /// Classes the weights were trained with (default: the cfg's `num_classes`).
    pub fn pretrained_num_classes(mut self, n: usize) -> Self {
        self.pretrained_num_classes = Some(n);
        self
    }

    /// Rows the classifier drops when `num_classes` is unchanged (default: the cfg's
    /// `label_offset`, such as the background class of some ImageNet-1k heads).
    pub fn label_offset(mut self, n: usize) -> Self {
        self.label_offset = Some(n);
        self
    }

    /// Drop a first conv that cannot be adapted (timm re-initialises it) instead of failing.
    pub fn drop_unadaptable(mut self, yes: bool) -> Self {
        self.drop_unadaptable = yes;
        self
    }

    /// Convert even when the checkpoint's keys or shapes do not fit the
    /// [`model`](Self::model); the differences become warnings in the report.
    pub fn allow_mismatch(mut self, yes: bool) -> Self {
        self.allow_mismatch = yes;
        self
    }

    /// Rename the (single) first conv module to `module`.
    pub fn rename_stem(mut self, module: impl Into<String>) -> Self {
        self.rename_stem = Some(module.into());
        self
    }

    /// Rename the (single) classifier module to `module`.
    pub fn rename_classifier(mut self, module: impl Into<String>) -> Self {
        self.rename_classifier = Some(module.into());
        self
    }

    /// Adds a key rename rule, applied after the stem and classifier renames and the rules
    /// added before it.
    ///
    /// ```
    /// use timmconv::{adapt::Rule, Conversion};
    ///
    /// let plan = Conversion::from_file("fixtures/ckpt/test_resnet.f32.zip.pth")
    ///     .rename(Rule::parse(r"^fc\.=head.")?)
    ///     .plan()?;
    /// assert!(plan.tensors().iter().any(|t| t.name == "head.weight"));
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    pub fn rename(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Cast floating-point tensors to `dtype` (integers are never cast).
    pub fn dtype(mut self, dtype: DType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// Keep only the weights of timm's `create_model(model, features_only=True,
    /// out_indices=...)`, under its key names (`None`: timm's default indices; negative ones
    /// count from the end). Needs a [`model`](Self::model) the registry knows.
    pub fn features_only(mut self, out_indices: Option<Vec<i64>>) -> Self {
        self.features_only = Some(out_indices);
        self
    }

    /// Global pooling of the target model (`avg`, `max`, `avgmax`, `catavgmax` or `""`); a
    /// pool that changes the classifier's input drops the classifier. Needs a
    /// [`model`](Self::model).
    pub fn global_pool(mut self, pool: impl Into<String>) -> Self {
        self.global_pool = Some(pool.into());
        self
    }

    /// Target input size `[H, W]` (timm's `img_size`): position embeddings and relative
    /// position tables are resampled as timm does at load time. Needs a
    /// [`model`](Self::model).
    pub fn img_size(mut self, hw: [usize; 2]) -> Self {
        self.knobs.img_size = Some(hw);
        self
    }

    /// Target patch size (timm's `patch_size`): the patch embedding is resampled. Needs a
    /// [`model`](Self::model).
    pub fn patch_size(mut self, hw: [usize; 2]) -> Self {
        self.knobs.patch_size = Some(hw);
        self
    }

    /// Target attention window (timm's `window_size`). Needs a [`model`](Self::model).
    pub fn window_size(mut self, hw: [usize; 2]) -> Self {
        self.knobs.window_size = Some(hw);
        self
    }

    /// Whether and from which original layout to convert (default: detected from the keys
    /// for the model's family, as timm's `load_pretrained` does).
    ///
    /// ```
    /// use timmconv::{Conversion, OriginalLayoutChoice};
    ///
    /// let plan = Conversion::from_file("fixtures/original/dinov2_reg.f32.pth")
    ///     .original_layout(OriginalLayoutChoice::Force("dinov2".into()))
    ///     .plan()?;
    /// let applied = plan.report().original_layout.as_ref().unwrap();
    /// assert_eq!(applied.to_string(), "dinov2 (mask_token, register_tokens)");
    /// assert!(plan.tensors().iter().any(|t| t.name == "reg_token"));
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    pub fn original_layout(mut self, choice: OriginalLayoutChoice) -> Self {
        self.original = choice;
        self
    }

    /// The state-dict keys and shapes of the target model, instead of the registry's record
    /// for the [`model`](Self::model): for a model built with other kwargs (a different depth
    /// or width). The checkpoint is checked against them as `load_state_dict(strict=True)`
    /// would, and an original layout's conversion asks them what timm's filter asks `model`.
    pub fn model_keys(mut self, keys: crate::registry::keys::Keys) -> Self {
        self.model_keys = Some(keys);
        self
    }

    /// What to write: one safetensors file (the default) or a timm hub folder.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// Refuse the input unless its SHA-256 starts with `hex` (8 to 64 hex digits). Without it,
    /// a hash in the file name (`resnet50-0676ba61.pth`, as torch hub names files) is checked.
    pub fn expect_sha256(mut self, hex: impl Into<String>) -> Self {
        self.expect_sha256 = Some(hex.into());
        self
    }

    /// Whether to hash the input (the default). Without a hash the output records the
    /// input's size and modification time instead of its `source_sha256`, and nothing can be
    /// checked against an expected hash.
    pub fn hash_input(mut self, yes: bool) -> Self {
        self.hash_input = yes;
        self
    }

    /// Whether to check the CRC-32 of every member of a zip input, reading for it what the
    /// conversion does not read anyway (off by default). A hashed conversion already checks
    /// every stored member from the bytes it hashes, and inflating checks a deflated one; this
    /// adds a read of the deflated members it does not inflate, and, without hashing, of the
    /// whole file (tensors the kernel copies never pass through this process). See
    /// [`Checkpoint::check_crc`](crate::Checkpoint::check_crc).
    pub fn check_crc(mut self, yes: bool) -> Self {
        self.check_crc = yes;
        self
    }

    /// The SHA-256 of everything that shapes the output's tensors (with the timmconv version),
    /// as recorded in the output's `options_sha256` metadata: an output whose record matches
    /// was made by the same conversion.
    ///
    /// # Errors
    ///
    /// As [`plan`](Self::plan) for the settings alone (nothing is read).
    pub fn options_sha256(&self) -> Result<String> {
        Ok(record::options_fingerprint(&self.resolve()?))
    }

    /// Checks every setting and resolves it against the registry, without reading the input.
    ///
    /// # Errors
    ///
    /// As [`plan`](Self::plan), for what needs no checkpoint.
    pub fn check(&self) -> Result<()> {
        self.resolve().map(|_| ())
    }

    /// Opens the checkpoint, checks it against the model and plans every output tensor (its
    /// name, dtype, shape and transform); no tensor data is read.
    ///
    /// # Errors
    ///
    /// - [`Error::Setting`]: settings that contradict each other or need what is not given
    ///   (an `in_chans` change without a first conv, a resolution without a model, ...);
    /// - an error from the registry's layouts (a resolution or pool timm cannot load);
    /// - any error opening the checkpoint ([`Checkpoint::open`]);
    /// - a checkpoint that does not fit the model (without
    ///   [`allow_mismatch`](Self::allow_mismatch)), or a tensor that cannot be adapted
    ///   ([`Error::Unadaptable`], [`Error::Tensor`], [`Error::Rename`]).
    ///
    /// ```
    /// use timmconv::Conversion;
    ///
    /// let plan = Conversion::from_file("fixtures/ckpt/test_resnet.f32.zip.pth")
    ///     .model("test_resnet")?
    ///     .in_chans(1)
    ///     .plan()?;
    /// assert_eq!((plan.in_chans(), plan.base_chans()), (1, 3));
    /// let stem = plan.array::<f32>("conv1.0.weight")?; // summed over the 3 input channels
    /// assert_eq!(stem.shape(), [16, 1, 3, 3]);
    /// # Ok::<(), timmconv::Error>(())
    /// ```
    pub fn plan(self) -> Result<ConversionPlan> {
        let settings = self.resolve()?;
        self.preflight(&settings)?;
        let config_file = self.config_file;
        let (input, mut ckpt) = self.input.open(&settings.open)?;
        // a family whose filter unwraps a key of its own (Hiera's `model_state`) reads the state
        // dict from there, as the filter would, unless a state key was asked for
        let wrapper = settings
            .registry
            .as_ref()
            .and_then(|(arch, _)| arch.module.as_deref())
            .and_then(crate::original::wrapper_key)
            .filter(|_| settings.original != OriginalLayoutChoice::Off);
        if let (Some(key), None, None) = (wrapper, &settings.open.state_key, ckpt.state_key()) {
            if ckpt.top_level_keys().iter().any(|k| k == key) {
                let open = OpenOptions {
                    state_key: Some(key.to_owned()),
                    ..settings.open.clone()
                };
                ckpt = input.reopen(ckpt, &open)?;
            }
        }
        let fitted = fit::fit(&ckpt, &settings).map_err(|e| input.attach(e))?;
        let mut plan =
            Plan::from_derived(&fitted.tensors, &settings.adapt).map_err(|e| input.attach(e))?;
        plan.report.original_layout = fitted.applied;
        plan.report.warnings.extend(fitted.warnings);
        Ok(ConversionPlan {
            input,
            config_file,
            ckpt,
            settings,
            plan,
        })
    }
}

/// A planned conversion: the open checkpoint, the resolved settings and every output tensor's
/// fate. Inspect it ([`tensors`](Self::tensors), [`report`](Self::report),
/// [`array`](Self::array)) or [`write`](Self::write) it.
#[derive(Debug)]
pub struct ConversionPlan {
    input: Origin,
    config_file: Option<PathBuf>,
    ckpt: Checkpoint,
    settings: Settings,
    plan: Plan,
}

impl ConversionPlan {
    /// The output tensors, in the checkpoint's order, with their names after renames.
    pub fn tensors(&self) -> &[crate::adapt::Planned] {
        &self.plan.tensors
    }

    /// What the plan does: adapted, resampled, dropped, sliced, renamed and cast tensors,
    /// warnings, and the resolved facts ([`Report::head`](crate::adapt::Report::head), ...).
    pub fn report(&self) -> &crate::adapt::Report {
        &self.plan.report
    }

    /// The target model's input channels, as resolved.
    pub fn in_chans(&self) -> usize {
        self.plan.report.in_chans
    }

    /// The channels the weights were trained with, as resolved (the cfg's, else 3).
    pub fn base_chans(&self) -> usize {
        self.plan.report.base_chans
    }

    /// The architecture the conversion resolved to, if any.
    pub fn model(&self) -> Option<&str> {
        self.settings.model.as_deref()
    }

    /// The checkpoint being converted.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.ckpt
    }

    /// One output tensor (by its output name) as an [`ndarray`] array of `T`, computed as it
    /// would be written (see [`Checkpoint::array`] for when it is a view).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchTensor`] for a name the plan does not write; otherwise as
    /// [`Checkpoint::array`].
    pub fn array<T: crate::array::Element>(
        &self,
        name: &str,
    ) -> Result<ndarray::CowArray<'_, T, ndarray::IxDyn>> {
        let p = self
            .plan
            .tensors
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::NoSuchTensor(name.to_owned()))?;
        self.plan.array(&self.ckpt, p)
    }

    /// Writes the plan to `output` in the chosen [`Layout`]: the data goes to a temporary file
    /// beside it that is renamed into place once complete, so `output` appears whole or not at
    /// all. The input is hashed meanwhile (unless [`hash_input`](Conversion::hash_input) is
    /// off) and checked against an expected hash.
    ///
    /// # Errors
    ///
    /// An output that is the input or exists (without
    /// [`overwrite`](WriteOptions::overwrite)), a hub layout without a registry model or with
    /// renames ([`Error::Setting`]), [`Error::Checksum`], or any I/O error. Nothing is left at
    /// `output` then.
    ///
    /// ```
    /// use timmconv::{Checkpoint, Conversion, Layout, WriteOptions};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let folder = dir.path().join("resnet1");
    /// Conversion::from_file("fixtures/ckpt/test_resnet.f32.zip.pth")
    ///     .model("test_resnet.r160_in1k")?
    ///     .in_chans(1)
    ///     .layout(Layout::Hub)
    ///     .plan()?
    ///     .write(&folder, &WriteOptions::default())?;
    /// let config = std::fs::read_to_string(folder.join("config.json"))?;
    /// assert!(config.contains(r#""in_chans": 1"#));
    /// let weights = Checkpoint::open(folder.join("model.safetensors"), &Default::default())?;
    /// assert_eq!(weights.array::<f32>("conv1.0.weight")?.shape(), [16, 1, 3, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(self, output: impl AsRef<Path>, opts: &WriteOptions) -> Result<ConvertReport> {
        self.write_with_progress(output, opts, |_, _| {})
    }

    /// Writes the plan as one safetensors file to `sink` (a socket, a buffer, an archive
    /// member): the same bytes [`write`](Self::write) puts in a file of the
    /// [`File`](Layout::File) layout. The input is hashed first, so a checksum mismatch writes
    /// nothing; past that, an error leaves a partial stream that the caller discards.
    ///
    /// # Errors
    ///
    /// The [`Hub`](Layout::Hub) layout (a folder is not a stream,
    /// [`Setting::StreamNeedsFileLayout`](crate::error::Setting::StreamNeedsFileLayout)),
    /// [`Error::Checksum`], a tensor that cannot be produced, or the sink's I/O error.
    pub fn write_to(self, mut sink: impl std::io::Write) -> Result<ConvertReport> {
        if self.settings.layout != Layout::File {
            return Err(Error::Setting(crate::error::Setting::StreamNeedsFileLayout));
        }
        file::write_stream(self, &mut sink, &mut |_, _| {})
    }

    /// [`write`](Self::write), calling `progress` with `(bytes_done, bytes_total)` after each
    /// piece written (a progress bar's feed).
    ///
    /// # Errors
    ///
    /// As [`write`](Self::write).
    pub fn write_with_progress(
        self,
        output: impl AsRef<Path>,
        opts: &WriteOptions,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<ConvertReport> {
        let output = output.as_ref();
        if let Some(config) = &self.config_file {
            output::check_not(config, output)?;
        }
        match self.settings.layout {
            Layout::File => file::write_file(self, output, opts, &mut progress),
            Layout::Hub => folder::write_folder(self, output, opts, &mut progress),
        }
    }
}
