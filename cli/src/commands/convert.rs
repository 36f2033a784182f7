//! `timmconv convert`: flags become one library [`Conversion`], in one place; the report is
//! printed; library errors are worded with the flags that set what they name.

use std::path::Path;

use crate::args::{ConvertArgs, DTypeArg, LayoutArg};
use crate::{printer, wording, Outcome};
use timmconv::adapt::Rule;
use timmconv::conversion::{ChecksumSource, OutputCheck};
use timmconv::error::{Error, Setting};
use timmconv::ConvertReport;
use timmconv::{Conversion, DType, Layout, OriginalLayoutChoice, WriteOptions};

/// Turns the raw arguments into the library's conversion of `input`, in one place.
pub fn conversion(a: &ConvertArgs, input: Conversion) -> anyhow::Result<Conversion> {
    let rules = a
        .rename
        .iter()
        .map(|r| Rule::parse(r))
        .collect::<Result<Vec<_>, _>>()?;
    let img_size = pair("--img-size", &a.img_size)?;
    let patch_size = pair("--patch-size", &a.patch_size)?;
    let window_size = pair("--window-size", &a.window_size)?;
    let mut c = input
        .open_options(a.state.open_options())
        .first_conv(a.first_conv.iter().cloned())
        .classifier(a.classifier.iter().cloned())
        .drop_unadaptable(a.drop_unadaptable)
        .allow_mismatch(a.allow_mismatch)
        .original_layout(match a.original_layout.as_str() {
            "auto" => OriginalLayoutChoice::Auto,
            "off" => OriginalLayoutChoice::Off,
            name => OriginalLayoutChoice::Force(name.to_owned()),
        })
        .hash_input(!a.no_hash)
        .check_crc(a.check_crc)
        .layout(layout(a.layout));
    let optional = [
        (
            a.in_chans,
            Conversion::in_chans as fn(Conversion, usize) -> Conversion,
        ),
        (a.num_classes, Conversion::num_classes),
        (a.base_chans, Conversion::base_chans),
        (a.pretrained_num_classes, Conversion::pretrained_num_classes),
        (a.label_offset, Conversion::label_offset),
    ];
    for (value, set) in optional {
        if let Some(v) = value {
            c = set(c, v);
        }
    }
    for (value, set) in [
        (
            img_size,
            Conversion::img_size as fn(Conversion, [usize; 2]) -> Conversion,
        ),
        (patch_size, Conversion::patch_size),
        (window_size, Conversion::window_size),
    ] {
        if let Some(v) = value {
            c = set(c, v);
        }
    }
    if let Some(n) = &a.rename_stem {
        c = c.rename_stem(n);
    }
    if let Some(n) = &a.rename_classifier {
        c = c.rename_classifier(n);
    }
    for r in rules {
        c = c.rename(r);
    }
    match a.dtype {
        DTypeArg::Keep => {}
        DTypeArg::F32 => c = c.dtype(DType::F32),
        DTypeArg::F16 => c = c.dtype(DType::F16),
        DTypeArg::Bf16 => c = c.dtype(DType::BF16),
    }
    if a.features_only {
        c = c.features_only(a.out_indices.clone());
    }
    if let Some(p) = &a.global_pool {
        c = c.global_pool(p);
    }
    if let Some(h) = &a.expect_sha256 {
        c = c.expect_sha256(h);
    }
    if let Some(m) = &a.model {
        c = c.model(m)?;
    }
    Ok(c)
}

/// Checks the flags of a manifest line as `convert` would resolve them (no input is read):
/// the fingerprint its output records.
pub fn options_sha256(a: &ConvertArgs) -> anyhow::Result<String> {
    let c = conversion(a, Conversion::from_file(&a.input))?;
    c.options_sha256().map_err(flags)
}

/// What lies at a manifest line's output: current (skip it), stale (replace it) or not
/// timmconv's; `None` when the flags do not make a conversion (converting reports why).
pub fn output_state(a: &ConvertArgs, no_hash: bool) -> Option<OutputCheck> {
    let c = conversion(a, Conversion::from_file(&a.input)).ok()?;
    Some(c.hash_input(!no_hash).output_state(&a.output))
}

