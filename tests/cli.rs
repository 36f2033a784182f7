//! The binary: exit codes, refusals that leave no output, JSON reports, casts as torch casts.

mod common;

use std::collections::HashMap;
use std::process::Command;

use common::sha256_hex;
use common::{bin, fixture, json, rows, run, s, stderr};
use timmconv::{Checkpoint, OpenOptions};

const RESNET: [&str; 6] = [
    "--first-conv",
    "conv1.0",
    "--classifier",
    "fc",
    "--pretrained-num-classes",
    "1000",
];

#[test]
fn inspect_json_describes_the_checkpoint() {
    let o = run(&[
        "inspect",
        "--json",
        s(&fixture("ckpt/test_resnet.f32.train.pth")),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "torch_zip");
    assert_eq!(v["state_key"], "state_dict_ema");
    assert!(v["globals"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["global"] == "argparse.Namespace" && g["class"] == "data"));
    let expected = json(&fixture("expected/read/test_resnet.f32.train.pth.json"));
    assert_eq!(
        v["total_tensors"].as_u64().unwrap() as usize,
        rows(&expected["tensors"]).len()
    );
}

#[test]
fn convert_writes_safetensors_in_the_reference_order_with_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("r.safetensors");
    let src = fixture("ckpt/test_resnet.f32.zip.pth");
    let o = run(&["convert", s(&src), "-o", s(&out), "--json", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        report["source_sha256"].as_str().unwrap(),
        sha256_hex(&std::fs::read(&src).unwrap())
    );
    // the data section equals what Python's safetensors.torch.save_file wrote for the same
    // state dict (fixtures/ckpt/test_resnet.f32.safetensors): same order, same bytes
    let ours = std::fs::read(&out).unwrap();
    let theirs = std::fs::read(fixture("ckpt/test_resnet.f32.safetensors")).unwrap();
    let data = |b: &[u8]| b[8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize..].to_vec();
    assert_eq!(data(&ours), data(&theirs));
    let ckpt = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
    let meta = ckpt.metadata().unwrap();
    assert_eq!(meta["format"], "pt");
    assert_eq!(
        meta["source_sha256"],
        report["source_sha256"].as_str().unwrap()
    );
    let info: serde_json::Value = serde_json::from_str(&meta["timmconv"]).unwrap();
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    // same input and options: byte-identical output
    let again = tmp.path().join("r2.safetensors");
    assert!(run(&["convert", s(&src), "-o", s(&again), "-q"])
        .status
        .success());
    assert_eq!(std::fs::read(&again).unwrap(), ours);
}

#[test]
fn dtype_casts_match_torch() {
    let tmp = tempfile::tempdir().unwrap();
    for (src, dtype) in [
        ("test_resnet.f32.zip.pth", "f16"),
        ("test_resnet.f32.zip.pth", "bf16"),
        ("test_vit.bf16.safetensors", "f32"),
        ("test_vit.bf16.safetensors", "f16"),
    ] {
        let out = tmp.path().join(format!("{src}.{dtype}.safetensors"));
        let o = run(&[
            "convert",
            s(&fixture(&format!("ckpt/{src}"))),
            "-o",
            s(&out),
            "--dtype",
            dtype,
            "-q",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let got = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
        let want = json(&fixture(&format!("expected/cast/{src}.{dtype}.json")));
        for (name, dt, shape, sha) in rows(&want["tensors"]) {
            let t = got.tensor(&name).unwrap();
            assert_eq!(
                (t.dtype.name(), &t.shape),
                (dt.as_str(), &shape),
                "{src} {name}"
            );
            assert_eq!(
                sha256_hex(&got.tensor_bytes(t).unwrap()),
                sha,
                "{src} -> {dtype}: {name} differs from torch's cast"
            );
        }
    }
}

#[test]
fn refusals_exit_2_and_leave_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("ckpt/test_resnet.f32.zip.pth");
    let out = tmp.path().join("o.safetensors");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--in-chans".into(), "4".into()], "--first-conv"),
        (vec!["--num-classes".into(), "10".into()], "--classifier"),
        (vec!["--expect-sha256".into(), "deadbeef".into()], "SHA-256"),
        (vec!["--rename".into(), "(=x".into()], "rule"),
        (
            vec!["--rename".into(), "^layer\\d\\..*=same".into()],
            "both map to",
        ),
        (vec!["--state-key".into(), "nope".into()], "nope"),
        (
            vec![
                "--layout".into(),
                "hub".into(),
                "--model".into(),
                "test_resnet".into(),
                "--rename".into(),
                "a=b".into(),
            ],
            "renames would break",
        ),
        (vec!["--layout".into(), "hub".into()], "needs --model"),
        (vec!["--features-only".into()], "needs --model"),
        (vec!["--model".into(), "test_resnt".into()], "did you mean"),
        (
            vec![
                "--rename-stem".into(),
                "stem".into(),
                "--first-conv".into(),
                "a".into(),
                "--first-conv".into(),
                "b".into(),
            ],
            "exactly one",
        ),
    ];
    for (extra, needle) in cases {
        let mut args = vec![
            "convert".to_owned(),
            s(&src).to_owned(),
            "-o".into(),
            s(&out).to_owned(),
        ];
        args.extend(extra.clone());
        let o = Command::new(bin()).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        assert!(stderr(&o).contains(needle), "{extra:?}: {}", stderr(&o));
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "{extra:?} left a file"
        );
    }
    // the input itself is never a valid output
    let o = run(&["convert", s(&src), "-o", s(&src), "--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is the input file"), "{}", stderr(&o));
    // an existing output is kept unless --force
    std::fs::write(&out, b"keep me").unwrap();
    let o = run(&["convert", s(&src), "-o", s(&out)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    assert!(run(&["convert", s(&src), "-o", s(&out), "--force", "-q"])
        .status
        .success());
    assert_ne!(std::fs::read(&out).unwrap(), b"keep me");
    // a malicious input: exit 2, the global named, nothing written
    let bad = tmp.path().join("bad.safetensors");
    let o = run(&[
        "convert",
        s(&fixture("malicious/zip_state_dict.pth")),
        "-o",
        s(&bad),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("posix.system"), "{}", stderr(&o));
    assert!(!bad.exists());
}

#[test]
fn hash_in_file_name_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("ckpt/test_resnet.f32.zip.pth")).unwrap();
    let sha = sha256_hex(&bytes);
    let good = tmp.path().join(format!("resnet-{}.pth", &sha[..8]));
    let bad = tmp.path().join("resnet-0123abcd.pth");
    std::fs::write(&good, &bytes).unwrap();
    std::fs::write(&bad, &bytes).unwrap();
    let o = run(&[
        "convert",
        s(&good),
        "-o",
        s(&tmp.path().join("g.safetensors")),
        "--json",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sha256_checked"], "the hash in the file name");
    let o = run(&[
        "convert",
        s(&bad),
        "-o",
        s(&tmp.path().join("b.safetensors")),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("0123abcd"), "{}", stderr(&o));
}

#[test]
fn renames_replace_whole_components_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.safetensors");
    let src = fixture("ckpt/test_resnet.f32.zip.pth");
    let mut args = vec!["convert", s(&src), "-o", s(&out), "--json", "-q"];
    args.extend(RESNET);
    args.extend([
        "--rename-stem",
        "stem.conv",
        "--rename-classifier",
        "head.fc",
        "--rename",
        r"^layer(\d)\.=stages.$1.",
        "--rename",
        "^nothing=x",
    ]);
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["unused_rules"], serde_json::json!(["^nothing=x"]));
    let got = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
    let src_ckpt = Checkpoint::open(&src, &OpenOptions::default()).unwrap();
    let names: HashMap<_, _> = got.tensors().iter().map(|t| (t.name.clone(), t)).collect();
    assert!(names.contains_key("stem.conv.weight") && names.contains_key("head.fc.weight"));
    assert!(names.contains_key("stages.1.0.conv1.weight"));
    assert!(!names
        .keys()
        .any(|k| k.starts_with("conv1.0.") || k.starts_with("fc.") || k.starts_with("layer")));
    // conv1.1 (the stem's norm) is not part of `conv1.0` and keeps its name
    assert!(names.contains_key("conv1.1.weight"));
    let a = src_ckpt.tensor("conv1.0.weight").unwrap();
    assert_eq!(
        got.tensor_bytes(names["stem.conv.weight"]).unwrap(),
        src_ckpt.tensor_bytes(a).unwrap()
    );
}

#[test]
fn label_offset_slices_the_background_rows_off() {
    use timmconv::write::{write_safetensors, Chunk, Entry};
    use timmconv::DType;
    // a 1001-class head whose row r holds the value r, as torch's `weight[1:]` would see it
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("head.safetensors");
    let entries = [
        Entry {
            name: "fc.weight".into(),
            dtype: DType::F32,
            shape: vec![1001, 2],
        },
        Entry {
            name: "fc.bias".into(),
            dtype: DType::F32,
            shape: vec![1001],
        },
    ];
    let w: Vec<u8> = (0..1001)
        .flat_map(|r| [r as f32, r as f32])
        .flat_map(f32::to_le_bytes)
        .collect();
    let b: Vec<u8> = (0..1001).flat_map(|r| (r as f32).to_le_bytes()).collect();
    write_safetensors(
        &src,
        &entries,
        &Default::default(),
        true,
        false,
        |i, sink| {
            sink(Chunk::Bytes(
                if entries[i].name == "fc.weight" {
                    &w[..]
                } else {
                    &b[..]
                }
                .into(),
            ))
        },
        |_| {},
        || Ok(Default::default()),
    )
    .unwrap();
    let out = tmp.path().join("out.safetensors");
    let o = run(&[
        "convert",
        s(&src),
        "-o",
        s(&out),
        "--classifier",
        "fc",
        "--pretrained-num-classes",
        "1001",
        "--label-offset",
        "1",
        "--num-classes",
        "1001",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
    let bias = got.tensor("fc.bias").unwrap();
    assert_eq!(bias.shape, [1000]);
    assert_eq!(&got.tensor_bytes(bias).unwrap()[..], &b[4..]);
    let weight = got.tensor("fc.weight").unwrap();
    assert_eq!(weight.shape, [1000, 2]);
    assert_eq!(&got.tensor_bytes(weight).unwrap()[..], &w[8..]);
}

/// Issue 22, item 7: one vocabulary across every command's `--help`: the input is INPUT, a
/// picture is `--plot FILE.svg`, `--report` is batch's JSON lines only, every value placeholder
/// is one of a few words (never clap's field-derived `<LIMIT>` or `<OUT_INDICES>`), and the
/// columns are not described with sort orders. README's Commands block uses the same words.
#[test]
fn help_speaks_one_vocabulary() {
    const PLACEHOLDERS: [&str; 28] = [
        "INPUT",
        "OUTPUT",
        "FILE",
        "FILE.svg",
        "FILE.jsonl",
        "MANIFEST",
        "N",
        "M",
        "J",
        "A",
        "R",
        "I/N",
        "I,J,...",
        "NAME",
        "NAME[.TAG]",
        "KEY",
        "HEX",
        "TYPE",
        "FIELD",
        "FIELD,...",
        "PATTERN",
        "H[,W]",
        "P[,Q]",
        "N[,M]",
        "REGEX=REPLACEMENT",
        "MODULE.pt",
        "IO.safetensors",
        "DTYPE",
    ];
    const ENUMS: [&str; 2] = ["LAYOUT", "DEVICE"];
    let help = |cmd: &str| {
        let o = run(&[cmd, "--help"]);
        assert!(o.status.success(), "{cmd}");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    for cmd in [
        "inspect", "convert", "identify", "models", "info", "verify", "batch",
    ] {
        let text = help(cmd);
        let mut rest = text.as_str();
        while let Some(i) = rest.find('<') {
            let Some(j) = rest[i..].find('>') else { break };
            let p = &rest[i + 1..i + j];
            assert!(
                PLACEHOLDERS.contains(&p) || ENUMS.contains(&p),
                "`{cmd} --help` has the placeholder <{p}>"
            );
            rest = &rest[i + j..];
        }
        if ["inspect", "convert", "identify", "verify"].contains(&cmd) {
            let usage = text.lines().find(|l| l.starts_with("Usage:")).unwrap();
            assert!(usage.ends_with("<INPUT>"), "{cmd}: {usage}");
        }
        assert_eq!(
            text.contains("--report"),
            cmd == "batch",
            "{cmd}: --report is batch's JSON lines"
        );
        if cmd == "models" || cmd == "verify" {
            assert!(text.contains("--plot <FILE.svg>"), "{cmd}: {text}");
        }
        if cmd == "models" {
            let columns: String = text
                .split("--columns")
                .nth(1)
                .unwrap()
                .split("--plot")
                .next()
                .unwrap()
                .into();
            assert!(
                !columns.contains(" first"),
                "--columns is described with sort-order words: {columns}"
            );
        }
    }
    // the old spelling still parses (a script that used it keeps working)
    let o = run(&[
        "verify",
        "x.safetensors",
        "--module",
        "m.pt",
        "--fixture",
        "f.safetensors",
        "--report",
        "r.svg",
    ]);
    assert!(
        !stderr(&o).contains("unexpected argument"),
        "{}",
        stderr(&o)
    );
    // README's Commands block: the same words
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let start = readme.find("timmconv [--registry FILE] COMMAND").unwrap();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    for cmd in ["inspect", "convert", "identify", "verify"] {
        assert!(block.contains(&format!("timmconv {cmd} INPUT")), "{block}");
    }
    for old in ["WEIGHTS", "--report FILE.svg", "OUT_INDICES"] {
        assert!(
            !block.contains(old),
            "README's Commands block still says {old}"
        );
    }
    assert!(block.contains("--plot FILE.svg"));
}

#[test]
fn a_changed_input_or_head_says_fixed_architecture_loaders_cannot_take_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("ckpt/test_resnet.f32.zip.pth");
    let out = tmp.path().join("o.safetensors");
    let note = "fixed-argument loaders such as candle-transformers' constructors cannot take it";
    for (extra, want) in [
        (
            &["--in-chans", "4", "--num-classes", "10"][..],
            Some("4 input channels and no classifier"),
        ),
        (
            &["--num-classes", "0"][..],
            Some("the output has no classifier"),
        ),
        (
            &["--in-chans", "1"][..],
            Some("the output has 1 input channel:"),
        ),
        (&[][..], None),
    ] {
        let mut args = vec![
            "convert",
            s(&src),
            "-o",
            s(&out),
            "--model",
            "test_resnet",
            "--force",
        ];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        match want {
            Some(w) => assert!(err.contains(w) && err.contains(note), "{extra:?}: {err}"),
            None => assert!(!err.contains(note), "{err}"),
        }
    }
}
