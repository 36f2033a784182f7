//! Conversions equal, bit for bit, what timm 1.0.31 loads into a model built with the same
//! in_chans and num_classes (fixtures/expected/convert, made by tools/make_fixtures.py).

mod common;

use std::collections::HashMap;

use common::sha256_hex;
use common::{fixture, json, rows};
use timmconv::{Checkpoint, Conversion, ConvertReport, Error, OpenOptions, WriteOptions};

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Converts `source` as the expectation file describes the model (its stem, head, trained
/// channels and classes), without the registry.
fn convert(
    source: &std::path::Path,
    out: &std::path::Path,
    exp: &serde_json::Value,
    in_chans: usize,
    num_classes: usize,
    drop: bool,
) -> Result<ConvertReport, Error> {
    Conversion::from_file(source)
        .in_chans(in_chans)
        .num_classes(num_classes)
        .first_conv(strings(&exp["first_conv"]))
        .classifier(strings(&exp["classifier"]))
        .base_chans(exp["base_chans"].as_u64().unwrap() as usize)
        .pretrained_num_classes(exp["num_classes"].as_u64().unwrap() as usize)
        .drop_unadaptable(drop)
        .plan()?
        .write(out, &WriteOptions::default())
}

#[test]
fn conversions_match_timm_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = 0;
    for (source, exp) in common::expected_files("expected/convert") {
        for case in exp["cases"].as_array().unwrap() {
            let in_chans = case["in_chans"].as_u64().unwrap() as usize;
            let num_classes = case["num_classes"].as_u64().unwrap() as usize;
            let reinit = strings(&case["reinit"]);
            let label = format!("{source} in_chans={in_chans} num_classes={num_classes}");
            let out = tmp.path().join(format!("{cases}.safetensors"));
            let report = convert(
                &fixture(&format!("ckpt/{source}")),
                &out,
                &exp,
                in_chans,
                num_classes,
                true,
            )
            .unwrap_or_else(|e| panic!("{label}: {e}"));
            let got = Checkpoint::open(&out, &OpenOptions::default()).unwrap();
            let mut by_name: HashMap<&str, _> =
                got.tensors().iter().map(|t| (t.name.as_str(), t)).collect();
            for (name, dtype, shape, sha) in rows(&case["tensors"]) {
                let t = by_name
                    .remove(name.as_str())
                    .unwrap_or_else(|| panic!("{label}: `{name}` missing from output"));
                assert_eq!(t.dtype.name(), dtype, "{label}: {name} dtype");
                assert_eq!(t.shape, shape, "{label}: {name} shape");
                assert_eq!(
                    sha256_hex(&got.tensor_bytes(t).unwrap()),
                    sha,
                    "{label}: {name} differs from timm"
                );
            }
            let extra: Vec<_> = by_name
                .keys()
                .copied()
                .filter(|k| !reinit.iter().any(|r| r == k))
                .collect();
            assert!(
                extra.is_empty(),
                "{label}: output has keys timm does not: {extra:?}"
            );
            for k in &reinit {
                assert!(
                    !by_name.contains_key(k.as_str()),
                    "{label}: `{k}` should have been dropped, timm re-initialised it"
                );
                assert!(
                    report.changes.dropped.iter().any(|d| &d.key == k),
                    "{label}: drop of `{k}` not reported"
                );
            }
            cases += 1;
        }
    }
    assert!(cases >= 13 * 15, "only {cases} cases ran");
}

#[test]
fn unadaptable_stem_is_an_error_without_the_flag() {
    let exp = json(&fixture("expected/convert/tresnet_m.f32.zip.pth.json"));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o.safetensors");
    let err = convert(
        &fixture("ckpt/tresnet_m.f32.zip.pth"),
        &out,
        &exp,
        4,
        1000,
        false,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err.root(), Error::Unadaptable { .. }), "{msg}");
    assert!(
        msg.contains("body.conv1.conv.weight")
            && msg.contains("48")
            && msg.contains("drop_unadaptable"),
        "{msg}"
    );
    assert!(!out.exists(), "no output file after an error");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no temporary file left"
    );
}
