//! PyTorch's CPU `F.interpolate` on (C, H, W) float32 planes, `align_corners=False`, for the
//! modes timm's resampling uses: `bicubic` and `bilinear`, with or without `antialias`.
//!
//! Ported from aten/src/ATen/native/cpu/UpSampleKernel.cpp (torch 2.11): the antialias path is
//! the separable kernel (`_separable_upsample_generic_Nd_kernel_impl`: width first, then
//! height, a dimension of unchanged size skipped) whose filter support grows with the
//! downscale factor and whose weights are normalised to sum to one (Keys cubic with
//! A = -0.5, or the triangle); the plain path is `upsample_bicubic2d` (A = -0.75, four taps,
//! indices clamped to the border) and `upsample_bilinear2d`. The mixed float/double
//! arithmetic of the C++ is reproduced where it decides a rounding.

/// The interpolation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Cubic convolution.
    Bicubic,
    /// Linear.
    Bilinear,
}

/// A mode and whether it antialiases (`F.interpolate(mode=…, antialias=…)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Interp {
    /// The mode.
    pub mode: Mode,
    /// The antialias flag.
    pub antialias: bool,
}

/// One output position along an axis: the first input index and its weights.
#[derive(Debug, Clone)]
struct Taps {
    /// Input index of each weight.
    index: Vec<usize>,
    weight: Vec<f32>,
}

// torch's x86 kernels are built with -mfma and GCC contracts `a * b + c` into fused
// multiply-adds; the cubic's cancellation near |x| = 1 makes that visible in the weights, so the
// same contractions are written out here.
fn cubic1(x: f32, a: f32) -> f32 {
    ((a + 2.0).mul_add(x, -(a + 3.0)) * x).mul_add(x, 1.0)
}

fn cubic2(x: f32, a: f32) -> f32 {
    a.mul_add(x, -5.0 * a)
        .mul_add(x, 8.0 * a)
        .mul_add(x, -4.0 * a)
}

fn aa_filter(mode: Mode, x: f32) -> f32 {
    let x = x.abs();
    match mode {
        Mode::Bicubic if x < 1.0 => cubic1(x, -0.5),
        Mode::Bicubic if x < 2.0 => cubic2(x, -0.5),
        Mode::Bilinear if x < 1.0 => 1.0 - x,
        _ => 0.0,
    }
}

/// `(scalar_t)input_size / output_size` in float.
fn scale(input: usize, output: usize) -> f32 {
    input as f32 / output as f32
}

/// `HelperInterpBase::_compute_indices_min_size_weights_aa` for every output index.
fn taps_aa(input: usize, output: usize, mode: Mode) -> Vec<Taps> {
    let interp_size: f64 = match mode {
        Mode::Bicubic => 4.0,
        Mode::Bilinear => 2.0,
    };
    let scale = scale(input, output);
    let support = if scale >= 1.0 {
        ((interp_size * 0.5) * f64::from(scale)) as f32
    } else {
        (interp_size * 0.5) as f32
    };
    let max_size = (f64::from(support).ceil() as i64) * 2 + 1;
    let invscale = if scale >= 1.0 {
        (1.0 / f64::from(scale)) as f32
    } else {
        1.0
    };
    let input_i = input as i64;
    (0..output)
        .map(|i| {
            let center = (f64::from(scale) * (i as f64 + 0.5)) as f32;
            let xmin = ((f64::from(center - support) + 0.5) as i64).max(0);
            let xsize = (((f64::from(center + support) + 0.5) as i64).min(input_i) - xmin)
                .clamp(0, max_size);
            let mut weight: Vec<f32> = (0..xsize)
                .map(|j| {
                    let d = ((j + xmin) as f32 - center) as f64 + 0.5;
                    aa_filter(mode, (d * f64::from(invscale)) as f32)
                })
                .collect();
            let mut total = 0.0f32;
            for w in &weight {
                total += w;
            }
            if total != 0.0 {
                for w in weight.iter_mut() {
                    *w /= total;
                }
            }
            Taps {
                index: (0..xsize).map(|j| (xmin + j) as usize).collect(),
                weight,
            }
        })
        .collect()
}

