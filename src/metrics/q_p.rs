//! Q_P, Zhao, Laganière and Liu's phase-congruency metric (IJICIC 3(6A), 2007), on Kovesi's
//! phase congruency (Videre 1(3), 1999; DICTA 2003) with his defaults, as Liu's toolbox computes
//! them.
//!
//! For each image, log-Gabor filters of 4 scales and 6 orientations give the phase congruency PC
//! and the maximum and minimum moments M and m of its covariance over orientations (edge and
//! corner strength). For each of the three features, F's map is compared with A's, B's and the
//! per-pixel larger-PC source's, each masked to where its PC exceeds 0.1, by a local correlation
//! (11x11 Gaussian, sigma 1.5); the best of the three is averaged over the max-PC mask. Q_P is the
//! product of the three averages.

use super::Gray;
use rustfft::num_complex::Complex;
use std::f64::consts::PI;

const SCALES: usize = 4;
const ORIENTATIONS: usize = 6;
const MIN_WAVELENGTH: f64 = 3.0;
const MULT: f64 = 2.1;
const SIGMA_ON_F: f64 = 0.55;
const D_THETA_ON_SIGMA: f64 = 1.2;
/// Noise threshold: standard deviations of the noise energy above its mean.
const NOISE_K: f64 = 2.0;
/// Frequency spread below which PC is penalised, and the sharpness of that penalty.
const CUT_OFF: f64 = 0.5;
const G: f64 = 10.0;
const EPSILON: f64 = 1e-4;
/// PC above which a pixel counts as a feature.
const FEATURE: f64 = 0.1;
const C: f64 = 1e-4;

/// Phase congruency and its moments, row-major.
struct Features {
    pc: Vec<f64>,
    big: Vec<f64>,
    small: Vec<f64>,
}

/// Where frequency index `k` of `n` points lies on Kovesi's normalised axis, after
/// `ifftshift`: the centre goes to index 0. Odd sizes are normalised by n - 1.
fn shifted_axis(n: usize) -> Vec<f64> {
    let axis: Vec<f64> = (0..n)
        .map(|j| {
            let c = j as f64 - (n / 2) as f64;
            if n % 2 == 1 {
                c / (n - 1).max(1) as f64
            } else {
                c / n as f64
            }
        })
        .collect();
    (0..n).map(|k| axis[(k + n / 2) % n]).collect()
}

