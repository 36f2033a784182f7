//! Original-layout checkpoints (made by the upstream projects' own code: facebookresearch/dinov2
//! and dinov3, open_clip_torch, ... down to baaivision/EVA, facebookresearch/perception_models and
//! mae: the generator's UPSTREAM table) convert to exactly what timm 1.0.31's `load_pretrained` puts in
//! the model, bit for bit: fixtures/expected/original, made by tools/make_original_fixtures.py
//! with `timm.create_model(ARCH, pretrained=True, pretrained_cfg_overlay=dict(file=SRC), ...)`.

mod common;

use std::collections::HashMap;

use common::sha256_hex;
use common::{fixture, json, rows};
use timmconv::{Checkpoint, Conversion, Error, OpenOptions, WriteOptions};

fn keys(v: &serde_json::Value) -> Vec<(String, Vec<usize>)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[1].as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect(),
            )
        })
        .collect()
}

/// The conversion the expectation describes: the timm model with its reduced kwargs' keys.
fn conversion(exp: &serde_json::Value, case: &serde_json::Value) -> Result<Conversion, Error> {
    let src = fixture(&format!("original/{}", exp["source"].as_str().unwrap()));
    let mut c = Conversion::from_file(src)
        .model(exp["architecture"].as_str().unwrap())?
        .model_keys(keys(&exp["model_keys"]))
        .pretrained_num_classes(exp["pretrained_num_classes"].as_u64().unwrap() as usize)
        .in_chans(case["in_chans"].as_u64().unwrap() as usize);
    if let Some(n) = case["num_classes"].as_u64() {
        c = c.num_classes(n as usize);
    }
    if let Some(idx) = case["out_indices"].as_array() {
        c = c.features_only(Some(idx.iter().map(|i| i.as_i64().unwrap()).collect()));
    }
    if let Some(s) = case["img_size"].as_u64() {
        c = c.img_size([s as usize, s as usize]);
        // the registry's resolution layout assumes the architecture's patch size; a fixture
        // built with another one (the kwargs timm had) says so
        if let Some(p) = exp["model_kwargs"]["patch_size"].as_u64() {
            c = c.patch_size([p as usize, p as usize]);
        }
    }
    Ok(c)
}

#[test]
fn original_layouts_convert_to_what_timm_loads_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = 0;
    let mut sources = Vec::new();
    for (name, exp) in common::expected_files("expected/original") {
        sources.push(name.clone());
        for case in exp["cases"].as_array().unwrap() {
            let label = format!(
                "{name} in_chans={} num_classes={} img_size={} out_indices={}",
                case["in_chans"], case["num_classes"], case["img_size"], case["out_indices"]
            );
            let out = tmp.path().join(format!("{cases}.safetensors"));
            let report = conversion(&exp, case)
                .and_then(|c| c.plan())
                .and_then(|p| p.write(&out, &WriteOptions::default()))
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            // a source timm's filter only unwraps is read as it is (exp["no_layout"])
            assert_eq!(
                report.changes.original_layout.is_none(),
                exp["no_layout"] == true,
                "{label}: layout {:?}",
                report.changes.original_layout
            );
            let reinit: Vec<String> = case["reinit"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect();
            let got = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
            let mut by_name: HashMap<&str, _> =
                got.tensors().iter().map(|t| (t.name.as_str(), t)).collect();
            for (key, dtype, shape, sha) in rows(&case["tensors"]) {
                let t = by_name
                    .remove(key.as_str())
                    .unwrap_or_else(|| panic!("{label}: `{key}` missing from output"));
                assert_eq!(t.dtype.name(), dtype, "{label}: {key} dtype");
                assert_eq!(t.shape, shape, "{label}: {key} shape");
                assert_eq!(
                    sha256_hex(&got.tensor_bytes(t).unwrap()),
                    sha,
                    "{label}: {key} differs from timm"
                );
            }
            let extra: Vec<_> = by_name
                .keys()
                .filter(|k| !reinit.iter().any(|r| r == *k))
                .collect();
            assert!(extra.is_empty(), "{label}: keys timm lacks: {extra:?}");
            cases += 1;
        }
    }
    for want in [
        "dinov2",
        "dinov2_reg",
        "dinov2_reg_swiglu",
        "openai_clip",
        "openclip_vit_trunk",
        "openclip_convnext_trunk",
        "dinov3_vit",
        "dinov3_vit_qkvb",
        "dinov3_convnext",
        "ms_swin",
        "ms_swin_v2",
        "fb_convnext",
        "fb_convnextv2",
        "fb_convnextv2_fcmae",
        "mae_finetuned",
        "mae_pretrain",
        "pe_core",
        "pe_lang",
        "eva02_mim",
        "eva02_clip",
        "openclip_eva_trunk",
        "sam",
        "hiera",
        "deit3",
        "ms_beit",
        "fb_xcit",
        "fb_cait",
        "pvt_v2",
        "poolformer_v1",
    ] {
        assert!(sources.iter().any(|s| s == want), "no fixture for {want}");
    }
    assert!(cases >= 20, "only {cases} cases");
}

