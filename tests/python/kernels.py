"""Which CPU kernels this machine's torch runs, for the tests that compare timmconv with torch
computed here, at test time.

timmconv's resampling (F.interpolate's bicubic/bilinear kernels, the channels-last bilinear, the
1-D linear of MViTv2's filter) and its float32 -> bfloat16 cast are plain arithmetic in one fixed
order: the same bits on every machine. They reproduce torch's vectorised x86 kernels, which were
checked to agree bit for bit at both ATen capabilities an x86-64 machine runs, AVX-512 (where
the fixtures were made) and AVX2 (`ATEN_CPU_CAPABILITY=avx2`, the whole torch-dependent subset
of tests/python passes). torch's scalar kernels (`ATEN_CPU_CAPABILITY=default`, a CPU without
AVX2, another architecture) sum in another order: resampled float32 values moved by up to 4.2e-6
of the largest value (MViTv2's rel_pos, 1.5e-5 absolute), bfloat16/float16 position embeddings
by up to 24 units in the last place near zero, and the scalar cast writes NaN as 0x7FC0 where the
vector kernels keep its sign and payload. On such a machine the tests below hold timmconv to
those measured bounds, or skip a bitwise claim with that reason, instead of failing on torch's
own difference.
"""

import pytest
import torch

CAPABILITY = torch.backends.cpu.get_cpu_capability()
# the kernels timmconv's numerics reproduce bit for bit
VECTOR = CAPABILITY in ("AVX2", "AVX512")

# how far torch's scalar kernels were measured from the vector ones, with a margin: relative to
# max(1, max |reference|)
SCALAR_RTOL = 2e-5


def needs_vector_kernels(what):
    """Skips a test whose claim is bit-identity with torch's vector kernels on a machine whose
    torch runs others, saying so."""
    return pytest.mark.skipif(
        not VECTOR,
        reason=f"{what}: torch runs its {CAPABILITY} kernels here, whose results differ from the "
        "AVX2/AVX-512 ones timmconv reproduces (tests/python/kernels.py)",
    )
