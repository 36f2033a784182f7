//! Every decision before the input is read: the user's settings resolved against the registry
//! and the pretrained cfg into [`Settings`].

use serde_json::Value;

use std::path::Path;

use super::{Conversion, Layout, OriginalLayoutChoice};
use crate::adapt::{Adaptation, FeatureSelect, ResizePlan};
use crate::checkpoint::OpenOptions;
use crate::error::{Error, Result, Setting};
use crate::registry::{self, Arch, Tag};

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
    /// Every decision, in one place: the registry lookup, the cfg merge (explicit settings
    /// win), and the registry layouts for features-only, pooling and resolution.
    pub(super) fn resolve(&self) -> Result<Settings> {
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
            resolved: Default::default(),
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
                adapt.resolved.headless_drops = registry::keys::headless(&arch.name)?;
            }
            if let Some(out_indices) = &self.features_only {
                let stages = arch.feature_info.as_ref().map_or(0, Vec::len);
                let layout = registry::features::layout(&arch.name)?;
                adapt.features = Some(FeatureSelect::new(&layout, out_indices.as_deref(), stages)?);
            }
            if let Some(pool) = &self.global_pool {
                let layout = registry::resize::layout(&arch.name)?;
                let keys = crate::adapt::pool::reshaped_keys(&layout, pool, &adapt.classifier)?;
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
                adapt.resize = Some(ResizePlan::new(&arch.name, &self.knobs, source_img)?);
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
    pub(super) fn preflight(&self, settings: &Settings) -> Result<()> {
        if let Some(e) = &self.expect_sha256 {
            if e.len() < 8 || e.len() > 64 || !e.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Error::Setting(Setting::BadSha256 { hex: e.clone() }));
            }
        }
        if !self.hash_input
            && (self.expect_sha256.is_some()
                || self.input.path().and_then(hash_in_file_name).is_some())
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
                adapt.resolved.stem_free = true;
            }
        }
    }
}

/// The SHA-256 prefix that torch hub and timm put in file names (`resnet50-0676ba61.pth`).
pub(super) fn hash_in_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let re = regex::Regex::new(r"-([0-9a-f]{8,64})\.(pth|pt|bin|ckpt|pth\.tar)$").ok()?;
    re.captures(name).map(|c| c[1].to_owned())
}
