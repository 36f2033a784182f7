#![no_main]
//! Opening a checkpoint (zip, legacy, safetensors) from bytes and reading every tensor.

use libfuzzer_sys::fuzz_target;
use timmconv::{Checkpoint, OpenOptions};

fuzz_target!(|data: &[u8]| {
    let _ = timmconv::checkpoint::scan(data);
    if let Ok(c) = Checkpoint::from_bytes(data.to_vec(), &OpenOptions::default()) {
        for t in c.tensors() {
            let _ = c.tensor_bytes(t);
        }
    }
});
