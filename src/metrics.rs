//! Objective fusion metrics of a fused image F against its sources A and B, on 8-bit grey levels.
//! Each is written from its published definition; `tests/metrics.rs` checks them against what the
//! original MATLAB code gives (VIFB, Liu's toolbox, Han's VIFF), to 1e-8 relative.
//!
//! So far: EN, SD and SF of F, MI (Qu), Q_MI (Hossny), the SSIM sum (Wang) and Q^AB/F
//! (Xydeas–Petrović, as published and as VIFB computes it), Q_S (Piella), Q_Y (Yang), Q_CB
//! (Chen–Blum), Q_P (Zhao, on Kovesi's phase congruency, in `q_p.rs`) and VIFF (Han, in
//! `viff.rs`). Colour images are scored on the grey levels MATLAB's
//! `rgb2gray` makes for uint8.

use crate::error::{Error, Result};
use crate::formats::image::{self as io, SampleFormat};
use serde::Serialize;
use std::path::Path;

mod q_p;
mod viff;

/// A grey image with integer levels 0..=255, as f64.
#[derive(Clone, Debug)]
pub struct Gray {
    pub h: usize,
    pub w: usize,
    pub v: Vec<f64>,
}

impl Gray {
    /// Read an 8-bit image; colour becomes grey by `rgb2gray`'s weights, rounded.
    pub fn read(path: &Path) -> Result<Gray> {
        Gray::of(&io::read_image(path)?, path)
    }

    /// An 8-bit raster (named `path` in messages) as grey levels, as [`Gray::read`] takes it.
    pub fn of(r: &io::Raster, path: &Path) -> Result<Gray> {
        if r.format != SampleFormat::U8 {
            return Err(Error::BadImage {
                path: path.to_path_buf(),
                msg: format!(
                    "the metrics are defined on 8-bit grey levels; this image is {:?}",
                    r.format
                ),
            });
        }
        let v = match r.channels.as_slice() {
            [g] => g.clone(),
            [red, green, blue] => (0..r.h * r.w)
                .map(|i| {
                    (0.298936021293775 * red[i]
                        + 0.587043074451121 * green[i]
                        + 0.114020904255103 * blue[i])
                        .round()
                })
                .collect(),
            _ => {
                return Err(Error::BadImage {
                    path: path.to_path_buf(),
                    msg: "expected one grey or three colour channels".into(),
                })
            }
        };
        Ok(Gray { h: r.h, w: r.w, v })
    }

    fn at(&self, y: isize, x: isize) -> f64 {
        if y < 0 || x < 0 || y >= self.h as isize || x >= self.w as isize {
            0.0
        } else {
            self.v[y as usize * self.w + x as usize]
        }
    }

    fn level(&self, i: usize) -> usize {
        self.v[i].clamp(0.0, 255.0) as usize
    }
}

/// The metrics' names, in the order of [`Scores::rows`].
pub const METRIC_NAMES: [&str; 13] = [
    "EN",
    "SD",
    "SF",
    "MI",
    "Q_MI",
    "SSIM_sum",
    "Q_ABF",
    "Q_ABF_vifb",
    "Q_S",
    "Q_Y",
    "Q_CB",
    "Q_P",
    "VIFF",
];

