//! The timm-folder target: `model.safetensors` plus a `config.json` made the way timm's
//! `save_for_hf` makes it, so that `timm.create_model('local-dir:FOLDER', pretrained=True)`
//! loads them.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::record::ConvertReport;
use super::{output, ConversionPlan, WriteOptions};
use crate::error::{Error, Result, Setting};
use crate::registry::{Arch, Tag};

/// Pretrained-cfg fields that say where weights came from; a hub export drops them.
const SOURCE_FIELDS: [&str; 6] = [
    "url",
    "file",
    "hf_hub_id",
    "hf_hub_filename",
    "source",
    "state_dict",
];
/// Fields timm keeps even when null.
const KEEP_NULL: [&str; 3] = ["pool_size", "first_conv", "classifier"];

fn resize_channels(v: Option<&Value>, in_chans: usize) -> Option<Value> {
    let items = v?.as_array()?;
    if items.len() == in_chans {
        return Some(Value::Array(items.clone()));
    }
    // timm: "Pretrained mean does not match N channels; using its mean value."
    let nums: Vec<f64> = items.iter().filter_map(Value::as_f64).collect();
    if nums.is_empty() {
        return None;
    }
    let mean = nums.iter().sum::<f64>() / nums.len() as f64;
    Some(Value::Array(vec![json!(mean); in_chans]))
}

