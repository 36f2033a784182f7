#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod adapt;
pub mod checkpoint;
pub mod convert;
pub mod dtype;
pub mod error;
pub mod hub;
pub mod pickle;
pub mod registry;
pub mod source;
pub mod write;

#[cfg(feature = "torch")]
pub mod verify;

#[cfg(feature = "cli")]
pub mod cli;

pub use checkpoint::{Checkpoint, Format, OpenOptions, Skipped, TensorInfo};
pub use convert::{convert, ConvertOptions, ConvertReport};
pub use dtype::DType;
pub use error::{Error, Result};
