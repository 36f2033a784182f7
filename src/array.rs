//! Tensors as [`ndarray`] arrays: borrowed from the checkpoint's mapping when they can be,
//! owned when they must be (strided, compressed, unaligned, or cast).

use std::borrow::Cow;

use half::{bf16, f16};
use ndarray::{ArrayD, ArrayViewD, CowArray, IxDyn};

use crate::dtype::cast;
use crate::dtype::DType;
use crate::error::{Error, Result, TensorProblem};

/// An element type a tensor can be read as: `f32`, `f64`, [`half::f16`], [`half::bf16`],
/// `i64`, `i32`, `i16`, `i8` or `u8` (torch's `bool` has no such Rust type; read it as `u8`).
pub trait Element: bytemuck::Pod + sealed::Sealed {
    /// The dtype whose bytes are this type's.
    const DTYPE: DType;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! element {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    )*};
}

element!(f32 => F32, f64 => F64, f16 => F16, bf16 => BF16, i64 => I64, i32 => I32,
    i16 => I16, i8 => I8, u8 => U8);

/// Turns a tensor's row-major bytes into an array of `T`: a view of `bytes` when they are
/// borrowed, of `T`'s dtype and aligned for `T`; an owned array otherwise. A floating tensor
/// is cast to a floating `T` (rounding to nearest even, as torch); any other mismatch is an
/// error naming the tensor.
pub(crate) fn to_array<'a, T: Element>(
    name: &str,
    bytes: Cow<'a, [u8]>,
    dtype: DType,
    shape: &[usize],
) -> Result<CowArray<'a, T, IxDyn>> {
    let shape = IxDyn(shape);
    let bad_shape = |e: ndarray::ShapeError| {
        Error::tensor(TensorProblem::Shape, name, format!("as an array: {e}"))
    };
    // torch's bool is one byte holding 0 or 1
    let bytes = if dtype == T::DTYPE || (dtype, T::DTYPE) == (DType::Bool, DType::U8) {
        bytes
    } else if dtype.is_float() && T::DTYPE.is_float() {
        Cow::Owned(cast::cast(&bytes, dtype, T::DTYPE))
    } else {
        return Err(Error::tensor(
            TensorProblem::ElementType,
            name,
            format!(
                "is {dtype}: read it as that type (a floating tensor also as another floating \
                 type), not as {}",
                T::DTYPE
            ),
        ));
    };
    if let Cow::Borrowed(b) = bytes {
        // an empty tensor borrows nothing: any pointer is aligned for it
        let items = if b.is_empty() {
            Ok(&[][..])
        } else {
            bytemuck::try_cast_slice::<u8, T>(b)
        };
        if let Ok(items) = items {
            return Ok(ArrayViewD::from_shape(shape, items)
                .map_err(bad_shape)?
                .into());
        }
    }
    let items: Vec<T> = bytemuck::pod_collect_to_vec(&bytes);
    Ok(ArrayD::from_shape_vec(shape, items)
        .map_err(bad_shape)?
        .into())
}
