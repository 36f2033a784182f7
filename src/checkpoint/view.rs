//! A tensor as torch describes it: dtype, shape, strides and offset over a storage.

use std::borrow::Cow;

use serde::Serialize;

use crate::dtype::DType;
use crate::error::{Error, Result, TensorProblem};

/// One tensor of a state dict, described but not loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorInfo {
    /// The state-dict key (after timm's prefix cleaning).
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub strides: Vec<usize>,
    /// Offset of the first element in the storage, in elements.
    pub offset: usize,
    /// The storage this tensor views (a key of the checkpoint's storage table).
    pub storage: String,
    /// Elements in that storage.
    pub storage_numel: usize,
    /// Whether another tensor of the state dict views the same storage.
    pub shared: bool,
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes of the materialised tensor.
    pub fn nbytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }

    /// Whether the elements are laid out densely in row-major order.
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1usize;
        for (&dim, &stride) in self.shape.iter().zip(&self.strides).rev() {
            if dim != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(dim);
        }
        true
    }

    /// Checks that every element the view addresses lies inside its storage, and that the byte
    /// size of the tensor is representable. Called once when a checkpoint is opened.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.shape.len() != self.strides.len() {
            return Err(Error::tensor(
                TensorProblem::View,
                &self.name,
                format!(
                    "shape {:?} and stride {:?} have different ranks",
                    self.shape, self.strides
                ),
            ));
        }
        let numel = self
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .and_then(|n| n.checked_mul(self.dtype.size()).map(|_| n))
            .ok_or_else(|| {
                Error::tensor(
                    TensorProblem::View,
                    &self.name,
                    format!("shape {:?} overflows", self.shape),
                )
            })?;
        if numel == 0 {
            return Ok(());
        }
        let mut last = self.offset;
        for (&d, &s) in self.shape.iter().zip(&self.strides) {
            last = (d - 1)
                .checked_mul(s)
                .and_then(|x| x.checked_add(last))
                .ok_or_else(|| {
                    Error::tensor(TensorProblem::View, &self.name, "view extent overflows")
                })?;
        }
        if last >= self.storage_numel {
            return Err(Error::tensor(TensorProblem::View,
                &self.name,
                format!(
                    "view (offset {}, shape {:?}, stride {:?}) reaches element {} but its storage `{}` has {} elements",
                    self.offset, self.shape, self.strides, last, self.storage, self.storage_numel
                ),
            ));
        }
        Ok(())
    }

    /// The tensor's bytes in row-major order, borrowed from `storage` when the view is
    /// contiguous, gathered into a new buffer otherwise. `storage` must hold
    /// `storage_numel` elements (checked).
    pub fn gather<'a>(&self, storage: &'a [u8]) -> Result<Cow<'a, [u8]>> {
        let es = self.dtype.size();
        if storage.len() / es < self.storage_numel {
            return Err(Error::tensor(
                TensorProblem::View,
                &self.name,
                format!(
                    "storage `{}` holds {} bytes, fewer than its {} elements of {}",
                    self.storage,
                    storage.len(),
                    self.storage_numel,
                    self.dtype
                ),
            ));
        }
        self.validate()?;
        let numel = self.numel();
        if numel == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        if self.is_contiguous() {
            let start = self.offset * es;
            return Ok(Cow::Borrowed(&storage[start..start + numel * es]));
        }
        let mut out = Vec::with_capacity(numel * es);
        gather_strided(
            storage,
            es,
            self.offset,
            &self.shape,
            &self.strides,
            &mut out,
        );
        Ok(Cow::Owned(out))
    }
}

/// Copies a validated strided view into `out`, innermost dimension as runs where possible.
fn gather_strided(
    storage: &[u8],
    es: usize,
    offset: usize,
    shape: &[usize],
    strides: &[usize],
    out: &mut Vec<u8>,
) {
    let (Some(&inner_len), Some(&inner_stride)) = (shape.last(), strides.last()) else {
        out.extend_from_slice(&storage[offset * es..(offset + 1) * es]);
        return;
    };
    let outer = &shape[..shape.len() - 1];
    let outer_strides = &strides[..strides.len() - 1];
    let mut index = vec![0usize; outer.len()];
    loop {
        let base: usize = offset
            + index
                .iter()
                .zip(outer_strides)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        if inner_stride == 1 {
            out.extend_from_slice(&storage[base * es..(base + inner_len) * es]);
        } else {
            for j in 0..inner_len {
                let e = base + j * inner_stride;
                out.extend_from_slice(&storage[e * es..(e + 1) * es]);
            }
        }
        // advance the odometer over the outer dimensions
        let mut dim = outer.len();
        loop {
            if dim == 0 {
                return;
            }
            dim -= 1;
            index[dim] += 1;
            if index[dim] < outer[dim] {
                break;
            }
            index[dim] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(shape: &[usize], strides: &[usize], offset: usize, numel: usize) -> TensorInfo {
        TensorInfo {
            name: "t".into(),
            dtype: DType::U8,
            shape: shape.to_vec(),
            strides: strides.to_vec(),
            offset,
            storage: "0".into(),
            storage_numel: numel,
            shared: false,
        }
    }

    #[test]
    fn transpose_is_gathered_in_row_major_order() {
        let storage: Vec<u8> = (0..6).collect();
        // a (2, 3) tensor transposed: shape (3, 2), strides (1, 3)
        let t = info(&[3, 2], &[1, 3], 0, 6);
        assert!(!t.is_contiguous());
        assert_eq!(&*t.gather(&storage).unwrap(), &[0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn offset_view_borrows() {
        let storage: Vec<u8> = (0..10).collect();
        let t = info(&[2, 2], &[2, 1], 4, 10);
        let bytes = t.gather(&storage).unwrap();
        assert!(matches!(bytes, Cow::Borrowed(_)));
        assert_eq!(&*bytes, &[4, 5, 6, 7]);
    }

    #[test]
    fn view_past_its_storage_is_refused() {
        let t = info(&[2, 2], &[2, 1], 7, 10);
        let err = t.validate().unwrap_err().to_string();
        assert!(err.contains("reaches element 10"), "{err}");
    }

    #[test]
    fn huge_shape_is_an_error_not_an_allocation() {
        let t = info(&[1 << 40, 1 << 40], &[1, 1], 0, 10);
        assert!(t.validate().is_err());
    }
}
