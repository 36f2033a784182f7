//! Original-layout checkpoints: the state dicts of the projects timm ports (Meta's DINOv2 and
//! DINOv3, OpenAI CLIP, OpenCLIP), turned into timm's keys the way timm 1.0.31's
//! `checkpoint_filter_fn` of the target family turns them before `load_state_dict`.
//!
//! A layout is detected from the keys, as timm's filters detect it, then evaluated into a list
//! of [`Derived`] tensors: each one a *view* of a stored tensor (renamed, transposed, sliced,
//! reshaped: no data is read, the view's strides say where its elements lie) or a small
//! *computation* over views (a sum, zeros) that is evaluated tensor by tensor while writing.
//! Nothing of the model is materialised as a whole.

mod families;

use serde::Serialize;

use crate::checkpoint::TensorInfo;
use crate::dtype::DType;
use crate::error::{Error, Result, TensorProblem};

pub use families::{detect, find, layouts, wrapper_key, Detected, OriginalLayout, Target};

/// How one output tensor is obtained from the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Derive {
    /// The bytes of the view in [`Derived::info`] (a stored tensor, maybe renamed, transposed,
    /// sliced or reshaped).
    View,
    /// The view in [`Derived::info`] plus this view of the same shape and dtype, element by
    /// element, rounded to the dtype (what torch's `a + b` gives).
    Add(TensorInfo),
    /// Zeros of [`Derived::info`]'s shape and dtype (a bias timm's filter creates).
    Zeros,
}

/// One tensor of a converted state dict.
#[derive(Debug, Clone)]
pub struct Derived {
    /// The output key, dtype and shape; for [`Derive::View`] and [`Derive::Add`] also the view
    /// of the stored tensor the data comes from.
    pub info: TensorInfo,
    /// How the data is obtained.
    pub derive: Derive,
}

impl Derived {
    /// A stored tensor unchanged.
    pub fn stored(t: &TensorInfo) -> Derived {
        Derived {
            info: t.clone(),
            derive: Derive::View,
        }
    }
}

/// What a layout conversion did, for the report and the output's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The layout (`dinov2`, `openai_clip`, ...).
    pub layout: String,
    /// The timm function whose conversion was reproduced.
    pub filter: String,
    /// What the checkpoint held that made the conversion differ (`mask_token`,
    /// `register_tokens`, ...).
    pub features: Vec<String>,
    /// Keys of the checkpoint that the conversion leaves out.
    pub dropped: Vec<String>,
    /// Output keys that are not a renamed stored tensor: `key = expression`.
    pub computed: Vec<String>,
    /// Keys renamed.
    pub renamed: usize,
}

impl Applied {
    /// Reports the dropped keys as one count (`"N what left out"`) instead of by name: a text
    /// tower or the rebuilt buffers can be hundreds of keys.
    pub(crate) fn count_dropped(&mut self, what: &str) {
        if !self.dropped.is_empty() {
            self.features
                .push(format!("{} {what} left out", self.dropped.len()));
            self.dropped.clear();
        }
    }
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.layout)?;
        if !self.features.is_empty() {
            write!(f, " ({})", self.features.join(", "))?;
        }
        Ok(())
    }
}

/// The result of converting a checkpoint's tensors from an original layout.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The tensors timm's filter hands to `load_state_dict`, in the checkpoint's order.
    pub tensors: Vec<Derived>,
    /// What was done.
    pub applied: Applied,
}

/// A view of a stored tensor under a new name, changed by view operations that move no data.
#[derive(Debug, Clone)]
pub(crate) struct View {
    info: TensorInfo,
    /// The stored tensor's key, for messages.
    from: String,
}

impl View {
    pub(crate) fn of(t: &TensorInfo) -> View {
        View {
            info: t.clone(),
            from: t.name.clone(),
        }
    }

    pub(crate) fn shape(&self) -> &[usize] {
        &self.info.shape
    }

    pub(crate) fn dtype(&self) -> DType {
        self.info.dtype
    }

    fn bad(&self, layout: &str, what: String) -> Error {
        Error::OriginalLayout {
            layout: layout.to_owned(),
            what: format!("`{}` {what}", self.from),
        }
    }

    pub(crate) fn named(mut self, name: impl Into<String>) -> View {
        self.info.name = name.into();
        self
    }

    /// `v.transpose(0, 1)` of a 2-d tensor.
    pub(crate) fn transpose01(mut self, layout: &str) -> Result<View> {
        let (&[r, c], &[sr, sc]) = (self.info.shape.as_slice(), self.info.strides.as_slice())
        else {
            let shape = self.info.shape.clone();
            return Err(self.bad(layout, format!("has shape {shape:?}, not 2-d")));
        };
        self.info.shape = vec![c, r];
        self.info.strides = vec![sc, sr];
        Ok(self)
    }

