//! Converts timm checkpoints with timmconv, runs the output in candle-transformers' own model
//! constructors, and compares the logits with timm's.
//!
//! ```sh
//! python tools/make_candle_fixtures.py FIXTURES          # in the pinned venv
//! cargo run --manifest-path examples/candle/Cargo.toml -- FIXTURES
//! ```
//!
//! FIXTURES holds, per architecture, `ARCH.pth` (the checkpoint to convert) and
//! `ARCH.io.safetensors` (the input and timm's outputs); converted files and candle's logits
//! (`ARCH.candle.safetensors`) are written beside them.
//! Prints the compatibility table of docs/rust.md on stdout. Exits 1 when an architecture
//! expected to match timm does not (or one expected to differ now matches: the table and the
//! doc would be wrong), 2 on a usage or I/O error.

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::{
    convnext, efficientvit, fastvit, hiera, mobilenetv4, mobileone, repvgg,
};
use timmconv::{Conversion, WriteOptions};

type Res<T> = Result<T, Box<dyn Error>>;

/// Logits match when the largest difference is within this fraction of the largest |logit|.
const REL_TOL: f32 = 1e-4;

/// One architecture: candle's two constructors for it, and what we expect of its logits.
struct Arch {
    name: &'static str,
    full: fn(usize, VarBuilder) -> candle_core::Result<candle_nn::Func<'static>>,
    headless: fn(VarBuilder) -> candle_core::Result<candle_nn::Func<'static>>,
    /// candle's model code computes what timm's does.
    expect_match: bool,
    /// What candle's `*_no_final_layer` returns, next to timm's `num_classes=0`.
    headless_meaning: &'static str,
    notes: &'static str,
}

const ARCHS: &[Arch] = &[
    Arch {
        name: "convnext_atto",
        full: |n, vb| convnext::convnext(&convnext::Config::atto(), n, vb),
        headless: |vb| convnext::convnext_no_final_layer(&convnext::Config::atto(), vb),
        expect_match: true,
        headless_meaning: "pooled features before `head.norm` (timm applies it)",
        notes: "",
    },
    Arch {
        name: "repvgg_a0",
        full: |n, vb| repvgg::repvgg(&repvgg::Config::a0(), n, vb),
        headless: |vb| repvgg::repvgg_no_final_layer(&repvgg::Config::a0(), vb),
        expect_match: true,
        headless_meaning: "timm's pooled features",
        notes: "",
    },
    Arch {
        name: "mobilenetv4_conv_small",
        full: |n, vb| mobilenetv4::mobilenetv4(&mobilenetv4::Config::small(), n, vb),
        headless: |vb| mobilenetv4::mobilenetv4_no_final_layer(&mobilenetv4::Config::small(), vb),
        expect_match: true,
        headless_meaning: "960 pooled features from before `conv_head` (timm: 1280 after it)",
        notes: "",
    },
    Arch {
        name: "fastvit_t8",
        full: |n, vb| fastvit::fastvit(&fastvit::Config::t8(), n, vb),
        headless: |vb| fastvit::fastvit_no_final_layer(&fastvit::Config::t8(), vb),
        expect_match: true,
        headless_meaning: "the unpooled 7x7 map after `final_conv` (timm pools it)",
        notes: "",
    },
    Arch {
        name: "mobileone_s0",
        full: |n, vb| mobileone::mobileone(&mobileone::Config::s0(), n, vb),
        headless: |vb| mobileone::mobileone_no_final_layer(&mobileone::Config::s0(), vb),
        expect_match: false,
        headless_meaning: "timm's pooled features (but see notes)",
        notes: "candle never reads `stages.0.1.identity.*` (rust.md, divergence 1)",
    },
    Arch {
        name: "efficientvit_m0",
        full: |n, vb| efficientvit::efficientvit(&efficientvit::Config::m0(), n, vb),
        headless: |vb| efficientvit::efficientvit_no_final_layer(&efficientvit::Config::m0(), vb),
        expect_match: false,
        headless_meaning: "timm's pooled features (but see notes)",
        notes:
            "candle ignores `attention_biases`; head BatchNorm eps 1e-6, timm 1e-5 (divergence 2)",
    },
    Arch {
        name: "hiera_tiny_224",
        full: |n, vb| hiera::hiera(&hiera::Config::tiny(), n, vb),
        headless: |vb| hiera::hiera_no_final_layer(&hiera::Config::tiny(), vb),
        expect_match: false,
        headless_meaning: "pooled features before `head.norm` (timm applies it)",
        notes: "global attention one block early; tanh GELU (divergence 3)",
    },
];