/// Kovesi's low-pass (radius 0.45, order 15) on a grid normalised by n. It is placed with
/// `fftshift`, which for an odd size puts the zero frequency at index n - 1, not 0; the original
/// does so and Q_P's values depend on it.
fn lowpass(h: usize, w: usize) -> Vec<f64> {
    let axis = |n: usize| -> Vec<f64> {
        let raw: Vec<f64> = (0..n)
            .map(|j| (j as f64 - (n / 2) as f64) / n as f64)
            .collect();
        (0..n).map(|k| raw[(k + n.div_ceil(2)) % n]).collect()
    };
    let (ys, xs) = (axis(h), axis(w));
    let mut out = Vec::with_capacity(h * w);
    for y in &ys {
        for x in &xs {
            let r = (x * x + y * y).sqrt();
            out.push(1.0 / (1.0 + (r / 0.45).powi(30)));
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    let n = v.len();
    let (_, hi, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        return hi;
    }
    let lo = v[..n / 2].iter().copied().fold(f64::MIN, f64::max);
    (lo + hi) / 2.0
}

fn features(g: &Gray) -> Features {
    let (h, w) = (g.h, g.w);
    let n = h * w;
    let (ys, xs) = (shifted_axis(h), shifted_axis(w));
    let mut radius = vec![0.0; n];
    let (mut sin_t, mut cos_t) = (vec![0.0; n], vec![0.0; n]);
    for (i, y) in ys.iter().enumerate() {
        for (j, x) in xs.iter().enumerate() {
            let k = i * w + j;
            radius[k] = (x * x + y * y).sqrt();
            let t = (-y).atan2(*x);
            (sin_t[k], cos_t[k]) = (t.sin(), t.cos());
        }
    }
    // The zero frequency: 1 so that its log is harmless (its filter value is reset to 0).
    radius[0] = 1.0;
    let lp = lowpass(h, w);
    let log_gabor: Vec<Vec<f64>> = (0..SCALES)
        .map(|s| {
            let fo = 1.0 / (MIN_WAVELENGTH * MULT.powi(s as i32));
            let denom = 2.0 * SIGMA_ON_F.ln().powi(2);
            let mut f: Vec<f64> = (0..n)
                .map(|k| (-(radius[k] / fo).ln().powi(2) / denom).exp() * lp[k])
                .collect();
            f[0] = 0.0;
            f
        })
        .collect();
    let theta_sigma = PI / ORIENTATIONS as f64 / D_THETA_ON_SIGMA;

    let image: Vec<Complex<f64>> = g.v.iter().map(|v| Complex::new(*v, 0.0)).collect();
    let spectrum = super::fft2(&image, h, w, false);
    let (mut total_energy, mut total_sum_an) = (vec![0.0; n], vec![0.0; n]);
    let (mut cov_x2, mut cov_y2, mut cov_xy) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    for o in 0..ORIENTATIONS {
        let angle = o as f64 * PI / ORIENTATIONS as f64;
        let (sa, ca) = angle.sin_cos();
        let spread: Vec<f64> = (0..n)
            .map(|k| {
                let ds = sin_t[k] * ca - cos_t[k] * sa;
                let dc = cos_t[k] * ca + sin_t[k] * sa;
                let d = ds.atan2(dc).abs();
                (-d * d / (2.0 * theta_sigma * theta_sigma)).exp()
            })
            .collect();
        let (mut sum_e, mut sum_o, mut sum_an) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut max_an = vec![0.0; n];
        let mut responses = Vec::with_capacity(SCALES);
        let mut spatial = Vec::with_capacity(SCALES);
        let mut em_n = 0.0;
        for (s, lg) in log_gabor.iter().enumerate() {
            let filter: Vec<f64> = (0..n).map(|k| lg[k] * spread[k]).collect();
            let as_complex: Vec<Complex<f64>> =
                filter.iter().map(|f| Complex::new(*f, 0.0)).collect();
            let scale = (n as f64).sqrt();
            spatial.push(
                super::fft2(&as_complex, h, w, true)
                    .iter()
                    .map(|c| c.re * scale)
                    .collect::<Vec<f64>>(),
            );
            let product: Vec<Complex<f64>> = (0..n).map(|k| spectrum[k] * filter[k]).collect();
            let eo = super::fft2(&product, h, w, true);
            for k in 0..n {
                let an = eo[k].norm();
                sum_an[k] += an;
                sum_e[k] += eo[k].re;
                sum_o[k] += eo[k].im;
                max_an[k] = if s == 0 { an } else { max_an[k].max(an) };
            }
            if s == 0 {
                em_n = filter.iter().map(|f| f * f).sum();
            }
            responses.push(eo);
        }
        let mut energy = vec![0.0; n];
        for k in 0..n {
            let x_energy = (sum_e[k] * sum_e[k] + sum_o[k] * sum_o[k]).sqrt() + EPSILON;
            let (mean_e, mean_o) = (sum_e[k] / x_energy, sum_o[k] / x_energy);
            for eo in &responses {
                let (e, od) = (eo[k].re, eo[k].im);
                energy[k] += e * mean_e + od * mean_o - (e * mean_o - od * mean_e).abs();
            }
        }
        // Noise: the smallest scale's median squared amplitude estimates the noise power, and
        // the filters' spatial forms how much energy noise alone would give.
        let median_e2 = median(responses[0].iter().map(|c| c.norm_sqr()).collect());
        let noise_power = -median_e2 / 0.5f64.ln() / em_n;
        let sum_an2: f64 = spatial.iter().flatten().map(|v| v * v).sum();
        let mut sum_ai_aj = 0.0;
        for si in 0..SCALES {
            for sj in si + 1..SCALES {
                sum_ai_aj += (0..n).map(|k| spatial[si][k] * spatial[sj][k]).sum::<f64>();
            }
        }
        let noise_energy2 = 2.0 * noise_power * sum_an2 + 4.0 * noise_power * sum_ai_aj;
        let tau = (noise_energy2 / 2.0).sqrt();
        let noise_mean = tau * (PI / 2.0).sqrt();
        let noise_sigma = ((2.0 - PI / 2.0) * tau * tau).sqrt();
        // Kovesi's empirical correction of the PC_1 threshold for the PC_2 measure.
        let threshold = (noise_mean + NOISE_K * noise_sigma) / 1.7;
        for k in 0..n {
            let e = (energy[k] - threshold).max(0.0);
            let width = sum_an[k] / (max_an[k] + EPSILON) / SCALES as f64;
            let weight = 1.0 / (1.0 + ((CUT_OFF - width) * G).exp());
            total_sum_an[k] += sum_an[k];
            total_energy[k] += weight * e;
            let pc = weight * e / sum_an[k];
            let (cx, cy) = (pc * ca, pc * sa);
            cov_x2[k] += cx * cx;
            cov_y2[k] += cy * cy;
            cov_xy[k] += cx * cy;
        }
    }
    let half = ORIENTATIONS as f64 / 2.0;
    let mut f = Features {
        pc: Vec::with_capacity(n),
        big: Vec::with_capacity(n),
        small: Vec::with_capacity(n),
    };
    for k in 0..n {
        f.pc.push(total_energy[k] / (total_sum_an[k] + EPSILON));
        let (x2, y2, xy) = (
            cov_x2[k] / half,
            cov_y2[k] / half,
            cov_xy[k] / ORIENTATIONS as f64,
        );
        let denom = (xy * xy + (x2 - y2) * (x2 - y2)).sqrt() + EPSILON;
        f.big.push((y2 + x2 + denom) / 2.0);
        f.small.push((y2 + x2 - denom) / 2.0);
    }
    f
}

/// The 11x11 Gaussian (sigma 1.5) local mean of Q_P's correlation, zero-padded.
fn local_mean(x: &[f64], h: usize, w: usize) -> Vec<f64> {
    const N: usize = 11;
    super::filter_same(x, h, w, &super::viff::gaussian(N, 1.5), N)
}

fn squares(x: &[f64]) -> Vec<f64> {
    x.iter().map(|v| v * v).collect()
}

/// One source map of one feature, zero outside its mask, with its local mean and variance.
struct Local {
    x: Vec<f64>,
    mu: Vec<f64>,
    var: Vec<f64>,
}

impl Local {
    fn new(map: &[f64], mask: &[bool], h: usize, w: usize) -> Local {
        let x: Vec<f64> = map
            .iter()
            .zip(mask)
            .map(|(v, m)| if *m { *v } else { 0.0 })
            .collect();
        let mu = local_mean(&x, h, w);
        let var = local_mean(&squares(&x), h, w)
            .iter()
            .zip(&mu)
            .map(|(e, m)| e - m * m)
            .collect();
        Local { x, mu, var }
    }
}

/// One feature's score: F's map correlated locally with each masked source map, the best of the
/// three at each pixel (0 outside a map's mask), summed over the max-PC mask and divided by its
/// size.
fn correlation(
    maps: &[Local; 3],
    masks: &[Vec<bool>; 3],
    fused: &[f64],
    h: usize,
    w: usize,
) -> f64 {
    let mu_f = local_mean(fused, h, w);
    let var_f: Vec<f64> = local_mean(&squares(fused), h, w)
        .iter()
        .zip(&mu_f)
        .map(|(e, m)| e - m * m)
        .collect();
    let mut best = vec![f64::MIN; h * w];
    for (map, mask) in maps.iter().zip(masks) {
        let xf: Vec<f64> = map.x.iter().zip(fused).map(|(a, b)| a * b).collect();
        let e_xf = local_mean(&xf, h, w);
        for k in 0..h * w {
            let r = if mask[k] {
                let cov = e_xf[k] - map.mu[k] * mu_f[k];
                (cov + C) / ((map.var[k] * var_f[k]).abs().sqrt() + C)
            } else {
                0.0
            };
            best[k] = best[k].max(r);
        }
    }
    let area = masks[2].iter().filter(|m| **m).count();
    best.iter().sum::<f64>() / area as f64
}

/// What Q_P takes from the sources alone: for each feature (PC and its two moments), A's, B's and
/// the larger-PC source's map, masked, with their local means and variances; and where each has a
/// feature.
pub(super) struct SourcePhase {
    features: [[Local; 3]; 3],
    masks: [Vec<bool>; 3],
}

impl SourcePhase {
    pub(super) fn new(a: &Gray, b: &Gray) -> SourcePhase {
        let (h, w) = (a.h, a.w);
        let (fa, fb) = rayon::join(|| features(a), || features(b));
        let from_a: Vec<bool> = fa.pc.iter().zip(&fb.pc).map(|(x, y)| x > y).collect();
        let pick = |x: &[f64], y: &[f64]| -> Vec<f64> {
            (0..x.len())
                .map(|k| if from_a[k] { x[k] } else { y[k] })
                .collect()
        };
        let pc_max = pick(&fa.pc, &fb.pc);
        let mask = |pc: &[f64]| pc.iter().map(|p| *p > FEATURE).collect::<Vec<bool>>();
        let masks = [mask(&fa.pc), mask(&fb.pc), mask(&pc_max)];
        let locals = |x: &[f64], y: &[f64], max: &[f64]| {
            [
                Local::new(x, &masks[0], h, w),
                Local::new(y, &masks[1], h, w),
                Local::new(max, &masks[2], h, w),
            ]
        };
        let features = [
            locals(&fa.pc, &fb.pc, &pc_max),
            locals(&fa.big, &fb.big, &pick(&fa.big, &fb.big)),
            locals(&fa.small, &fb.small, &pick(&fa.small, &fb.small)),
        ];
        SourcePhase { features, masks }
    }

    /// Q_P of F against the sources. NaN when no pixel of either source has PC over 0.1 (the
    /// original divides by an empty mask there too).
    pub(super) fn q_p(&self, f: &Gray) -> f64 {
        let ff = features(f);
        let [pc, big, small] = &self.features;
        let score = |maps, fused: &[f64]| correlation(maps, &self.masks, fused, f.h, f.w);
        score(pc, &ff.pc) * score(big, &ff.big) * score(small, &ff.small)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_put_the_zero_frequency_where_the_original_does() {
        // Even: -n/2..n/2-1 over n, ifftshifted; odd: over n - 1.
        assert_eq!(shifted_axis(4), vec![0.0, 0.25, -0.5, -0.25]);
        assert_eq!(shifted_axis(5), vec![0.0, 0.25, 0.5, -0.5, -0.25]);
        // The low-pass is fftshifted: for odd n its peak (1 at radius 0) lands at index n - 1.
        let lp = lowpass(1, 5);
        assert_eq!(lp[4], 1.0);
        assert!(lp[0] < 1.0);
        assert_eq!(lowpass(1, 4)[0], 1.0);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    fn edges(h: usize, w: usize, shift: usize) -> Gray {
        let v = (0..h * w)
            .map(|k| {
                let (y, x) = (k / w, k % w);
                if (x + shift) % 24 < 12 && (y / 16) % 2 == 0 {
                    200.0
                } else {
                    40.0
                }
            })
            .collect();
        Gray { h, w, v }
    }

    #[test]
    fn a_fusion_that_keeps_the_edges_scores_higher_than_one_that_moves_them() {
        let (a, b) = (edges(64, 72, 0), edges(64, 72, 0));
        let sources = SourcePhase::new(&a, &b);
        let (same, moved) = (sources.q_p(&a), sources.q_p(&edges(64, 72, 5)));
        assert!(same > 0.9 && moved < same - 0.1, "{same} {moved}");
    }
}