    /// `v.unsqueeze(dim)`.
    pub(crate) fn unsqueeze(mut self, dim: usize, layout: &str) -> Result<View> {
        if dim > self.info.shape.len() {
            let shape = self.info.shape.clone();
            return Err(self.bad(layout, format!("of shape {shape:?} has no dimension {dim}")));
        }
        // the stride of a dimension of size 1 is never used to address an element
        self.info.shape.insert(dim, 1);
        self.info.strides.insert(dim, 1);
        Ok(self)
    }

    /// `v.narrow(dim, start, len)`, as the slices `v[:, a:b]` and `chunk` take.
    pub(crate) fn narrow(
        mut self,
        dim: usize,
        start: usize,
        len: usize,
        layout: &str,
    ) -> Result<View> {
        let size = self.info.shape.get(dim).copied();
        let stride = self.info.strides.get(dim).copied();
        let fits = start
            .checked_add(len)
            .zip(size)
            .is_some_and(|(e, s)| e <= s);
        let (Some(stride), true) = (stride, fits) else {
            let shape = self.info.shape.clone();
            return Err(self.bad(
                layout,
                format!(
                    "of shape {shape:?} has no elements {start}..{start}+{len} in dimension {dim}"
                ),
            ));
        };
        let offset = start
            .checked_mul(stride)
            .and_then(|o| o.checked_add(self.info.offset))
            .ok_or_else(|| self.bad(layout, "view offset overflows".into()))?;
        self.info.offset = offset;
        if let Some(d) = self.info.shape.get_mut(dim) {
            *d = len;
        }
        Ok(self)
    }

    /// `v.chunk(n, dim)[i]` for a dimension `n` divides.
    pub(crate) fn chunk(self, n: usize, i: usize, dim: usize, layout: &str) -> Result<View> {
        let size = self.info.shape.get(dim).copied().unwrap_or(0);
        if n == 0 || size % n != 0 {
            let shape = self.info.shape.clone();
            return Err(self.bad(
                layout,
                format!(
                    "of shape {shape:?} does not split into {n} equal parts in dimension {dim}"
                ),
            ));
        }
        let len = size / n;
        let start = len
            .checked_mul(i)
            .ok_or_else(|| self.bad(layout, "chunk offset overflows".into()))?;
        self.narrow(dim, start, len, layout)
    }

    /// `v.reshape(shape)` of a contiguous view (a stored tensor).
    pub(crate) fn reshape(mut self, shape: Vec<usize>, layout: &str) -> Result<View> {
        let numel = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d));
        if numel != Some(self.info.numel()) || !self.info.is_contiguous() {
            let from = self.info.shape.clone();
            return Err(self.bad(
                layout,
                format!("of shape {from:?} cannot be viewed as {shape:?}"),
            ));
        }
        self.info.strides = contiguous_strides(&shape);
        self.info.shape = shape;
        Ok(self)
    }

    pub(crate) fn derived(self) -> Derived {
        Derived {
            info: self.info,
            derive: Derive::View,
        }
    }

    /// `self + other` (the same shape but for dimensions of size 1, which broadcast; the same
    /// dtype), named as `self`.
    pub(crate) fn add(self, other: View, layout: &str) -> Result<Derived> {
        let squeezed = |s: &[usize]| s.iter().copied().filter(|d| *d != 1).collect::<Vec<_>>();
        if squeezed(&other.info.shape) != squeezed(&self.info.shape)
            || other.info.dtype != self.info.dtype
        {
            let (s, o) = (self.info.shape.clone(), other.info.shape.clone());
            let od = other.info.dtype;
            return Err(self.bad(
                layout,
                format!(
                    "of shape {s:?} ({}) cannot be added to `{}` of shape {o:?} ({od})",
                    self.info.dtype, other.from
                ),
            ));
        }
        let mut rhs = other.info;
        // the sum broadcasts to self's shape; the elements pair up in row-major order
        rhs.strides = squeeze_strides(&rhs.shape, &rhs.strides, &self.info.shape);
        rhs.shape = self.info.shape.clone();
        Ok(Derived {
            info: self.info,
            derive: Derive::Add(rhs),
        })
    }
}

/// Strides for viewing a tensor as another shape with the same elements in the same order,
/// where the two shapes differ only by dimensions of size 1.
fn squeeze_strides(shape: &[usize], strides: &[usize], to: &[usize]) -> Vec<usize> {
    let mut real = shape
        .iter()
        .zip(strides)
        .filter(|(d, _)| **d != 1)
        .map(|(_, s)| *s);
    to.iter()
        .map(|d| if *d == 1 { 1 } else { real.next().unwrap_or(1) })
        .collect()
}