/// `area_pixel_compute_source_index` and `guard_index_and_lambda` in float.
fn source_index(scale: f32, i: usize, input: usize, cubic: bool) -> (i64, f32) {
    let mut src = scale.mul_add(i as f32 + 0.5, -0.5);
    if !cubic && src < 0.0 {
        src = 0.0;
    }
    let index = (src.floor() as i64).min(input as i64 - 1);
    let lambda = (src - index as f32).clamp(0.0, 1.0);
    (index, lambda)
}

/// `HelperInterpCubic::compute_indices_weights` (A = -0.75).
fn taps_cubic(input: usize, output: usize) -> Vec<Taps> {
    let scale = scale(input, output);
    let last = input as i64 - 1;
    (0..output)
        .map(|i| {
            let (index, t) = source_index(scale, i, input, true);
            let a = -0.75f32;
            let x2 = 1.0 - t;
            Taps {
                index: (0..4)
                    .map(|j| (index - 1 + j).clamp(0, last) as usize)
                    .collect(),
                weight: vec![
                    cubic2(t + 1.0, a),
                    cubic1(t, a),
                    cubic1(x2, a),
                    cubic2(x2 + 1.0, a),
                ],
            }
        })
        .collect()
}

/// `HelperInterpLinear::compute_indices_weights`.
fn taps_linear(input: usize, output: usize) -> Vec<Taps> {
    let scale = scale(input, output);
    (0..output)
        .map(|i| {
            if input == output {
                return Taps {
                    index: vec![i, i],
                    weight: vec![1.0, 0.0],
                };
            }
            let (index, l1) = source_index(scale, i, input, false);
            let next = if index < input as i64 - 1 { 1 } else { 0 };
            Taps {
                index: vec![index as usize, (index + next) as usize],
                weight: vec![1.0 - l1, l1],
            }
        })
        .collect()
}

fn taps(input: usize, output: usize, interp: Interp) -> Vec<Taps> {
    match (interp.antialias, interp.mode) {
        (true, mode) => taps_aa(input, output, mode),
        (false, Mode::Bicubic) => taps_cubic(input, output),
        (false, Mode::Bilinear) => taps_linear(input, output),
    }
}

/// One weighted sum in the kernel's order: first product, then a fused `+=` for each further one.
fn dot(taps: &Taps, at: impl Fn(usize) -> f32) -> f32 {
    let mut acc = 0.0f32;
    for (k, (&i, &w)) in taps.index.iter().zip(&taps.weight).enumerate() {
        acc = if k == 0 {
            at(i) * w
        } else {
            at(i).mul_add(w, acc)
        };
    }
    acc
}

/// Resizes `planes` (C planes of `from` = (H, W), row-major, C·H·W values) to `to`, as
/// `F.interpolate(x[None], size=to, mode, antialias, align_corners=False)[0]` on CPU.
/// `None` when `planes` does not hold C whole planes or a size is 0.
pub fn resize(
    planes: &[f32],
    from: [usize; 2],
    to: [usize; 2],
    interp: Interp,
) -> Option<Vec<f32>> {
    let [h, w] = from;
    let [oh, ow] = to;
    if h == 0 || w == 0 || oh == 0 || ow == 0 || planes.len() % (h * w) != 0 {
        return None;
    }
    let c = planes.len() / (h * w);
    // the antialias kernel skips a dimension that keeps its size; the plain kernels compute it
    // with weights (1, 0, …), which is the same value
    let wide = if w == ow && interp.antialias {
        planes.to_vec()
    } else {
        let tw = taps(w, ow, interp);
        let mut out = Vec::with_capacity(c * h * ow);
        for row in planes.chunks_exact(w) {
            out.extend(tw.iter().map(|t| dot(t, |i| row[i])));
        }
        out
    };
    if h == oh && interp.antialias {
        return Some(wide);
    }
    let th = taps(h, oh, interp);
    let mut out = Vec::with_capacity(c * oh * ow);
    for plane in wide.chunks_exact(h * ow) {
        for t in &th {
            for x in 0..ow {
                out.push(dot(t, |i| plane[i * ow + x]));
            }
        }
    }
    Some(out)
}