/// The library's layout for the flag's.
fn layout(l: LayoutArg) -> Layout {
    match l {
        LayoutArg::File => Layout::File,
        LayoutArg::Hub => Layout::Hub,
    }
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

/// A library error worded with the flags that set what it names (`in_chans` is `--in-chans`).
pub fn flags(e: Error) -> anyhow::Error {
    flags_for(e, None)
}

/// [`flags`], where a missing model can point at `timmconv identify INPUT`.
fn flags_for(e: Error, input: Option<&Path>) -> anyhow::Error {
    match flag_message(&e, input) {
        Some(msg) => anyhow::anyhow!(msg),
        None => e.into(),
    }
}

/// `H px` for a square size, `H×W px` otherwise.
fn px([h, w]: [usize; 2]) -> String {
    if h == w {
        format!("{h} px")
    } else {
        format!("{h}×{w} px")
    }
}

/// The flag's value as it is typed: `H` for a square size, `H,W` otherwise.
fn typed([h, w]: [usize; 2]) -> String {
    if h == w {
        h.to_string()
    } else {
        format!("{h},{w}")
    }
}

fn flag(setting: &str) -> String {
    format!("--{}", setting.replace('_', "-"))
}

fn flag_message(e: &Error, input: Option<&Path>) -> Option<String> {
    // a file the conversion cannot place without a model: identify names what it fits
    let identify = match input {
        Some(p) => format!(
            "`timmconv identify {}` lists the architectures it fits",
            p.display()
        ),
        None => "`timmconv identify` lists the architectures a file fits".to_owned(),
    };
    Some(match e {
        Error::WithPath { path, source } => {
            format!("{}: {}", path.display(), flag_message(source, input.or(Some(path)))?)
        }
        Error::Checksum {
            path,
            actual,
            expected,
            against,
        } => format!(
            "{}: SHA-256 is {actual}, expected {expected} ({})",
            path.display(),
            checksum_source(*against)
        ),
        Error::OutputExists { path } => {
            format!("output {} exists; pass --force to replace it", path.display())
        }
        Error::OutputNotAFolder { path } => format!(
            "output {} exists and is not a folder; --layout hub only replaces a folder it wrote",
            path.display()
        ),
        Error::Unadaptable {
            key,
            shape,
            in_chans,
            base,
            why,
        } => format!(
            "cannot adapt `{key}` with shape {shape:?} to in_chans={in_chans} (base {base}): \
             {why}; pass --drop-unadaptable to drop it and let the model initialise it, as timm \
             does"
        ),
        Error::ModelMismatch {
            model, differences, ..
        } => format!(
            "the checkpoint is not a `{model}` state dict (as load_state_dict(strict=True) checks \
             it): {}; `timmconv identify` names the architectures it fits, --allow-mismatch \
             converts anyway",
            differences.join("; ")
        ),
        Error::Amplified {
            key,
            bytes,
            storage_bytes,
            shape,
            strides,
            factor,
        } => format!(
            "tensor `{key}`: reads {bytes} bytes from a storage of {storage_bytes} bytes (shape \
             {shape:?}, stride {strides:?}), more than {factor} times its size (limit \
             `MAX_AMPLIFICATION`; raise it with --max-amplification if this expanded tensor is \
             genuine)"
        ),
        Error::Setting(s) => match s {
            Setting::NoPretrainedCfg { model } => {
                format!("`{model}` has no pretrained cfg; pass --first-conv and --classifier")
            }
            Setting::ResolutionNeedsModel => format!("--img-size, --patch-size, --window-size and --global-pool need --model NAME: what each changes comes from the registry; {identify}"),
            Setting::FeaturesNeedModel => format!("--features-only needs --model NAME: the features layout comes from the registry; {identify}"),
            Setting::EmptyOutIndices => "--out-indices needs at least one index".into(),
            Setting::FeaturesNeedKnownArch => "--features-only needs an architecture the registry knows".into(),
            Setting::HubFeatures => "--features-only writes a features model's weights; timm's hub folders hold classification models, use --layout file".into(),
            Setting::HubNeedsModel => format!("--layout hub writes timm's config.json, which needs --model NAME[.TAG]; {identify}"),
            Setting::HubRenames => "--layout hub writes a folder timm loads by its own key names; renames would break that: convert to --layout file to rename".into(),
            Setting::BadSha256 { hex } => format!("--expect-sha256 `{hex}` is not 8 to 64 hex digits"),
            Setting::NoHashWithChecksum => "--no-hash cannot check the input's SHA-256 (--expect-sha256, or the hash in its file name)".into(),
            Setting::InChansNeedsFirstConv => format!("--in-chans needs to know the first conv: pass --model NAME or --first-conv NAME; {identify}"),
            Setting::NumClassesNeedsClassifier => format!("--num-classes needs to know the classifier: pass --model NAME or --classifier NAME; {identify}"),
            Setting::ZeroChannels => "--in-chans and the pretrained channel count (--base-chans, or the cfg's input_size) must be positive".into(),
            Setting::NotPositive { setting } => format!("{} must be positive", flag(setting)),
            Setting::TooLarge { setting, model, value, max } => format!(
                "{} {} is larger than timmconv accepts for `{model}` ({max})",
                flag(setting),
                typed(*value)
            ),
            Setting::ImageSmallerThanPatch { setting: "patch_size", model, img_size, patch_size } => format!(
                "--patch-size {}: one patch ({}) is larger than the image ({}) of `{model}`; pass a larger --img-size too",
                typed(*patch_size),
                px(*patch_size),
                px(*img_size)
            ),
            Setting::ImageSmallerThanPatch { model, img_size, patch_size, .. } => format!(
                "--img-size {}: the image ({}) is smaller than one patch ({}) of `{model}`",
                typed(*img_size),
                px(*img_size),
                px(*patch_size)
            ),
            Setting::RenameNeedsOneModule { setting, modules } => format!(
                "--{} needs exactly one module to rename, the cfg has {} ({})",
                setting.replace('_', "-"),
                modules.len(),
                modules.join(", ")
            ),
            Setting::UnknownGlobalPool { pool } => {
                format!("--global-pool `{pool}` is not one of avg, max, avgmax, catavgmax or ''")
            }
            Setting::StateKeyNotDict { kind } => format!(
                "checkpoint structure: the checkpoint is a {kind}, not a dict, so --state-key \
                 cannot apply"
            ),
            _ => return None,
        },
        other => return crate::wording::message(other),
    })
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
        let mut v = serde_json::to_value(&report)?;
        if let Some(src) = report.sha256_checked {
            v["sha256_checked"] = serde_json::json!(checksum_source(src));
        }
        printer::json(&v)?;
    }
    if !a.quiet {
        summary(&report, a.verbose);
    }
    Ok(Outcome::Success)
}

