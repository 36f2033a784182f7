//! The link arguments of a program that runs libtorch through the `torch` feature. Build scripts
//! include this file (`build.rs` for the library's own targets, `cli/build.rs` for the binary):
//! cargo passes a build script's `rustc-link-arg` to its own package only.

use std::path::Path;

/// Keeps CUDA linked although nothing names it directly (or CUDA silently disappears), and
/// records libtorch's folder as the run path, so the program runs without `LD_LIBRARY_PATH`.
pub fn link_args(lib: &Path) {
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    for l in ["torch_cuda", "c10_cuda"] {
        if lib.join(format!("lib{l}.so")).exists() {
            println!("cargo:rustc-link-arg=-l{l}");
        }
    }
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
