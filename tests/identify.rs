//! `identify` and the strict key check of `convert --model`, on fixtures timm 1.0.31 saved
//! (tools/make_fixtures.py) against the keys tools/gen_keys.py recorded from meta builds.

mod common;

use std::process::{Command, Output};

use common::{bin, fixture};

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run timmconv")
}

#[test]
fn identify_names_the_fixtures_architecture_first() {
    for (file, arch) in [
        ("ckpt/test_resnet.f32.zip.pth", "test_resnet"),
        ("ckpt/test_vit.bf16.safetensors", "test_vit"),
        ("ckpt/test_convnext.f32.zip.pth", "test_convnext"),
        ("ckpt/test_efficientnet.f16.legacy.pth", "test_efficientnet"),
        // the EMA state dict of a training checkpoint, as timm picks it
        ("ckpt/test_resnet.f32.train.pth", "test_resnet"),
    ] {
        let o = run(&["identify", fixture(file).to_str().unwrap(), "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let first = &v[0];
        assert_eq!(first["architecture"], arch, "{file}: {v}");
        assert_eq!(first["exact"], true);
        assert_eq!(first["differences"], serde_json::json!([]));
        assert!(v.as_array().unwrap().len() <= 5);
    }
}

#[test]
fn convert_with_a_wrong_model_is_refused_listing_the_differences() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let ckpt = fixture("ckpt/test_resnet.f32.zip.pth");
    let o = run(&[
        "convert",
        ckpt.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "resnet18",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("not a `resnet18.a1_in1k` state dict"), "{e}");
    assert!(
        e.contains("with another shape: `conv1.weight`") || e.contains("missing: `conv1.weight`"),
        "{e}"
    );
    assert!(e.contains("and ") && e.contains(" more"), "{e}");
    assert!(!out.exists());
    // with --allow-mismatch it converts and warns
    let o = run(&[
        "convert",
        ckpt.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "resnet18",
        "--allow-mismatch",
    ]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("warning: --allow-mismatch"));
    assert!(out.exists());
}

#[test]
fn adaptations_are_taken_into_account() {
    // a 10-class head dropped for --num-classes, and in_chans adapted: still the right model
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let ckpt = fixture("ckpt/test_convnext.f32.zip.pth");
    for extra in [
        &["--num-classes", "0"][..],
        &["--num-classes", "3", "--in-chans", "1"][..],
        &["--features-only"][..],
    ] {
        let mut args = vec![
            "convert",
            ckpt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--model",
            "test_convnext",
            "--force",
            "-q",
        ];
        args.extend(extra);
        let o = run(&args);
        assert!(
            o.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// A tag whose cfg builds another head is recorded as a delta (timm 1.0.31:
/// vit_base_patch16_224.augreg_in21k has 21843 classes, the default tag 1000).
#[test]
fn tags_with_another_head_have_their_own_keys() {
    use timmconv::registry::keys::keys;
    let head = |name: &str| {
        keys(name)
            .unwrap()
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == "head.weight")
            .map(|(_, s)| s)
    };
    assert_eq!(head("vit_base_patch16_224"), Some(vec![1000, 768]));
    assert_eq!(
        head("vit_base_patch16_224.augreg_in21k"),
        Some(vec![21843, 768])
    );
    assert_eq!(keys("no_such_arch").unwrap(), None);
    let names = timmconv::registry::keys::names().unwrap();
    assert!(names
        .iter()
        .any(|n| n == "vit_base_patch16_224.augreg_in21k"));
    assert!(names.len() > 1371);
}
