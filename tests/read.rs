//! Every fixture checkpoint reads back bit-identical to torch.load + timm's load_state_dict.

mod common;

use common::sha256_hex;
use common::{fixture, rows};
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
            let opts = OpenOptions::default().use_ema(false);
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
    let opts = OpenOptions::default().state_key("state_dict");
    let ckpt = Checkpoint::open(&path, &opts).unwrap();
    assert_eq!(ckpt.state_key(), Some("state_dict"));
    // module. prefixes are stripped as timm does
    assert!(ckpt.tensor("conv1.0.weight").is_some());
    let opts = OpenOptions::default().state_key("nope");
    let err = Checkpoint::open(&path, &opts).unwrap_err().to_string();
    assert!(
        err.contains("nope") && err.contains("state_dict_ema"),
        "{err}"
    );
    // the optimizer is not a state dict of tensors
    let opts = OpenOptions::default().state_key("args");
    let err = Checkpoint::open(&path, &opts).unwrap_err().to_string();
    assert!(err.contains("argparse.Namespace"), "{err}");
}

/// `Checkpoint::array` gives torch's values: a view borrowed from the mapping for contiguous
/// stored tensors, an owned array for strided or deflated ones, and f32 values equal to the
/// widened f16/bf16 ones.
#[test]
fn arrays_hold_torchs_values_and_borrow_when_they_can() {
    use half::{bf16, f16};
    use timmconv::{DType, Element};

    fn bytes_of<T: Element>(ckpt: &Checkpoint, name: &str) -> (Vec<u8>, bool) {
        let a = ckpt.array::<T>(name).unwrap();
        let std = a.as_standard_layout();
        let items: Vec<T> = std.iter().copied().collect();
        (bytemuck::cast_slice(&items).to_vec(), a.is_view())
    }
    let (mut views, mut owned) = (0, 0);
    for (file, expected) in common::expected_files("expected/read") {
        let Ok(ckpt) = Checkpoint::open(fixture(&format!("ckpt/{file}")), &OpenOptions::default())
        else {
            continue;
        };
        if ckpt.state_key() != expected["state_key"].as_str() {
            continue;
        }
        for (name, _, shape, sha) in rows(&expected["tensors"]) {
            let t = ckpt.tensor(&name).unwrap();
            let (bytes, view) = match t.dtype {
                DType::F32 => bytes_of::<f32>(&ckpt, &name),
                DType::F64 => bytes_of::<f64>(&ckpt, &name),
                DType::F16 => bytes_of::<f16>(&ckpt, &name),
                DType::BF16 => bytes_of::<bf16>(&ckpt, &name),
                DType::I64 => bytes_of::<i64>(&ckpt, &name),
                DType::I32 => bytes_of::<i32>(&ckpt, &name),
                DType::I16 => bytes_of::<i16>(&ckpt, &name),
                DType::I8 => bytes_of::<i8>(&ckpt, &name),
                DType::U8 | DType::Bool => bytes_of::<u8>(&ckpt, &name),
            };
            assert_eq!(sha256_hex(&bytes), sha, "{file}: {name}");
            assert_eq!(
                ckpt.array::<u8>(&name).is_ok(),
                matches!(t.dtype, DType::U8 | DType::Bool)
            );
            let stored = ckpt.tensor_file_range(t).is_some();
            // torch.save aligns zip members to 64 bytes, so its contiguous tensors borrow
            if stored && file.ends_with(".zip.pth") {
                assert!(view, "{file}: {name} stored in place but copied");
            }
            if view {
                views += 1;
                assert!(stored, "{file}: {name} borrowed but not stored in place");
            } else {
                owned += 1;
            }
            if matches!(t.dtype, DType::F16 | DType::BF16) {
                let wide = ckpt.array::<f32>(&name).unwrap();
                assert!(!wide.is_view());
                assert_eq!(wide.shape(), shape.as_slice());
                let narrow: Vec<f32> = match t.dtype {
                    DType::F16 => ckpt
                        .array::<f16>(&name)
                        .unwrap()
                        .iter()
                        .map(|v| v.to_f32())
                        .collect(),
                    _ => ckpt
                        .array::<bf16>(&name)
                        .unwrap()
                        .iter()
                        .map(|v| v.to_f32())
                        .collect(),
                };
                let wide: Vec<f32> = wide.iter().copied().collect();
                assert_eq!(
                    bytemuck::cast_slice::<f32, u8>(&wide),
                    bytemuck::cast_slice::<f32, u8>(&narrow),
                    "{file}: {name}"
                );
            }
        }
    }
    assert!(views > 50 && owned > 5, "views {views}, owned {owned}");
}