#[test]
fn the_output_metadata_names_the_layout() {
    let exp = json(&fixture("expected/original/dinov2_reg.json"));
    let case = &exp["cases"][0];
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.safetensors");
    conversion(&exp, case)
        .unwrap()
        .plan()
        .unwrap()
        .write(&out, &WriteOptions::default())
        .unwrap();
    let got = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
    let meta = got.metadata().unwrap();
    assert_eq!(meta["layout"], "dinov2 (mask_token, register_tokens)");
    let info: serde_json::Value = serde_json::from_str(&meta["timmconv"]).unwrap();
    assert_eq!(info["original_layout"]["layout"], "dinov2");
    assert_eq!(
        info["original_layout"]["filter"],
        "vision_transformer._convert_dinov2"
    );
    assert_eq!(info["original_layout"]["dropped"][0], "mask_token");
}

#[test]
fn layout_off_refuses_an_original_checkpoint_as_before() {
    let exp = json(&fixture("expected/original/dinov2.json"));
    let err = conversion(&exp, &exp["cases"][0])
        .unwrap()
        .original_layout(timmconv::OriginalLayoutChoice::Off)
        .plan()
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a `vit_small_patch14_dinov2"), "{err}");
    assert!(err.contains("`mask_token`"), "{err}");
}

/// The tensors of a full-size original checkpoint (keys and shapes, as the upstream project's
/// own model holds them: fixtures/original/shapes, made by tools/make_original_fixtures.py).
fn full_size(name: &str) -> (String, Vec<timmconv::TensorInfo>) {
    let v = json(&fixture(&format!("original/shapes/{name}.json")));
    let tensors = keys(&v["keys"])
        .into_iter()
        .map(|(name, shape)| {
            let mut strides = vec![1usize; shape.len()];
            for i in (0..shape.len().saturating_sub(1)).rev() {
                strides[i] = strides[i + 1] * shape[i + 1];
            }
            timmconv::TensorInfo {
                storage_numel: shape.iter().product(),
                name,
                dtype: timmconv::DType::F32,
                shape,
                strides,
                offset: 0,
                storage: "0".into(),
                shared: false,
            }
        })
        .collect();
    (v["architecture"].as_str().unwrap().to_owned(), tensors)
}

#[test]
fn identify_names_the_timm_architecture_of_full_size_original_checkpoints() {
    for (name, layout) in [
        ("dinov2_vits14", "dinov2 (mask_token)"),
        ("dinov2_vits14_reg", "dinov2 (mask_token, register_tokens)"),
        (
            "dinov2_vitg14_reg",
            "dinov2 (mask_token, register_tokens, swiglu w12/w3)",
        ),
        ("dinov3_vits16", "dinov3 (storage_tokens, qkv.bias dropped)"),
        ("dinov3_convnext_tiny", "fb_convnext"),
        (
            "openai_clip_b32",
            "openai_clip (150 text-tower keys left out)",
        ),
        (
            "ms_swin_tiny",
            "ms_swin (downsample moved to the next stage, 17 rebuilt buffers left out)",
        ),
        ("fb_convnext_tiny", "fb_convnext"),
        ("deit3_small", "deit3 (gamma_N -> lsN.gamma)"),
        ("pe_core_t16", "pe (150 text-tower keys left out)"),
        ("eva02_mim_b14", "eva (mask_token, separate q/k/v)"),
    ] {
        let (arch, tensors) = full_size(name);
        let found = timmconv::identify::identify_tensors(&tensors, 5).unwrap();
        let first = &found[0];
        assert_eq!(
            first.architecture.split('.').next().unwrap(),
            arch,
            "{name}: {found:?}"
        );
        assert!(first.exact, "{name}: {first:?}");
        assert_eq!(first.layout.as_deref(), Some(layout), "{name}");
    }
}

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::bin())
        .args(args)
        .output()
        .expect("run timmconv")
}

#[test]
fn a_tensor_the_layout_needs_missing_or_misshaped_exits_2_writing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    for (file, model, says) in [
        (
            "dinov2_reg_no_pos_embed.pth",
            "vit_small_patch14_reg4_dinov2",
            "original layout `dinov2`: the checkpoint has no `pos_embed`",
        ),
        (
            "dinov2_reg_bad_cls_token.pth",
            "vit_small_patch14_reg4_dinov2",
            "`cls_token` of shape [1, 1, 31] (f32) cannot be added to `pos_embed`",
        ),
        (
            "openai_clip_no_conv1.pth",
            "vit_base_patch32_clip_224.openai",
            "original layout `openai_clip`: the checkpoint has no `visual.conv1.weight`",
        ),
    ] {
        let input = fixture(&format!("original/{file}"));
        let o = run(&[
            "convert",
            input.to_str().unwrap(),
            "--model",
            model,
            "-o",
            out.to_str().unwrap(),
        ]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{file}: {e}");
        assert!(e.contains(says), "{file}: {e}");
        assert!(!out.exists(), "{file}: wrote an output");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}

#[test]
fn a_file_in_no_layout_is_refused_naming_the_layouts_tried() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let input = fixture("ckpt/test_resnet.f32.zip.pth");
    let o = run(&[
        "convert",
        input.to_str().unwrap(),
        "--model",
        "vit_small_patch14_dinov2",
        "-o",
        out.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("not a `vit_small_patch14_dinov2.lvd142m` state dict"),
        "{e}"
    );
    assert!(
        e.contains("tried openai_clip (`visual.class_embedding`), dinov2 (`mask_token`)"),
        "{e}"
    );
    assert!(!out.exists());
}

#[test]
fn the_cli_converts_an_openclip_tower_for_a_registry_model_as_timm_does() {
    // test_vit's recorded keys are the fixture trunk's: the strict check runs on the registry's
    let exp = json(&fixture("expected/original/openclip_vit_trunk.json"));
    let case = exp["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["in_chans"] == 4 && c["num_classes"] == 10)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.safetensors");
    let input = fixture("original/openclip_vit_trunk.f16.pth");
    let o = run(&[
        "convert",
        input.to_str().unwrap(),
        "--model",
        "test_vit",
        "--pretrained-num-classes",
        "16",
        "--in-chans",
        "4",
        "--num-classes",
        "10",
        "-o",
        out.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{e}");
    assert!(e.contains("layout: openclip_trunk ("), "{e}");
    let got = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
    let want = rows(&case["tensors"]);
    assert_eq!(got.tensors().len(), want.len());
    for (key, _, shape, sha) in want {
        let t = got.tensor(&key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(t.shape, shape, "{key}");
        assert_eq!(sha256_hex(&got.tensor_bytes(t).unwrap()), sha, "{key}");
    }
}

#[test]
fn identify_on_the_command_line_names_the_layout_and_the_command() {
    let input = fixture("original/openclip_vit_trunk.f16.pth");
    let o = run(&["identify", input.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["architecture"], "test_vit", "{v}");
    assert_eq!(
        v[0]["layout"],
        "openclip_trunk (visual.head.proj, 18 keys outside the trunk left out)"
    );
    // the head is the CLIP projection: 16 rows, not test_vit's 1000 classes
    assert_eq!(
        v[0]["differences"],
        serde_json::json!(["num_classes 16 (the model has 1000)"])
    );
    let o = run(&["identify", input.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("recognised the original layout openclip_trunk"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "timmconv convert {} --model test_vit -o OUTPUT.safetensors",
            input.display()
        )),
        "{text}"
    );
}

#[test]
fn the_layout_choice_is_part_of_the_options_fingerprint() {
    // batch skips an output whose recorded fingerprint matches: another choice must convert again
    let c = || {
        Conversion::from_file("x.pth")
            .model("vit_small_patch14_dinov2")
            .unwrap()
    };
    let auto = c().options_sha256().unwrap();
    let off = c()
        .original_layout(timmconv::OriginalLayoutChoice::Off)
        .options_sha256()
        .unwrap();
    let forced = c()
        .original_layout(timmconv::OriginalLayoutChoice::Force("dinov2".into()))
        .options_sha256()
        .unwrap();
    assert_ne!(auto, off);
    assert_ne!(auto, forced);
    assert_ne!(off, forced);
}

#[test]
fn every_full_size_original_is_identified_exactly_through_its_layout() {
    let mut names: Vec<String> = std::fs::read_dir(fixture("original/shapes"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .trim_end_matches(".json")
                .to_owned()
        })
        .collect();
    names.sort();
    assert!(names.len() >= 17, "{names:?}");
    let mut wrong = Vec::new();
    for name in &names {
        let (arch, tensors) = full_size(name);
        let found = timmconv::identify::identify_tensors(&tensors, 3).unwrap();
        let ok = found.first().is_some_and(|c| {
            c.architecture.split('.').next() == Some(arch.as_str()) && c.exact && c.layout.is_some()
        });
        if !ok {
            wrong.push(format!("{name}: want {arch}, got {:?}", found.first()));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_hub_folder_holds_the_converted_weights_and_names_the_layout() {
    // timm loading such a folder (local-dir:) was checked by hand on a full-size DINOv2 with
    // registers (tools/check_original_full.py's inputs); here, that the weights are timm's
    let exp = json(&fixture("expected/original/dinov2_reg.json"));
    let case = &exp["cases"][1]; // in_chans 4, num_classes 10
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("hub");
    conversion(&exp, case)
        .unwrap()
        .layout(timmconv::Layout::Hub)
        .plan()
        .unwrap()
        .write(&folder, &WriteOptions::default())
        .unwrap();
    let config = std::fs::read_to_string(folder.join("config.json")).unwrap();
    assert!(config.contains("\"in_chans\": 4"), "{config}");
    let got = Checkpoint::open(folder.join("model.safetensors"), &OpenOptions::default()).unwrap();
    assert_eq!(
        got.metadata().unwrap()["layout"],
        "dinov2 (mask_token, register_tokens)"
    );
    for (key, _, shape, sha) in rows(&case["tensors"]) {
        let t = got.tensor(&key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(t.shape, shape, "{key}");
        assert_eq!(sha256_hex(&got.tensor_bytes(t).unwrap()), sha, "{key}");
    }
}

/// timm loads the `fcmae` tag of ConvNeXt with `pretrained_strict=False`
/// (`convnext._create_convnext`): the FCMAE encoder has no `head.norm`, which stays at timm's
/// init. timmconv converts it under that tag only, saying what timm's non-strict load skips, and
/// refuses it as `load_state_dict(strict=True)` would under any other name.
#[test]
fn an_fcmae_checkpoint_loads_non_strictly_under_the_fcmae_tag_only() {
    let exp = json(&fixture("expected/original/fb_convnextv2_fcmae.json"));
    let case = &exp["cases"][0];
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.safetensors");
    let report = conversion(&exp, case)
        .unwrap()
        .plan()
        .unwrap()
        .write(&out, &WriteOptions::default())
        .unwrap();
    let notes: Vec<_> = report
        .changes
        .warnings
        .iter()
        .filter(|w| w.contains("strict=False"))
        .collect();
    assert_eq!(notes.len(), 1, "{:?}", report.changes.warnings);
    assert!(notes[0].contains("`head.norm.weight`"), "{}", notes[0]);
    let got = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
    assert!(got.tensors().iter().all(|t| !t.name.starts_with("head.")));

    for other in ["convnextv2_atto", "convnextv2_atto.fcmae_ft_in1k"] {
        let src = fixture(&format!("original/{}", exp["source"].as_str().unwrap()));
        let err = Conversion::from_file(src)
            .model(other)
            .unwrap()
            .model_keys(keys(&exp["model_keys"]))
            .pretrained_num_classes(0)
            .plan()
            .unwrap_err()
            .to_string();
        assert!(err.contains("`head.norm.weight`"), "{other}: {err}");
    }
}

/// timm's own EVA / EVA-02 and PE state dicts pass through `eva.checkpoint_filter_fn` unchanged:
/// no layout is detected on them (the model keys of the EVA-02 MIM, EVA02-CLIP and PE fixtures),
/// while the originals are.
#[test]
fn timms_own_eva_keys_are_no_original_layout() {
    let infos = |v: &serde_json::Value| -> Vec<timmconv::TensorInfo> {
        keys(v)
            .into_iter()
            .map(|(name, shape)| {
                let mut strides = vec![1usize; shape.len()];
                for i in (0..shape.len().saturating_sub(1)).rev() {
                    strides[i] = strides[i + 1] * shape[i + 1];
                }
                timmconv::TensorInfo {
                    storage_numel: shape.iter().product(),
                    name,
                    dtype: timmconv::DType::F32,
                    shape,
                    strides,
                    offset: 0,
                    storage: "0".into(),
                    shared: false,
                }
            })
            .collect()
    };
    for (name, layout) in [
        ("eva02_mim", "eva"),
        ("eva02_clip", "eva"),
        ("openclip_eva_trunk", "eva"),
        ("pe_core", "pe"),
        ("pe_lang", "pe"),
    ] {
        let exp = json(&fixture(&format!("expected/original/{name}.json")));
        let own = timmconv::original::detect(&infos(&exp["model_keys"]), Some("eva"));
        assert!(own.is_none(), "{name}: timm's keys detected as {:?}", own);
        let original = timmconv::original::detect(&infos(&exp["source_keys"]), Some("eva"));
        assert_eq!(original.map(|d| d.0.name), Some(layout), "{name}");
    }
}