/// The scores of one triple (higher is better; EN, SD and SF describe F alone).
#[derive(Clone, Debug, Serialize)]
#[allow(non_snake_case)]
pub struct Scores {
    /// Entropy of F in bits (256 levels).
    pub EN: f64,
    /// Standard deviation of F.
    pub SD: f64,
    /// Spatial frequency of F.
    pub SF: f64,
    /// I(A;F) + I(B;F) in bits.
    pub MI: f64,
    /// Hossny's normalised mutual information.
    pub Q_MI: f64,
    /// SSIM(A, F) + SSIM(B, F).
    pub SSIM_sum: f64,
    /// Q^AB/F as published.
    pub Q_ABF: f64,
    /// Q^AB/F as VIFB's code computes it (for comparison with VIFB-based papers).
    pub Q_ABF_vifb: f64,
    /// Piella's structural quality index.
    pub Q_S: f64,
    /// Yang's SSIM-based metric.
    pub Q_Y: f64,
    /// Chen and Blum's perceptual metric.
    pub Q_CB: f64,
    /// Zhao's phase-congruency metric; `None` (JSON `null`) when neither source has a feature
    /// (phase congruency over 0.1 anywhere), where it is 0/0.
    pub Q_P: Option<f64>,
    /// Han's visual information fidelity for fusion; `None` (JSON `null`) for images under 81
    /// pixels on a side, where its coarsest scale has no room.
    pub VIFF: Option<f64>,
}

impl Scores {
    /// Name and value of each score, in the order of the struct (`None` where the image is too
    /// small for the metric).
    pub fn rows(&self) -> [(&'static str, Option<f64>); 13] {
        let values = [
            Some(self.EN),
            Some(self.SD),
            Some(self.SF),
            Some(self.MI),
            Some(self.Q_MI),
            Some(self.SSIM_sum),
            Some(self.Q_ABF),
            Some(self.Q_ABF_vifb),
            Some(self.Q_S),
            Some(self.Q_Y),
            Some(self.Q_CB),
            self.Q_P,
            self.VIFF,
        ];
        std::array::from_fn(|i| (METRIC_NAMES[i], values[i]))
    }
}

/// Score F against A and B (all the same size, at least 11x11 for SSIM's window).
pub fn score(a: &Gray, b: &Gray, f: &Gray) -> Result<Scores> {
    // All three sizes first, so that a wrong F is refused before the sources' part is computed.
    if (a.h, a.w) != (f.h, f.w) || (b.h, b.w) != (f.h, f.w) {
        return Err(sizes_differ(a, b, f));
    }
    Sources::new(a, b)?.score(f)
}

fn sizes_differ(a: &Gray, b: &Gray, f: &Gray) -> Error {
    Error::Param(format!(
        "the three images differ in size: {}x{}, {}x{} and {}x{}",
        a.w, a.h, b.w, b.h, f.w, f.h
    ))
}

/// Two sources with what the metrics compute from them alone (Q_P's phase congruency and its
/// masked maps' local statistics, Q_CB's masked contrast, Q_Y's SSIM of A with B), for scoring
/// several fused images of one pair at about half the cost of [`score`] on each.
pub struct Sources<'a> {
    a: &'a Gray,
    b: &'a Gray,
    phase: q_p::SourcePhase,
    contrast: [Vec<f64>; 2],
    similarity: SsimMaps,
}

