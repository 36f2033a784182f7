//! The SVG charts, parsed back as XML: the verify report (no libtorch needed: the logits are the
//! fixture's, made by PyTorch in tools/make_fixtures.py) and the frontier computation.

mod common;

use common::fixture;
use timmconv::chart::parity::{self, Report};
use timmconv::{Checkpoint, OpenOptions};

/// PyTorch's logits of the test_resnet in4/nc10 fixture, flattened to f64.
fn torch_logits() -> Vec<f64> {
    let io = Checkpoint::open(
        fixture("verify/test_resnet.in4.nc10.io.safetensors"),
        &OpenOptions::default(),
    )
    .unwrap();
    let t = io.tensor("logits").unwrap();
    let bytes = io.tensor_bytes(t).unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

fn texts(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_owned())
        .collect()
}

fn render(reference: &[f64], output: &[f64], passed: bool) -> String {
    parity::svg(&Report {
        subject: "weights.safetensors in module.pt".into(),
        reference,
        output,
        atol: 1e-5,
        rtol: 1e-5,
        passed,
    })
    .unwrap()
}

#[test]
fn verify_report_of_a_pass_shows_every_logit_and_pass() {
    let reference = torch_logits();
    assert_eq!(reference.len(), 20, "2 images x 10 classes");
    // within tolerance: 1e-7 off on half of them
    let output: Vec<f64> = reference
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 2 == 0 { *v } else { v + 1e-7 })
        .collect();
    let svg = render(&reference, &output, true);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let t = texts(&doc);
    assert!(t.iter().any(|s| s.starts_with("PASS: ")), "{t:?}");
    assert!(!t.iter().any(|s| s.contains("FAIL")));
    assert!(
        t.iter().any(|s| s.contains("10 of 20 exactly equal")),
        "{t:?}"
    );
    assert!(t.iter().any(|s| s.starts_with("atol 1e-5")), "{t:?}");
    let marks = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle"))
        .count();
    assert_eq!(marks, 20, "one scatter mark per logit");
    // the histogram: the 10 differences of ~1e-7 in bars whose heights add up to 10
    let (bins, zero) = parity::histogram(&reference, &output);
    assert_eq!(zero, 10);
    assert_eq!(bins.iter().map(|b| b.1).sum::<usize>(), 10);
    assert!(
        bins.iter().all(|b| (-7.25..=-6.75).contains(&b.0)),
        "{bins:?}"
    );
}

#[test]
fn verify_report_of_a_failure_says_fail_with_the_largest_difference() {
    let reference = torch_logits();
    let mut output = reference.clone();
    output[3] += 0.5;
    let svg = render(&reference, &output, false);
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let t = texts(&doc);
    let title = t.iter().find(|s| s.starts_with("FAIL: ")).expect("title");
    assert!(title.contains("max |diff| 5.000e-1"), "{title}");
    assert!(
        t.iter().any(|s| s.contains("19 of 20 exactly equal")),
        "{t:?}"
    );
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("circle"))
            .count(),
        20
    );
}

#[test]
fn charts_are_deterministic() {
    let reference = torch_logits();
    let mut output = reference.clone();
    output[0] -= 1e-3;
    assert_eq!(
        render(&reference, &output, false),
        render(&reference, &output, false)
    );
}

#[test]
fn verify_report_refuses_mismatched_lengths() {
    let e = parity::svg(&Report {
        subject: String::new(),
        reference: &[1.0, 2.0],
        output: &[1.0],
        atol: 1e-5,
        rtol: 1e-5,
        passed: false,
    })
    .unwrap_err();
    assert!(e.to_string().contains("1 and 2"), "{e}");
}
