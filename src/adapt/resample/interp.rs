//! PyTorch's CPU `F.interpolate` on (C, H, W) float32 planes, for the modes timm's resampling
//! uses: `bicubic` and `bilinear`, with or without `antialias`; `align_corners=True` only for
//! plain bilinear (RADIO's position embeddings).
//!
//! Ported from aten/src/ATen/native/cpu/UpSampleKernel.cpp (torch 2.11): the antialias path is
//! the separable kernel (`_separable_upsample_generic_Nd_kernel_impl`: width first, then
//! height, a dimension of unchanged size skipped) whose filter support grows with the
//! downscale factor and whose weights are normalised to sum to one (Keys cubic with
//! A = -0.5, or the triangle); the plain path is `upsample_bicubic2d` (A = -0.75, four taps,
//! indices clamped to the border) and `upsample_bilinear2d`. The mixed float/double
//! arithmetic of the C++ is reproduced where it decides a rounding.
//!
//! Plain bilinear goes through `upsample_linear_channels_last` wherever torch sends it there
//! (a channels-last input with more than three channels, as timm's permuted position
//! embeddings are, or an output of at most 128 rows plus columns): one product weight per
//! corner, the vectorised channels (multiples of 8: eight floats a vector, as torch 2.11's x86
//! build runs it even on AVX-512 machines) and the scalar tail
//! summed in the orders GCC's contractions give them, matched bit for bit against torch 2.11.

// the mode is data the registry records per architecture (its filter's interpolation)
pub use crate::registry::resize::Mode;

/// A mode, whether it antialiases and whether it aligns corners
/// (`F.interpolate(mode=…, antialias=…, align_corners=…)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Interp {
    /// The mode.
    pub mode: Mode,
    /// The antialias flag.
    pub antialias: bool,
    /// The align_corners flag (plain bilinear only).
    pub align_corners: bool,
}

