//! `identify` and the strict key check of `convert --model`, on fixtures timm 1.0.31 saved
//! (tools/make_fixtures.py) against the keys tools/gen_keys.py recorded from meta builds.

mod common;

use common::{fixture, run};

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

/// vit_small_patch16_224 as `convert --in-chans 4 --num-classes 10 --img-size 384` writes it
/// (the head dropped), shapes only, from the keys the registry recorded for the model.
fn adapted_vit_small() -> Vec<(String, Vec<usize>)> {
    timmconv::registry::keys::keys("vit_small_patch16_224")
        .unwrap()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("head."))
        .map(|(k, mut s)| {
            match k.as_str() {
                "patch_embed.proj.weight" => s[1] = 4,
                "pos_embed" => s[1] = 24 * 24 + 1,
                _ => {}
            }
            (k, s)
        })
        .collect()
}

/// Issue 22, item 3: an 8x8 patch kernel cannot hold a 16x16 one, so vit_small_patch8_224
/// (which the old ranking put first) is no near fit of a patch-16 checkpoint.
#[test]
fn a_shape_no_conversion_makes_is_never_a_near_fit() {
    use timmconv::identify::identify_shapes;
    let shapes = adapted_vit_small();
    let have: Vec<(&str, &[usize])> = shapes
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_slice()))
        .collect();
    let found = identify_shapes(&have, None, 0).unwrap();
    let pos = |n: &str| {
        found
            .iter()
            .position(|c| c.architecture == n)
            .unwrap_or_else(|| panic!("{n} not listed"))
    };
    assert!(!found[pos("vit_small_patch8_224")].adaptable);
    assert!(found[pos("vit_small_patch16_384")].adaptable);
    assert!(pos("vit_small_patch16_384") < pos("vit_small_patch8_224"));
    assert!(pos("vit_small_patch16_224") < pos("vit_small_patch8_224"));
    // every near fit before every other
    let far = found.iter().position(|c| !c.adaptable).unwrap();
    assert!(found[..far].iter().all(|c| c.adaptable));
    assert!(found[far..].iter().all(|c| !c.adaptable && !c.exact));
    // the words say what a conversion changes, never an img_size for another width
    let p8 = &found[pos("vit_small_patch8_224")];
    assert!(
        p8.differences
            .iter()
            .any(|d| d.contains("`patch_embed.proj.weight` [384, 4, 16, 16]")),
        "{p8:?}"
    );
}

/// timmconv's own output names its model in its metadata: that model comes first, with the
/// recorded settings, when its keys fit (issue 22, item 3).
#[test]
fn identify_ranks_the_model_timmconv_recorded_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("vit4.safetensors");
    let o = run(&[
        "convert",
        fixture("ckpt/test_vit.f32.zip.pth").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--model",
        "test_vit.r160_in1k",
        "--in-chans",
        "4",
        "--num-classes",
        "10",
        "--img-size",
        "192",
        "-q",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["identify", out.to_str().unwrap(), "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let first = &v[0];
    assert_eq!(first["architecture"], "test_vit.r160_in1k", "{v}");
    assert_eq!(first["recorded"], true);
    assert_eq!(first["adaptable"], true);
    assert_eq!(
        first["differences"][0],
        "recorded by timmconv in the file's metadata: test_vit.r160_in1k, in_chans 4, \
         num_classes 10, img_size 192, patch_size 16"
    );
    // inspect shows it too, and groups the long top-level key list
    let o = run(&["inspect", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("written by timmconv ")
            && text.contains(": test_vit.r160_in1k, in_chans 4, num_classes 10, img_size 192"),
        "{text}"
    );
    assert!(
        text.contains("top level: 78 keys: blocks.* (72), cls_token, norm.* (2)"),
        "{text}"
    );
    let o = run(&["inspect", out.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["timmconv"]["model"], "test_vit");
    assert_eq!(v["timmconv"]["img_size"], serde_json::json!([192, 192]));
    // the library reads the same metadata
    let ckpt = timmconv::Checkpoint::open(&out, &Default::default()).unwrap();
    let rec = timmconv::identify::Recorded::of(&ckpt).unwrap();
    assert_eq!(
        (rec.model.as_deref(), rec.in_chans, rec.img_size),
        (Some("test_vit"), Some(4), Some([192, 192]))
    );
    // a recorded model whose keys do not fit is not put first
    let shapes = adapted_vit_small();
    let have: Vec<(&str, &[usize])> = shapes
        .iter()
        .map(|(k, s)| (k.as_str(), s.as_slice()))
        .collect();
    let wrong = timmconv::identify::Recorded {
        model: Some("vit_small_patch8_224".into()),
        ..Default::default()
    };
    let found = timmconv::identify::identify_shapes(&have, Some(&wrong), 3).unwrap();
    assert_ne!(found[0].architecture, "vit_small_patch8_224");
    let right = timmconv::identify::Recorded {
        model: Some("vit_small_patch16_224".into()),
        tag: Some("augreg_in21k_ft_in1k".into()),
        ..Default::default()
    };
    let found = timmconv::identify::identify_shapes(&have, Some(&right), 3).unwrap();
    assert_eq!(
        found[0].architecture,
        "vit_small_patch16_224.augreg_in21k_ft_in1k"
    );
}
