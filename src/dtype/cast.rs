//! Element conversions between the floating types, rounding to nearest even like torch.

use half::{bf16, f16};

use super::DType;

/// Decodes floating-point bytes of `dtype` into f32 values (f64 rounds to nearest even).
/// Returns `None` for a non-floating dtype.
pub fn to_f32(bytes: &[u8], dtype: DType) -> Option<Vec<f32>> {
    Some(match dtype {
        DType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        DType::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        _ => return None,
    })
}

/// Encodes f32 values as `dtype` bytes, rounding to nearest even; `None` for a non-floating
/// `dtype`.
pub fn from_f32(values: &[f32], dtype: DType) -> Option<Vec<u8>> {
    if !dtype.is_float() {
        return None;
    }
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    match dtype {
        DType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        DType::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        DType::BF16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f32_to_bf16_bits(v.to_bits()).to_le_bytes())),
        DType::F64 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f64::from(*v).to_le_bytes())),
        _ => {}
    }
    Some(out)
}

/// The NaN torch's CPU kernels write for every f32 NaN cast to bf16 (its vectorised
/// `cvtfp32_bf16` blends in all ones), whatever the sign or payload.
const BF16_NAN_FROM_F32: u16 = 0xffff;
/// The NaN torch's scalar `c10::BFloat16` conversion writes (f16 and f64 sources).
const BF16_NAN_SCALAR: u16 = 0x7fc0;

