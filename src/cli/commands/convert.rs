//! `timmconv convert`

use crate::adapt::{Adaptation, Rule};
use crate::cli::args::{ConvertArgs, DTypeArg, LayoutArg};
use crate::cli::{printer, Outcome};
use crate::convert::{self, ConvertOptions, ConvertReport};
use crate::DType;

/// Turns the raw arguments into library options, in one place.
pub fn options(a: &ConvertArgs) -> anyhow::Result<ConvertOptions> {
    options_with(a, None)
}

/// [`options`], with the `config.json` of a hub repo or folder as the source of the model and
/// its pretrained cfg where flags do not say otherwise.
pub fn options_with(
    a: &ConvertArgs,
    config: Option<&serde_json::Map<String, serde_json::Value>>,
) -> anyhow::Result<ConvertOptions> {
    let rules = a
        .rename
        .iter()
        .map(|r| Rule::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut adapt = Adaptation {
        in_chans: a.in_chans,
        num_classes: a.num_classes,
        first_conv: a.first_conv.clone(),
        classifier: a.classifier.clone(),
        base_chans: a.base_chans,
        cfg_num_classes: a.pretrained_num_classes,
        label_offset: a.label_offset.unwrap_or(0),
        drop_unadaptable: a.drop_unadaptable,
        rename_stem: a.rename_stem.clone(),
        rename_classifier: a.rename_classifier.clone(),
        rules,
        features: None,
        resize: None,
        global_pool: None,
        dtype: match a.dtype {
            DTypeArg::Keep => None,
            DTypeArg::F32 => Some(DType::F32),
            DTypeArg::F16 => Some(DType::F16),
            DTypeArg::Bf16 => Some(DType::BF16),
        },
    };
    let knobs = crate::registry::Knobs {
        img_size: pair("--img-size", &a.img_size)?,
        patch_size: pair("--patch-size", &a.patch_size)?,
        window_size: pair("--window-size", &a.window_size)?,
    };
    let (mut model, mut tag) = (None, None);
    let from_config = config.filter(|_| a.model.is_none());
    let config_model = from_config.and_then(crate::source::config_model);
    if let Some(name) = a.model.as_ref().or(config_model.as_ref()) {
        let (arch, cfg) = crate::registry::lookup(name)?;
        let Some(cfg) = cfg else {
            anyhow::bail!("`{name}` has no pretrained cfg; pass --first-conv and --classifier");
        };
        merge_cfg(&mut adapt, &cfg, a);
        if a.features_only {
            let stages = arch.feature_info.as_ref().map_or(0, Vec::len);
            let layout = crate::registry::features::layout(&arch.name)?;
            adapt.features = Some(layout.select(a.out_indices.as_deref(), stages)?);
        }
        if let Some(pool) = &a.global_pool {
            let layout = crate::registry::resize::layout(&arch.name)?;
            let keys = layout.pool_changes(pool, &adapt.classifier)?;
            adapt.global_pool = Some((pool.clone(), keys));
        }
        if !knobs.is_empty() {
            let source_img = cfg
                .cfg
                .get("input_size")
                .and_then(|v| v.as_array())
                .and_then(|v| match v.as_slice() {
                    [_, h, w] => Some([h.as_u64()? as usize, w.as_u64()? as usize]),
                    _ => None,
                });
            adapt.resize = Some(crate::registry::ResizePlan::new(
                &arch.name, &knobs, source_img,
            )?);
        }
        model = Some(arch.name);
        tag = Some(cfg.tag);
    } else if !knobs.is_empty() || a.global_pool.is_some() {
        anyhow::bail!(
            "--img-size, --patch-size, --window-size and --global-pool need --model NAME: what each changes comes from the registry"
        );
    } else if let Some(cfg) = from_config.and_then(crate::source::config_tag) {
        // an architecture the registry does not know: its config.json still says enough
        merge_cfg(&mut adapt, &cfg, a);
        if a.features_only {
            anyhow::bail!("--features-only needs an architecture the registry knows");
        }
    } else if a.features_only {
        anyhow::bail!(
            "--features-only needs --model NAME: the features layout comes from the registry"
        );
    }
    if a.features_only && a.layout == LayoutArg::Hub {
        anyhow::bail!("--features-only writes a features model's weights; timm's hub folders hold classification models, use --layout file");
    }
    Ok(ConvertOptions {
        open: a.state.open_options(),
        adapt,
        model,
        tag,
        overwrite: a.force,
        expect_sha256: a.expect_sha256.clone(),
        sync: a.fsync,
        no_hash: a.no_hash,
        allow_mismatch: a.allow_mismatch,
    })
}

/// One number (square) or H,W.
fn pair(flag: &str, v: &Option<Vec<usize>>) -> anyhow::Result<Option<[usize; 2]>> {
    match v.as_deref() {
        None => Ok(None),
        Some(&[n]) => Ok(Some([n, n])),
        Some(&[h, w]) => Ok(Some([h, w])),
        Some(other) => anyhow::bail!("{flag} takes one or two numbers, not {}", other.len()),
    }
}

/// Fills what the flags left open from a pretrained cfg (explicit flags override the cfg).
fn merge_cfg(adapt: &mut Adaptation, cfg: &crate::registry::Tag, a: &ConvertArgs) {
    if adapt.first_conv.is_empty() {
        adapt.first_conv = cfg.first_conv();
    }
    if adapt.classifier.is_empty() {
        adapt.classifier = cfg.classifier();
    }
    adapt.base_chans = adapt.base_chans.or(cfg.in_chans());
    adapt.cfg_num_classes = adapt.cfg_num_classes.or(cfg.num_classes());
    if a.label_offset.is_none() {
        adapt.label_offset = cfg.label_offset();
    }
    stem_free(adapt, cfg, a.quiet);
}

/// An architecture whose cfg declares no first conv (`first_conv: []`, such as csatv2's fixed DCT
/// stem) is built the same by timm for any `in_chans`: its weights serve as they are.
fn stem_free(adapt: &mut Adaptation, cfg: &crate::registry::Tag, quiet: bool) {
    let declared_none = cfg
        .cfg
        .get("first_conv")
        .and_then(serde_json::Value::as_array)
        .is_some_and(Vec::is_empty);
    let base = adapt.base_chans.unwrap_or(3);
    if let Some(want) = adapt.in_chans.filter(|c| *c != base) {
        if declared_none && adapt.first_conv.is_empty() {
            if !quiet {
                printer::note(format_args!(
                    "the pretrained cfg declares no first conv (first_conv: []): timm builds this \
                     architecture the same for any in_chans, so the weights serve {want} channels \
                     unchanged"
                ));
            }
            adapt.base_chans = Some(want);
        }
    }
}

/// Runs `convert`.
pub fn run(a: ConvertArgs) -> anyhow::Result<Outcome> {
    let mut bar = None;
    let mut progress = |done: u64, total: u64| {
        if bar.is_none() {
            bar = Some(printer::progress(total, a.quiet));
        }
        if let Some(Some(b)) = &bar {
            b.set_position(done);
        }
    };
    let report = execute(&a, &mut progress)?;
    if let Some(Some(b)) = bar {
        b.finish_and_clear();
    }
    if a.json {
        printer::json(&report)?;
    }
    if !a.quiet {
        summary(&report, a.verbose);
    }
    Ok(Outcome::Success)
}

/// One conversion as `convert` does it, without printing: the code path `batch` shares.
pub fn execute(a: &ConvertArgs, progress: impl FnMut(u64, u64)) -> anyhow::Result<ConvertReport> {
    crate::source::check_output_path(&a.output, a.layout == LayoutArg::Hub)?;
    let source = crate::source::resolve(&a.input, &mut printer::download(a.quiet))?;
    let opts = options_with(a, source.config.as_ref())?;
    Ok(match a.layout {
        LayoutArg::File => convert::convert(&source.weights, &a.output, &opts, progress)?,
        LayoutArg::Hub => crate::hub::convert_hub(&source.weights, &a.output, &opts, progress)?,
    })
}

fn summary(r: &ConvertReport, verbose: bool) {
    for ad in &r.plan.adapted {
        printer::note(format_args!(
            "adapted `{}` {:?} -> {:?} ({})",
            ad.key,
            ad.from_shape,
            ad.to_shape,
            match ad.method {
                crate::adapt::InChansMethod::Sum => "sum over input channels".to_owned(),
                crate::adapt::InChansMethod::SumSpaceToDepth { groups } =>
                    format!("sum within {groups} space-to-depth groups"),
                crate::adapt::InChansMethod::Repeat => "repeat and scale".to_owned(),
            }
        ));
    }
    for rs in &r.plan.resampled {
        printer::note(format_args!(
            "resampled `{}` {:?} -> {:?}",
            rs.key, rs.from_shape, rs.to_shape
        ));
    }
    for d in &r.plan.dropped {
        printer::note(format_args!("dropped `{}`: {}", d.key, d.reason));
    }
    for s in &r.plan.sliced {
        printer::note(format_args!("sliced label offset off `{s}`"));
    }
    if verbose {
        for n in &r.plan.renamed {
            printer::note(format_args!("renamed `{}` -> `{}`", n.from, n.to));
        }
        for s in &r.skipped {
            printer::note(format_args!(
                "left out non-tensor `{}` ({})",
                s.name, s.kind
            ));
        }
    } else if !r.plan.renamed.is_empty() {
        printer::note(format_args!(
            "renamed {} keys (-v lists them)",
            r.plan.renamed.len()
        ));
    }
    for u in &r.plan.unused_rules {
        printer::warn(format_args!("rename rule `{u}` matched nothing"));
    }
    for w in &r.plan.warnings {
        printer::warn(w);
    }
    if let Some(src) = &r.sha256_checked {
        printer::note(format_args!("sha256 verified against {src}"));
    }
    printer::note(format_args!(
        "wrote {} tensors ({}) to {}",
        r.tensors,
        printer::bytes(r.bytes),
        r.output.display()
    ));
}
