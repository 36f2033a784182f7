//! With the `torch` feature: compiles the small C++ shim that lists a TorchScript module's
//! buffers (tch lists only parameters) and turns TF32 off, against torch-sys's libtorch.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "torch")]
    torch_shim();
}

#[cfg(feature = "torch")]
#[path = "src/verify/libtorch_link.rs"]
mod libtorch_link;

#[cfg(feature = "torch")]
fn torch_shim() {
    use std::path::PathBuf;
    println!("cargo:rerun-if-changed=src/verify/shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let lib = PathBuf::from(
        std::env::var("DEP_TCH_LIBTORCH_LIB").expect("torch-sys exports DEP_TCH_LIBTORCH_LIB"),
    );
    let root = lib
        .parent()
        .expect("libtorch lib dir has a parent")
        .to_path_buf();
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_owned());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("src/verify/shim.cpp")
        .compile("timmconv_shim");
    println!("cargo:rustc-link-search=native={}", lib.display());
    // for the CLI's build script (DEP_TIMMCONV_SHIM_LIBTORCH_LIB): its binary needs the same
    // link arguments, which reach only this package's own targets from here
    println!("cargo:libtorch_lib={}", lib.display());
    libtorch_link::link_args(&lib);
}
