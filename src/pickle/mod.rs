//! A pickle reader that describes objects and never runs code.
//!
//! GLOBAL opcodes resolve only against an allowlist ([`torch::resolve`]); REDUCE and friends
//! build [`Object::Call`] nodes that are pattern-matched later, never called.

// the whole of this module is public with the `internals` feature (fuzz targets, benchmarks) and
// crate-private otherwise, so some of what it exports is used only then
#![cfg_attr(not(feature = "internals"), allow(unused_imports, dead_code))]

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

#[cfg(test)]
mod tests {
    use super::{unpickle, Mode};
    use crate::error::Error;

    /// Every bare pickle of `fixtures/malicious` is refused when loaded, naming its global
    /// (tests/hostile.rs checks the same files through `Checkpoint::open` and the scan).
    #[test]
    fn malicious_pickles_are_refused_naming_the_global() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/malicious");
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
        let mut pickles = 0;
        for e in index.as_array().unwrap() {
            let file = e["file"].as_str().unwrap();
            if !file.ends_with(".pkl") {
                continue;
            }
            pickles += 1;
            let global = e["global_"].as_str().unwrap();
            let err = unpickle(&std::fs::read(dir.join(file)).unwrap(), 0, Mode::Load).unwrap_err();
            match &err {
                Error::ForbiddenGlobal { module, name, .. } => {
                    assert_eq!(format!("{module}.{name}"), global, "{file}")
                }
                other => panic!("{file}: {other}"),
            }
            assert!(err.to_string().contains(global), "{file}: {err}");
        }
        assert!(pickles > 0, "no bare pickles in fixtures/malicious");
    }
}
