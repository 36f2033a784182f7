//! With the `torch` feature: the link arguments the library's build script gives its own targets
//! (CUDA kept linked, libtorch's run path), which cargo does not pass on to this binary.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "torch")]
    {
        println!("cargo:rerun-if-env-changed=DEP_TIMMCONV_SHIM_LIBTORCH_LIB");
        let lib = std::env::var("DEP_TIMMCONV_SHIM_LIBTORCH_LIB")
            .expect("timmconv's build script exports DEP_TIMMCONV_SHIM_LIBTORCH_LIB");
        libtorch_link::link_args(std::path::Path::new(&lib));
    }
}

#[cfg(feature = "torch")]
#[path = "../src/verify/libtorch_link.rs"]
mod libtorch_link;
