//! Malicious, truncated and corrupted inputs: refused with a clear error, never a panic, and no
//! payload ever runs (fixtures/malicious, made by tools/make_fixtures.py, which proved each
//! live payload runs under Python's own unpickler).

mod common;

use std::path::Path;

use common::{fixture, json};
use timmconv::{Checkpoint, Error, OpenOptions};

fn forbidden_global(err: &Error) -> Option<String> {
    match err.root() {
        Error::ForbiddenGlobal { module, name, .. } => Some(format!("{module}.{name}")),
        _ => None,
    }
}

#[test]
fn malicious_fixtures_are_refused_naming_the_global_and_never_run() {
    let index = json(&fixture("malicious/index.json"));
    let entries = index.as_array().unwrap();
    assert!(entries.len() >= 20);
    for e in entries {
        let file = e["file"].as_str().unwrap();
        let global = e["global_"].as_str().unwrap();
        let marker = Path::new(e["marker"].as_str().unwrap());
        let _ = std::fs::remove_file(marker);
        let path = fixture(&format!("malicious/{file}"));
        let bytes = std::fs::read(&path).unwrap();
        // a bare .pkl's load through the unpickler itself: src/pickle/mod.rs's unit test
        let err = Checkpoint::open(&path, &OpenOptions::default()).unwrap_err();
        if let Some(g) = forbidden_global(&err) {
            assert_eq!(g, global, "{file}");
        }
        // every malicious file is flagged by the scan
        let findings = timmconv::checkpoint::scan(&bytes);
        if let Ok(f) = findings {
            assert!(!f.is_safe(), "{file}: scan says safe: {f:?}");
            assert!(
                f.findings.iter().any(|x| x.global == global
                    && matches!(x.class, timmconv::checkpoint::GlobalClass::Dangerous)),
                "{file}: scan did not flag {global}: {f:?}"
            );
        }
        assert!(!marker.exists(), "{file}: payload ran");
    }
}

