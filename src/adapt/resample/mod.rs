//! Resolution adaptation, as timm 1.0.31's checkpoint filters do it at load time: absolute
//! position embeddings (`resample_abs_pos_embed`), patch embeddings through a pseudo-inverse
//! (`resample_patch_embed`), relative-position bias tables (`resize_rel_pos_bias_table`) and
//! LeViT-style attention biases (`resize_rel_pos_bias_table_levit`).
//! Every operation works on float32 values and returns float32; the caller rounds to the source
//! dtype, as timm does (`.float()` … `.to(orig_dtype)`).

pub mod interp;
pub mod rel_pos;

use nalgebra::DMatrix;
use serde::Serialize;

pub use interp::{Interp, Mode};

/// How one tensor is resampled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Resample {
    /// `resample_abs_pos_embed`: a (1, prefix + H·W, C) embedding; the prefix tokens are kept.
    AbsPosEmbed {
        /// Class / distillation / register tokens kept apart.
        prefix_tokens: usize,
        /// Source grid (H, W).
        from_grid: [usize; 2],
        /// Target grid.
        to_grid: [usize; 2],
        /// The family's interpolation.
        interp: Interp,
    },
    /// `resample_patch_embed`: an (O, I, h, w) kernel through the pseudo-inverse of the resize.
    PatchEmbed {
        /// Source kernel size.
        from_patch: [usize; 2],
        /// Target kernel size.
        to_patch: [usize; 2],
        /// The family's interpolation.
        interp: Interp,
    },
    /// `resize_rel_pos_bias_table`: flat (N + extra, heads) or TF-style (heads, H, W).
    RelPosBiasTable {
        /// Source table side lengths (2w-1).
        from_table: [usize; 2],
        /// Target table side lengths.
        to_table: [usize; 2],
        /// Trailing tokens kept (BEiT's 3 class-token entries).
        extra_tokens: usize,
        /// (N + extra, heads) rather than (heads, H, W).
        flat: bool,
    },
    /// `resize_rel_pos_bias_table_levit`: LeViT-style (heads, S·S) attention biases, each head's
    /// S×S table resized as an image (EfficientViT-MSRA's filter).
    AttentionBiases {
        /// Source side S.
        from_side: usize,
        /// Target side.
        to_side: usize,
        /// The interpolation (timm's defaults: bicubic with antialias).
        interp: Interp,
    },
    /// MViTv2's filter: a decomposed (L, C) `rel_pos_h` / `rel_pos_w` resized along L by
    /// `F.interpolate(mode='linear')` (no antialias).
    RelPosLinear {
        /// Source length L (2·size - 1).
        from_len: usize,
        /// Target length.
        to_len: usize,
    },
}

impl Resample {
    /// Whether timm computes this operation in float32 whatever the source dtype (`.float()` …
    /// `.to(orig_dtype)`). MViTv2's filter interpolates in the source dtype, so timmconv's
    /// float32 port matches it for float32 sources only.
    pub fn computes_in_float32(&self) -> bool {
        !matches!(self, Resample::RelPosLinear { .. })
    }

    /// The output shape for a tensor of `shape`, or `None` when the operation does not fit it.
    pub fn out_shape(&self, shape: &[usize]) -> Option<Vec<usize>> {
        match *self {
            Resample::AbsPosEmbed {
                prefix_tokens,
                from_grid,
                to_grid,
                ..
            } => {
                let &[1, n, c] = shape else { return None };
                let tokens = |g: [usize; 2]| {
                    g[0].checked_mul(g[1])
                        .and_then(|a| a.checked_add(prefix_tokens))
                };
                (Some(n) == tokens(from_grid)).then_some(())?;
                Some(vec![1, tokens(to_grid)?, c])
            }
            Resample::PatchEmbed {
                from_patch,
                to_patch,
                ..
            } => {
                let &[o, i, h, w] = shape else { return None };
                ([h, w] == from_patch).then(|| vec![o, i, to_patch[0], to_patch[1]])
            }
            Resample::RelPosBiasTable {
                from_table,
                to_table,
                extra_tokens,
                flat,
            } => match (flat, shape) {
                (true, &[n, heads]) => (n == from_table[0] * from_table[1] + extra_tokens)
                    .then(|| vec![to_table[0] * to_table[1] + extra_tokens, heads]),
                (false, &[heads, h, w]) => {
                    ([h, w] == from_table).then(|| vec![heads, to_table[0], to_table[1]])
                }
                _ => None,
            },
            Resample::AttentionBiases {
                from_side, to_side, ..
            } => {
                let &[heads, n] = shape else { return None };
                (n == from_side * from_side).then(|| vec![heads, to_side * to_side])
            }
            Resample::RelPosLinear { from_len, to_len } => {
                let &[l, c] = shape else { return None };
                (l == from_len).then(|| vec![to_len, c])
            }
        }
    }

