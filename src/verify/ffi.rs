//! The calls into the C++ shim (`shim.cpp`). The only `unsafe` of the feature lives here.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr};

use tch::{CModule, Tensor};

use crate::error::{Result, VerifyError};

extern "C" {
    fn timmconv_named_buffers(
        module: *mut c_void,
        ctx: *mut c_void,
        visit: extern "C" fn(*mut c_void, *const c_char, *mut c_void),
    ) -> c_int;
    fn timmconv_disable_tf32();
}

extern "C" fn collect(ctx: *mut c_void, name: *const c_char, tensor: *mut c_void) {
    // SAFETY: `ctx` is the `&mut Vec` passed to timmconv_named_buffers below, alive for the call;
    // `name` is a NUL-terminated string owned by libtorch for the duration of this callback;
    // `tensor` is a fresh `new at::Tensor` whose ownership the shim hands to us, and
    // `Tensor::from_ptr` takes it (tch frees it on drop).
    unsafe {
        let out = &mut *ctx.cast::<Vec<(String, Tensor)>>();
        let name = CStr::from_ptr(name).to_string_lossy().into_owned();
        out.push((name, Tensor::from_ptr(tensor.cast())));
    }
}

/// Every named buffer of a TorchScript module (BatchNorm statistics and the like), sharing
/// storage with the module's own.
pub(super) fn named_buffers(m: &CModule) -> Result<Vec<(String, Tensor)>> {
    if std::mem::size_of::<CModule>() != std::mem::size_of::<*mut c_void>() {
        return Err(VerifyError::ModuleLayout.into());
    }
    // SAFETY: tch 0.24's `CModule` is a struct holding exactly one field, the
    // `*mut torch::jit::script::Module` (checked by size just above, and tch is pinned to
    // =0.24.0). The pointer is only read, and `m` outlives the call.
    let module: *mut c_void = unsafe { std::mem::transmute_copy(m) };
    let mut out: Vec<(String, Tensor)> = Vec::new();
    // SAFETY: `module` is a live module (see above); `collect` matches the callback signature.
    let n = unsafe {
        timmconv_named_buffers(
            module,
            (&mut out as *mut Vec<(String, Tensor)>).cast(),
            collect,
        )
    };
    if n < 0 {
        return Err(VerifyError::Buffers.into());
    }
    Ok(out)
}

/// Turns TF32 off for matmuls and convolutions.
pub(super) fn disable_tf32() {
    // SAFETY: sets two global flags in libtorch; no arguments, no state borrowed.
    unsafe { timmconv_disable_tf32() }
}