#[test]
fn zip_payloads_name_the_global_through_the_checkpoint_api() {
    for file in ["zip_state_dict.pth", "zip_rebuild_args.pth"] {
        let err = Checkpoint::open(
            fixture(&format!("malicious/{file}")),
            &OpenOptions::default(),
        )
        .unwrap_err();
        assert_eq!(
            forbidden_global(&err).as_deref(),
            Some("posix.system"),
            "{file}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(file) && msg.contains("offset"), "{msg}");
    }
}

#[test]
fn truncated_fixtures_fail_cleanly() {
    for file in [
        "test_resnet.f32.zip.pth",
        "test_resnet.bf16.legacy.pth",
        "test_resnet.f32.safetensors",
        "views.deflated.pth",
    ] {
        let bytes = std::fs::read(fixture(&format!("ckpt/{file}"))).unwrap();
        let len = bytes.len();
        for cut in [
            0,
            1,
            8,
            9,
            64,
            100,
            1000,
            len / 3,
            len / 2,
            len - 100,
            len - 22,
            len - 1,
        ] {
            let r = Checkpoint::from_bytes(bytes[..cut].to_vec(), &OpenOptions::default());
            let ok = r
                .as_ref()
                .map(|c| c.tensors().iter().all(|t| c.tensor_bytes(t).is_ok()));
            assert!(
                !matches!(ok, Ok(true)),
                "{file} cut at {cut} read as complete"
            );
        }
    }
}

/// The cause of a refusal is typed, so a caller can tell a cut-short download from a crafted or
/// misused file without reading the message.
#[test]
fn causes_are_typed() {
    use timmconv::error::{SafeTensorsProblem, TensorProblem, ZipProblem};
    let cut = |file: &str| {
        let bytes = std::fs::read(fixture(&format!("ckpt/{file}"))).unwrap();
        let half = bytes[..bytes.len() / 2].to_vec();
        Checkpoint::from_bytes(half, &OpenOptions::default()).unwrap_err()
    };
    let err = cut("test_resnet.f32.zip.pth");
    assert!(
        matches!(
            err.root(),
            Error::Zip {
                problem: ZipProblem::Truncated,
                ..
            }
        ),
        "{err:?}"
    );
    let err = cut("test_resnet.f32.safetensors");
    assert!(
        matches!(
            err.root(),
            Error::SafeTensors {
                problem: SafeTensorsProblem::Truncated,
                ..
            }
        ),
        "{err:?}"
    );
    // an integer tensor asked for as floats
    let ckpt = Checkpoint::open(
        fixture("ckpt/test_resnet.f32.zip.pth"),
        &OpenOptions::default(),
    )
    .unwrap();
    let counter = ckpt
        .tensors()
        .iter()
        .find(|t| t.name.ends_with("num_batches_tracked"))
        .unwrap();
    let err = ckpt.array::<f32>(&counter.name).unwrap_err();
    match err.root() {
        Error::Tensor { key, problem, .. } => {
            assert_eq!(
                (key.as_str(), *problem),
                (counter.name.as_str(), TensorProblem::ElementType)
            );
        }
        other => panic!("{other:?}"),
    }
}

/// 1000 seeded bit-flipped copies (250 of each of four fixtures) open, read or fail cleanly.
#[test]
fn bit_flips_never_panic() {
    // a seeded xorshift, so failures reproduce
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for file in [
        "test_resnet.f32.zip.pth",
        "views.legacy.pth",
        "test_vit.bf16.safetensors",
        "views.deflated.pth",
    ] {
        let bytes = std::fs::read(fixture(&format!("ckpt/{file}"))).unwrap();
        for _ in 0..250 {
            let mut b = bytes.clone();
            for _ in 0..1 + next() % 4 {
                // bias flips towards the headers and the pickle, where parsing happens
                let span = if next() % 2 == 0 {
                    b.len().min(4096)
                } else {
                    b.len()
                };
                let i = (next() as usize) % span;
                b[i] ^= 1 << (next() % 8);
            }
            if let Ok(c) = Checkpoint::from_bytes(b, &OpenOptions::default()) {
                for t in c.tensors() {
                    let _ = c.tensor_bytes(t);
                }
            }
        }
    }
}

#[test]
fn non_checkpoints_say_what_was_expected() {
    let err = Checkpoint::from_bytes(b"GIF89a not a checkpoint".to_vec(), &OpenOptions::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("offset 0") && msg.contains("torch.save zip"),
        "{msg}"
    );
    let err = Checkpoint::open(fixture("VERSIONS"), &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("VERSIONS"), "{err}");
    let err = Checkpoint::open(fixture("no-such-file.pth"), &OpenOptions::default()).unwrap_err();
    assert!(err.to_string().contains("no-such-file.pth"), "{err}");
}

#[test]
fn scan_lists_and_classifies_globals_and_exits_1_on_danger() {
    let bin = common::bin();
    let o = std::process::Command::new(&bin)
        .args([
            "inspect",
            "--scan",
            "--json",
            fixture("malicious/builtins_getattr.pkl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["safe"], false);
    let globals: Vec<_> = v["globals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["global"].as_str().unwrap().to_owned(),
                g["class"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        globals.contains(&("builtins.getattr".into(), "dangerous".into())),
        "{globals:?}"
    );
    assert!(
        globals.contains(&("builtins.__import__".into(), "dangerous".into())),
        "{globals:?}"
    );
    // a real training checkpoint is safe: allowed and harmless-data globals only
    let o = std::process::Command::new(&bin)
        .args([
            "inspect",
            "--scan",
            fixture("ckpt/test_resnet.f32.train.pth").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("argparse.Namespace"));
    // an unknown class is not dangerous, but not vetted either
    let pkl = b"\x80\x02cmypackage.models\nNet\nq\x00)\x81q\x01.";
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), pkl).unwrap();
    let o = std::process::Command::new(&bin)
        .args(["inspect", "--scan", f.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("unknown"));
}

#[test]
fn scan_lines_name_the_global_the_pickle_and_the_byte() {
    // `python -m pickletools fixtures/malicious/os_system_p2.pkl`: "2: c GLOBAL 'posix system'"
    let o = std::process::Command::new(common::bin())
        .args([
            "inspect",
            "--scan",
            fixture("malicious/os_system_p2.pkl").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().next(),
        Some("dangerous posix.system in pickle 0 at byte 2")
    );
}
