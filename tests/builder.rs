//! The library's `Conversion` builder and the CLI's `convert` are one code path: the same
//! settings give the same bytes (tensors, header, metadata with its options fingerprint and
//! source hash), the same hub `config.json`, and the same `--json` report.

mod common;

use std::path::Path;
use std::process::Command;

use common::{bin, fixture};
use timmconv::adapt::Rule;
use timmconv::{Conversion, DType, Layout, WriteOptions};

/// Runs `timmconv convert INPUT -o OUT ARGS --json -q`; the report it printed.
fn cli(input: &Path, out: &Path, args: &[&str]) -> serde_json::Value {
    let o = Command::new(bin())
        .arg("convert")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(args)
        .args(["--json", "-q"])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// A report without the output path, which differs by construction.
fn without_output(mut v: serde_json::Value) -> serde_json::Value {
    v.as_object_mut().unwrap().remove("output");
    v
}

#[test]
fn builder_and_cli_write_identical_bytes() {
    let input = fixture("ckpt/test_resnet.f32.zip.pth");
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(&[&str], Conversion)> = vec![
        (
            &["--model", "test_resnet", "--in-chans", "1"],
            Conversion::from_file(&input)
                .model("test_resnet")
                .unwrap()
                .in_chans(1),
        ),
        (
            &[
                "--model",
                "test_resnet.r160_in1k",
                "--in-chans",
                "4",
                "--num-classes",
                "0",
                "--dtype",
                "bf16",
            ],
            Conversion::from_file(&input)
                .model("test_resnet.r160_in1k")
                .unwrap()
                .in_chans(4)
                .num_classes(0)
                .dtype(DType::BF16),
        ),
        (
            &[
                "--first-conv",
                "conv1.0",
                "--classifier",
                "fc",
                "--pretrained-num-classes",
                "1000",
                "--num-classes",
                "10",
                "--rename",
                r"^layer(\d)\.=stages.$1.",
                "--no-hash",
            ],
            Conversion::from_file(&input)
                .first_conv(["conv1.0"])
                .classifier(["fc"])
                .pretrained_num_classes(1000)
                .num_classes(10)
                .rename(Rule::parse(r"^layer(\d)\.=stages.$1.").unwrap())
                .hash_input(false),
        ),
    ];
    for (i, (args, conversion)) in cases.into_iter().enumerate() {
        let by_cli = tmp.path().join(format!("{i}.cli.safetensors"));
        let by_lib = tmp.path().join(format!("{i}.lib.safetensors"));
        let printed = cli(&input, &by_cli, args);
        let report = conversion
            .plan()
            .unwrap()
            .write(&by_lib, &WriteOptions::default())
            .unwrap();
        assert_eq!(
            std::fs::read(&by_cli).unwrap(),
            std::fs::read(&by_lib).unwrap(),
            "{args:?}: the files differ"
        );
        assert_eq!(
            without_output(printed),
            without_output(serde_json::to_value(&report).unwrap()),
            "{args:?}: the reports differ"
        );
    }
}

#[test]
fn builder_and_cli_write_identical_hub_folders() {
    let input = fixture("ckpt/test_resnet.f32.zip.pth");
    let tmp = tempfile::tempdir().unwrap();
    let (by_cli, by_lib) = (tmp.path().join("cli"), tmp.path().join("lib"));
    cli(
        &input,
        &by_cli,
        &[
            "--layout",
            "hub",
            "--model",
            "test_resnet.r160_in1k",
            "--in-chans",
            "2",
        ],
    );
    let report = Conversion::from_file(&input)
        .model("test_resnet.r160_in1k")
        .unwrap()
        .in_chans(2)
        .layout(Layout::Hub)
        .plan()
        .unwrap()
        .write(&by_lib, &WriteOptions::default())
        .unwrap();
    assert_eq!(report.output, Some(by_lib.clone()));
    for file in ["model.safetensors", "config.json"] {
        assert_eq!(
            std::fs::read(by_cli.join(file)).unwrap(),
            std::fs::read(by_lib.join(file)).unwrap(),
            "{file} differs"
        );
    }
}

#[test]
fn settings_errors_name_library_settings_and_the_cli_names_flags() {
    let input = fixture("ckpt/test_resnet.f32.zip.pth");
    let err = Conversion::from_file(&input)
        .in_chans(1)
        .plan()
        .unwrap_err();
    assert!(
        matches!(
            err.root(),
            timmconv::Error::Setting(timmconv::error::Setting::InChansNeedsFirstConv)
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("in_chans needs to know the first conv"),
        "{err}"
    );
    assert!(!err.to_string().contains("--"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .arg("convert")
        .arg(&input)
        .arg("-o")
        .arg(tmp.path().join("o.safetensors"))
        .args(["--in-chans", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains(
            "--in-chans needs to know the first conv: pass --model NAME or --first-conv NAME"
        ),
        "{stderr}"
    );
}

/// Issue 22, item 5: the errors a new user hits first, in the words of the flags they typed.
#[test]
fn errors_in_the_users_words_typed_in_the_library() {
    let input = fixture("ckpt/test_resnet.f32.zip.pth");
    let vit = fixture("ckpt/test_vit.f32.zip.pth");
    // the library: typed settings, no flag names
    let err = Conversion::from_file(&input)
        .in_chans(0)
        .plan()
        .unwrap_err();
    assert!(
        matches!(
            err.root(),
            timmconv::Error::Setting(timmconv::error::Setting::NotPositive {
                setting: "in_chans"
            })
        ),
        "{err}"
    );
    let err = Conversion::from_file(&vit)
        .model("test_vit.r160_in1k")
        .unwrap()
        .img_size([7, 7])
        .plan()
        .unwrap_err();
    assert!(
        matches!(
            err.root(),
            timmconv::Error::Setting(timmconv::error::Setting::ImageSmallerThanPatch {
                img_size: [7, 7],
                patch_size: [16, 16],
                ..
            })
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("--"), "{err}");
    // the CLI: the flag, and what to do
    let tmp = tempfile::tempdir().unwrap();
    let run = |input: &Path, args: &[&str]| {
        let o = Command::new(bin())
            .arg("convert")
            .arg(input)
            .arg("-o")
            .arg(tmp.path().join("o.safetensors"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(&vit, &["--model", "test_vit.r160_in1k", "--img-size", "7"]);
    assert!(
        e.contains("the image (7 px) is smaller than one patch (16 px)")
            && !e.contains("pos_embed"),
        "{e}"
    );
    let e = run(
        &vit,
        &[
            "--model",
            "test_vit.r160_in1k",
            "--img-size",
            "32",
            "--patch-size",
            "48",
        ],
    );
    assert!(
        e.contains("--img-size 32: the image (32 px) is smaller than one patch (48 px)"),
        "{e}"
    );
    let e = run(&input, &["--model", "test_resnet", "--in-chans", "0"]);
    assert!(e.contains("--in-chans must be positive"), "{e}");
    let e = run(&input, &["--base-chans", "0", "--first-conv", "conv1.0"]);
    assert!(e.contains("--base-chans must be positive"), "{e}");
    let e = run(&input, &["--in-chans", "4"]);
    assert!(
        e.contains(&format!("`timmconv identify {}`", input.display())),
        "{e}"
    );
    let e = run(&input, &["--num-classes", "4"]);
    assert!(e.contains("`timmconv identify "), "{e}");
}

#[test]
fn a_wrong_model_is_a_typed_mismatch_unless_allowed() {
    let input = fixture("ckpt/test_resnet.f32.zip.pth");
    let err = Conversion::from_file(&input)
        .model("resnet18.a1_in1k")
        .unwrap()
        .plan()
        .unwrap_err();
    let timmconv::Error::ModelMismatch {
        model,
        differences,
        comparison,
        ..
    } = err.root()
    else {
        panic!("{err}");
    };
    assert_eq!(model, "resnet18.a1_in1k");
    assert!(!differences.is_empty());
    // typed, key by key: resnet18's stem is what test_resnet's checkpoint lacks
    assert!(
        comparison.missing.iter().any(|k| k == "conv1.weight"),
        "{:?}",
        comparison.missing
    );
    assert!(
        comparison.unexpected.iter().any(|k| k == "conv1.0.weight"),
        "{:?}",
        comparison.unexpected
    );
    assert!(
        err.to_string().contains("allow_mismatch converts anyway"),
        "{err}"
    );
    let plan = Conversion::from_file(&input)
        .model("resnet18.a1_in1k")
        .unwrap()
        .allow_mismatch(true)
        .plan()
        .unwrap();
    assert_eq!(plan.report().warnings.len(), differences.len());
}

/// A checkpoint converted from memory and written to a stream gives the bytes a file-to-file
/// conversion writes (same header, same metadata, same tensors); a wrong expected hash writes
/// nothing to the stream.
#[test]
fn in_memory_conversion_writes_the_same_bytes_as_a_file() {
    let src = common::fixture("ckpt/test_resnet.f32.zip.pth");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("file.safetensors");
    let build = |c: Conversion| c.model("test_resnet").unwrap().in_chans(4).num_classes(7);
    build(Conversion::from_file(&src))
        .plan()
        .unwrap()
        .write(&out, &WriteOptions::default())
        .unwrap();
    let bytes = std::fs::read(&src).unwrap();
    let mut stream = Vec::new();
    let report = build(Conversion::from_bytes(bytes.clone()))
        .plan()
        .unwrap()
        .write_to(&mut stream)
        .unwrap();
    assert_eq!((report.input, report.output), (None, None));
    assert_eq!(stream, std::fs::read(&out).unwrap());
    let mut refused = Vec::new();
    let err = build(Conversion::from_reader(bytes.as_slice()).unwrap())
        .expect_sha256("00000000")
        .plan()
        .unwrap()
        .write_to(&mut refused)
        .unwrap_err();
    assert!(matches!(err, timmconv::Error::Checksum { .. }), "{err}");
    assert!(refused.is_empty());
}
