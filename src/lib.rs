//! Read PyTorch/timm checkpoints without Python and without running their pickles; adapt them
//! the way timm does at load time; write safetensors.
//!
//! # Quick start
//!
//! Open a checkpoint (a `torch.save` zip or legacy file, or safetensors). Nothing is loaded
//! until asked for; a tensor stored contiguously is a view of the file's mapping:
//!
//! ```
//! use timmconv::{Checkpoint, OpenOptions};
//!
//! let ckpt = Checkpoint::open("fixtures/ckpt/test_resnet.f32.zip.pth", &OpenOptions::default())?;
//! for t in ckpt.tensors().iter().take(2) {
//!     println!("{} {} {:?}", t.name, t.dtype, t.shape);
//! }
//! let stem = ckpt.array::<f32>("conv1.0.weight")?; // ndarray, borrowed from the file
//! assert_eq!(stem.shape(), [16, 3, 3, 3]);
//! # Ok::<(), timmconv::Error>(())
//! ```
//!
//! Convert, as `timm.create_model("test_resnet.r160_in1k", pretrained=True, in_chans=4,
//! num_classes=0)` would load the weights: a [`Conversion`] takes the stem and classifier from
//! timm's pretrained cfg in the embedded [`registry`], plans every tensor, and writes:
//!
//! ```
//! use timmconv::{Conversion, WriteOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let out = dir.path().join("resnet4.safetensors");
//! let plan = Conversion::from_file("fixtures/ckpt/test_resnet.f32.zip.pth")
//!     .model("test_resnet.r160_in1k")?
//!     .in_chans(4)
//!     .num_classes(0)
//!     .plan()?;
//! assert_eq!((plan.in_chans(), plan.base_chans()), (4, 3));
//! let report = plan.write(&out, &WriteOptions::default())?;
//! assert_eq!(report.changes.adapted.len(), 1); // the stem, summed and repeated to 4 channels
//! assert!(report.changes.head.is_dropped()); // a headless model: timm would not load fc
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Feature flags
//!
//! None is on by default: `timmconv = "0.1"` is the library alone (reading, conversion, the
//! registry). The `timmconv` command is another package of the same workspace (`cli/`,
//! `timmconv-cli`), which turns on `plot` and `download`.
//!
//! - `plot`: the `chart` module, SVG charts of results and parity.
//! - `download`: `hf-hub:` inputs missing from the Hugging Face cache are downloaded into it by
//!   [`source::resolve`] (ureq, rustls), checking every name and byte the server sends. Without
//!   it, `hf-hub:` names resolve from the cache only.
//! - `torch`: the `verify` module, which runs converted weights through libtorch (the `tch` crate) in a
//!   TorchScript export of the model and compares logits with PyTorch's. Needs libtorch 2.11.
//!
//! # Errors
//!
//! Every fallible function returns [`Result`] with the one [`Error`] type, whose variants name
//! the check that failed (a named [`Error::Limit`], a [`Error::ForbiddenGlobal`] with its byte
//! offset, a [`Error::ZipCrc`] naming the zip member, a [`Error::Tensor`] with its key). An
//! error about a file's content comes wrapped as [`Error::WithPath`]: match
//! [`root`](Error::root) for the cause and read [`path`](Error::path) for the file. A
//! conversion's settings that contradict each other are an [`Error::Setting`] naming the
//! builder's settings (`in_chans`, `model`); the CLI alone words the same errors with its
//! flags.
//!
//! # In memory
//!
//! [`Conversion::from_bytes`] (or [`from_reader`](Conversion::from_reader)) converts a
//! checkpoint held in memory, and [`ConversionPlan::write_to`] writes the safetensors bytes to
//! any [`std::io::Write`], with the same bounds and metadata as files.
//!
//! # Guarantees
//!
//! - No code from a checkpoint ever runs: the unpickler only describes objects,
//!   against an allowlist, and [`checkpoint::scan`] reports what `torch.load` would run.
//! - Bounded work and memory on any input: every budget is a named constant (see
//!   docs/security.md), and sizes read from a file are checked before anything is allocated.
//! - Outputs appear whole or not at all, and nothing the library did not write is deleted.
//! - The library never prints and never exits: it returns data and reports.
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod adapt;
mod array;
pub mod checkpoint;
mod comparison;
pub mod conversion;
#[cfg(feature = "download")]
mod download;
pub mod dtype;
pub mod error;
mod fileio;
mod hf_cache;
pub mod identify;
pub mod original;
// the unpickler's own API is open to the fuzz targets and benchmarks only (feature `internals`); what a caller
// meets of it (a checkpoint's globals) is re-exported by `checkpoint`
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod pickle;
#[cfg(not(feature = "internals"))]
mod pickle;
pub mod registry;
pub mod small_file;
pub mod source;
pub mod write;

#[cfg(feature = "plot")]
#[cfg_attr(docsrs, doc(cfg(feature = "plot")))]
pub mod chart;
#[cfg(feature = "torch")]
#[cfg_attr(docsrs, doc(cfg(feature = "torch")))]
pub mod verify;

// the crates whose types this API takes or returns (ndarray arrays, half floats, JSON maps, the
// `Pod` bound of `Element`, safetensors' dtypes), at the versions timmconv was built with
pub use bytemuck;
pub use half;
pub use ndarray;
pub use safetensors;
pub use serde_json;

pub use array::Element;
pub use checkpoint::{Checkpoint, Format, OpenOptions, Skipped, TensorInfo};
pub use conversion::{
    Conversion, ConversionPlan, ConvertReport, Layout, OriginalLayoutChoice, WriteOptions,
};
pub use dtype::DType;
pub use error::{Error, Result};

// the README's examples run as doctests too
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
