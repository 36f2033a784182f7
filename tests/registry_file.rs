//! `--registry FILE` / `TIMMCONV_REGISTRY`: a registry in tools/gen_registry.py's format (here
//! lines of the embedded one, which that generator wrote from timm 1.0.31, renamed as if a newer
//! timm had added an architecture) replaces the embedded registry.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{bin, fixture, root};
use timmconv::{Checkpoint, OpenOptions};

fn timmconv(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env_remove("TIMMCONV_REGISTRY");
    c.envs(env.iter().copied());
    c.output().expect("run timmconv")
}

/// The generator's header and the `test_resnet` line, renamed `my_resnet_v9`.
fn registry(dir: &Path, architectures: usize) -> std::path::PathBuf {
    let data = std::fs::read_to_string(root().join("src/registry/registry.jsonl")).unwrap();
    let mut lines = data.lines();
    let mut header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    header["architectures"] = architectures.into();
    let line = lines
        .find(|l| l.starts_with(r#"{"name":"test_resnet","#))
        .unwrap()
        .replacen(r#"{"name":"test_resnet","#, r#"{"name":"my_resnet_v9","#, 1);
    let path = dir.join("registry.jsonl");
    std::fs::write(&path, format!("{header}\n{line}\n")).unwrap();
    path
}

fn tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    let ckpt = Checkpoint::open(path, &OpenOptions::default()).unwrap();
    ckpt.tensors()
        .iter()
        .map(|t| {
            let b = ckpt.tensor_bytes(t).unwrap().to_vec();
            (t.name.clone(), t.shape.clone(), b)
        })
        .collect()
}

#[test]
fn a_registry_file_replaces_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path(), 1);
    let reg_s = reg.to_str().unwrap();
    let o = timmconv(&["info", "my_resnet_v9.r160_in1k", "--json"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = timmconv(
        &[
            "--registry",
            reg_s,
            "info",
            "my_resnet_v9.r160_in1k",
            "--json",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = timmconv(&["models", "--json"], &[("TIMMCONV_REGISTRY", reg_s)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let names: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(names, ["my_resnet_v9"]);

    let ckpt = fixture("ckpt/test_resnet.f32.zip.pth");
    let (mine, theirs) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    for (out, model, env) in [
        (
            &mine,
            "my_resnet_v9.r160_in1k",
            vec![("TIMMCONV_REGISTRY", reg_s)],
        ),
        (&theirs, "test_resnet.r160_in1k", vec![]),
    ] {
        let o = timmconv(
            &[
                "convert",
                ckpt.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--model",
                model,
                "--in-chans",
                "1",
                "--num-classes",
                "0",
                "-q",
            ],
            &env,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let want = tensors(&theirs);
    assert!(want.iter().any(|t| t.0 == "conv1.0.weight" && t.1[1] == 1));
    assert_eq!(tensors(&mine), want);
}

#[test]
fn a_broken_registry_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(dir.path(), 2);
    let o = timmconv(&["--registry", reg.to_str().unwrap(), "models"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("registry.jsonl") && e.contains("2 architectures, 1 lines"),
        "{e}"
    );
    std::fs::write(&reg, "not json\n").unwrap();
    let o = timmconv(&["--registry", reg.to_str().unwrap(), "models"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("registry header"));
}

/// A model no registry knows converts from its hub folder's config.json (first_conv,
/// classifier, input channels and classes come from there, as timm reads them).
#[test]
fn an_unknown_architecture_converts_from_its_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    let ckpt = fixture("ckpt/test_resnet.f32.zip.pth");
    std::fs::copy(&ckpt, repo.join("pytorch_model.bin")).unwrap();
    std::fs::write(
        repo.join("config.json"),
        r#"{"architecture": "brand_new_net", "num_classes": 1000, "pretrained_cfg":
            {"tag": "x_in1k", "input_size": [3, 160, 160], "first_conv": "conv1.0",
             "classifier": "fc", "num_classes": 1000}}"#,
    )
    .unwrap();
    let (mine, theirs) = (
        dir.path().join("a.safetensors"),
        dir.path().join("b.safetensors"),
    );
    let local = format!("local-dir:{}", repo.display());
    for (input, out, model) in [
        (local.as_str(), &mine, None),
        (
            ckpt.to_str().unwrap(),
            &theirs,
            Some("test_resnet.r160_in1k"),
        ),
    ] {
        let mut args = vec![
            "convert",
            input,
            "-o",
            out.to_str().unwrap(),
            "--in-chans",
            "2",
        ];
        args.extend(["--num-classes", "7", "-q"]);
        if let Some(m) = model {
            args.extend(["--model", m]);
        }
        let o = timmconv(&args, &[]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let want = tensors(&theirs);
    assert!(want.iter().all(|t| !t.0.starts_with("fc.")));
    assert_eq!(tensors(&mine), want);
    let meta = Checkpoint::open(&mine, &OpenOptions::default()).unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&meta.metadata().unwrap()["timmconv"]).unwrap();
    assert_eq!(info["model"], "brand_new_net");
    assert_eq!(info["tag"], "x_in1k");
}