/// One conversion as `convert` does it, without printing: the code path `batch` shares.
pub fn execute(a: &ConvertArgs, progress: impl FnMut(u64, u64)) -> anyhow::Result<ConvertReport> {
    timmconv::conversion::check_output_path(&a.output, layout(a.layout)).map_err(wording::flags)?;
    let source = timmconv::source::resolve(&a.input, &mut printer::download(a.quiet))
        .map_err(wording::flags)?;
    let write = WriteOptions::default().overwrite(a.force).fsync(a.fsync);
    conversion(a, Conversion::from_source(source))?
        .plan()
        .and_then(|plan| plan.write_with_progress(&a.output, &write, progress))
        .map_err(|e| flags_for(e, Some(&a.input)))
}

fn summary(r: &ConvertReport, verbose: bool) {
    if let Some(o) = &r.changes.original_layout {
        printer::note(format_args!(
            "layout: {o}, converted as timm's {} does ({} keys renamed)",
            o.filter, o.renamed
        ));
        for c in &o.computed {
            printer::note(format_args!("layout: {c}"));
        }
        if !o.dropped.is_empty() {
            printer::note(format_args!(
                "layout: left out {}",
                o.dropped
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    if r.changes.stem_free {
        printer::note(format_args!(
            "the pretrained cfg declares no first conv (first_conv: []): timm builds this \
             architecture the same for any in_chans, so the weights serve {} channels unchanged",
            r.changes.in_chans
        ));
    }
    for ad in &r.changes.adapted {
        printer::note(format_args!(
            "adapted `{}` {:?} -> {:?} ({})",
            ad.key,
            ad.from_shape,
            ad.to_shape,
            match ad.method {
                timmconv::adapt::InChansMethod::Sum => "sum over input channels".to_owned(),
                timmconv::adapt::InChansMethod::SumSpaceToDepth { groups } =>
                    format!("sum within {groups} space-to-depth groups"),
                timmconv::adapt::InChansMethod::Repeat => "repeat and scale".to_owned(),
            }
        ));
    }
    for rs in &r.changes.resampled {
        printer::note(format_args!(
            "resampled `{}` {:?} -> {:?}",
            rs.key, rs.from_shape, rs.to_shape
        ));
    }
    for d in &r.changes.dropped {
        printer::note(format_args!("dropped `{}`: {}", d.key, d.reason));
    }
    for s in &r.changes.sliced {
        printer::note(format_args!("sliced label offset off `{s}`"));
    }
    if verbose {
        for n in &r.changes.renamed {
            printer::note(format_args!("renamed `{}` -> `{}`", n.from, n.to));
        }
        for s in &r.skipped {
            printer::note(format_args!(
                "left out non-tensor `{}` ({})",
                s.name, s.kind
            ));
        }
    } else if !r.changes.renamed.is_empty() {
        printer::note(format_args!(
            "renamed {} keys (-v lists them)",
            r.changes.renamed.len()
        ));
    }
    for u in &r.changes.unused_rules {
        printer::warn(format_args!("rename rule `{u}` matched nothing"));
    }
    for w in &r.changes.warnings {
        // the library names its setting; the user set it with the flag
        match w.strip_prefix("allow_mismatch: ") {
            Some(rest) => printer::warn(format!("--allow-mismatch: {rest}")),
            None => printer::warn(w),
        }
    }
    // loaders that build the architecture with fixed arguments (candle-transformers'
    // constructors: 3 input channels and a classifier) cannot take such a file as it is
    let mut unlike_pretrained = Vec::new();
    if r.changes.in_chans != 3 && !r.changes.adapted.is_empty() {
        let n = r.changes.in_chans;
        unlike_pretrained.push(format!(
            "{n} input channel{}",
            if n == 1 { "" } else { "s" }
        ));
    }
    if r.changes.head.is_dropped() {
        unlike_pretrained.push("no classifier".to_owned());
    }
    if !unlike_pretrained.is_empty() {
        printer::note(format_args!(
            "the output has {}: build the model with these settings to load it (timm: \
             create_model(..., in_chans, num_classes)); fixed-argument loaders such as \
             candle-transformers' constructors cannot take it as it is (docs/rust.md shows the \
             route that works)",
            unlike_pretrained.join(" and ")
        ));
    }
    if let Some(src) = r.sha256_checked {
        printer::note(format_args!(
            "sha256 verified against {}",
            checksum_source(src)
        ));
    }
    if let Some(output) = &r.output {
        printer::note(format_args!(
            "wrote {} tensors ({}) to {}",
            r.tensors,
            printer::bytes(r.bytes),
            output.display()
        ));
    }
}

/// Where the checked SHA-256 came from, in the CLI's words.
fn checksum_source(src: ChecksumSource) -> String {
    match src {
        ChecksumSource::Expected => "--expect-sha256".into(),
        other => other.to_string(),
    }
}
