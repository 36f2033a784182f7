//! In-process benchmarks of the hot paths: parsing a large state-dict pickle, gathering a strided
//! view, f32 -> f16/bf16 casts, and in_chans adaptation. Run: `cargo bench --bench hot_paths
//! --features internals`.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use timmconv::adapt::in_chans;
use timmconv::dtype::cast;
use timmconv::pickle::{unpickle, Mode};
use timmconv::{DType, TensorInfo};

/// A torch.save-style data.pkl (protocol 2) of `n` tensors, as torch writes it: globals and
/// repeated strings memoised once, fetched back with BINGET.
fn state_dict_pickle(n: usize) -> Vec<u8> {
    fn unicode(out: &mut Vec<u8>, s: &str) {
        out.push(b'X');
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut p = vec![0x80, 2];
    p.extend_from_slice(b"ccollections\nOrderedDict\nq\x00)Rq\x01(");
    for i in 0..n {
        unicode(&mut p, &format!("blocks.{}.mlp.fc{}.weight", i / 4, i % 4));
        if i == 0 {
            p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((");
            unicode(&mut p, "storage");
            p.extend_from_slice(b"q\x03ctorch\nFloatStorage\nq\x04");
            unicode(&mut p, &i.to_string());
            unicode(&mut p, "cpu");
            p.extend_from_slice(b"q\x05");
        } else {
            p.extend_from_slice(b"h\x02((h\x03h\x04");
            unicode(&mut p, &i.to_string());
            p.extend_from_slice(b"h\x05");
        }
        p.extend_from_slice(b"J\x00\x00\x10\x00tQ");
        p.extend_from_slice(b"K\x00");
        p.extend_from_slice(
            b"M\x00\x04M\x00\x04\x86M\x00\x04K\x01\x86\x89ccollections\nOrderedDict\n)R",
        );
        p.extend_from_slice(b"tR");
        if i % 1000 == 999 {
            p.extend_from_slice(b"u(");
        }
    }
    p.extend_from_slice(b"u.");
    p
}

fn benches(c: &mut Criterion) {
    let pkl = state_dict_pickle(20_000);
    let mut g = c.benchmark_group("pickle");
    g.throughput(Throughput::Bytes(pkl.len() as u64));
    g.bench_function("state_dict_20k_tensors", |b| {
        b.iter(|| unpickle(black_box(&pkl), 0, Mode::Load).unwrap())
    });
    g.finish();

    let n = 1024 * 1024;
    let f32s: Vec<u8> = (0..n)
        .flat_map(|i| ((i as f32) * 0.001 - 3.7).to_le_bytes())
        .collect();
    let mut g = c.benchmark_group("cast");
    g.throughput(Throughput::Bytes(f32s.len() as u64));
    g.bench_function("f32_to_bf16_4MiB", |b| {
        b.iter(|| cast::cast(black_box(&f32s), DType::F32, DType::BF16))
    });
    g.bench_function("f32_to_f16_4MiB", |b| {
        b.iter(|| cast::cast(black_box(&f32s), DType::F32, DType::F16))
    });
    g.finish();

    let t = TensorInfo {
        name: "w".into(),
        dtype: DType::F32,
        shape: vec![1024, 1024],
        strides: vec![1, 1024],
        offset: 0,
        storage: "0".into(),
        storage_numel: n,
        shared: false,
    };
    let mut g = c.benchmark_group("gather");
    g.throughput(Throughput::Bytes(f32s.len() as u64));
    g.bench_function("transpose_1024x1024_f32", |b| {
        b.iter(|| t.gather(black_box(&f32s)).unwrap())
    });
    g.finish();

    // a ViT-L patch embedding: (1024, 3, 16, 16)
    let w: Vec<f32> = (0..1024 * 3 * 16 * 16).map(|i| (i as f32).sin()).collect();
    let shape = [1024, 3, 16, 16];
    let mut g = c.benchmark_group("in_chans");
    g.throughput(Throughput::Bytes((w.len() * 4) as u64));
    for target in [1usize, 4] {
        let (method, _) = in_chans::plan("w", &shape, target, 3).unwrap();
        g.bench_function(format!("vit_l_patch_embed_to_{target}"), |b| {
            b.iter(|| in_chans::apply(black_box(&w), &shape, method, target, 3).unwrap())
        });
    }
    g.finish();
}

criterion_group!(hot, benches);
criterion_main!(hot);
