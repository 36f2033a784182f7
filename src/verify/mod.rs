//! Parity (feature `torch`): load converted weights into a TorchScript export of the timm model,
//! run it through libtorch on CPU or CUDA, and compare its output with what PyTorch gave.
//!
//! ```no_run
//! use timmconv::verify::{verify, VerifyOptions};
//! let report = verify(
//!     "converted.safetensors".as_ref(),
//!     "model.pt".as_ref(),
//!     "io.safetensors".as_ref(),
//!     &VerifyOptions::default(),
//! )?;
//! assert!(report.passed, "{report:?}");
//! # Ok::<(), timmconv::Error>(())
//! ```

mod ffi;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use tch::{Device, Kind, Tensor};

use crate::checkpoint::{Checkpoint, OpenOptions};
use crate::dtype::DType;
use crate::error::{Error, Result, TensorProblem, VerifyError};

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    #[default]
    Auto,
    /// CPU.
    Cpu,
    /// The first CUDA device; an error when there is none.
    Cuda,
}

/// Whether libtorch sees a CUDA device: where [`DeviceChoice::Auto`] runs.
pub fn cuda_is_available() -> bool {
    tch::Cuda::is_available()
}

/// Default tolerances on CPU: the same libtorch and kernels as PyTorch give identical results.
pub const CPU_ATOL: f64 = 1e-5;
/// Default relative tolerance on CPU.
pub const CPU_RTOL: f64 = 1e-5;
/// Default tolerances on CUDA (TF32 off): other kernels, other summation orders.
pub const CUDA_ATOL: f64 = 1e-3;
/// Default relative tolerance on CUDA.
pub const CUDA_RTOL: f64 = 1e-3;

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Device.
    pub device: DeviceChoice,
    /// Absolute tolerance (default per device).
    pub atol: Option<f64>,
    /// Relative tolerance (default per device).
    pub rtol: Option<f64>,
    /// Ignore tensors of the weights that the module does not have, instead of failing.
    pub allow_unused: bool,
}

/// The outcome of a parity check.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Within tolerance everywhere.
    pub passed: bool,
    /// Where it ran.
    pub device: String,
    /// Largest |output - reference|.
    pub max_abs_diff: f64,
    /// Largest |output - reference| / |reference| (over nonzero references).
    pub max_rel_diff: f64,
    /// Cosine similarity of the flattened outputs.
    pub cosine_similarity: f64,
    /// Rows whose arg-max agrees.
    pub top1_agreement: f64,
    /// Rows whose top-5 index sets agree.
    pub top5_agreement: f64,
    /// Tolerances applied.
    pub atol: f64,
    /// Relative tolerance applied.
    pub rtol: f64,
    /// Module tensors overwritten from the weights.
    pub from_weights: usize,
    /// Module tensors the weights lack, which kept the module's values (a new head).
    pub from_module: Vec<String>,
    /// Weights the module does not have (with `allow_unused`).
    pub unused: Vec<String>,
    /// Seconds to load the module and the weights.
    pub load_seconds: f64,
    /// Seconds of the forward pass.
    pub forward_seconds: f64,
    /// Shape of the output.
    pub output_shape: Vec<i64>,
    /// libtorch's logits, flattened (for the parity chart; not in the JSON).
    #[serde(skip)]
    pub logits: Vec<f64>,
    /// The fixture's (PyTorch's) logits, flattened.
    #[serde(skip)]
    pub reference_logits: Vec<f64>,
}

fn terr(what: impl std::fmt::Display) -> Error {
    VerifyError::Libtorch {
        what: what.to_string(),
    }
    .into()
}

fn kind(d: DType) -> Kind {
    match d {
        DType::Bool => Kind::Bool,
        DType::U8 => Kind::Uint8,
        DType::I8 => Kind::Int8,
        DType::I16 => Kind::Int16,
        DType::I32 => Kind::Int,
        DType::I64 => Kind::Int64,
        DType::F16 => Kind::Half,
        DType::BF16 => Kind::BFloat16,
        DType::F32 => Kind::Float,
        DType::F64 => Kind::Double,
    }
}

/// A shape as libtorch's sizes.
fn dims(shape: &[usize]) -> Vec<i64> {
    shape
        .iter()
        .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
        .collect()
}

fn to_tensor(ckpt: &Checkpoint, name: &str) -> Result<Tensor> {
    let t = ckpt
        .tensor(name)
        .ok_or_else(|| Error::NoSuchTensor(name.to_owned()))?;
    let bytes = ckpt.tensor_bytes(t)?;
    Tensor::f_from_data_size(&bytes, &dims(&t.shape), kind(t.dtype)).map_err(terr)
}

/// Output name -> the name the model had, undoing the renames recorded in the weights' metadata.
fn original_names(weights: &Checkpoint) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(info) = weights.metadata().and_then(|m| m.get("timmconv")) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(info) {
            for r in v["renamed"].as_array().into_iter().flatten() {
                if let (Some(from), Some(to)) = (r["from"].as_str(), r["to"].as_str()) {
                    map.insert(to.to_owned(), from.to_owned());
                }
            }
        }
    }
    map
}

