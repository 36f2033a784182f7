//! Parity through libtorch (feature `torch`): converted fixtures reproduce PyTorch's logits exactly
//! on CPU; a nudged weight fails with exit 1; missing files are exit 2.
//!
//! Where the numbers come from: PyTorch promises no bitwise equality across CPUs (oneDNN, MKL and
//! ATen pick kernels by instruction set and thread count), so "exactly equal" is claimed only
//! against PyTorch run here, at test time, by `tools/reference_logits.py` in the test venv (same
//! torch build, same kernels, same environment). The logits stored in `fixtures/verify/` were made
//! by `tools/make_fixtures.py` on another machine; they are held to [`FIXTURE_RTOL`], so a stale or
//! foreign fixture is still caught. `tools/test.sh` runs this file twice: as the machine is, and
//! with other kernels forced (`ONEDNN_MAX_CPU_ISA=SSE41 ATEN_CPU_CAPABILITY=default
//! OMP_NUM_THREADS=1`), so an expectation that holds on one CPU only fails there.
#![cfg(feature = "torch")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{bin, fixture, json};
use timmconv::verify::{assert_parity, verify, DeviceChoice, VerifyOptions};
use timmconv::write::{write_safetensors, Chunk, Entry};
use timmconv::{Checkpoint, OpenOptions};

