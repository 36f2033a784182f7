//! The one entry point for a conversion: [`Conversion`] takes what a user asks for (a timm model
//! name, `in_chans`, `num_classes`, a resolution, renames, a dtype), resolves it against the
//! embedded registry (its pretrained cfg fills in the first conv, the classifier, the trained
//! channels and classes, the label offset and the input size), plans every tensor against the
//! checkpoint, and writes the plan as a safetensors file or a timm hub folder.
//!
//! The CLI's `convert` and `batch` are flag-for-setter translations onto this builder: whatever
//! they do, a library user does with the same result.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::adapt::{Adaptation, Plan, Rule};
use crate::checkpoint::{Checkpoint, OpenOptions};
use crate::convert::{self, ConvertReport};
use crate::dtype::DType;
use crate::error::{Error, Result, Setting};
use crate::original::Derived;
use crate::registry::{self, Arch, Knobs, Tag};
use crate::source::Source;

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
pub struct WriteOptions {
    /// Replace an existing output (a file, or a hub folder holding only what an export
    /// writes); without it an existing output is an error and stays as it was.
    pub overwrite: bool,
    /// Flush the data to the disk before the output gets its name (survives a power loss).
    pub fsync: bool,
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
///     .write(&out, &WriteOptions::default(), |_, _| {})?;
/// assert_eq!(report.plan.adapted.len(), 1); // the stem, summed and repeated to 4 channels
/// assert_eq!(report.plan.dropped.len(), 2); // fc.weight and fc.bias: a headless model
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Conversion {
    input: PathBuf,
    config: Option<Map<String, Value>>,
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

/// A conversion with every decision made: the registry lookup, the cfg merge and the options
/// resolved into an [`Adaptation`]. What `batch` fingerprints and the writers record.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub(crate) open: OpenOptions,
    pub(crate) adapt: Adaptation,
    /// Architecture name recorded in the metadata.
    pub(crate) model: Option<String>,
    /// Pretrained tag recorded in the metadata.
    pub(crate) tag: Option<String>,
    /// The registry's architecture and pretrained cfg, for a hub folder's `config.json`.
    pub(crate) registry: Option<(Arch, Tag)>,
    pub(crate) layout: Layout,
    pub(crate) expect_sha256: Option<String>,
    pub(crate) no_hash: bool,
    /// Read every zip member the conversion does not read anyway to check its CRC-32.
    pub(crate) check_crc: bool,
    pub(crate) allow_mismatch: bool,
    /// timm loads the named model's pretrained weights with `strict=False` (the tags its
    /// factories pass `pretrained_strict=False` for: [`registry::strict`]).
    pub(crate) non_strict: bool,
    pub(crate) original: OriginalLayoutChoice,
    /// The target model's keys and shapes, when given (else the registry's, looked up when
    /// planning).
    pub(crate) model_keys: Option<crate::registry::keys::Keys>,
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
        Conversion {
            input: input.as_ref().to_path_buf(),
            config: None,
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
        Ok(convert::options_fingerprint(&self.resolve()?))
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
        let input = self.input;
        let mut ckpt = Checkpoint::open(&input, &settings.open)?;
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
                ckpt = Checkpoint::open(&input, &open)?;
            }
        }
        // the registry records keys per tag: a tag's num_classes can differ from the default's
        let model_keys = match (&settings.model_keys, &settings.model, &settings.tag) {
            (Some(k), _, _) => Some(k.clone()),
            (None, Some(m), Some(t)) if !t.is_empty() => registry::keys::keys(&format!("{m}.{t}"))?,
            (None, Some(m), _) => registry::keys::keys(m)?,
            (None, None, _) => None,
        };
        let converted = original_tensors(&ckpt, &settings, model_keys.as_ref())
            .map_err(|e| e.with_path(&input))?;
        let (mut derived, applied) = match converted {
            Some(c) => (c.tensors, Some(c.applied)),
            None => (ckpt.tensors().iter().map(Derived::stored).collect(), None),
        };
        let fit = match (&settings.model, &model_keys) {
            (Some(model), Some(want)) => {
                let name = match &settings.tag {
                    Some(t) if !t.is_empty() => format!("{model}.{t}"),
                    _ => model.clone(),
                };
                let have: Vec<(&str, &[usize])> = derived
                    .iter()
                    .map(|d| (d.info.name.as_str(), d.info.shape.as_slice()))
                    .collect();
                Some(crate::identify::compare(
                    &have,
                    want,
                    &crate::identify::Leeway::of(&settings.adapt),
                ))
                .filter(|c| !c.is_exact())
                .map(|c| (name, c))
            }
            _ => None,
        };
        // timm loads some tags with load_state_dict(strict=False) (registry::strict): a missing
        // key stays at the model's init (nothing to write), an unexpected one is ignored (left
        // out); a shape mismatch still raises there, and is refused here
        let mut non_strict_notes = Vec::new();
        let fit = match fit {
            Some((name, c)) if settings.non_strict && c.mismatched.is_empty() => {
                derived.retain(|d| !c.unexpected.contains(&d.info.name));
                non_strict_notes = c
                    .describe()
                    .into_iter()
                    .map(|d| {
                        format!(
                            "timm loads `{name}` with strict=False: {d} (missing keys keep \
                             timm's init and are not written; unexpected ones are left out)"
                        )
                    })
                    .collect();
                None
            }
            f => f,
        };
        if let (Some((name, c)), false) = (&fit, settings.allow_mismatch) {
            let e = match &applied {
                Some(a) => {
                    crate::identify::mismatch_error(&format!("{name}` (from layout `{a}`)"), c)
                }
                None => {
                    let mut e = crate::identify::mismatch_error(name, c);
                    if let (Error::ModelMismatch { differences, .. }, Some(tried)) =
                        (&mut e, layouts_tried(&settings))
                    {
                        differences.push(tried);
                    }
                    e
                }
            };
            return Err(e.with_path(&input));
        }
        let mut plan =
            Plan::from_derived(&derived, &settings.adapt).map_err(|e| e.with_path(&input))?;
        plan.report.original_layout = applied;
        plan.report.warnings.extend(non_strict_notes);
        if let Some((name, c)) = &fit {
            for d in c.describe() {
                plan.report
                    .warnings
                    .push(format!("--allow-mismatch: not a `{name}` state dict: {d}"));
            }
        }
        Ok(ConversionPlan {
            input,
            ckpt,
            settings,
            plan,
        })
    }

    /// Every decision, in one place: the registry lookup, the cfg merge (explicit settings
    /// win), and the registry layouts for features-only, pooling and resolution.
    fn resolve(&self) -> Result<Settings> {
        for (setting, v) in [("in_chans", self.in_chans), ("base_chans", self.base_chans)] {
            if v == Some(0) {
                return Err(Error::Setting(Setting::NotPositive { setting }));
            }
        }
        let mut adapt = Adaptation {
            in_chans: self.in_chans,
            num_classes: self.num_classes,
            first_conv: self.first_conv.clone(),
            classifier: self.classifier.clone(),
            base_chans: self.base_chans,
            cfg_num_classes: self.pretrained_num_classes,
            label_offset: self.label_offset.unwrap_or(0),
            drop_unadaptable: self.drop_unadaptable,
            rename_stem: self.rename_stem.clone(),
            rename_classifier: self.rename_classifier.clone(),
            rules: self.rules.clone(),
            features: None,
            resize: None,
            global_pool: None,
            dtype: self.dtype,
            stem_free: false,
            headless_drops: Vec::new(),
        };
        let (mut model, mut tag, mut registry_entry) = (None, None, None);
        // timm decides on the tag as named (`create_model('convnextv2_atto.fcmae')`)
        let non_strict = self.model.as_ref().is_some_and(|(arch, _, name)| {
            !registry::strict::loads_strictly(arch.module.as_deref(), name)
        });
        let from_config = self.config.as_ref().filter(|_| self.model.is_none());
        let config_model = match from_config.and_then(crate::source::config_model) {
            Some(name) => {
                let (arch, known) = registry::lookup(&name)?;
                // the config.json that came with the weights is their pretrained cfg, as in
                // timm's create_model('hf-hub:…'); the registry's tag of that name only fills in
                // when the file carries no cfg at all
                let cfg = from_config.and_then(crate::source::config_tag).or(known);
                Some((arch, cfg, name))
            }
            None => None,
        };
        if let Some((arch, cfg, name)) = self.model.as_ref().or(config_model.as_ref()) {
            let Some(cfg) = cfg else {
                return Err(Error::Setting(Setting::NoPretrainedCfg {
                    model: name.clone(),
                }));
            };
            self.merge_cfg(&mut adapt, cfg);
            if self.num_classes == Some(0) {
                adapt.headless_drops = registry::keys::headless(&arch.name)?;
            }
            if let Some(out_indices) = &self.features_only {
                let stages = arch.feature_info.as_ref().map_or(0, Vec::len);
                let layout = registry::features::layout(&arch.name)?;
                adapt.features = Some(layout.select(out_indices.as_deref(), stages)?);
            }
            if let Some(pool) = &self.global_pool {
                let layout = registry::resize::layout(&arch.name)?;
                let keys = layout.pool_changes(pool, &adapt.classifier)?;
                adapt.global_pool = Some((pool.clone(), keys));
            }
            if !self.knobs.is_empty() {
                let source_img = cfg
                    .cfg
                    .get("input_size")
                    .and_then(|v| v.as_array())
                    .and_then(|v| match v.as_slice() {
                        [_, h, w] => Some([
                            usize::try_from(h.as_u64()?).ok()?,
                            usize::try_from(w.as_u64()?).ok()?,
                        ]),
                        _ => None,
                    });
                adapt.resize = Some(registry::ResizePlan::new(
                    &arch.name,
                    &self.knobs,
                    source_img,
                )?);
            }
            model = Some(arch.name.clone());
            tag = Some(cfg.tag.clone());
            registry_entry = Some((arch.clone(), cfg.clone()));
        } else if !self.knobs.is_empty() || self.global_pool.is_some() {
            return Err(Error::Setting(Setting::ResolutionNeedsModel));
        } else if let Some(cfg) = from_config.and_then(crate::source::config_tag) {
            // an architecture the registry does not know: its config.json still says enough
            self.merge_cfg(&mut adapt, &cfg);
            if self.features_only.is_some() {
                return Err(Error::Setting(Setting::FeaturesNeedKnownArch));
            }
        } else if self.features_only.is_some() {
            return Err(Error::Setting(Setting::FeaturesNeedModel));
        }
        if self.layout == Layout::Hub && self.features_only.is_some() {
            return Err(Error::Setting(Setting::HubFeatures));
        }
        Ok(Settings {
            open: self.open.clone(),
            adapt,
            model,
            tag,
            registry: registry_entry,
            layout: self.layout,
            expect_sha256: self.expect_sha256.clone(),
            no_hash: !self.hash_input,
            check_crc: self.check_crc,
            allow_mismatch: self.allow_mismatch,
            non_strict,
            original: self.original.clone(),
            model_keys: self.model_keys.clone(),
        })
    }

    /// What the settings can say against writing before the input is opened: a hash that
    /// cannot be checked, a hub folder that could not describe the model.
    fn preflight(&self, settings: &Settings) -> Result<()> {
        if let Some(e) = &self.expect_sha256 {
            if e.len() < 8 || e.len() > 64 || !e.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Setting(Setting::BadSha256 { hex: e.clone() }));
            }
        }
        if !self.hash_input
            && (self.expect_sha256.is_some() || convert::hash_in_file_name(&self.input).is_some())
        {
            return Err(Error::Setting(Setting::NoHashWithChecksum));
        }
        if settings.layout == Layout::Hub {
            if settings.registry.is_none() {
                return Err(Error::Setting(Setting::HubNeedsModel));
            }
            let a = &settings.adapt;
            if !a.rules.is_empty() || a.rename_stem.is_some() || a.rename_classifier.is_some() {
                return Err(Error::Setting(Setting::HubRenames));
            }
        }
        Ok(())
    }

    /// Fills what the settings left open from a pretrained cfg.
    fn merge_cfg(&self, adapt: &mut Adaptation, cfg: &Tag) {
        if adapt.first_conv.is_empty() {
            adapt.first_conv = cfg.first_conv();
        }
        if adapt.classifier.is_empty() {
            adapt.classifier = cfg.classifier();
        }
        adapt.base_chans = adapt.base_chans.or(cfg.in_chans());
        adapt.cfg_num_classes = adapt.cfg_num_classes.or(cfg.num_classes());
        if self.label_offset.is_none() {
            adapt.label_offset = cfg.label_offset();
        }
        // a cfg that declares no first conv (`first_conv: []`, such as csatv2's fixed DCT
        // stem) is built the same by timm for any in_chans: its weights serve as they are
        let declared_none = cfg
            .cfg
            .get("first_conv")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        let base = adapt.base_chans();
        if let Some(want) = adapt.in_chans.filter(|c| *c != base) {
            if declared_none && adapt.first_conv.is_empty() {
                adapt.base_chans = Some(want);
                adapt.stem_free = true;
            }
        }
    }
}