impl<'a> Sources<'a> {
    /// The sources of a pair: the same size, at least 11x11 for SSIM's window.
    pub fn new(a: &'a Gray, b: &'a Gray) -> Result<Sources<'a>> {
        if (a.h, a.w) != (b.h, b.w) {
            return Err(Error::Param(format!(
                "the sources differ in size: {}x{} and {}x{}",
                a.w, a.h, b.w, b.h
            )));
        }
        if a.h < 11 || a.w < 11 {
            return Err(Error::Param(format!(
                "images of {}x{} are smaller than SSIM's 11x11 window",
                a.w, a.h
            )));
        }
        let (phase, (contrast, similarity)) = rayon::join(
            || q_p::SourcePhase::new(a, b),
            || {
                (
                    [masked_contrast(a), masked_contrast(b)],
                    window_ssim(a, b, 7, Q_Y_CONSTANTS),
                )
            },
        );
        Ok(Sources {
            a,
            b,
            phase,
            contrast,
            similarity,
        })
    }

    /// Score F, the size of the sources.
    pub fn score(&self, f: &Gray) -> Result<Scores> {
        let (a, b) = (self.a, self.b);
        if (a.h, a.w) != (f.h, f.w) {
            return Err(sizes_differ(a, b, f));
        }
        // The metrics are independent: two halves of about equal cost run on two threads when
        // the pool has them (Q_P and the SSIM family, then Q_CB, VIFF and the rest).
        let ((q_p, [ssim_sum, q_s, q_y]), (q_cb, viff, rest)) = rayon::join(
            || {
                (
                    self.phase.q_p(f),
                    [
                        ssim(a, f) + ssim(b, f),
                        q_s(a, b, f),
                        q_y(&self.similarity, a, b, f),
                    ],
                )
            },
            || {
                (
                    q_cb(&self.contrast, f),
                    (f.h.min(f.w) >= viff::MIN_SIDE).then(|| viff::viff(a, b, f)),
                    [
                        entropy(&hist(f)),
                        std_dev(f),
                        spatial_frequency(f),
                        mutual_info(a, f) + mutual_info(b, f),
                        q_mi(a, b, f),
                        q_abf(a, b, f, Gradient::Published),
                        q_abf(a, b, f, Gradient::Vifb),
                    ],
                )
            },
        );
        let [en, sd, sf, mi, q_mi, q_abf, q_abf_vifb] = rest;
        Ok(Scores {
            EN: en,
            SD: sd,
            SF: sf,
            MI: mi,
            Q_MI: q_mi,
            SSIM_sum: ssim_sum,
            Q_ABF: q_abf,
            Q_ABF_vifb: q_abf_vifb,
            Q_S: q_s,
            Q_Y: q_y,
            Q_CB: q_cb,
            Q_P: Some(q_p).filter(|q| q.is_finite()),
            VIFF: viff,
        })
    }
}

/// Normalised 256-level histogram.
fn hist(g: &Gray) -> Vec<f64> {
    let mut h = vec![0.0; 256];
    for i in 0..g.v.len() {
        h[g.level(i)] += 1.0;
    }
    let n = g.v.len() as f64;
    h.iter_mut().for_each(|c| *c /= n);
    h
}

/// Shannon entropy in bits of a distribution.
fn entropy(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|x| **x > 0.0)
        .map(|x| x * x.log2())
        .sum::<f64>()
}