/// Loads `weights` into the TorchScript `module`, runs it on the fixture's `input` and compares
/// with its `logits`.
pub fn verify(
    weights: &Path,
    module: &Path,
    fixture: &Path,
    opts: &VerifyOptions,
) -> Result<VerifyReport> {
    for (what, p) in [
        ("weights", weights),
        ("module", module),
        ("fixture", fixture),
    ] {
        if !p.is_file() {
            return Err(Error::io(
                p,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{what} file not found"),
                ),
            ));
        }
    }
    let device = match opts.device {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Cuda if !cuda_is_available() => return Err(VerifyError::NoCuda.into()),
        DeviceChoice::Cuda => Device::Cuda(0),
        DeviceChoice::Auto => Device::cuda_if_available(),
    };
    ffi::disable_tf32();
    let cuda = device != Device::Cpu;
    let atol = opts.atol.unwrap_or(if cuda { CUDA_ATOL } else { CPU_ATOL });
    let rtol = opts.rtol.unwrap_or(if cuda { CUDA_RTOL } else { CPU_RTOL });
    let started = Instant::now();
    let w = Checkpoint::open(weights, &OpenOptions::default())?;
    let io = Checkpoint::open(fixture, &OpenOptions::default())?;
    let mut m =
        tch::CModule::load_on_device(module, device).map_err(|e| terr(e).with_path(module))?;
    m.set_eval();
    let mut targets: Vec<(String, Tensor)> = m.named_parameters().map_err(terr)?;
    targets.extend(ffi::named_buffers(&m)?);
    let index: HashMap<String, usize> = targets
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone(), i))
        .collect();
    let originals = original_names(&w);
    let mut loaded = vec![false; targets.len()];
    let mut unused = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for t in w.tensors() {
            let name = originals
                .get(&t.name)
                .cloned()
                .unwrap_or_else(|| t.name.clone());
            let Some(&i) = index.get(&name) else {
                if opts.allow_unused {
                    unused.push(t.name.clone());
                    continue;
                }
                return Err(VerifyError::NotInModule {
                    key: t.name.clone(),
                    name,
                }
                .into());
            };
            let dst = &mut targets[i].1;
            let want: Vec<i64> = dst.size();
            let got = dims(&t.shape);
            if want != got {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    &t.name,
                    format!("shape {got:?} but the module's `{name}` is {want:?}"),
                ));
            }
            let src = to_tensor(&w, &t.name)?
                .to_device(device)
                .to_kind(dst.kind());
            dst.f_copy_(&src).map_err(terr)?;
            loaded[i] = true;
        }
        Ok(())
    })?;
    let from_module: Vec<String> = targets
        .iter()
        .zip(&loaded)
        .filter(|(_, l)| !**l)
        .map(|((n, _), _)| n.clone())
        .collect();
    let input = to_tensor(&io, "input")?.to_device(device);
    let reference = to_tensor(&io, "logits")?.to_kind(Kind::Double);
    let load_seconds = started.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let out = tch::no_grad(|| m.forward_ts(&[input])).map_err(terr)?;
    if cuda {
        tch::Cuda::synchronize(0);
    }
    let forward_seconds = t0.elapsed().as_secs_f64();
    let out = out.to_device(Device::Cpu).to_kind(Kind::Double);
    if out.size() != reference.size() {
        return Err(VerifyError::OutputShape {
            output: out.size(),
            reference: reference.size(),
        }
        .into());
    }
    let diff = (&out - &reference).abs();
    let max_abs = diff.max().double_value(&[]);
    let rel = &diff / reference.abs().clamp_min(1e-30);
    let max_rel = rel.max().double_value(&[]);
    let bound = reference.abs() * rtol + atol;
    let passed = diff.le_tensor(&bound).all().int64_value(&[]) == 1 && max_abs.is_finite();
    let (a, b) = (out.flatten(0, -1), reference.flatten(0, -1));
    let cosine = (a.dot(&b) / (a.norm() * b.norm()).clamp_min(1e-300)).double_value(&[]);
    let (top1, top5) = agreement(&out, &reference);
    Ok(VerifyReport {
        passed,
        device: format!("{device:?}"),
        max_abs_diff: max_abs,
        max_rel_diff: max_rel,
        cosine_similarity: cosine,
        top1_agreement: top1,
        top5_agreement: top5,
        atol,
        rtol,
        from_weights: loaded.iter().filter(|l| **l).count(),
        from_module,
        unused,
        load_seconds,
        forward_seconds,
        output_shape: out.size(),
        logits: Vec::<f64>::try_from(&a).map_err(terr)?,
        reference_logits: Vec::<f64>::try_from(&b).map_err(terr)?,
    })
}

/// Fractions of rows whose arg-max, and whose top-5 sets, agree (for 2-D outputs).
fn agreement(out: &Tensor, reference: &Tensor) -> (f64, f64) {
    let size = out.size();
    let [rows, cols] = size.as_slice() else {
        return (f64::NAN, f64::NAN);
    };
    let k = (*cols).min(5);
    let (mut t1, mut t5) = (0i64, 0i64);
    for r in 0..*rows {
        let (o, e) = (out.get(r), reference.get(r));
        t1 += i64::from(o.argmax(0, false).int64_value(&[]) == e.argmax(0, false).int64_value(&[]));
        let top = |t: &Tensor| {
            let mut v: Vec<i64> =
                Vec::<i64>::try_from(t.topk(k, 0, true, true).1).unwrap_or_default();
            v.sort_unstable();
            v
        };
        t5 += i64::from(top(&o) == top(&e));
    }
    let n = (*rows).max(1) as f64;
    (t1 as f64 / n, t5 as f64 / n)
}

/// Panics with the report unless `weights` reproduce the fixture's logits: for downstream tests.
pub fn assert_parity(
    weights: &Path,
    module: &Path,
    fixture: &Path,
    opts: &VerifyOptions,
) -> VerifyReport {
    match verify(weights, module, fixture, opts) {
        Ok(r) if r.passed => r,
        Ok(r) => panic!("parity check failed: {r:#?}"),
        Err(e) => panic!("parity check could not run: {e}"),
    }
}
