//! Fusion baselines that need no dictionaries, the references a comparison table sets CS-MCA
//! beside: the pixel-wise average, the pixel-wise maximum, and a Laplacian-pyramid fusion (Burt and
//! Adelson 1983; Burt and Kolczynski 1993) that keeps the larger-magnitude detail at each level and
//! averages the coarsest base. They work on the same [0, 1] luminance planes as the CS-MCA recipe.

use crate::plane::Plane;

/// Levels of detail in the pyramid (the base is the level below them), fewer for small images so
/// that the coarsest level keeps at least 8 pixels a side.
pub const PYRAMID_LEVELS: usize = 4;

/// Which baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baseline {
    Average,
    Max,
    Laplacian,
}

/// Fuse `a` and `b` (the same size) with `which`.
pub fn fuse(which: Baseline, a: &Plane, b: &Plane) -> Plane {
    assert_eq!((a.h, a.w), (b.h, b.w), "sources of one size");
    let zip = |f: fn(f64, f64) -> f64| {
        let data = a.data.iter().zip(&b.data).map(|(x, y)| f(*x, *y)).collect();
        Plane::from_vec(a.h, a.w, data)
    };
    match which {
        Baseline::Average => zip(|x, y| 0.5 * (x + y)),
        Baseline::Max => zip(f64::max),
        Baseline::Laplacian => laplacian(a, b),
    }
}

/// The 5-tap binomial kernel of Burt and Adelson, [1 4 6 4 1] / 16.
const KERNEL: [f64; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];

/// Index `i` reflected into 0..n (symmetric about the edge sample, `dcb|abcd|cba`), so that a
/// flat image stays flat at its borders.
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    let m = i.rem_euclid(period);
    (if m < n { m } else { period - m }) as usize
}

/// Blur with the kernel along both axes, then keep every second sample: ceil(h/2) x ceil(w/2).
fn reduce(p: &Plane) -> Plane {
    let (h, w) = (p.h, p.w);
    let (oh, ow) = (h.div_ceil(2), w.div_ceil(2));
    // Rows first: blur along x at the kept columns.
    let mut rows = Plane::zeros(h, ow);
    for y in 0..h {
        for ox in 0..ow {
            let x = 2 * ox as isize;
            rows.data[y * ow + ox] = (0..5)
                .map(|k| KERNEL[k] * p.data[y * w + reflect(x + k as isize - 2, w)])
                .sum();
        }
    }
    let mut out = Plane::zeros(oh, ow);
    for oy in 0..oh {
        let y = 2 * oy as isize;
        for x in 0..ow {
            out.data[oy * ow + x] = (0..5)
                .map(|k| KERNEL[k] * rows.data[reflect(y + k as isize - 2, h) * ow + x])
                .sum();
        }
    }
    out
}

/// Upsample `p` to `h x w` (zeros between samples, blurred with twice the kernel per axis): the
/// inverse of [`reduce`]'s decimation, up to the blur.
fn expand(p: &Plane, h: usize, w: usize) -> Plane {
    // A sample at x of the fine grid takes the coarse samples (x - k + 2) / 2 for the kernel taps
    // k where that is a whole number, weighted 2 * KERNEL[k] (the zeros make up the rest).
    let tap = |x: usize, n: usize, coarse: usize| -> Vec<(usize, f64)> {
        (0..5)
            .filter_map(|k| {
                let s = x as isize + k as isize - 2;
                let s = reflect(s, n) as isize;
                (s % 2 == 0)
                    .then(|| ((s / 2) as usize).min(coarse - 1))
                    .map(|c| (c, 2.0 * KERNEL[k]))
            })
            .collect()
    };
    let mut rows = Plane::zeros(p.h, w);
    for y in 0..p.h {
        for x in 0..w {
            rows.data[y * w + x] = tap(x, w, p.w)
                .iter()
                .map(|(c, g)| g * p.data[y * p.w + c])
                .sum();
        }
    }
    let mut out = Plane::zeros(h, w);
    for y in 0..h {
        let taps = tap(y, h, p.h);
        for x in 0..w {
            out.data[y * w + x] = taps.iter().map(|(c, g)| g * rows.data[c * w + x]).sum();
        }
    }
    out
}

/// A Laplacian pyramid: detail levels, finest first, and the coarsest base.
struct Pyramid {
    details: Vec<Plane>,
    base: Plane,
}

fn levels_for(h: usize, w: usize, most: usize) -> usize {
    let mut n = 0;
    let (mut h, mut w) = (h, w);
    while n < most && h.div_ceil(2) >= 8 && w.div_ceil(2) >= 8 {
        (h, w) = (h.div_ceil(2), w.div_ceil(2));
        n += 1;
    }
    n
}