/// The original layouts the model's family converts, in words, when none was detected.
fn layouts_tried(settings: &Settings) -> Option<String> {
    if settings.original != OriginalLayoutChoice::Auto {
        return None;
    }
    let family = settings.registry.as_ref()?.0.module.clone()?;
    let tried: Vec<String> = crate::original::layouts()
        .iter()
        .filter(|l| l.family == family)
        .map(|l| format!("{} ({})", l.name, l.detected_by))
        .collect();
    (!tried.is_empty()).then(|| {
        format!(
            "nor is it in an original layout timm's `{family}` filter converts (tried {})",
            tried.join(", ")
        )
    })
}

/// The checkpoint's tensors converted from an original layout, when one applies: forced, or
/// detected for the model's family (timm runs the family's filter on every checkpoint).
fn original_tensors(
    ckpt: &Checkpoint,
    settings: &Settings,
    model_keys: Option<&crate::registry::keys::Keys>,
) -> Result<Option<crate::original::Converted>> {
    let family = settings
        .registry
        .as_ref()
        .and_then(|(arch, _)| arch.module.clone());
    let layout = match &settings.original {
        OriginalLayoutChoice::Off => return Ok(None),
        OriginalLayoutChoice::Force(name) => {
            let Some(l) = crate::original::find(name) else {
                return Err(Error::Setting(Setting::UnknownOriginalLayout {
                    name: name.clone(),
                    known: crate::original::layouts()
                        .iter()
                        .map(|l| l.name.to_owned())
                        .collect(),
                }));
            };
            l
        }
        OriginalLayoutChoice::Auto => {
            let Some(family) = family.as_deref() else {
                return Ok(None);
            };
            match crate::original::detect(ckpt.tensors(), Some(family)) {
                Some(d) => d.0,
                None => return Ok(None),
            }
        }
    };
    let a = &settings.adapt;
    let classes = a.num_classes.or(a.cfg_num_classes);
    let target = crate::original::Target {
        keys: model_keys.map(|k| k.iter().cloned().collect()),
        head_linear: classes.is_none_or(|n| n > 0),
    };
    layout.convert(ckpt.tensors(), &target).map(Some)
}

