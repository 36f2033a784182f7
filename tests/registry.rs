//! The embedded registry against timm's own answers (fixtures/expected/registry.json, made by
//! tools/make_fixtures.py from timm 1.0.31 with real, not meta, model builds).

mod common;

use std::process::Command;

use common::{bin, fixture, json};
use timmconv::adapt::FeatureSelect;
use timmconv::registry;

#[test]
fn registry_was_generated_from_timm_1_0_31_and_is_well_formed() {
    assert_eq!(registry::validate().unwrap(), 1371);
    let h = registry::header();
    assert_eq!((h.timm.as_str(), h.torch.as_str()), ("1.0.31", "2.11.0"));
    assert_eq!(h.architectures, 1371);
    assert_eq!(h.pretrained, 1826);
    let names: Vec<&str> = registry::arch_names().collect();
    assert_eq!(names.len(), 1371);
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "lines must be sorted for binary search"
    );
    let mut tags = 0;
    for a in registry::archs() {
        if let Some(d) = &a.default_tag {
            assert_eq!(a.tags.first().map(|t| &t.tag), Some(d), "{}", a.name);
        }
        tags += a.tags.iter().filter(|t| t.has_weights).count();
        assert!(a.build_error.is_none(), "{}: {:?}", a.name, a.build_error);
    }
    assert_eq!(tags, 1826);
}

#[test]
fn models_json_equals_timm_list_models_and_list_pretrained() {
    let exp = json(&fixture("expected/registry.json"));
    assert_eq!(exp["timm"], "1.0.31");
    for case in exp["lists"].as_array().unwrap() {
        let mut args = vec!["models".to_owned(), "--json".to_owned()];
        if case["pretrained"].as_bool().unwrap() {
            args.push("--pretrained".into());
        }
        args.extend(
            case["patterns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p.as_str().unwrap().to_owned()),
        );
        let o = Command::new(bin()).args(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}");
        let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(got, case["names"], "{args:?}");
    }
}

#[test]
fn info_json_matches_timm() {
    let exp = json(&fixture("expected/registry.json"));
    for want in exp["infos"].as_array().unwrap() {
        let name = want["name"].as_str().unwrap();
        let o = Command::new(bin())
            .args(["info", "--json", name])
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}");
        let got: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for key in [
            "architecture",
            "tag",
            "num_features",
            "param_count",
            "feature_info",
            "pretrained_cfg",
        ] {
            assert_eq!(got[key], want[key], "{name}: {key}");
        }
    }
}

#[test]
fn unknown_names_suggest_close_ones_and_exit_2() {
    let o = Command::new(bin())
        .args(["info", "resnt50"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("did you mean") && err.contains("resnet50"),
        "{err}"
    );
    let o = Command::new(bin())
        .args(["info", "resnet50.nope"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("resnet50.a1_in1k"));
}

#[test]
fn convert_model_takes_the_cfg_from_the_registry() {
    // the same conversion as the fixture test, with --model instead of explicit flags
    let exp = json(&fixture(
        "expected/convert/crossvit_tiny_240.f32.zip.pth.json",
    ));
    let case = exp["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["in_chans"] == 4 && c["num_classes"] == 10)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.safetensors");
    let o = Command::new(bin())
        .args([
            "convert",
            fixture("ckpt/crossvit_tiny_240.f32.zip.pth")
                .to_str()
                .unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args([
            "--model",
            "crossvit_tiny_240",
            "--in-chans",
            "4",
            "--num-classes",
            "10",
            "--json",
            "-q",
            // the fixture is a shrunken crossvit (tools/make_fixtures.py's kwargs), so its
            // shapes are not the architecture's: the strict key check would refuse it
            "--allow-mismatch",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let adapted: Vec<_> = report["adapted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        adapted,
        ["patch_embed.0.proj.weight", "patch_embed.1.proj.weight"]
    );
    let mut dropped: Vec<_> = report["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap().to_owned())
        .collect();
    dropped.sort();
    let mut reinit: Vec<_> = case["reinit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    reinit.sort();
    assert_eq!(dropped, reinit);
}

#[test]
fn features_layouts_cover_the_registry() {
    let (n, ok) = registry::features::validate().unwrap();
    assert_eq!(n, 1371);
    assert!(ok >= 1300, "only {ok} architectures have a features layout");
    // FeatureListNet keeps resnet's names and drops the head; FeatureGetterNet prefixes `model.`
    // and drops blocks after the last index
    let resnet =
        FeatureSelect::new(&registry::features::layout("resnet50").unwrap(), None, 5).unwrap();
    assert_eq!(
        resnet.map("layer4.2.conv3.weight").as_deref(),
        Some("layer4.2.conv3.weight")
    );
    assert_eq!(resnet.map("fc.weight"), None);
    let vit = FeatureSelect::new(
        &registry::features::layout("vit_base_patch16_224").unwrap(),
        Some(&[2, 5]),
        12,
    )
    .unwrap();
    assert_eq!(
        vit.map("blocks.5.attn.qkv.weight").as_deref(),
        Some("model.blocks.5.attn.qkv.weight")
    );
    assert_eq!(vit.map("blocks.6.attn.qkv.weight"), None);
    assert_eq!(vit.map("head.weight"), None);
    let err = FeatureSelect::new(
        &registry::features::layout("vit_base_patch16_224").unwrap(),
        Some(&[12]),
        12,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("outside the 12 feature stages"),
        "{err}"
    );
}