fn convert(case: &serde_json::Value, out: &Path) {
    let mut c = Command::new(bin());
    c.args([
        "convert",
        fixture(&format!("ckpt/{}", case["source"].as_str().unwrap()))
            .to_str()
            .unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    c.args([
        "--model",
        case["model"].as_str().unwrap(),
        "--in-chans",
        &case["in_chans"].to_string(),
        "-q",
        "--force",
    ]);
    if let Some(n) = case["num_classes"].as_u64() {
        c.args(["--num-classes", &n.to_string()]);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn cpu() -> VerifyOptions {
    VerifyOptions {
        device: DeviceChoice::Cpu,
        ..VerifyOptions::default()
    }
}

/// How far libtorch's logits may be from the stored fixture's, relative to the largest stored
/// logit (at least 1): the stored numbers came from another CPU's kernels. Measured on an Intel
/// AVX-512 machine across six kernel settings (oneDNN AVX-512/AVX2/SSE4.1, ATen AVX-512/default,
/// 1 or 2 threads): at most 5.4e-7 (test_vit under AVX2); a wrong weight moves them by >1e-3.
const FIXTURE_RTOL: f64 = 2e-6;

/// The Python that runs PyTorch here: `TIMMCONV_PYTHON` (tools/test.sh sets it to the test venv's),
/// else `python3` on PATH. A Python without torch 2.11.0 and timm 1.0.31 fails the test, never
/// skips it.
fn python() -> PathBuf {
    std::env::var_os("TIMMCONV_PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// `tools/reference_logits.py` run now, on this machine: one `NAME.io.safetensors` per case, with
/// the stored input and the logits timm's own model gives here.
fn references_made_here(dir: &Path) {
    let script = common::root().join("tools/reference_logits.py");
    let o = Command::new(python())
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (set TIMMCONV_PYTHON): {e}",
                python().display()
            )
        });
    assert!(
        o.status.success(),
        "{} failed (it needs the test venv: set TIMMCONV_PYTHON): {}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn converted_fixtures_reproduce_pytorch_logits_exactly_on_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let here = tmp.path().join("here");
    references_made_here(&here);
    let cases = json(&fixture("verify/cases.json"));
    for case in cases.as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let out = tmp.path().join(format!("{name}.safetensors"));
        convert(case, &out);
        let module = fixture(&format!("verify/{name}.pt"));
        // exactly PyTorch's logits on this machine
        let io = here.join(format!("{name}.io.safetensors"));
        let r = assert_parity(&out, &module, &io, &cpu());
        assert_eq!(r.max_abs_diff, 0.0, "{name}: {r:?}");
        // and within FIXTURE_RTOL of the logits stored with the fixture (made elsewhere)
        let stored = fixture(&format!("verify/{name}.io.safetensors"));
        let s = verify(&out, &module, &stored, &cpu()).unwrap();
        let scale = s
            .reference_logits
            .iter()
            .fold(1.0_f64, |m, v| m.max(v.abs()));
        assert!(
            s.max_abs_diff <= FIXTURE_RTOL * scale,
            "{name}: {} from the stored logits, over {FIXTURE_RTOL} x {scale}: a stale fixture?",
            s.max_abs_diff
        );
        assert_eq!(
            (r.top1_agreement, r.cosine_similarity > 0.999_999),
            (1.0, true),
            "{name}"
        );
        // the new head (if any) came from the module, everything else from the weights
        let reinit: Vec<String> = case["reinit"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        for k in &reinit {
            assert!(
                r.from_module.contains(k),
                "{name}: {k} should keep the module's value"
            );
        }
        let w = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
        assert_eq!(r.from_weights, w.tensors().len(), "{name}");
        // the module alone, without the weights, is wrong: the check is not vacuous
        let empty = tmp.path().join("empty.safetensors");
        write_safetensors(
            &empty,
            &[],
            &Default::default(),
            true,
            false,
            |_, _| Ok(()),
            |_| {},
            || Ok(Default::default()),
        )
        .unwrap();
        assert!(
            !verify(&empty, &module, &io, &cpu()).unwrap().passed,
            "{name}: module alone passed"
        );
    }
}

#[test]
fn a_nudged_weight_fails_with_exit_1_and_missing_files_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = json(&fixture("verify/cases.json"));
    let case = &cases[0];
    let name = case["name"].as_str().unwrap();
    let out = tmp.path().join("w.safetensors");
    convert(case, &out);
    // copy the weights with one element of one tensor nudged by one ulp-ish step
    let w = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
    let entries: Vec<Entry> = w
        .tensors()
        .iter()
        .map(|t| Entry {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
        })
        .collect();
    let nudged = tmp.path().join("nudged.safetensors");
    let target = w
        .tensors()
        .iter()
        .position(|t| t.name == "conv1.0.weight")
        .unwrap();
    write_safetensors(
        &nudged,
        &entries,
        &Default::default(),
        true,
        false,
        |i, sink| {
            let mut b = w.tensor_bytes(&w.tensors()[i]).unwrap().into_owned();
            if i == target {
                let v = f32::from_le_bytes(b[..4].try_into().unwrap()) + 1e-3;
                b[..4].copy_from_slice(&v.to_le_bytes());
            }
            sink(Chunk::Bytes(b.into()))
        },
        |_| {},
        || Ok(Default::default()),
    )
    .unwrap();
    let module = fixture(&format!("verify/{name}.pt"));
    let io = fixture(&format!("verify/{name}.io.safetensors"));
    let run = |weights: &Path, module: &Path| {
        Command::new(bin())
            .args([
                "verify",
                weights.to_str().unwrap(),
                "--module",
                module.to_str().unwrap(),
                "--fixture",
                io.to_str().unwrap(),
                "--device",
                "cpu",
            ])
            .output()
            .unwrap()
    };
    assert_eq!(run(&out, &module).status.code(), Some(0));
    let o = run(&nudged, &module);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL"));
    // --plot (once --report): the same verdict in the chart's title, one scatter mark per logit
    let logits = Checkpoint::open(&io, &OpenOptions::default())
        .unwrap()
        .tensor("logits")
        .unwrap()
        .numel();
    for (weights, code, verdict) in [(&out, 0, "PASS: "), (&nudged, 1, "FAIL: ")] {
        let svg = tmp.path().join("report.svg");
        let o = Command::new(bin())
            .args([
                "verify",
                weights.to_str().unwrap(),
                "--module",
                module.to_str().unwrap(),
                "--fixture",
                io.to_str().unwrap(),
                "--device",
                "cpu",
                "--plot",
                svg.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(&svg).unwrap();
        let doc = roxmltree::Document::parse(&text).unwrap();
        let titles: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(str::trim)
            .filter(|t| t.starts_with("PASS") || t.starts_with("FAIL"))
            .collect();
        assert_eq!(titles.len(), 1, "{titles:?}");
        assert!(titles[0].starts_with(verdict), "{titles:?}");
        let marks = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count();
        assert_eq!(marks, logits);
    }
    let o = run(&out, &tmp.path().join("missing.pt"));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("missing.pt"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn auto_device_falls_back_to_cpu_without_a_gpu() {
    let cases = json(&fixture("verify/cases.json"));
    let case = &cases[1];
    let name = case["name"].as_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("w.safetensors");
    convert(case, &out);
    let r = verify(
        &out,
        &fixture(&format!("verify/{name}.pt")),
        &fixture(&format!("verify/{name}.io.safetensors")),
        &VerifyOptions::default(),
    )
    .unwrap();
    assert!(r.passed);
    if !timmconv::verify::cuda_is_available() {
        assert_eq!(r.device, "Cpu");
    }
}