/// What one architecture gave; every figure is measured here.
struct Row {
    name: &'static str,
    loads: String,
    max_diff: f32,
    max_logit: f32,
    matches: bool,
    headless: String,
    in_chans1: String,
    gray_route: String,
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: timmconv-candle FIXTURES  (made by tools/make_candle_fixtures.py)");
        return ExitCode::from(2);
    };
    match run(Path::new(&dir)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(dir: &Path) -> Res<bool> {
    check_doc_snippet()?;
    let dev = Device::Cpu;
    let mut rows = Vec::new();
    for arch in ARCHS {
        eprintln!("== {}", arch.name);
        rows.push(compare(arch, dir, &dev)?);
    }
    let head = fine_tune_head(&dir.join("convnext_atto.nc0.safetensors"), &dev)?;
    print_table(&rows);
    println!();
    println!(
        "Tolerance: max |candle - timm| <= {REL_TOL:e} x max |timm logit|; input 1x3x224x224, \
         seeded weights (tools/make_candle_fixtures.py), candle-transformers 0.11.1 on CPU."
    );
    println!(
        "New head (VarMap route, convnext_atto converted with num_classes 0): logits {:?}, \
         {} trainable tensors created by VarMap.",
        head.0, head.1
    );
    let mut ok = true;
    for r in &rows {
        let arch = ARCHS
            .iter()
            .find(|a| a.name == r.name)
            .ok_or("unknown row")?;
        if r.matches != arch.expect_match {
            ok = false;
            eprintln!(
                "FAIL {}: expected {}, got max diff {:.2e} (max |logit| {:.3})",
                r.name,
                if arch.expect_match {
                    "a match"
                } else {
                    "a difference (update ARCHS and docs/rust.md if candle was fixed)"
                },
                r.max_diff,
                r.max_logit
            );
        }
    }
    Ok(ok)
}

fn compare(arch: &Arch, dir: &Path, dev: &Device) -> Res<Row> {
    let src = dir.join(format!("{}.pth", arch.name));
    let io =
        candle_core::safetensors::load(dir.join(format!("{}.io.safetensors", arch.name)), dev)?;
    let get = |k: &str| -> Res<&Tensor> { Ok(io.get(k).ok_or(format!("{k} missing"))?) };
    let x = get("input")?;

    // 1. as trained: 3 channels, timm's 1000 classes
    let full = convert(
        &src,
        arch.name,
        &dir.join(format!("{}.safetensors", arch.name)),
        None,
        None,
    )?;
    let model = (arch.full)(1000, mmap(&full, dev)?)?;
    let logits = model.forward(x)?;
    let (max_diff, max_logit) = diff(&logits, get("logits")?)?;
    let matches = max_diff <= REL_TOL * max_logit;
    // kept for tools/check_candle_divergences.py, which patches timm until it computes these
    logits.save_safetensors(
        "logits",
        dir.join(format!("{}.candle.safetensors", arch.name)),
    )?;

    // 2. the head dropped (`--num-classes 0`): the full constructor wants `head.fc`
    let nc0 = convert(
        &src,
        arch.name,
        &dir.join(format!("{}.nc0.safetensors", arch.name)),
        None,
        Some(0),
    )?;
    let full_nc0 = match (arch.full)(1000, mmap(&nc0, dev)?) {
        Ok(_) => "loads".to_string(),
        Err(e) => format!("no ({})", first_line(&e)),
    };
    let feats = (arch.headless)(mmap(&nc0, dev)?)?.forward(x)?;
    let want = get("pre_logits")?;
    let headless = if feats.dims() == want.dims() {
        let (d, m) = diff(&feats, want)?;
        let same = if d <= REL_TOL * m {
            "same as timm"
        } else {
            "differs from timm"
        };
        format!(
            "{:?}, {same} (max diff {d:.1e}): {}",
            feats.dims(),
            arch.headless_meaning
        )
    } else {
        format!(
            "{:?}, timm {:?}: {}",
            feats.dims(),
            want.dims(),
            arch.headless_meaning
        )
    };

    // 3. one input channel (`--in-chans 1`): every constructor builds a 3-channel stem
    let in1 = convert(
        &src,
        arch.name,
        &dir.join(format!("{}.in1.safetensors", arch.name)),
        Some(1),
        None,
    )?;
    let in_chans1 = match (arch.full)(1000, mmap(&in1, dev)?) {
        // a constructor that takes the stem's shape from the file: does it compute timm's?
        Ok(m) => match m.forward(&x.narrow(1, 0, 1)?) {
            Ok(y) => {
                let (d, m) = diff(&y, get("logits_in1")?)?;
                format!("loads; on 1 channel, rel. diff to timm {:.1e}", d / m)
            }
            Err(e) => format!("loads, then fails on 1 channel ({})", first_line(&e)),
        },
        Err(e) => format!("no ({})", first_line(&e)),
    };
    // what works instead: timm's in_chans=1 stem is the sum of the RGB filters, so the 3-channel
    // file fed the gray channel three times computes the same thing
    let gray = x.narrow(1, 0, 1)?.repeat((1, 3, 1, 1))?;
    let (d, m) = diff(&model.forward(&gray)?, get("logits_in1")?)?;
    let gray_route = format!(
        "{:.1e} ({})",
        d / m,
        if d <= REL_TOL * m { "same" } else { "differs" }
    );

    Ok(Row {
        name: arch.name,
        loads: format!("yes; `--num-classes 0`: {full_nc0}"),
        max_diff,
        max_logit,
        matches,
        headless,
        in_chans1,
        gray_route,
    })
}

/// Converts `src` through the library, as `timmconv convert` would, into `out`.
fn convert(
    src: &Path,
    model: &str,
    out: &Path,
    in_chans: Option<usize>,
    num_classes: Option<usize>,
) -> Res<PathBuf> {
    let mut c = Conversion::from_file(src).model(model)?;
    if let Some(n) = in_chans {
        c = c.in_chans(n);
    }
    if let Some(n) = num_classes {
        c = c.num_classes(n);
    }
    let write = WriteOptions::default().overwrite(true);
    c.plan()?.write(out, &write)?;
    Ok(out.to_path_buf())
}

fn mmap(path: &Path, dev: &Device) -> Res<VarBuilder<'static>> {
    // SAFETY: the file was written by this program a moment ago and nothing else writes to it
    // while it is mapped.
    Ok(unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, dev)? })
}