/// The `config.json` timm's `save_config_for_hf` writes for `arch` with pretrained `tag`,
/// `in_chans` input channels and `num_classes` classes.
pub(crate) fn config(arch: &Arch, tag: &Tag, in_chans: usize, num_classes: usize) -> Value {
    let mut cfg: Map<String, Value> = tag
        .cfg
        .iter()
        .filter(|(k, v)| {
            !SOURCE_FIELDS.contains(&k.as_str())
                && (!v.is_null() || KEEP_NULL.contains(&k.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let architecture = cfg
        .shift_remove("architecture")
        .unwrap_or_else(|| json!(arch.name));
    // resolve_input_data_config: the current input size and per-channel normalisation
    let (h, w) = match cfg
        .get("input_size")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        Some([_, h, w]) => (h.clone(), w.clone()),
        _ => (json!(224), json!(224)),
    };
    cfg.insert("input_size".into(), json!([in_chans, h, w]));
    for (key, default) in [
        ("interpolation", json!("bicubic")),
        ("crop_pct", json!(0.875)),
        ("crop_mode", json!("center")),
    ] {
        cfg.entry(key).or_insert(default);
    }
    for (key, default) in [
        ("mean", json!([0.485, 0.456, 0.406])),
        ("std", json!([0.229, 0.224, 0.225])),
    ] {
        let resized = resize_channels(cfg.get(key).or(Some(&default)), in_chans).unwrap_or(default);
        cfg.insert(key.into(), resized);
    }
    cfg.insert("fixed_input_size".into(), json!(arch.fixed_input_size));
    cfg.insert(
        "first_conv".into(),
        tag.cfg.get("first_conv").cloned().unwrap_or(Value::Null),
    );
    cfg.insert("custom_load".into(), json!(false));
    cfg.shift_remove("label_offset");
    for key in ["test_input_size", "min_input_size"] {
        if let Some(Value::Array(items)) = cfg.get_mut(key) {
            if let Some(first) = items.first_mut() {
                *first = json!(in_chans);
            }
        }
    }
    if arch.fixed_input_size {
        cfg.shift_remove("test_input_size");
    }
    if tag.num_classes() != Some(num_classes) {
        for key in ["label_names", "label_descriptions", "label_offset"] {
            cfg.shift_remove(key);
        }
    }
    cfg.insert("num_classes".into(), json!(num_classes));
    let mut args = arch.model_args.clone();
    args.insert("in_chans".into(), json!(in_chans));
    args.insert("num_classes".into(), json!(num_classes));
    let mut root = Map::new();
    root.insert("architecture".into(), architecture);
    root.insert("num_classes".into(), json!(num_classes));
    root.insert("num_features".into(), json!(arch.num_features));
    if let Some(pool) = arch.global_pool.as_ref().filter(|p| !p.is_empty()) {
        root.insert("global_pool".into(), json!(pool));
    }
    root.insert("model_args".into(), Value::Object(args));
    root.insert("pretrained_cfg".into(), Value::Object(cfg));
    Value::Object(root)
}

/// Writes `plan` into the timm folder `output` (`model.safetensors`, `config.json`). The folder
/// is assembled under a temporary name beside `output` and renamed into place.
pub(super) fn write_folder(
    plan: ConversionPlan,
    output: &Path,
    write_opts: &WriteOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ConvertReport> {
    let text = config_text(&plan)?;
    let input = plan.input.path().map(Path::to_path_buf);
    output::check_folder(input.as_deref(), output, write_opts.overwrite)?;
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // the weights are written first, under a temporary name beside the folder (unnamed until
    // complete on Linux); the staging folder exists only for the few renames at the end
    // a random name (not the pid and a counter): no one who can write the folder can take the
    // name first; written without replacing anything, so a name taken meanwhile fails cleanly
    let model = tempfile::Builder::new()
        .prefix(crate::write::TEMP_PREFIX)
        .suffix(".model.safetensors")
        .rand_bytes(16)
        .make_in(&parent, |p| Ok(p.to_path_buf()))
        .map_err(|e| Error::io(&parent, e))?
        .keep()
        .map_err(|e| Error::io(&parent, e.error))?
        .1;
    let write_model = WriteOptions {
        overwrite: false,
        ..*write_opts
    };
    let mut report = super::file::write_file(plan, &model, &write_model, progress)?;
    let staging = match tempfile::Builder::new()
        .prefix(crate::write::TEMP_PREFIX)
        .tempdir_in(&parent)
    {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_file(&model);
            return Err(Error::io(&parent, e));
        }
    };
    let staged_model = staging.path().join(output::FOLDER_FILES[0]);
    if let Err(e) = std::fs::rename(&model, &staged_model) {
        let _ = std::fs::remove_file(&model);
        return Err(Error::io(&model, e));
    }
    let cfg_path = staging.path().join(output::FOLDER_FILES[1]);
    std::fs::write(&cfg_path, text).map_err(|e| Error::io(&cfg_path, e))?;
    // checked again: the folder may have changed while the weights were written
    output::check_folder(input.as_deref(), output, write_opts.overwrite)?;
    output::move_folder(staging, output)?;
    report.output = Some(output.to_path_buf());
    Ok(report)
}

/// The folder's `config.json`, for the model `plan` resolved to.
fn config_text(plan: &ConversionPlan) -> Result<String> {
    let opts = &plan.settings;
    let Some((arch, tag)) = &opts.registry else {
        return Err(Error::Setting(Setting::HubNeedsModel));
    };
    let report = &plan.plan.report;
    let in_chans = report.in_chans;
    let num_classes = if report.head.is_dropped() {
        0
    } else {
        opts.adapt
            .cfg_num_classes
            .or(tag.num_classes())
            .unwrap_or(0)
    };
    let mut cfg = config(arch, tag, in_chans, num_classes);
    if let Some(r) = &opts.adapt.resize {
        with_resolution(&mut cfg, r, in_chans);
    }
    if let Some((pool, _)) = &opts.adapt.global_pool {
        cfg["model_args"]["global_pool"] = json!(pool);
        cfg["global_pool"] = json!(pool);
    }
    Ok(serde_json::to_string_pretty(&cfg).map_err(|e| Error::Internal(e.to_string()))? + "\n")
}

/// Records the resolution knobs: as model arguments (so timm builds the model at that size) and
/// as the input size.
fn with_resolution(cfg: &mut Value, r: &crate::adapt::ResizePlan, in_chans: usize) {
    for (knob, [a, b]) in r.asked.set() {
        let v = if a == b { json!(a) } else { json!([a, b]) };
        cfg["model_args"][knob] = v;
    }
    if let (Some([h, w]), Some(_)) = (r.asked.img_size, cfg.get("pretrained_cfg")) {
        cfg["pretrained_cfg"]["input_size"] = json!([in_chans, h, w]);
        if let Some(p) = cfg["pretrained_cfg"].as_object_mut() {
            // a test size given for the old resolution no longer holds
            p.shift_remove("test_input_size");
        }
    }
}