fn std_dev(f: &Gray) -> f64 {
    let n = f.v.len() as f64;
    let mean = f.v.iter().sum::<f64>() / n;
    (f.v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// sqrt(RF^2 + CF^2), each the root of the summed squared neighbour differences over all pixels.
fn spatial_frequency(f: &Gray) -> f64 {
    let (h, w) = (f.h, f.w);
    let (mut rf, mut cf) = (0.0, 0.0);
    for y in 0..h {
        for x in 0..w {
            let v = f.v[y * w + x];
            if x > 0 {
                rf += (v - f.v[y * w + x - 1]).powi(2);
            }
            if y > 0 {
                cf += (v - f.v[(y - 1) * w + x]).powi(2);
            }
        }
    }
    let n = (h * w) as f64;
    (rf / n + cf / n).sqrt()
}

/// I(X;F) in bits from the 256x256 joint histogram.
fn mutual_info(x: &Gray, f: &Gray) -> f64 {
    let mut joint = vec![0.0; 256 * 256];
    for i in 0..x.v.len() {
        joint[x.level(i) * 256 + f.level(i)] += 1.0;
    }
    let n = x.v.len() as f64;
    joint.iter_mut().for_each(|c| *c /= n);
    let px: Vec<f64> = (0..256)
        .map(|i| joint[i * 256..(i + 1) * 256].iter().sum())
        .collect();
    let pf: Vec<f64> = (0..256)
        .map(|j| (0..256).map(|i| joint[i * 256 + j]).sum())
        .collect();
    entropy(&px) + entropy(&pf) - entropy(&joint)
}

/// Hossny et al.: 2 [I(A;F) / (H(A) + H(F)) + I(B;F) / (H(B) + H(F))].
fn q_mi(a: &Gray, b: &Gray, f: &Gray) -> f64 {
    let (ha, hb, hf) = (entropy(&hist(a)), entropy(&hist(b)), entropy(&hist(f)));
    2.0 * (mutual_info(a, f) / (ha + hf) + mutual_info(b, f) / (hb + hf))
}

/// The SSIM map of x and y over the windows that lie inside the image (Gaussian 11x11, sigma 1.5,
/// K = 0.01 and 0.03, L = 255, as Wang's `ssim_index`), with the windows' variances of x and y.
struct SsimMaps {
    map: Vec<f64>,
    var_x: Vec<f64>,
    var_y: Vec<f64>,
}

fn ssim_maps(x: &Gray, y: &Gray) -> SsimMaps {
    let c = [(0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2)];
    window_ssim(x, y, 11, c)
}

/// [`ssim_maps`] with an `n x n` Gaussian window (sigma 1.5) and constants `[c1, c2]`.
fn window_ssim(x: &Gray, y: &Gray, n: usize, [c1, c2]: [f64; 2]) -> SsimMaps {
    const N_MAX: usize = 11;
    assert!(n <= N_MAX);
    let c = (n - 1) as f64 / 2.0;
    let mut win = [0.0; N_MAX * N_MAX];
    for u in 0..n {
        for v in 0..n {
            let (du, dv) = (u as f64 - c, v as f64 - c);
            win[u * n + v] = (-(du * du + dv * dv) / (2.0 * 1.5 * 1.5)).exp();
        }
    }
    let total: f64 = win[..n * n].iter().sum();
    win[..n * n].iter_mut().for_each(|g| *g /= total);
    let (oh, ow) = (x.h - n + 1, x.w - n + 1);
    let mut out = SsimMaps {
        map: Vec::with_capacity(oh * ow),
        var_x: Vec::with_capacity(oh * ow),
        var_y: Vec::with_capacity(oh * ow),
    };
    // Per output row, each window tap is added to the whole row at once: every pixel's sums keep
    // their row-major order, and the inner loop vectorises.
    let mut sums = vec![[0.0; 5]; ow];
    for i in 0..oh {
        sums.iter_mut().for_each(|s| *s = [0.0; 5]);
        for u in 0..n {
            let row = (i + u) * x.w;
            for v in 0..n {
                let g = win[u * n + v];
                let (xs, ys) = (&x.v[row + v..row + v + ow], &y.v[row + v..row + v + ow]);
                for ((s, &p), &q) in sums.iter_mut().zip(xs).zip(ys) {
                    s[0] += g * p;
                    s[1] += g * q;
                    s[2] += g * p * p;
                    s[3] += g * q * q;
                    s[4] += g * p * q;
                }
            }
        }
        for &[mx, my, xx, yy, xy] in &sums {
            let (sx, sy, sxy) = (xx - mx * mx, yy - my * my, xy - mx * my);
            out.map.push(
                ((2.0 * mx * my + c1) * (2.0 * sxy + c2))
                    / ((mx * mx + my * my + c1) * (sx + sy + c2)),
            );
            out.var_x.push(sx);
            out.var_y.push(sy);
        }
    }
    out
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Mean SSIM.
fn ssim(x: &Gray, y: &Gray) -> f64 {
    mean(&ssim_maps(x, y).map)
}

/// Chen and Blum's perceptual metric Q_CB (Image and Vision Computing 27, 2009), as Liu's toolbox
/// computes it: each image rescaled to 0..255, filtered by the contrast sensitivity function in
/// the frequency domain, local band-limited contrast from two Gaussians (sigma 2 and 4, 31x31,
/// zero-padded), masked (k = h = 1, p = 3, q = 2, Z = 1e-4), and the preserved contrast of each
/// source weighted by its squared masked contrast. The CSF leaves values near zero in flat regions,
/// where FFT round-off decides the contrast ratio; two correct implementations differ there by
/// about 1e-5.
fn q_cb([ca, cb]: &[Vec<f64>; 2], f: &Gray) -> f64 {
    let cf = masked_contrast(f);
    let q: Vec<f64> = (0..cf.len())
        .map(|i| {
            let keep = |c: f64| if c < cf[i] { c / cf[i] } else { cf[i] / c };
            let (wa, wb) = (ca[i] * ca[i], cb[i] * cb[i]);
            (wa * keep(ca[i]) + wb * keep(cb[i])) / (wa + wb)
        })
        .collect();
    mean(&q)
}

/// Q_CB's masked contrast of one image.
fn masked_contrast(g: &Gray) -> Vec<f64> {
    use rustfft::num_complex::Complex;
    let (h, w) = (g.h, g.w);
    let (lo, hi) =
        g.v.iter()
            .fold((f64::MAX, f64::MIN), |(l, u), x| (l.min(*x), u.max(*x)));
    let scaled: Vec<Complex<f64>> =
        g.v.iter()
            .map(|x| {
                let y = if lo == 0.0 && hi == 0.0 {
                    *x
                } else {
                    ((x - lo) / (hi - lo) * 255.0).round()
                };
                Complex::new(y, 0.0)
            })
            .collect();
    // The CSF of Chen and Blum (f0 15.387, f1 1.3456, a 0.7622), on frequencies in cycles per
    // image over 30 (the toolbox's viewing set-up).
    let signed = |k: usize, n: usize| {
        if k < n - n / 2 {
            k as f64
        } else {
            k as f64 - n as f64
        }
    };
    let mut spec = fft2(&scaled, h, w, false);
    for ky in 0..h {
        for kx in 0..w {
            let r = (signed(kx, w).powi(2) + signed(ky, h).powi(2)).sqrt() / 30.0 * 2.0;
            let sd = (-(r / 15.3870).powi(2)).exp() - 0.7622 * (-(r / 1.3456).powi(2)).exp();
            spec[ky * w + kx] *= sd;
        }
    }
    let filtered = fft2(&spec, h, w, true);
    let (g1, g2) = (
        gauss_blur(&filtered, h, w, 2.0),
        gauss_blur(&filtered, h, w, 4.0),
    );
    (0..h * w)
        .map(|i| {
            let c = (g1[i] / g2[i] - 1.0).norm();
            c.powi(3) / (c * c + 1e-4)
        })
        .collect()
}

/// 2-D DFT of a row-major `h x w` array; `inverse` includes the 1/(h w) factor.
fn fft2(
    x: &[rustfft::num_complex::Complex<f64>],
    h: usize,
    w: usize,
    inverse: bool,
) -> Vec<rustfft::num_complex::Complex<f64>> {
    use rustfft::FftPlanner;
    let mut planner = FftPlanner::<f64>::new();
    let mut plan = |n| match inverse {
        true => planner.plan_fft_inverse(n),
        false => planner.plan_fft_forward(n),
    };
    let (rows, cols) = (plan(w), plan(h));
    let mut out = x.to_vec();
    rows.process(&mut out);
    // The columns as rows of the transpose: the same transform of each column, on contiguous data.
    let mut t = transpose(&out, h, w);
    cols.process(&mut t);
    let mut out = transpose(&t, w, h);
    if inverse {
        let s = 1.0 / (h * w) as f64;
        out.iter_mut().for_each(|c| *c *= s);
    }
    out
}

/// The transpose of a row-major `h x w` array, in square blocks that stay in cache.
fn transpose<T: Copy + Default>(x: &[T], h: usize, w: usize) -> Vec<T> {
    const BLOCK: usize = 16;
    let mut t = vec![T::default(); h * w];
    for i0 in (0..h).step_by(BLOCK) {
        for j0 in (0..w).step_by(BLOCK) {
            for i in i0..(i0 + BLOCK).min(h) {
                for j in j0..(j0 + BLOCK).min(w) {
                    t[j * h + i] = x[i * w + j];
                }
            }
        }
    }
    t
}

/// Correlation with the 31x31 Gaussian exp(-(x^2 + y^2) / 2 sigma^2) / (2 pi sigma^2) (not
/// normalised to sum 1), zero outside the image, as MATLAB's `filter2(G, x, 'same')`, on the real
/// and imaginary parts alike. It is done in 2-D, not separably: in flat regions Q_CB divides
/// round-off by round-off, and the separable sum's different rounding moves the score by 3e-4 on
/// a black-background pair.
fn gauss_blur(
    x: &[rustfft::num_complex::Complex<f64>],
    h: usize,
    w: usize,
    sigma: f64,
) -> Vec<rustfft::num_complex::Complex<f64>> {
    const R: isize = 15;
    const N: usize = 2 * R as usize + 1;
    let mut k = [0.0; N * N];
    for (p, dy) in (-R..=R).enumerate() {
        for (q, dx) in (-R..=R).enumerate() {
            k[p * N + q] = (-((dx * dx + dy * dy) as f64) / (2.0 * sigma * sigma)).exp()
                / (2.0 * std::f64::consts::PI * sigma * sigma);
        }
    }
    let re: Vec<f64> = x.iter().map(|c| c.re).collect();
    let im: Vec<f64> = x.iter().map(|c| c.im).collect();
    let (re, im) = (filter_same(&re, h, w, &k, N), filter_same(&im, h, w, &k, N));
    re.into_iter()
        .zip(im)
        .map(|(re, im)| rustfft::num_complex::Complex::new(re, im))
        .collect()
}

/// Zero-padded correlation of the row-major `h x w` image `x` with the `n x n` window `win` (n
/// odd), output the size of the input, as MATLAB's `filter2(win, x, 'same')`. Every output adds
/// its terms in the window's row-major order, skipping those outside the image, as the metrics'
/// checked values were computed; the loops run over a whole output row per tap so that they
/// vectorise without reordering any pixel's sum.
fn filter_same(x: &[f64], h: usize, w: usize, win: &[f64], n: usize) -> Vec<f64> {
    let r = n / 2;
    let mut out = vec![0.0; h * w];
    for (i, acc) in out.chunks_exact_mut(w).enumerate() {
        for u in 0..n {
            // The input row under window row u, if inside the image.
            let Some(y) = (i + u).checked_sub(r).filter(|&y| y < h) else {
                continue;
            };
            let row = &x[y * w..(y + 1) * w];
            for v in 0..n {
                // Output j reads row[j + v - r]: inside for r - v <= j < w + r - v.
                let (lo, hi) = (r.saturating_sub(v), (w + r).saturating_sub(v).min(w));
                if lo >= hi {
                    continue;
                }
                let g = win[u * n + v];
                let src = &row[lo + v - r..hi + v - r];
                for (a, p) in acc[lo..hi].iter_mut().zip(src) {
                    *a += g * p;
                }
            }
        }
    }
    out
}

/// Q_Y's SSIM constants.
const Q_Y_CONSTANTS: [f64; 2] = [2e-16, 2e-16];

/// Yang et al.'s SSIM-based metric Q_Y (Information Fusion 9, 2008; 7x7 Gaussian windows, sigma
/// 1.5, constants 2e-16): where the sources are alike (SSIM(A, B) >= 0.75) the variance-weighted
/// SSIM of F with each, elsewhere the larger of the two. Where both sources are flat the weight is
/// one half; the original code divides 0 by 0 there and returns NaN.
fn q_y(ab: &SsimMaps, a: &Gray, b: &Gray, f: &Gray) -> f64 {
    let c = Q_Y_CONSTANTS;
    let (af, bf) = (window_ssim(a, f, 7, c).map, window_ssim(b, f, 7, c).map);
    let q: Vec<f64> = (0..af.len())
        .map(|i| {
            if ab.map[i] >= 0.75 {
                let wa = variance_share(ab.var_x[i], ab.var_y[i]);
                wa * af[i] + (1.0 - wa) * bf[i]
            } else {
                af[i].max(bf[i])
            }
        })
        .collect();
    mean(&q)
}

/// Source A's share of two local variances, one half where both are zero (flat windows): the
/// weight of Q_S and Q_Y.
fn variance_share(va: f64, vb: f64) -> f64 {
    if va + vb == 0.0 {
        0.5
    } else {
        va / (va + vb)
    }
}

/// Piella and Heijmans' fusion quality index Q_S (ICIP 2003, eq. 7): per window, the SSIM of F
/// with each source, weighted by that source's share of the two local variances (half each where
/// both are flat), averaged over the windows.
fn q_s(a: &Gray, b: &Gray, f: &Gray) -> f64 {
    let ab = ssim_maps(a, b);
    let (fa, fb) = (ssim_maps(f, a).map, ssim_maps(f, b).map);
    let q: Vec<f64> = (0..fa.len())
        .map(|i| {
            let wa = variance_share(ab.var_x[i], ab.var_y[i]);
            wa * fa[i] + (1.0 - wa) * fb[i]
        })
        .collect();
    mean(&q)
}

/// Which edge-strength ratio Q^AB/F uses where a source's gradient equals F's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gradient {
    /// The paper's: the ratio is 1 there.
    Published,
    /// VIFB's code: it takes F's gradient magnitude itself there.
    Vifb,
}

/// Sobel magnitude and orientation atan(gy / gx) (pi/2 where gx = 0), zero-padded, as MATLAB's
/// `conv2(.., 'same')` with the kernels the Q^AB/F code uses.
fn sobel(g: &Gray) -> (Vec<f64>, Vec<f64>) {
    const HX: [[f64; 3]; 3] = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]];
    const HY: [[f64; 3]; 3] = [[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]];
    let n = g.h * g.w;
    let (mut mag, mut ang) = (vec![0.0; n], vec![0.0; n]);
    for y in 0..g.h as isize {
        for x in 0..g.w as isize {
            let (mut sx, mut sy) = (0.0, 0.0);
            // Convolution: the kernel is flipped against the image.
            for p in 0..3 {
                for q in 0..3 {
                    let v = g.at(y + 1 - p as isize, x + 1 - q as isize);
                    sx += v * HX[p][q];
                    sy += v * HY[p][q];
                }
            }
            let i = y as usize * g.w + x as usize;
            mag[i] = (sx * sx + sy * sy).sqrt();
            ang[i] = if sx == 0.0 {
                std::f64::consts::FRAC_PI_2
            } else {
                (sy / sx).atan()
            };
        }
    }
    (mag, ang)
}

/// Xydeas & Petrović's gradient-based metric (Γg .9994, κg -15, σg .5, Γα .9879, κα -22, σα .8,
/// L = 1).
fn q_abf(a: &Gray, b: &Gray, f: &Gray, rule: Gradient) -> f64 {
    let (gf, af) = sobel(f);
    let (mut num, mut den) = (0.0, 0.0);
    for src in [a, b] {
        let (gs, as_) = sobel(src);
        for i in 0..gs.len() {
            let ratio = if gs[i] > gf[i] {
                gf[i] / gs[i]
            } else if gs[i] == gf[i] {
                match rule {
                    Gradient::Published => 1.0,
                    Gradient::Vifb => gf[i],
                }
            } else {
                gs[i] / gf[i]
            };
            let orient = 1.0 - (as_[i] - af[i]).abs() / std::f64::consts::FRAC_PI_2;
            let qg = 0.9994 / (1.0 + (-15.0 * (ratio - 0.5)).exp());
            let qa = 0.9879 / (1.0 + (-22.0 * (orient - 0.8)).exp());
            num += qg * qa * gs[i];
            den += gs[i];
        }
    }
    num / den
}
