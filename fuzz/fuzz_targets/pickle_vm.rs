#![no_main]
//! The pickle VM on arbitrary bytes, in load and scan mode.

use libfuzzer_sys::fuzz_target;
use timmconv::pickle::{unpickle, Mode};

fuzz_target!(|data: &[u8]| {
    let _ = unpickle(data, 0, Mode::Load);
    let _ = unpickle(data, 0, Mode::Scan);
});
