//! A pickle reader that describes objects and never runs code.
//!
//! GLOBAL opcodes resolve only against an allowlist ([`torch::resolve`]); REDUCE and friends
//! build [`Object::Call`] nodes that are pattern-matched later, never called.

mod opcode;
pub mod torch;
mod value;
mod vm;

pub use torch::{classify, Global, GlobalClass};
pub use value::{Arena, CallExtra, ObjId, Object, Value};
pub use vm::{
    scan_pickle, unpickle, GlobalRef, Mode, Scanned, Unpickled, MAX_DEPTH, MAX_LONG_BYTES,
    MAX_MEMO_ENTRIES, MAX_OBJECTS, MAX_PICKLE_BYTES, MAX_PICKLE_MEMORY, MAX_STACK,
    MAX_STRING_BYTES,
};
