//! With the `torch` feature: compiles the small C++ shim that lists a TorchScript module's
//! buffers (tch lists only parameters) and turns TF32 off, against torch-sys's libtorch.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "torch")]
    torch_shim();
}

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
    // keep CUDA linked even though nothing names it directly, or CUDA silently disappears
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    for l in ["torch_cuda", "c10_cuda"] {
        if lib.join(format!("lib{l}.so")).exists() {
            println!("cargo:rustc-link-arg=-l{l}");
        }
    }
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
}
