//! Every fixture checkpoint reads back bit-identical to torch.load + timm's load_state_dict.

mod common;

use common::{fixture, rows};
use timmconv::convert::sha256_hex;
use timmconv::{Checkpoint, OpenOptions};

fn check(file: &str, opts: &OpenOptions, expected: &serde_json::Value) {
    let ckpt = Checkpoint::open(fixture(&format!("ckpt/{file}")), opts)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(
        ckpt.state_key(),
        expected["state_key"].as_str(),
        "{file}: state key"
    );
    let want = rows(&expected["tensors"]);
    let got: Vec<_> = ckpt.tensors().iter().map(|t| t.name.clone()).collect();
    let want_names: Vec<_> = want.iter().map(|r| r.0.clone()).collect();
    assert_eq!(got, want_names, "{file}: tensor names and order");
    for ((name, dtype, shape, sha), t) in want.iter().zip(ckpt.tensors()) {
        assert_eq!(t.dtype.name(), dtype, "{file}: {name} dtype");
        assert_eq!(&t.shape, shape, "{file}: {name} shape");
        let bytes = ckpt.tensor_bytes(t).unwrap();
        assert_eq!(
            &sha256_hex(&bytes),
            sha,
            "{file}: {name} bytes differ from torch's"
        );
    }
}

#[test]
fn every_fixture_reads_back_as_torch_loaded_it() {
    let mut n = 0;
    for (file, expected) in common::expected_files("expected/read") {
        check(&file, &OpenOptions::default(), &expected);
        if let Some(no_ema) = expected.get("no_ema") {
            let opts = OpenOptions {
                use_ema: false,
                state_key: None,
                ..OpenOptions::default()
            };
            check(&file, &opts, no_ema);
        }
        n += 1;
    }
    assert!(n >= 15, "only {n} fixtures found");
}

#[test]
fn views_fixture_has_strided_and_shared_tensors() {
    let ckpt = Checkpoint::open(fixture("ckpt/views.zip.pth"), &OpenOptions::default()).unwrap();
    let t = ckpt.tensor("transposed").unwrap();
    assert!(!t.is_contiguous() && t.shared);
    let e = ckpt.tensor("expanded").unwrap();
    assert_eq!(e.strides, [0, 1]);
    let a = ckpt.tensor("narrow_a").unwrap();
    let b = ckpt.tensor("narrow_b").unwrap();
    assert_eq!(a.storage, b.storage);
    assert_eq!((a.offset, b.offset), (5, 20));
}

#[test]
fn state_key_picks_and_errors_name_the_keys() {
    let path = fixture("ckpt/test_resnet.f32.train.pth");
    let opts = OpenOptions {
        use_ema: true,
        state_key: Some("state_dict".into()),
        ..OpenOptions::default()
    };
    let ckpt = Checkpoint::open(&path, &opts).unwrap();
    assert_eq!(ckpt.state_key(), Some("state_dict"));
    // module. prefixes are stripped as timm does
    assert!(ckpt.tensor("conv1.0.weight").is_some());
    let opts = OpenOptions {
        use_ema: true,
        state_key: Some("nope".into()),
        ..OpenOptions::default()
    };
    let err = Checkpoint::open(&path, &opts).unwrap_err().to_string();
    assert!(
        err.contains("nope") && err.contains("state_dict_ema"),
        "{err}"
    );
    // the optimizer is not a state dict of tensors
    let opts = OpenOptions {
        use_ema: true,
        state_key: Some("args".into()),
        ..OpenOptions::default()
    };
    let err = Checkpoint::open(&path, &opts).unwrap_err().to_string();
    assert!(err.contains("argparse.Namespace"), "{err}");
}