/// Zeros of `shape` and `dtype`, named `name` (timm's `torch.zeros` bias).
pub(crate) fn zeros(name: &str, dtype: DType, shape: Vec<usize>) -> Derived {
    let strides = contiguous_strides(&shape);
    let numel = shape.iter().product();
    Derived {
        info: TensorInfo {
            name: name.to_owned(),
            dtype,
            shape,
            strides,
            offset: 0,
            storage: String::new(),
            storage_numel: numel,
            shared: false,
        },
        derive: Derive::Zeros,
    }
}

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    let mut acc = 1usize;
    for (s, d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc = acc.saturating_mul(*d);
    }
    strides
}

/// Key renames applied in order, each replacing every occurrence, as Python's `str.replace`.
pub(crate) fn replace_all(key: &str, swaps: &[(&str, &str)]) -> String {
    swaps
        .iter()
        .fold(key.to_owned(), |k, (from, to)| k.replace(from, to))
}

/// The bytes of one derived tensor: `view` reads a view's bytes (from the file or the mapping).
pub fn evaluate<'c>(
    d: &Derived,
    view: impl Fn(&TensorInfo) -> Result<std::borrow::Cow<'c, [u8]>>,
) -> Result<std::borrow::Cow<'c, [u8]>> {
    use std::borrow::Cow;
    match &d.derive {
        Derive::View => view(&d.info),
        Derive::Zeros => Ok(Cow::Owned(vec![0u8; d.info.nbytes()])),
        Derive::Add(rhs) => {
            let dt = d.info.dtype;
            let not_float = || {
                Error::tensor(
                    TensorProblem::ElementType,
                    &d.info.name,
                    "not a floating-point tensor",
                )
            };
            let a = crate::dtype::cast::to_f32(&view(&d.info)?, dt).ok_or_else(not_float)?;
            let b = crate::dtype::cast::to_f32(&view(rhs)?, dt).ok_or_else(not_float)?;
            if a.len() != b.len() {
                return Err(Error::tensor(
                    TensorProblem::Shape,
                    &d.info.name,
                    "summands differ in size",
                ));
            }
            let sum: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
            // an f32 sum of two f16 or bf16 values rounds to the value torch's f16/bf16 add
            // gives: f32 holds more than twice their precision plus two bits
            let bytes = crate::dtype::cast::from_f32(&sum, dt);
            bytes.map(Cow::Owned).ok_or_else(not_float)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(shape: &[usize]) -> TensorInfo {
        let strides = contiguous_strides(shape);
        TensorInfo {
            name: "t".into(),
            dtype: DType::U8,
            shape: shape.to_vec(),
            storage_numel: shape.iter().product(),
            strides,
            offset: 0,
            storage: "0".into(),
            shared: false,
        }
    }

    #[test]
    fn views_address_the_elements_torch_does() {
        let storage: Vec<u8> = (0..24).collect();
        // pos_embed[:, 1:] of a (1, 4, 6) tensor
        let v = View::of(&info(&[1, 4, 6])).narrow(1, 1, 3, "x").unwrap();
        assert_eq!(&*v.info.gather(&storage).unwrap(), &storage[6..]);
        // qkv.bias.chunk(3, -1)[2] of an 18-vector
        let v = View::of(&info(&[18])).chunk(3, 2, 0, "x").unwrap();
        assert_eq!(
            &*v.info.gather(&storage[..18]).unwrap(),
            &[12, 13, 14, 15, 16, 17]
        );
        // proj.transpose(0, 1) of a (2, 3) matrix
        let v = View::of(&info(&[2, 3])).transpose01("x").unwrap();
        assert_eq!(&*v.info.gather(&storage[..6]).unwrap(), &[0, 3, 1, 4, 2, 5]);
        // class_embedding.unsqueeze(0).unsqueeze(1)
        let v = View::of(&info(&[6]))
            .unsqueeze(0, "x")
            .and_then(|v| v.unsqueeze(1, "x"))
            .unwrap();
        assert_eq!(v.shape(), [1, 1, 6]);
        assert_eq!(&*v.info.gather(&storage[..6]).unwrap(), &storage[..6]);
    }

    #[test]
    fn a_slice_past_the_tensor_is_an_error_naming_it() {
        let err = View::of(&info(&[1, 4, 6]))
            .narrow(1, 3, 2, "dinov2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("dinov2") && err.contains("`t`"), "{err}");
        assert!(View::of(&info(&[10])).chunk(3, 0, 0, "x").is_err());
        // a cls_token of the same size but another shape does not broadcast in torch either
        let cls = View::of(&info(&[1, 2, 3]));
        let pos0 = View::of(&info(&[1, 4, 6])).narrow(1, 0, 1, "x").unwrap();
        assert!(cls.add(pos0, "x").is_err());
    }

    #[test]
    fn python_replace_semantics() {
        assert_eq!(
            replace_all(
                "visual.ln_pre.weight",
                &[("ln_pre", "norm_pre"), ("ln_", "norm")]
            ),
            "visual.norm_pre.weight"
        );
        assert_eq!(
            replace_all("a.visual.b.visual.", &[("visual.", "")]),
            "a.b."
        );
    }
}
