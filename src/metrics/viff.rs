//! VIFF, visual information fidelity for fusion (Han, Cai, Cao and Xu, Information Fusion 14(2),
//! 2013). It extends Sheikh and Bovik's pixel-domain VIF (IEEE TIP 15(2), 2006) to two sources.
//!
//! At each of four scales, every pixel gets a local Gaussian-window model of F as a source seen
//! through a gain `g` and additive noise `σ_v²`, plus visual noise `σ_n² = 0.005·255²`. The source
//! carries `log10(1 + σ_s²/σ_n²)` of visual information there, and F keeps
//! `log10(1 + g²σ_s²/(σ_v² + σ_n²))` of it. At each pixel the source with the smaller gain is
//! counted. A scale's score is the information F keeps over the information counted, and VIFF
//! weighs the four scales 1, 0, 0.15 and 1.

use super::Gray;

/// Visual noise variance, in grey levels squared.
const VISUAL_NOISE: f64 = 0.005 * 255.0 * 255.0;
/// Added to each pixel's information so that a scale with none scores 1, not 0/0.
const EPS: f64 = 1e-7;
/// Scale weights (scale 2 does not count).
const WEIGHTS: [f64; 4] = [1.0 / 2.15, 0.0, 0.15 / 2.15, 1.0 / 2.15];
/// Variances below this count as zero.
const FLAT: f64 = 1e-10;

/// The smallest side VIFF works on: at the fourth scale the 5x5 window must still fit.
pub(super) const MIN_SIDE: usize = 81;

/// A real image (the metric runs on filtered and decimated copies of the 8-bit levels).
#[derive(Clone)]
struct Image {
    h: usize,
    w: usize,
    v: Vec<f64>,
}

/// Window size of scale `s` (0-based): 33, 17, 9, 5.
fn window_size(s: usize) -> usize {
    (1 << (4 - s)) + 1
}

