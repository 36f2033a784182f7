// timmconv's shim over libtorch: what tch 0.24 does not expose.
#include <torch/script.h>
#include <ATen/Context.h>
#include <cstring>

extern "C" {

// Calls `visit(ctx, name, tensor)` for every named buffer of the module, recursively, with a new
// at::Tensor handle (sharing storage with the buffer) that the caller owns. Returns the count, or
// -1 on a C++ exception.
int timmconv_named_buffers(void *module, void *ctx, void (*visit)(void *, const char *, void *)) {
  try {
    auto *m = static_cast<torch::jit::script::Module *>(module);
    int n = 0;
    for (const auto &b : m->named_buffers(/*recurse=*/true)) {
      visit(ctx, b.name.c_str(), new at::Tensor(b.value));
      n++;
    }
    return n;
  } catch (...) {
    return -1;
  }
}

// TF32 changes float32 matmul and convolution results on Ampere and later GPUs; parity checks
// want it off.
void timmconv_disable_tf32() {
  at::globalContext().setAllowTF32CuBLAS(false);
  at::globalContext().setAllowTF32CuDNN(false);
}
}
