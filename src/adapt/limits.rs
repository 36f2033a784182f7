//! Bounds on what an adaptation may compute, checked while planning, before any tensor is read
//! or any buffer is sized: a flag (`in_chans`, a resolution), a config or the checkpoint itself
//! (the patch kernel a pseudo-inverse is built for) must not size an allocation unchecked.

use super::Resample;
use crate::error::{Error, Result};

/// Most input channels a first conv is adapted to. Multispectral and hyperspectral stems have
/// tens to a few hundred bands; a million would ask for gigabytes of a repeated kernel.
pub const MAX_IN_CHANS: usize = 1024;

/// Most bytes, as float32 (the precision every transform computes in), of any tensor a
/// transform reads or produces (a resampled position embedding, an adapted first conv), and of
/// the grid a resampling passes through. A ViT-L/16 at 4096 px (256² tokens) needs 256 MiB; the
/// same at `--img-size 4096 --patch-size 1` would need 64 GiB.
pub const MAX_ADAPTED_TENSOR_BYTES: usize = 1 << 30;

/// Largest `img_size` side accepted (timm's models top out far below).
pub const MAX_IMG_SIZE: usize = 8192;
/// Largest `patch_size` / `window_size` side accepted: the pseudo-inverse works on (patch²)²
/// matrices.
pub const MAX_PATCH_SIZE: usize = 64;

/// Most elements of the (old kernel area × new kernel area) matrix a patch-embedding resample
/// builds and takes the pseudo-inverse of (its SVD costs about old·new·min(old, new)): 64×64
/// to 32×32 is 4 Mi.
pub const MAX_PINV_ELEMENTS: usize = 1 << 22;

/// `in_chans` (and the base channel count a config gives) within [`MAX_IN_CHANS`].
pub(crate) fn check_in_chans(in_chans: usize, base: usize) -> Result<()> {
    Error::at_most("MAX_IN_CHANS", in_chans, MAX_IN_CHANS, || {
        "in_chans (input channels to adapt the first conv to)"
    })?;
    Error::at_most("MAX_IN_CHANS", base, MAX_IN_CHANS, || {
        "the base channel count of the pretrained weights"
    })
}

/// Bytes as float32 of a tensor of `shape`, `None` on overflow.
fn f32_bytes(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(4usize, |acc, &d| acc.checked_mul(d))
}

/// A tensor of `shape` that `key`'s transform reads or produces is within
/// [`MAX_ADAPTED_TENSOR_BYTES`].
pub(crate) fn check_tensor(key: &str, what: &str, shape: &[usize]) -> Result<()> {
    let bytes = f32_bytes(shape).unwrap_or(usize::MAX);
    Error::at_most(
        "MAX_ADAPTED_TENSOR_BYTES",
        bytes,
        MAX_ADAPTED_TENSOR_BYTES,
        || {
            format!(
                "bytes as float32 of `{}` {what} {shape:?}",
                crate::error::printable(key)
            )
        },
    )
}

/// The resampling `op` of `key` (from `from` to `to`), its intermediate grids and, for a patch
/// embedding, its pseudo-inverse: the source kernel (the checkpoint's own) within
/// [`MAX_PATCH_SIZE`] per side and the matrix within [`MAX_PINV_ELEMENTS`].
pub(crate) fn check_resample(key: &str, op: &Resample, from: &[usize], to: &[usize]) -> Result<()> {
    check_tensor(key, "read for resampling, of shape", from)?;
    check_tensor(key, "resampled to shape", to)?;
    match *op {
        Resample::PatchEmbed {
            from_patch,
            to_patch,
            ..
        } => {
            for side in from_patch {
                Error::at_most("MAX_PATCH_SIZE", side, MAX_PATCH_SIZE, || {
                    format!(
                        "side of the checkpoint's patch kernel `{}` {from_patch:?}",
                        crate::error::printable(key)
                    )
                })?;
            }
            let area = |p: [usize; 2]| p[0].checked_mul(p[1]);
            let elements = area(from_patch)
                .zip(area(to_patch))
                .and_then(|(a, b)| a.checked_mul(b))
                .unwrap_or(usize::MAX);
            Error::at_most("MAX_PINV_ELEMENTS", elements, MAX_PINV_ELEMENTS, || {
                format!("elements of the pseudo-inverse resizing patch kernels {from_patch:?} to {to_patch:?}")
            })
        }
        // a separable resize passes through (to_h, from_w) or (from_h, to_w) planes
        Resample::AbsPosEmbed {
            from_grid, to_grid, ..
        } => {
            let channels = to.last().copied().unwrap_or(1);
            for grid in [[to_grid[0], from_grid[1]], [from_grid[0], to_grid[1]]] {
                check_tensor(
                    key,
                    "passes through a grid of",
                    &[grid[0], grid[1], channels],
                )?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
