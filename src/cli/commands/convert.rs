//! `timmconv convert`

use crate::adapt::{Adaptation, Rule};
use crate::cli::args::{ConvertArgs, DTypeArg, LayoutArg};
use crate::cli::{input, printer, Outcome};
use crate::convert::{self, ConvertOptions, ConvertReport};
use crate::registry::Tag;
use crate::source::HubConfig;
use crate::DType;

/// Turns the raw arguments into library options, in one place. `config` is the input's hub
/// `config.json`: its architecture and pretrained cfg apply unless `--model` names another.
pub fn options(a: &ConvertArgs, config: Option<&HubConfig>) -> anyhow::Result<ConvertOptions> {
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
        dtype: match a.dtype {
            DTypeArg::Keep => None,
            DTypeArg::F32 => Some(DType::F32),
            DTypeArg::F16 => Some(DType::F16),
            DTypeArg::Bf16 => Some(DType::BF16),
        },
    };
    let (mut model, mut tag) = (None, None);
    let from_config = match (&a.model, config) {
        (None, Some(c)) => Some(c),
        _ => None,
    };
    if let Some(c) = from_config {
        // a repo's config.json, as timm reads it: a model newer than the registry converts too
        apply_cfg(&mut adapt, a, &c.cfg);
        if a.features_only {
            let (arch, _) = crate::registry::lookup(&c.architecture)?;
            let stages = arch.feature_info.as_ref().map_or(0, Vec::len);
            let layout = crate::registry::features::layout(&arch.name)?;
            adapt.features = Some(layout.select(a.out_indices.as_deref(), stages)?);
        }
        model = Some(c.architecture.clone());
        tag = Some(c.cfg.tag.clone());
    } else if let Some(name) = &a.model {
        let (arch, cfg) = crate::registry::lookup(name)?;
        let Some(cfg) = cfg else {
            anyhow::bail!("`{name}` has no pretrained cfg; pass --first-conv and --classifier");
        };
        apply_cfg(&mut adapt, a, &cfg);
        if a.features_only {
            let stages = arch.feature_info.as_ref().map_or(0, Vec::len);
            let layout = crate::registry::features::layout(&arch.name)?;
            adapt.features = Some(layout.select(a.out_indices.as_deref(), stages)?);
        }
        model = Some(arch.name);
        tag = Some(cfg.tag);
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

/// Whether the cfg declares no first conv (`first_conv: []`, as csatv2's fixed DCT stem):
/// timm then builds the same weights for any `in_chans`.
fn fixed_stem(cfg: &Tag) -> bool {
    matches!(cfg.cfg.get("first_conv"), Some(serde_json::Value::Array(v)) if v.is_empty())
}

/// Fills what the flags left open from a pretrained cfg (explicit flags override the cfg).
fn apply_cfg(adapt: &mut Adaptation, a: &ConvertArgs, cfg: &Tag) {
    if a.first_conv.is_empty() && fixed_stem(cfg) {
        // nothing to adapt: the weights are the same whatever in_chans the model is built with
        adapt.base_chans = a.in_chans.or(cfg.in_chans());
    }
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
}

/// Runs `convert`.
pub fn run(a: ConvertArgs) -> anyhow::Result<Outcome> {
    // a bad output path fails before anything is read or downloaded
    crate::output::check(
        &a.output,
        match a.layout {
            LayoutArg::File => crate::output::OutputKind::File,
            LayoutArg::Hub => crate::output::OutputKind::Folder,
        },
    )?;
    let source = input::resolve(&a.input, a.quiet)?;
    let config = source.hub_config()?;
    let opts = options(&a, config.as_ref())?;
    if let (None, Some(c), false) = (&a.model, &config, a.quiet) {
        printer::note(format_args!(
            "model {}{}{} from {}",
            c.architecture,
            if c.cfg.tag.is_empty() { "" } else { "." },
            c.cfg.tag,
            source
                .config
                .as_deref()
                .map_or_else(String::new, |p| p.display().to_string())
        ));
    }
    if let (Some(n), false, Some(model)) = (a.in_chans, a.quiet, &opts.model) {
        let cfg = match (&a.model, &config) {
            (None, Some(c)) => Some(c.cfg.clone()),
            _ => crate::registry::lookup(a.model.as_deref().unwrap_or(model))
                .ok()
                .and_then(|(_, t)| t),
        };
        if cfg.as_ref().is_some_and(fixed_stem) && a.first_conv.is_empty() {
            printer::note(format_args!(
                "`{model}` declares no first conv (first_conv: []): timm builds the same weights \
                 for any in_chans, so in_chans={n} needs no adaptation"
            ));
        }
    }
    let input = &source.weights;
    let mut bar = None;
    let mut progress = |done: u64, total: u64| {
        if bar.is_none() {
            bar = Some(printer::progress(total, a.quiet));
        }
        if let Some(Some(b)) = &bar {
            b.set_position(done);
        }
    };
    let report = match a.layout {
        LayoutArg::File => convert::convert(input, &a.output, &opts, &mut progress)?,
        LayoutArg::Hub => crate::hub::convert_hub(input, &a.output, &opts, &mut progress)?,
    };
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
