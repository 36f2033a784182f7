//! timm's `adapt_input_conv`: adapt a pretrained first conv to another input channel count.

use crate::error::{Error, Result};

/// How a first-conv weight is adapted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum InChansMethod {
    /// in_chans = 1: sum over the input channels.
    Sum,
    /// in_chans = 1 on a space-to-depth stem with `groups` × base inputs: sum within each group.
    SumSpaceToDepth {
        /// The number of spatial groups (16 for tresnet).
        groups: usize,
    },
    /// Repeat the base channels cyclically and scale by base / in_chans.
    Repeat,
}

/// Decides how to adapt a weight of `shape` from `base` to `in_chans`, or why it cannot be.
pub fn plan(
    key: &str,
    shape: &[usize],
    in_chans: usize,
    base: usize,
) -> Result<(InChansMethod, Vec<usize>)> {
    let unadaptable = |why: &str| Error::Unadaptable {
        key: key.to_owned(),
        shape: shape.to_vec(),
        in_chans,
        base,
        why: why.to_owned(),
    };
    if in_chans == 0 || base == 0 {
        return Err(Error::Setting(crate::error::Setting::ZeroChannels));
    }
    let &[o, i, j, k] = shape else {
        return Err(unadaptable("only 4-D Conv2d weights can be adapted"));
    };
    if in_chans == 1 {
        if i > base {
            if i % base != 0 {
                return Err(unadaptable(
                    "its input channels are not a multiple of the base channels",
                ));
            }
            let groups = i / base;
            Ok((
                InChansMethod::SumSpaceToDepth { groups },
                vec![o, groups, j, k],
            ))
        } else {
            Ok((InChansMethod::Sum, vec![o, 1, j, k]))
        }
    } else if i != base {
        Err(unadaptable(
            "its input channels differ from the base channels (a space-to-depth stem adapts only to in_chans=1)",
        ))
    } else {
        Ok((InChansMethod::Repeat, vec![o, in_chans, j, k]))
    }
}

/// Applies `method` (from [`plan`]) to f32 weights of `shape` (O, I, J, K), bit for bit as timm
/// computes it. `None` when `w` does not hold a 4-D `shape`, or `method` does not fit it.
pub fn apply(
    w: &[f32],
    shape: &[usize],
    method: InChansMethod,
    in_chans: usize,
    base: usize,
) -> Option<Vec<f32>> {
    let &[o, i, j, k] = shape else {
        return None;
    };
    let fits = match method {
        InChansMethod::Sum => true,
        InChansMethod::SumSpaceToDepth { groups } => groups.checked_mul(base) == Some(i),
        InChansMethod::Repeat => i == base && base > 0,
    };
    if w.len() != o * i * j * k || !fits {
        return None;
    }
    let hw = j * k;
    match method {
        InChansMethod::Sum | InChansMethod::SumSpaceToDepth { .. } => {
            // (O, G, C, H, W) summed over C; for a plain sum G = 1 and C = I
            let (groups, chans) = match method {
                InChansMethod::SumSpaceToDepth { groups } => (groups, base),
                _ => (1, i),
            };
            let mut out = Vec::with_capacity(o * groups * hw);
            for oi in 0..o {
                for g in 0..groups {
                    for p in 0..hw {
                        // torch's reduction starts from 0 and adds in channel order
                        let mut acc = 0.0f32;
                        for c in 0..chans {
                            acc += w[((oi * i) + g * chans + c) * hw + p];
                        }
                        out.push(acc);
                    }
                }
            }
            Some(out)
        }
        InChansMethod::Repeat => {
            // Python's `base / float(in_chans)` is a double; torch applies it to f32 tensors
            // as an f32 scalar
            let factor = (base as f64 / in_chans as f64) as f32;
            let mut out = Vec::with_capacity(o * in_chans * hw);
            for oi in 0..o {
                for c in 0..in_chans {
                    let src = &w[(oi * i + c % base) * hw..(oi * i + c % base + 1) * hw];
                    out.extend(src.iter().map(|v| v * factor));
                }
            }
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_timm() {
        let (m, s) = plan("w", &[8, 3, 3, 3], 1, 3).unwrap();
        assert_eq!((m, s), (InChansMethod::Sum, vec![8, 1, 3, 3]));
        let (m, s) = plan("w", &[16, 48, 3, 3], 1, 3).unwrap();
        assert_eq!(
            (m, s),
            (
                InChansMethod::SumSpaceToDepth { groups: 16 },
                vec![16, 16, 3, 3]
            )
        );
        let (m, s) = plan("w", &[8, 3, 3, 3], 7, 3).unwrap();
        assert_eq!((m, s), (InChansMethod::Repeat, vec![8, 7, 3, 3]));
        assert!(matches!(
            plan("w", &[16, 48, 3, 3], 4, 3),
            Err(Error::Unadaptable { .. })
        ));
        assert!(matches!(
            plan("w", &[8, 3], 4, 3),
            Err(Error::Unadaptable { .. })
        ));
    }

    #[test]
    fn repeat_is_cyclic_and_scaled() {
        let w = [1.0f32, 2.0, 3.0];
        let out = apply(&w, &[1, 3, 1, 1], InChansMethod::Repeat, 4, 3).unwrap();
        assert_eq!(apply(&w, &[1, 3, 1], InChansMethod::Repeat, 4, 3), None);
        assert_eq!(
            apply(&w[..2], &[1, 3, 1, 1], InChansMethod::Repeat, 4, 3),
            None
        );
        let f = (3.0f64 / 4.0) as f32;
        assert_eq!(out, vec![f, 2.0 * f, 3.0 * f, f]);
    }
}