impl Interp {
    /// `mode` with or without antialias, corners not aligned (timm's default).
    pub const fn new(mode: Mode, antialias: bool) -> Interp {
        Interp {
            mode,
            antialias,
            align_corners: false,
        }
    }
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

/// `area_pixel_compute_scale` in float: `align_corners` maps the corner pixels onto each other.
fn linear_scale(input: usize, output: usize, align_corners: bool) -> f32 {
    match (align_corners, output > 1) {
        (true, true) => (input - 1) as f32 / (output - 1) as f32,
        (true, false) => 0.0,
        (false, _) => scale(input, output),
    }
}

/// `area_pixel_compute_source_index` and `guard_index_and_lambda` in float.
fn source_index(scale: f32, i: usize, input: usize, cubic: bool) -> (i64, f32) {
    guard(scale.mul_add(i as f32 + 0.5, -0.5), input, cubic)
}

fn guard(mut src: f32, input: usize, cubic: bool) -> (i64, f32) {
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
            let [(i0, w0), (i1, w1)] = linear_pair(scale, i, input, output, false);
            Taps {
                index: vec![i0, i1],
                weight: vec![w0, w1],
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

/// The antialias kernel's sum (`interpolate_separable_1d`: `output = t·w; output += t·w` over a
/// run-time number of taps). GCC vectorises the products of that loop, eight and then four at a
/// time, and adds them in order without fusing; the taps left over go through the scalar loop,
/// fused. So of the `m` added taps the first `8·⌊m/8⌋` (and four more when `m mod 8 ≥ 4`) are
/// rounded products, the rest fused multiply-adds: bit for bit torch 2.11's result for every
/// downscale checked (3 to 44 taps, both passes). Up to four taps (every upscale) it is
/// [`dot`].
fn dot_aa(taps: &Taps, at: impl Fn(usize) -> f32) -> f32 {
    let added = taps.index.len().saturating_sub(1);
    let plain = added / 8 * 8 + if added % 8 >= 4 { 4 } else { 0 };
    let mut acc = 0.0f32;
    for (k, (&i, &w)) in taps.index.iter().zip(&taps.weight).enumerate() {
        acc = match k {
            0 => at(i) * w,
            k if k <= plain => acc + at(i) * w,
            _ => at(i).mul_add(w, acc),
        };
    }
    acc
}

/// The antialias kernel's sum or the plain kernels'.
fn sum(antialias: bool, taps: &Taps, at: impl Fn(usize) -> f32) -> f32 {
    if antialias {
        dot_aa(taps, at)
    } else {
        dot(taps, at)
    }
}

/// `compute_source_index_and_lambda`: the two input indices and their weights.
fn linear_pair(
    scale: f32,
    i: usize,
    input: usize,
    output: usize,
    align_corners: bool,
) -> [(usize, f32); 2] {
    if input == output {
        return [(i, 1.0), (i, 0.0)];
    }
    let src = if align_corners {
        scale * i as f32
    } else {
        scale.mul_add(i as f32 + 0.5, -0.5)
    };
    let (index, l1) = guard(src, input, false);
    let next = if index < input as i64 - 1 { 1 } else { 0 };
    [(index as usize, 1.0 - l1), ((index + next) as usize, l1)]
}

/// torch's channels-last kernel sums eight channels at a time in vector registers (found on an
/// AVX-512 machine too: channel counts 8 to 48 checked one by one against torch 2.11) and the
/// rest one by one, with another order of fused operations.
const VECTOR: usize = 8;

/// `upsample_linear_channels_last` for `n` images of `c` channels (planes in NCHW order).
fn bilinear_channels_last(
    planes: &[f32],
    c: usize,
    from: [usize; 2],
    to: [usize; 2],
    align_corners: bool,
) -> Vec<f32> {
    let [h, w] = from;
    let [oh, ow] = to;
    // no channels (a hostile checkpoint's (1, N, 0) embedding) is no images
    let n = planes.len().checked_div(c * h * w).unwrap_or(0);
    let sh = linear_scale(h, oh, align_corners);
    let sw = linear_scale(w, ow, align_corners);
    let rows: Vec<_> = (0..oh)
        .map(|y| linear_pair(sh, y, h, oh, align_corners))
        .collect();
    let cols: Vec<_> = (0..ow)
        .map(|x| linear_pair(sw, x, w, ow, align_corners))
        .collect();
    let vectorised = c - c % VECTOR;
    let mut out = vec![0.0f32; n * c * oh * ow];
    for b in 0..n {
        for (y, &[(h0, l0), (h1, l1)]) in rows.iter().enumerate() {
            for (x, &[(w0, m0), (w1, m1)]) in cols.iter().enumerate() {
                let (w00, w01, w10, w11) = (l0 * m0, l0 * m1, l1 * m0, l1 * m1);
                for ch in 0..c {
                    let plane = &planes[(b * c + ch) * h * w..][..h * w];
                    let (a, p, q, d) = (
                        plane[h0 * w + w0],
                        plane[h0 * w + w1],
                        plane[h1 * w + w0],
                        plane[h1 * w + w1],
                    );
                    out[((b * c + ch) * oh + y) * ow + x] = if ch < vectorised {
                        // a·w00 + (p·w01 + (q·w10 + d·w11))
                        a.mul_add(w00, p.mul_add(w01, d.mul_add(w11, q * w10)))
                    } else {
                        // ((a·w00 + p·w01) + q·w10) + d·w11
                        d.mul_add(w11, q.mul_add(w10, a.mul_add(w00, p * w01)))
                    };
                }
            }
        }
    }
    out
}

/// Resizes `planes` (C planes of `from` = (H, W), row-major, C·H·W values) to `to`, as
/// `F.interpolate(x[None], size=to, mode, antialias, align_corners)[0]` on CPU, `x` a
/// channels-last tensor (a permuted (1, H, W, C) one, as timm's position embeddings are).
/// `None` when `planes` does not hold C whole planes, a size is 0, or corners are aligned
/// for anything but plain bilinear.
pub fn resize(
    planes: &[f32],
    from: [usize; 2],
    to: [usize; 2],
    interp: Interp,
) -> Option<Vec<f32>> {
    let c = whole_planes(planes, from, to)?;
    resize_images(planes, c, true, from, to, interp)
}

/// Resizes a batch of contiguous single-channel images (N planes), as
/// `F.interpolate(x, size=to, …)` on an (N, 1, H, W) tensor: timm's patch-embedding basis.
pub fn resize_batch(
    planes: &[f32],
    from: [usize; 2],
    to: [usize; 2],
    interp: Interp,
) -> Option<Vec<f32>> {
    whole_planes(planes, from, to)?;
    resize_images(planes, 1, false, from, to, interp)
}

/// MViTv2's `F.interpolate(mode='linear')` of C rows of length `from` to length `to`
/// (`upsample_linear1d`: two taps, `t0·w0 + t1·w1`).
pub fn linear1d(rows: &[f32], from: usize, to: usize) -> Option<Vec<f32>> {
    whole_planes(rows, [1, from], [1, to])?;
    let tw = taps_linear(from, to);
    Some(
        rows.chunks_exact(from)
            .flat_map(|row| tw.iter().map(|t| dot(t, |i| row[i])).collect::<Vec<_>>())
            .collect(),
    )
}

/// The number of planes, or `None` for a zero size or a partial plane.
fn whole_planes(planes: &[f32], from: [usize; 2], to: [usize; 2]) -> Option<usize> {
    let [h, w] = from;
    let [oh, ow] = to;
    if h == 0 || w == 0 || oh == 0 || ow == 0 || planes.len() % (h * w) != 0 {
        return None;
    }
    Some(planes.len() / (h * w))
}

/// `c` channels per image; `channels_last` when the input tensor is channels-last contiguous.
fn resize_images(
    planes: &[f32],
    c: usize,
    channels_last: bool,
    from: [usize; 2],
    to: [usize; 2],
    interp: Interp,
) -> Option<Vec<f32>> {
    let [h, w] = from;
    let [oh, ow] = to;
    if interp.mode == Mode::Bilinear && !interp.antialias {
        // `_use_channels_last_kernel_2d`; a single channel is channels-last contiguous too
        if channels_last && c > 3 || oh + ow <= 128 {
            return Some(bilinear_channels_last(
                planes,
                c,
                from,
                to,
                interp.align_corners,
            ));
        }
    }
    if interp.align_corners {
        return None;
    }
    let aa = interp.antialias;
    // the antialias kernel skips a dimension that keeps its size; the plain kernels compute it
    // with weights (1, 0, …), which is the same value
    let wide = if w == ow && interp.antialias {
        planes.to_vec()
    } else {
        let tw = taps(w, ow, interp);
        let mut out = Vec::with_capacity(planes.len() / w * ow);
        for row in planes.chunks_exact(w) {
            out.extend(tw.iter().map(|t| sum(aa, t, |i| row[i])));
        }
        out
    };
    if h == oh && interp.antialias {
        return Some(wide);
    }
    let th = taps(h, oh, interp);
    let mut out = Vec::with_capacity(wide.len() / h * oh);
    for plane in wide.chunks_exact(h * ow) {
        for t in &th {
            for x in 0..ow {
                out.push(sum(aa, t, |i| plane[i * ow + x]));
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_corners_land_on_corners() {
        // 4 channels of 3x5 upscaled to 7x9: with align_corners the four corner pixels are copied
        let planes: Vec<f32> = (0..60).map(|i| (i * 37 % 11) as f32 * 0.25 - 1.0).collect();
        let interp = Interp {
            align_corners: true,
            ..Interp::new(Mode::Bilinear, false)
        };
        let out = resize(&planes, [3, 5], [7, 9], interp).unwrap();
        for c in 0..4 {
            let (p, o) = (&planes[c * 15..][..15], &out[c * 63..][..63]);
            assert_eq!([o[0], o[8], o[54], o[62]], [p[0], p[4], p[10], p[14]]);
        }
        // the second column sits half-way between the first two input columns
        assert_eq!(out[1], 0.5 * planes[0] + 0.5 * planes[1]);
        // without it, a third of the way
        let plain = resize(&planes, [3, 5], [7, 9], Interp::new(Mode::Bilinear, false)).unwrap();
        assert_ne!(plain[1], out[1]);
    }

    #[test]
    fn no_channels_is_no_output_not_a_division_by_zero() {
        for mode in [Mode::Bilinear, Mode::Bicubic] {
            for aa in [false, true] {
                let interp = Interp::new(mode, aa);
                assert_eq!(resize(&[], [2, 2], [3, 3], interp), Some(vec![]));
                assert_eq!(resize_batch(&[], [2, 2], [3, 3], interp), Some(vec![]));
            }
        }
        assert_eq!(linear1d(&[], 3, 5), Some(vec![]));
    }

    #[test]
    fn aligned_corners_only_for_plain_bilinear() {
        let interp = Interp {
            align_corners: true,
            ..Interp::new(Mode::Bicubic, true)
        };
        assert_eq!(resize(&[0.0; 4], [2, 2], [3, 3], interp), None);
    }
}
