//! A hub folder's own `config.json` is the pretrained cfg of the weights beside it, as in timm's
//! `create_model('hf-hub:…' | 'local-dir:…', pretrained=True)`: the embedded registry's tag of the
//! same name never overrides it (issue 22, item 1). The fixture is a fine-tune saved with timm's
//! own `save_for_hf` (tools/make_hub_finetune.py); tests/python/test_hub.py compares the
//! conversion with the state dict timm itself builds from that folder.

mod common;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use timmconv::adapt::Head;
use timmconv::{source, Checkpoint, Conversion, Layout, WriteOptions};

fn finetune() -> PathBuf {
    common::fixture("hub/test_resnet-ft37")
}

fn plan(folder: &Path, num_classes: Option<usize>) -> timmconv::ConversionPlan {
    let src = source::resolve(folder, &mut |_, _| {}).unwrap();
    let mut c = Conversion::from_source(src);
    if let Some(n) = num_classes {
        c = c.num_classes(n);
    }
    c.plan().unwrap()
}

/// A copy of the fine-tune whose config.json is edited by `edit`.
fn edited(edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        finetune().join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(finetune().join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    dir
}

#[test]
fn save_for_hf_finetune_keeps_its_37_class_head() {
    // config.json: architecture test_resnet, tag r160_in1k (whose registry cfg says 1000
    // classes), num_classes 37; the weights hold a 37-row fc
    for asked in [None, Some(37)] {
        let p = plan(&finetune(), asked);
        assert_eq!(p.report().head, Head::Kept, "--num-classes {asked:?}");
        assert!(p.report().dropped.is_empty(), "{:?}", p.report().dropped);
        assert_eq!(p.array::<f32>("fc.weight").unwrap().shape(), [37, 96]);
    }
    // another count drops it, and says the pretrained head had 37 rows
    let p = plan(&finetune(), Some(10));
    assert!(p.report().head.is_dropped());
    let why = p.report().dropped[0].reason.to_string();
    assert!(why.contains("the pretrained 37"), "{why}");
}

#[test]
fn top_level_num_classes_wins_over_the_pretrained_cfg_as_in_timm() {
    // timm's load_model_config_from_hf: pretrained_cfg['num_classes'] = hf_config['num_classes']
    let dir = edited(|c| c["pretrained_cfg"]["num_classes"] = json!(1000));
    let p = plan(dir.path(), Some(37));
    assert_eq!(p.report().head, Head::Kept);
}

#[test]
fn label_offset_comes_from_the_config() {
    // 37 rows with a background class at 0: a 36-class model without it
    let dir = edited(|c| {
        c["num_classes"] = json!(36);
        c["pretrained_cfg"]["num_classes"] = json!(36);
        c["pretrained_cfg"]["label_offset"] = json!(1);
    });
    let p = plan(dir.path(), Some(36));
    assert_eq!(p.report().head, Head::Sliced { label_offset: 1 });
    assert_eq!(p.array::<f32>("fc.weight").unwrap().shape(), [36, 96]);
}

#[test]
fn hub_output_carries_the_configs_input_size_and_normalisation() {
    let dir = edited(|c| {
        c["pretrained_cfg"]["input_size"] = json!([3, 128, 128]);
        c["pretrained_cfg"]["mean"] = json!([0.1, 0.2, 0.3]);
        c["pretrained_cfg"]["std"] = json!([0.3, 0.3, 0.3]);
    });
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("hub");
    let src = source::resolve(dir.path(), &mut |_, _| {}).unwrap();
    Conversion::from_source(src)
        .in_chans(1)
        .layout(Layout::Hub)
        .plan()
        .unwrap()
        .write(&target, &WriteOptions::default())
        .unwrap();
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(target.join("config.json")).unwrap()).unwrap();
    let pc = &cfg["pretrained_cfg"];
    assert_eq!(pc["input_size"], json!([1, 128, 128]));
    assert_eq!(pc["num_classes"], json!(37));
    assert_eq!(cfg["num_classes"], json!(37));
    let mean = pc["mean"][0].as_f64().unwrap();
    assert!((mean - 0.2).abs() < 1e-12, "{pc}");
    assert_eq!(pc["std"], json!([0.3]));
    let ckpt = Checkpoint::open(target.join("model.safetensors"), &Default::default()).unwrap();
    assert_eq!(ckpt.array::<f32>("fc.weight").unwrap().shape(), [37, 96]);
    assert_eq!(
        ckpt.array::<f32>("conv1.0.weight").unwrap().shape(),
        [16, 1, 3, 3]
    );
}

#[test]
fn config_tag_is_the_files_cfg_in_both_forms() {
    let text = std::fs::read(finetune().join("config.json")).unwrap();
    let Value::Object(cfg) = serde_json::from_slice(&text).unwrap() else {
        panic!()
    };
    let tag = source::config_tag(&cfg).unwrap();
    assert_eq!(tag.tag, "r160_in1k");
    assert_eq!(tag.num_classes(), Some(37));
    assert_eq!(tag.first_conv(), ["conv1.0"]);
    assert_eq!(tag.classifier(), ["fc"]);
    // the old form, without a pretrained_cfg object: the file's own fields are the cfg
    let Value::Object(old) = json!({
        "architecture": "test_resnet", "num_classes": 5, "num_features": 96,
        "input_size": [1, 64, 64], "first_conv": "conv1.0", "classifier": "fc",
        "labels": ["a", "b", "c", "d", "e"],
    }) else {
        panic!()
    };
    let tag = source::config_tag(&old).unwrap();
    assert_eq!(tag.num_classes(), Some(5));
    assert_eq!(tag.in_chans(), Some(1));
    assert!(tag.cfg.get("architecture").is_none() && tag.cfg.get("label_names").is_some());
}