/// f32 bits to bf16 bits: round to nearest even, NaN as torch writes it.
#[inline]
fn f32_to_bf16_bits(b: u32) -> u16 {
    if b & 0x7fff_ffff > 0x7f80_0000 {
        BF16_NAN_FROM_F32
    } else {
        ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// f32 to bf16 with round to nearest even and torch's NaN; written so the compiler
/// vectorises it.
fn f32_to_bf16_into(src: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(src.len() / 2, 0);
    for (o, c) in out.chunks_exact_mut(2).zip(src.chunks_exact(4)) {
        let b = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        o.copy_from_slice(&f32_to_bf16_bits(b).to_le_bytes());
    }
}

#[cfg(test)]
fn f32_to_bf16(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    f32_to_bf16_into(src, &mut out);
    out
}

/// bf16 to f32: exact, the bf16 bits are the high half of the f32.
fn bf16_to_f32_into(src: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(src.len() * 2, 0);
    for (o, c) in out.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
        o.copy_from_slice(&[0, 0, c[0], c[1]]);
    }
}

#[cfg(test)]
fn bf16_to_f32(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    bf16_to_f32_into(src, &mut out);
    out
}

/// f32 to f16 through `half`'s slice conversion (F16C instructions where the CPU has them).
fn f32_to_f16(src: &[u8]) -> Vec<u8> {
    use half::slice::HalfFloatSliceExt;
    let values: Vec<f32> = match bytemuck::try_cast_slice::<u8, f32>(src) {
        Ok(v) => v.to_vec(),
        Err(_) => src
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    };
    let mut halves = vec![f16::ZERO; values.len()];
    halves.convert_from_f32_slice(&values);
    bytemuck::cast_slice(&halves).to_vec()
}

/// Casts floating-point bytes from one dtype to another with a single rounding to nearest even
/// (f64 sources convert directly, not through f32). Non-floating types are returned unchanged.
pub fn cast(bytes: &[u8], from: DType, to: DType) -> Vec<u8> {
    let mut out = Vec::new();
    cast_into(bytes, from, to, &mut out);
    out
}

/// [`cast`] into a buffer that is reused across calls (no fresh allocation per tensor).
pub fn cast_into(bytes: &[u8], from: DType, to: DType, out: &mut Vec<u8>) {
    match (from, to) {
        (DType::F32, DType::BF16) => f32_to_bf16_into(bytes, out),
        (DType::BF16, DType::F32) => bf16_to_f32_into(bytes, out),
        _ => *out = cast_general(bytes, from, to),
    }
}

fn cast_general(bytes: &[u8], from: DType, to: DType) -> Vec<u8> {
    if from == to || !from.is_float() || !to.is_float() {
        return bytes.to_vec();
    }
    if (from, to) == (DType::F32, DType::F16) {
        return f32_to_f16(bytes);
    }
    if from == DType::F64 {
        let vals = bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        let mut out = Vec::with_capacity(bytes.len() / 8 * to.size());
        match to {
            DType::F32 => vals.for_each(|v| out.extend_from_slice(&(v as f32).to_le_bytes())),
            DType::F16 => vals.for_each(|v| out.extend_from_slice(&f16::from_f64(v).to_le_bytes())),
            DType::BF16 => vals.for_each(|v| {
                let h = if v.is_nan() {
                    BF16_NAN_SCALAR
                } else {
                    bf16::from_f64(v).to_bits()
                };
                out.extend_from_slice(&h.to_le_bytes())
            }),
            // f64 -> f64 returned above
            _ => return bytes.to_vec(),
        }
        return out;
    }
    if (from, to) == (DType::F16, DType::BF16) {
        return bytes
            .chunks_exact(2)
            .flat_map(|c| {
                let v = f16::from_le_bytes([c[0], c[1]]).to_f32();
                let h = if v.is_nan() {
                    BF16_NAN_SCALAR
                } else {
                    f32_to_bf16_bits(v.to_bits())
                };
                h.to_le_bytes()
            })
            .collect();
    }
    // every f16/bf16/f32 value is exact in f32
    to_f32(bytes, from)
        .and_then(|v| from_f32(&v, to))
        .unwrap_or_else(|| bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_to_bf16_rounds_to_nearest_even() {
        // 1 + 2^-8 lies exactly between two bf16 values; ties go to the even one (1.0)
        let x = 1.0f32 + 2f32.powi(-8);
        let out = cast(&x.to_le_bytes(), DType::F32, DType::BF16);
        assert_eq!(out, bf16::from_f32(1.0).to_le_bytes());
        let y = 1.0f32 + 3.0 * 2f32.powi(-8);
        let out = cast(&y.to_le_bytes(), DType::F32, DType::BF16);
        assert_eq!(out, bf16::from_f32(1.0 + 2f32.powi(-6)).to_le_bytes());
    }

    #[test]
    fn fast_paths_equal_half_for_every_kind_of_value() {
        let mut vals: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            1e-40,
            -1e-45,
            65504.0,
            65520.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffc0_0001),
            1.0 + 2f32.powi(-8),
            1.0 + 3.0 * 2f32.powi(-8),
        ];
        // a sweep of bit patterns, every exponent and many mantissas
        vals.extend((0..1u32 << 16).map(|i| f32::from_bits(i.wrapping_mul(0x9e37_79b1))));
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        // half rounds like torch; NaNs become torch's all-ones NaN
        let bf: Vec<u8> = vals
            .iter()
            .flat_map(|v| {
                if v.is_nan() {
                    BF16_NAN_FROM_F32.to_le_bytes()
                } else {
                    bf16::from_f32(*v).to_le_bytes()
                }
            })
            .collect();
        let hf: Vec<u8> = vals
            .iter()
            .flat_map(|v| f16::from_f32(*v).to_le_bytes())
            .collect();
        assert_eq!(f32_to_bf16(&bytes), bf);
        let back: Vec<u8> = vals
            .iter()
            .flat_map(|v| bf16::from_f32(*v).to_f32().to_le_bytes())
            .collect();
        let widened = bf16_to_f32(&bf);
        // NaN payloads aside, widening is exact
        for (w, b) in widened.chunks_exact(4).zip(back.chunks_exact(4)) {
            let (w, b) = (
                f32::from_le_bytes(w.try_into().unwrap()),
                f32::from_le_bytes(b.try_into().unwrap()),
            );
            assert!(w.to_bits() == b.to_bits() || (w.is_nan() && b.is_nan()));
        }
        assert_eq!(f32_to_f16(&bytes), hf);
        // unaligned input takes the copying path
        let mut shifted = vec![0u8];
        shifted.extend_from_slice(&bytes);
        assert_eq!(f32_to_f16(&shifted[1..]), hf);
    }

    #[test]
    fn integers_pass_through() {
        let b = 7i64.to_le_bytes();
        assert_eq!(cast(&b, DType::I64, DType::F16), b.to_vec());
    }

    /// Pinned to torch 2.11.0 on CPU: `torch.tensor(x, dtype=torch.float32).to(torch.bfloat16)`
    /// writes 0xffff for every NaN (sign and payload dropped); from float16 or float64 the
    /// scalar conversion writes 0x7fc0.
    #[test]
    fn nan_casts_write_torchs_nan() {
        let nans = [
            0x7fc0_0001u32,
            0xffc0_0000,
            0x7f80_0001,
            0xff81_2345,
            0x7fff_ffff,
        ];
        let f32s: Vec<u8> = nans.iter().flat_map(|b| b.to_le_bytes()).collect();
        let expect = |h: u16| -> Vec<u8> { nans.iter().flat_map(|_| h.to_le_bytes()).collect() };
        assert_eq!(cast(&f32s, DType::F32, DType::BF16), expect(0xffff));
        let values: Vec<f32> = nans.iter().map(|b| f32::from_bits(*b)).collect();
        assert_eq!(from_f32(&values, DType::BF16).unwrap(), expect(0xffff));
        let f16s = cast(&f32s, DType::F32, DType::F16);
        assert_eq!(cast(&f16s, DType::F16, DType::BF16), expect(0x7fc0));
        let f64s: Vec<u8> = values
            .iter()
            .flat_map(|v| f64::from(*v).to_le_bytes())
            .collect();
        assert_eq!(cast(&f64s, DType::F64, DType::BF16), expect(0x7fc0));
    }
}