/// A planned conversion: the open checkpoint, the resolved settings and every output tensor's
/// fate. Inspect it ([`tensors`](Self::tensors), [`report`](Self::report),
/// [`array`](Self::array)) or [`write`](Self::write) it.
#[derive(Debug)]
pub struct ConversionPlan {
    input: PathBuf,
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
    pub fn array<T: crate::Element>(
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
    /// off) and checked against an expected hash. `progress` receives `(bytes_done,
    /// bytes_total)` after each piece written.
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
    ///     .write(&folder, &WriteOptions::default(), |_, _| {})?;
    /// let config = std::fs::read_to_string(folder.join("config.json"))?;
    /// assert!(config.contains(r#""in_chans": 1"#));
    /// let weights = Checkpoint::open(folder.join("model.safetensors"), &Default::default())?;
    /// assert_eq!(weights.array::<f32>("conv1.0.weight")?.shape(), [16, 1, 3, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write(
        self,
        output: impl AsRef<Path>,
        opts: &WriteOptions,
        progress: impl FnMut(u64, u64),
    ) -> Result<ConvertReport> {
        let output = output.as_ref();
        match self.settings.layout {
            Layout::File => convert::write_file(
                &self.input,
                &self.ckpt,
                &self.settings,
                self.plan,
                output,
                opts,
                progress,
            ),
            Layout::Hub => crate::hub::write_hub(
                &self.input,
                &self.ckpt,
                &self.settings,
                self.plan,
                output,
                opts,
                progress,
            ),
        }
    }
}