/// Largest |a - b| and largest |b|.
fn diff(a: &Tensor, b: &Tensor) -> Res<(f32, f32)> {
    let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let m = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    Ok((d, m))
}

fn first_line(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

// ANCHOR: varmap
/// A new 10-class head on a backbone converted with `num_classes(0)`: the backbone's tensors come
/// from the file, the head's from a `VarMap`, which creates them and hands them to an optimizer.
fn fine_tune_head(path: &Path, dev: &Device) -> Res<(Vec<usize>, usize)> {
    let cfg = convnext::Config::atto();
    let width = 320; // convnext_atto's last stage (candle's Config keeps it private)
                     // SAFETY: nothing writes to the file while it is mapped
    let file = unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, dev)? };
    let backbone = convnext::convnext_no_final_layer(&cfg, file.clone())?;
    // candle's no_final_layer stops before timm's head.norm; its weights are in the file
    let norm = candle_nn::layer_norm(width, 1e-6, file.pp("head.norm"))?;

    let varmap = VarMap::new();
    let new = VarBuilder::from_varmap(&varmap, DType::F32, dev);
    let fc = candle_nn::linear(width, 10, new.pp("head.fc"))?;
    // train with e.g. candle_nn::AdamW::new(varmap.all_vars(), ..), then varmap.save(..)

    let x = Tensor::zeros((1, 3, 224, 224), DType::F32, dev)?;
    let logits = backbone.forward(&x)?.apply(&norm)?.apply(&fc)?;
    Ok((logits.dims().to_vec(), varmap.all_vars().len()))
}
// ANCHOR_END: varmap

/// docs/rust.md shows `fine_tune_head` as this program runs it; fail when the two drift apart.
fn check_doc_snippet() -> Res<()> {
    let src = include_str!("main.rs");
    let doc = include_str!("../../../docs/rust.md");
    let start = src.find("// ANCHOR: varmap\n").ok_or("no varmap anchor")? + 18;
    let end = src
        .find("// ANCHOR_END: varmap")
        .ok_or("no varmap anchor end")?;
    let snippet = src.get(start..end).ok_or("bad anchors")?;
    if doc.contains(snippet) {
        Ok(())
    } else {
        Err(
            "docs/rust.md no longer shows fine_tune_head as examples/candle/src/main.rs has it"
                .into(),
        )
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "| architecture | loads | max diff (max \\|logit\\|) | matches timm | headless (`--num-classes 0`, `*_no_final_layer`) | `--in-chans 1` | 3-channel file, gray input repeated, vs timm in_chans=1 (rel. diff) | notes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        let notes = ARCHS
            .iter()
            .find(|a| a.name == r.name)
            .map_or("", |a| a.notes);
        println!(
            "| {} | {} | {:.1e} ({:.2}) | {} | {} | {} | {} | {} |",
            r.name,
            r.loads,
            r.max_diff,
            r.max_logit,
            if r.matches { "yes" } else { "no" },
            r.headless,
            r.in_chans1,
            r.gray_route,
            notes
        );
    }
}
