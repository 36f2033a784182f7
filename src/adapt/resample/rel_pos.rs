//! timm's `resize_rel_pos_bias_table` on its default path (no `TIMM_USE_SCIPY_INTERP`): each
//! head's (2w-1)×(2w-1) table is sampled at the new offsets by a linear regular-grid
//! interpolation over a geometrically spaced source grid (`RegularGridInterpolator`), in float32.
//! With `TIMM_USE_SCIPY_INTERP=1` timm uses scipy's cubic `interp2d` instead; timmconv follows
//! the default.

/// BEiT's geometric source positions for a table side `src` resized to `dst` (`_calc`), in
/// double like Python, then as the float32 tensor timm makes of them.
fn source_positions(src: usize, dst: usize) -> Vec<f32> {
    let half = src / 2;
    let target = (dst / 2) as f64;
    let gp = |r: f64, n: usize| (1.0 - r.powi(n as i32)) / (1.0 - r);
    let (mut left, mut right) = (1.01f64, 1.5f64);
    let mut q = 0.0;
    while right - left > 1e-6 {
        q = (left + right) / 2.0;
        if gp(q, half) > target {
            right = q;
        } else {
            left = q;
        }
    }
    let mut dis = Vec::with_capacity(half);
    let mut cur = 1.0f64;
    for i in 0..half {
        dis.push(cur);
        cur += q.powi(i as i32 + 1);
    }
    let mut out: Vec<f32> = dis.iter().rev().map(|d| -*d as f32).collect();
    out.push(0.0);
    out.extend(dis.iter().map(|d| *d as f32));
    out
}

/// The target offsets `torch.arange(-t, t + 0.1, 1.0)` with `t = dst // 2.0`.
fn target_positions(dst: usize) -> Vec<f32> {
    let t = (dst / 2) as f32;
    (0..dst).map(|i| -t + i as f32).collect()
}

/// Left/right indices and distances of one axis (`RegularGridInterpolator.__call__`).
struct Axis {
    left: Vec<usize>,
    right: Vec<usize>,
    dl: Vec<f32>,
    dr: Vec<f32>,
}

fn axis(p: &[f32], x: &[f32]) -> Axis {
    let n = p.len();
    let mut a = Axis {
        left: Vec::new(),
        right: Vec::new(),
        dl: Vec::new(),
        dr: Vec::new(),
    };
    for &v in x {
        // torch.bucketize(right=False): the first index whose value is >= v
        let r = p.partition_point(|&q| q < v).min(n - 1);
        let l = r.saturating_sub(1);
        let mut dl = (v - p[l]).max(0.0);
        let mut dr = (p[r] - v).max(0.0);
        if dl == 0.0 && dr == 0.0 {
            dl = 1.0;
            dr = 1.0;
        }
        a.left.push(l);
        a.right.push(r);
        a.dl.push(dl);
        a.dr.push(dr);
    }
    a
}

/// Resizes `heads` planes of `src` = (rows, cols) to `dst` = (rows, cols). `planes` is
/// head-major (H·rows·cols values). `None` when it does not fit.
pub fn resize_planes(planes: &[f32], src: [usize; 2], dst: [usize; 2]) -> Option<Vec<f32>> {
    let n = src[0].checked_mul(src[1])?;
    if n == 0 || planes.len() % n != 0 || dst[0] == 0 || dst[1] == 0 {
        return None;
    }
    let ay = axis(&source_positions(src[0], dst[0]), &target_positions(dst[0]));
    let ax = axis(&source_positions(src[1], dst[1]), &target_positions(dst[1]));
    let mut out = Vec::with_capacity(planes.len() / n * dst[0] * dst[1]);
    for z in planes.chunks_exact(n) {
        let at = |y: usize, x: usize| z[y * src[1] + x];
        for i in 0..dst[0] {
            for j in 0..dst[1] {
                let (yl, yr, dyl, dyr) = (ay.left[i], ay.right[i], ay.dl[i], ay.dr[i]);
                let (xl, xr, dxl, dxr) = (ax.left[j], ax.right[j], ax.dl[j], ax.dr[j]);
                // product([0, 1], repeat=2): (left, left), (left, right), (right, left), (right, right)
                let mut num = at(yl, xl) * (dyr * dxr);
                num += at(yl, xr) * (dyr * dxl);
                num += at(yr, xl) * (dyl * dxr);
                num += at(yr, xr) * (dyl * dxl);
                let den = (dyl + dyr) * (dxl + dxr);
                out.push(num / den);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_symmetric_and_reach_the_target() {
        let p = source_positions(13, 23);
        assert_eq!(p.len(), 13);
        assert_eq!(p[6], 0.0);
        assert_eq!(p[0], -p[12]);
        assert!(p[12] > 10.0 && p[12] < 11.5, "{p:?}");
        assert_eq!(target_positions(23).first(), Some(&-11.0));
    }

    #[test]
    fn the_zero_offset_keeps_its_value() {
        let z: Vec<f32> = (0..2 * 9).map(|v| v as f32 * 0.25).collect();
        // the zero offset sits on a source grid point in every head
        let out = resize_planes(&z, [3, 3], [3, 3]).unwrap();
        assert_eq!(out[4], z[4]);
    }
}