/// A normalised `n x n` Gaussian of standard deviation `sigma`, with values below machine epsilon
/// times the peak set to zero first (as MATLAB's `fspecial` does).
pub(super) fn gaussian(n: usize, sigma: f64) -> Vec<f64> {
    let c = (n - 1) as f64 / 2.0;
    let mut g: Vec<f64> = (0..n * n)
        .map(|k| {
            let (y, x) = ((k / n) as f64 - c, (k % n) as f64 - c);
            (-(x * x + y * y) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let peak = g.iter().cloned().fold(0.0, f64::max);
    g.iter_mut()
        .filter(|v| **v < f64::EPSILON * peak)
        .for_each(|v| *v = 0.0);
    let total: f64 = g.iter().sum();
    g.iter_mut().for_each(|v| *v /= total);
    g
}

/// Weighted sums of `x` under the window at every position where it fits (a "valid" filter).
fn filter_valid(x: &Image, win: &[f64], n: usize) -> Image {
    let (h, w) = (x.h + 1 - n, x.w + 1 - n);
    let mut v = vec![0.0; h * w];
    // Each output adds the window's rows in order, each row's sum made left to right first; per
    // output row the taps run over the whole row at once, which vectorises without reordering.
    let mut row_sum = vec![0.0; w];
    for (i, out) in v.chunks_exact_mut(w).enumerate() {
        for u in 0..n {
            row_sum.iter_mut().for_each(|s| *s = 0.0);
            let row = &x.v[(i + u) * x.w..(i + u + 1) * x.w];
            for (t, g) in win[u * n..u * n + n].iter().enumerate() {
                for (s, p) in row_sum.iter_mut().zip(&row[t..t + w]) {
                    *s += p * g;
                }
            }
            for (o, s) in out.iter_mut().zip(&row_sum) {
                *o += s;
            }
        }
    }
    Image { h, w, v }
}

/// Every other row and column, starting with the first.
fn decimate(x: &Image) -> Image {
    let (h, w) = (x.h.div_ceil(2), x.w.div_ceil(2));
    let v = (0..h * w)
        .map(|k| x.v[2 * (k / w) * x.w + 2 * (k % w)])
        .collect();
    Image { h, w, v }
}

fn product(a: &Image, b: &Image) -> Image {
    Image {
        h: a.h,
        w: a.w,
        v: a.v.iter().zip(&b.v).map(|(p, q)| p * q).collect(),
    }
}

/// Per pixel of one scale: the information F keeps of the source, the source's, and the gain.
struct ScaleMaps {
    kept: Vec<f64>,
    carried: Vec<f64>,
    gain: Vec<f64>,
}

/// The four scales' maps of F (`dist`) against one source (`src`).
fn scale_maps(src: &Gray, dist: &Gray) -> Vec<ScaleMaps> {
    let image = |g: &Gray| Image {
        h: g.h,
        w: g.w,
        v: g.v.clone(),
    };
    let (mut x, mut y) = (image(src), image(dist));
    (0..4)
        .map(|s| {
            let n = window_size(s);
            let win = gaussian(n, n as f64 / 5.0);
            if s > 0 {
                x = decimate(&filter_valid(&x, &win, n));
                y = decimate(&filter_valid(&y, &win, n));
            }
            let mx = filter_valid(&x, &win, n);
            let my = filter_valid(&y, &win, n);
            let xx = filter_valid(&product(&x, &x), &win, n);
            let yy = filter_valid(&product(&y, &y), &win, n);
            let xy = filter_valid(&product(&x, &y), &win, n);
            let len = mx.v.len();
            let mut out = ScaleMaps {
                kept: Vec::with_capacity(len),
                carried: Vec::with_capacity(len),
                gain: Vec::with_capacity(len),
            };
            for k in 0..len {
                let (m1, m2) = (mx.v[k], my.v[k]);
                let s1 = (xx.v[k] - m1 * m1).max(0.0);
                let s2 = (yy.v[k] - m2 * m2).max(0.0);
                let s12 = xy.v[k] - m1 * m2;
                let (g, sv, s1) = channel(s1, s2, s12);
                out.kept
                    .push((1.0 + g * g * s1 / (sv + VISUAL_NOISE)).log10());
                out.carried.push((1.0 + s1 / VISUAL_NOISE).log10());
                out.gain.push(g);
            }
            out
        })
        .collect()
}

/// Gain, noise variance and source variance of the local channel from the source's variance `s1`,
/// F's `s2` and their covariance `s12`, with the degenerate cases of VIF: a flat source passes
/// nothing (F is all noise), a flat F receives nothing, and a negative gain is taken as none.
fn channel(s1: f64, s2: f64, s12: f64) -> (f64, f64, f64) {
    let (mut g, mut sv, mut s1) = (s12 / (s1 + FLAT), s2 - s12 * s12 / (s1 + FLAT), s1);
    if s1 < FLAT {
        (g, sv, s1) = (0.0, s2, 0.0);
    }
    if s2 < FLAT {
        (g, sv) = (0.0, 0.0);
    }
    if g < 0.0 {
        (g, sv) = (0.0, s2);
    }
    (g, sv.max(FLAT), s1)
}

/// VIFF of F against A and B (all at least [`MIN_SIDE`] on each side).
pub(super) fn viff(a: &Gray, b: &Gray, f: &Gray) -> f64 {
    let (ma, mb) = (scale_maps(a, f), scale_maps(b, f));
    ma.iter()
        .zip(&mb)
        .zip(WEIGHTS)
        .map(|((sa, sb), weight)| {
            let (mut kept, mut carried) = (0.0, 0.0);
            for k in 0..sa.gain.len() {
                // The source F reproduces with the smaller gain is the one counted (ties: B).
                let s = if sa.gain[k] < sb.gain[k] { sa } else { sb };
                kept += s.kept[k] + EPS;
                carried += s.carried[k] + EPS;
            }
            weight * kept / carried
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(h: usize, w: usize, f: impl Fn(usize, usize) -> f64) -> Gray {
        Gray {
            h,
            w,
            v: (0..h * w).map(|k| f(k / w, k % w)).collect(),
        }
    }

    #[test]
    fn the_window_is_fspecials_gaussian() {
        let g = gaussian(5, 1.0);
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        // Centre over its edge neighbour: exp(1/2).
        assert!((g[12] / g[13] - 0.5f64.exp()).abs() < 1e-12);
    }

    #[test]
    fn f_equal_to_both_sources_keeps_all_their_information() {
        // Gain 1 and no channel noise at every pixel of every scale: VIFF is the sum of the
        // weights, 1.
        let a = ramp(97, 131, |y, x| ((x * 7 + y * 13) % 31) as f64 * 8.0);
        let v = viff(&a, &a, &a);
        assert!((v - 1.0).abs() < 1e-6, "{v}");
    }

    #[test]
    fn noise_in_f_lowers_the_score() {
        let a = ramp(96, 96, |y, x| ((x * 3 + y * 5) % 17) as f64 * 12.0);
        let b = ramp(96, 96, |y, x| ((x + 2 * y) % 23) as f64 * 9.0);
        let mean = ramp(96, 96, |y, x| (a.v[y * 96 + x] + b.v[y * 96 + x]) / 2.0);
        let noisy = ramp(96, 96, |y, x| {
            mean.v[y * 96 + x]
                + if (x * 31 + y * 17) % 7 < 3 {
                    40.0
                } else {
                    -30.0
                }
        });
        assert!(viff(&a, &b, &noisy) < viff(&a, &b, &mean));
    }
}