    /// Applies the operation to float32 values of `shape`; `None` when they do not fit.
    pub fn apply(&self, v: &[f32], shape: &[usize]) -> Option<Vec<f32>> {
        let out = self.out_shape(shape)?;
        if v.len() != shape.iter().product::<usize>() {
            return None;
        }
        match *self {
            Resample::AbsPosEmbed {
                prefix_tokens,
                from_grid,
                to_grid,
                interp,
            } => {
                let c = *shape.get(2)?;
                let (prefix, grid) = v.split_at(prefix_tokens * c);
                // (H·W, C) -> (C, H, W) planes, resize, back to (H'·W', C)
                let hw = from_grid[0] * from_grid[1];
                let planes = transpose(grid, hw, c);
                let resized = interp::resize(&planes, from_grid, to_grid, interp)?;
                let mut result = prefix.to_vec();
                result.extend(transpose(&resized, c, to_grid[0] * to_grid[1]));
                Some(result)
            }
            Resample::PatchEmbed {
                from_patch,
                to_patch,
                interp,
            } => {
                let pinv = pinv_resize_matrix(from_patch, to_patch, interp)?;
                let old = from_patch[0] * from_patch[1];
                let new = to_patch[0] * to_patch[1];
                let mut result = Vec::with_capacity(v.len() / old * new);
                for k in v.chunks_exact(old) {
                    for j in 0..new {
                        let mut acc = 0.0f64;
                        for (i, x) in k.iter().enumerate() {
                            acc += f64::from(*x) * pinv[(i, j)];
                        }
                        result.push(acc as f32);
                    }
                }
                debug_assert_eq!(result.len(), out.iter().product::<usize>());
                Some(result)
            }
            Resample::RelPosBiasTable {
                from_table,
                to_table,
                extra_tokens,
                flat,
            } => {
                if !flat {
                    return rel_pos::resize_planes(v, from_table, to_table);
                }
                let heads = *shape.get(1)?;
                let n = from_table[0] * from_table[1];
                let (table, extra) = v.split_at(n * heads);
                let planes = transpose(table, n, heads);
                let resized = rel_pos::resize_planes(&planes, from_table, to_table)?;
                let mut result = transpose(&resized, heads, to_table[0] * to_table[1]);
                result.extend_from_slice(extra);
                debug_assert_eq!(extra.len(), extra_tokens * heads);
                Some(result)
            }
            // (heads, S·S) is already heads planes of S×S: timm's `.T` … `.permute(1, 0)` round
            // trip lands on the same layout
            Resample::AttentionBiases {
                from_side,
                to_side,
                interp,
            } => interp::resize(v, [from_side; 2], [to_side; 2], interp),
            // (L, C) -> C rows of L, each resized as a 1×L image (a height of one is copied
            // unchanged by the bilinear kernel, which is then torch's linear1d) -> (L', C)
            Resample::RelPosLinear { from_len, to_len } => {
                let c = *shape.get(1)?;
                let rows = transpose(v, from_len, c);
                let resized = interp::linear1d(&rows, from_len, to_len)?;
                Some(transpose(&resized, c, to_len))
            }
        }
    }
}

/// (rows, cols) row-major to (cols, rows).
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// timm's `_compute_resize_matrix` (each basis kernel resized in float32, one column each) and
/// its pseudo-inverse: torch.linalg.pinv's rule (singular values below
/// `max(m, n) · eps(f32) · σ_max` dropped), computed by SVD in double. Returns the
/// (old·old, new·new) matrix that maps a flattened kernel to the resampled one.
pub fn pinv_resize_matrix(
    from: [usize; 2],
    to: [usize; 2],
    interp: Interp,
) -> Option<DMatrix<f64>> {
    let old = from[0].checked_mul(from[1])?;
    let new = to[0].checked_mul(to[1])?;
    if old == 0 || new == 0 {
        return None;
    }
    let mut basis = vec![0.0f32; old.checked_mul(old)?];
    for i in 0..old {
        basis[i * old + i] = 1.0;
    }
    let resized = interp::resize_batch(&basis, from, to, interp)?;
    // resized holds `old` planes of `new` values: plane i is column i of the (new, old) matrix
    let m = DMatrix::<f64>::from_fn(new, old, |r, c| f64::from(resized[c * new + r]));
    let svd = m.svd(true, true);
    let smax = svd.singular_values.iter().cloned().fold(0.0f64, f64::max);
    let cutoff = smax * (new.max(old) as f64) * f64::from(f32::EPSILON);
    svd.pseudo_inverse(cutoff).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AA_CUBIC: Interp = Interp::new(Mode::Bicubic, true);

    #[test]
    fn pinv_of_an_upscale_inverts_it() {
        // resizing a kernel up and mapping it back through the pseudo-inverse is the identity
        let p = pinv_resize_matrix([4, 4], [6, 6], AA_CUBIC).unwrap();
        assert_eq!(p.shape(), (16, 36));
        let basis: Vec<f32> = (0..16).map(|i| (i * 7 % 5) as f32 - 2.0).collect();
        let up = interp::resize(&basis, [4, 4], [6, 6], AA_CUBIC).unwrap();
        // pinv maps old -> new kernels with <x, k_old> = <R x, k_new>; check R^T p^T = I
        let r = DMatrix::<f64>::from_fn(36, 16, |i, j| {
            let mut e = vec![0.0f32; 16];
            e[j] = 1.0;
            f64::from(interp::resize(&e, [4, 4], [6, 6], AA_CUBIC).unwrap()[i])
        });
        let id = &p * &r;
        for i in 0..16 {
            for j in 0..16 {
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((id[(i, j)] - want).abs() < 1e-5, "{i},{j}: {}", id[(i, j)]);
            }
        }
        assert_eq!(up.len(), 36);
    }

    #[test]
    fn abs_pos_keeps_prefix_and_shape() {
        let op = Resample::AbsPosEmbed {
            prefix_tokens: 1,
            from_grid: [2, 2],
            to_grid: [3, 3],
            interp: AA_CUBIC,
        };
        let v: Vec<f32> = (0..10).map(|x| x as f32).collect();
        assert_eq!(op.out_shape(&[1, 5, 2]), Some(vec![1, 10, 2]));
        assert_eq!(op.out_shape(&[1, 6, 2]), None);
        let out = op.apply(&v, &[1, 5, 2]).unwrap();
        assert_eq!(&out[..2], &[0.0, 1.0]);
        assert_eq!(out.len(), 20);
    }
}