fn pyramid(p: &Plane, levels: usize) -> Pyramid {
    let mut details = Vec::with_capacity(levels);
    let mut cur = p.clone();
    for _ in 0..levels {
        let down = reduce(&cur);
        let up = expand(&down, cur.h, cur.w);
        details.push(cur.sub(&up));
        cur = down;
    }
    Pyramid { details, base: cur }
}

fn collapse(p: &Pyramid) -> Plane {
    let mut cur = p.base.clone();
    for d in p.details.iter().rev() {
        let mut up = expand(&cur, d.h, d.w);
        up.data.iter_mut().zip(&d.data).for_each(|(u, v)| *u += v);
        cur = up;
    }
    cur
}

/// Max-abs detail at every level, the average of the two bases.
fn laplacian(a: &Plane, b: &Plane) -> Plane {
    pyramid_fusion(a, b, PYRAMID_LEVELS, |x, y| 0.5 * (x + y))
}

/// Pyramid fusion with at most `most` levels: the larger-magnitude detail at every level, `top`
/// on each pixel of the two coarsest bases.
pub(crate) fn pyramid_fusion(
    a: &Plane,
    b: &Plane,
    most: usize,
    top: impl Fn(f64, f64) -> f64,
) -> Plane {
    let levels = levels_for(a.h, a.w, most);
    let (pa, pb) = (pyramid(a, levels), pyramid(b, levels));
    let details = pa
        .details
        .iter()
        .zip(&pb.details)
        .map(|(da, db)| {
            let data = da
                .data
                .iter()
                .zip(&db.data)
                .map(|(x, y)| if x.abs() >= y.abs() { *x } else { *y })
                .collect();
            Plane::from_vec(da.h, da.w, data)
        })
        .collect();
    let data = pa.base.data.iter().zip(&pb.base.data);
    let base = Plane::from_vec(
        pa.base.h,
        pa.base.w,
        data.map(|(x, y)| top(*x, *y)).collect(),
    );
    collapse(&Pyramid { details, base })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Plane, b: &Plane) -> f64 {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn reflection_mirrors_about_the_edge_sample() {
        let r: Vec<usize> = (-3..8).map(|i| reflect(i, 5)).collect();
        assert_eq!(r, vec![3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
        assert_eq!(reflect(-2, 1), 0);
    }

    #[test]
    fn a_pyramid_collapses_to_its_image_at_odd_and_even_sizes() {
        for (h, w) in [(64, 64), (97, 131), (33, 20), (9, 9)] {
            let img = Plane::from_fn(h, w, |y, x| ((x * 7 + y * 13) % 17) as f64 / 17.0);
            let levels = levels_for(h, w, PYRAMID_LEVELS);
            let p = pyramid(&img, levels);
            assert_eq!(p.details.len(), levels);
            assert!(max_diff(&collapse(&p), &img) < 1e-12, "{h}x{w}");
        }
        assert_eq!(levels_for(256, 256, PYRAMID_LEVELS), 4);
        assert_eq!(levels_for(256, 256, 5), 5);
        assert_eq!(levels_for(20, 40, 5), 1);
    }

    #[test]
    fn a_flat_image_expands_flat_and_has_no_detail() {
        let flat = Plane::from_vec(13, 10, vec![0.25; 130]);
        let down = reduce(&flat);
        assert_eq!((down.h, down.w), (7, 5));
        assert!(down.data.iter().all(|v| (v - 0.25).abs() < 1e-15));
        let p = pyramid(&flat, 1);
        assert!(p.details[0].data.iter().all(|v| v.abs() < 1e-15));
    }

    #[test]
    fn each_baseline_does_what_it_says() {
        let a = Plane::from_fn(
            40,
            48,
            |y, x| if x < 24 { 0.9 } else { 0.1 } + 0.0 * y as f64,
        );
        let b = Plane::from_fn(40, 48, |y, _| if y % 8 < 4 { 0.6 } else { 0.4 });
        let avg = fuse(Baseline::Average, &a, &b);
        let max = fuse(Baseline::Max, &a, &b);
        assert_eq!(avg.data[0], 0.5 * (0.9 + 0.6));
        assert_eq!(max.data[47], 0.6);
        // The same image twice fuses to itself; a pyramid fusion keeps both sources' edges,
        // so it is closer to each of them in contrast than the average is.
        assert!(max_diff(&fuse(Baseline::Laplacian, &a, &a), &a) < 1e-12);
        let lap = fuse(Baseline::Laplacian, &a, &b);
        let contrast = |p: &Plane, y: usize, x0: usize, x1: usize| {
            (p.data[y * 48 + x0] - p.data[y * 48 + x1]).abs()
        };
        // A's vertical edge at x = 24 (away from the stripes' own edges in y).
        assert!(contrast(&lap, 10, 22, 25) > contrast(&avg, 10, 22, 25) + 0.1);
    }
}
