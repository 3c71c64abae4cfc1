//! Convolutional dictionary learning, as SPORCO's `ConvBPDNDictLearn`: ADMM on the coefficients (one
//! CBPDN iteration per training tile) alternating with one ADMM iteration of the constrained dictionary
//! update (SPORCO `ConvCnstrMOD`): per DFT bin solve `(sum_k conj(x_k) x_k^T + sigma I) d = b` (Woodbury,
//! a K x K system for K tiles), then project onto filters of `size x size` support and unit norm.

pub mod training;
pub mod tv_split;

use crate::cpu::cbpdn::{Cbpdn, CbpdnOptions};
use crate::cpu::fft::Fft2;
use crate::dictionary::Dictionary;
use crate::plane::Plane;
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use std::path::PathBuf;
use std::sync::Arc;

type C64 = Complex<f64>;

#[derive(Clone, Debug)]
pub struct LearnParams {
    pub filters: usize,
    pub size: usize,
    pub lambda: f64,
    pub iters: usize,
    /// Dictionary-update penalty.
    pub sigma: f64,
    pub seed: u64,
}

impl Default for LearnParams {
    fn default() -> Self {
        LearnParams {
            filters: 32,
            size: 8,
            lambda: 0.1,
            iters: 200,
            sigma: 10.0,
            seed: 1,
        }
    }
}

/// Progress of one outer iteration, for the caller's progress display.
pub struct LearnProgress {
    pub iter: usize,
    /// Sum over tiles of the CBPDN objective (evaluated every 10 iterations and at the end).
    pub objective: Option<f64>,
    /// At the last iteration: how many filters no tile's sparse code uses (all coefficients zero).
    pub unused_filters: Option<usize>,
}

/// splitmix64: a tiny deterministic generator for the initial dictionary (no extra dependency).
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Zero the filter outside its `size x size` support at the origin and scale it to unit norm.
fn project(plane: &mut [f64], h: usize, w: usize, size: usize) {
    let mut nrm = 0.0;
    for y in 0..h {
        for x in 0..w {
            let v = &mut plane[y * w + x];
            if y >= size || x >= size {
                *v = 0.0;
            }
            nrm += *v * *v;
        }
    }
    if nrm > 0.0 {
        let inv = 1.0 / nrm.sqrt();
        plane.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Solve the K x K Hermitian positive definite system `a z = b` in place (Gaussian elimination).
fn solve_small(a: &mut [C64], b: &mut [C64], k: usize) {
    for c in 0..k {
        let piv = a[c * k + c];
        for r in c + 1..k {
            let f = a[r * k + c] / piv;
            for j in c..k {
                let t = a[c * k + j];
                a[r * k + j] -= f * t;
            }
            let t = b[c];
            b[r] -= f * t;
        }
    }
    for c in (0..k).rev() {
        let mut s = b[c];
        for j in c + 1..k {
            s -= a[c * k + j] * b[j];
        }
        b[c] = s / a[c * k + c];
    }
}

impl LearnParams {
    /// Refuse parameters that would make the learned filters NaN or Inf.
    pub fn validate(&self) -> crate::Result<()> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(crate::Error::Param(format!(
                    "{name} must be a positive number, got {v}"
                )))
            }
        };
        positive("--lambda", self.lambda)?;
        positive("--sigma", self.sigma)?;
        if self.filters == 0 || self.size == 0 || self.iters == 0 {
            return Err(crate::Error::Param(
                "--filters, --size and --iters must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Learn a dictionary from equally sized training tiles.
pub fn learn(
    tiles: &[Plane],
    p: &LearnParams,
    mut progress: impl FnMut(&LearnProgress),
) -> crate::Result<Dictionary> {
    p.validate()?;
    let (h, w) = (tiles[0].h, tiles[0].w);
    let (m, k_tiles) = (p.filters, tiles.len());
    let fft = Arc::new(Fft2::<f64>::new(h, w));
    let (n, np) = (fft.spectrum_len(), h * w);

    // Random unit-norm initial filters.
    let mut rng = SplitMix(p.seed);
    let mut g = vec![0.0; m * np];
    for plane in g.chunks_exact_mut(np) {
        for y in 0..p.size {
            for x in 0..p.size {
                plane[y * w + x] = rng.normal();
            }
        }
        project(plane, h, w, p.size);
    }
    let mut hd = vec![0.0; m * np];
    let spectra = |planes: &[f64]| {
        let mut buf = planes.to_vec();
        let mut out = vec![C64::default(); m * n];
        fft.forward_batch(&mut buf, &mut out);
        out
    };
    let mut opts = CbpdnOptions::new(p.lambda);
    opts.rho = Some(50.0 * p.lambda + 0.5);
    opts.auto_rho.enabled = false;
    let sfs: Vec<Vec<C64>> = tiles
        .iter()
        .map(|t| {
            let mut s = t.data.clone();
            let mut sf = vec![C64::default(); n];
            fft.forward(&mut s, &mut sf, &mut fft.scratch());
            sf
        })
        .collect();
    let gf = spectra(&g);
    let mut solvers: Vec<Cbpdn<f64>> = sfs
        .iter()
        .map(|sf| Cbpdn::with_spectra(fft.clone(), m, gf.clone(), sf.clone(), &opts))
        .collect();

    for it in 1..=p.iters {
        crate::cancel::check()?;
        for s in solvers.iter_mut() {
            s.step();
        }
        let xfs: Vec<Vec<C64>> = solvers.iter().map(|s| spectra(s.y())).collect();
        // b = sum_k conj(X_k) S_k + sigma FFT(G - H); solve per bin, result bin-major.
        let gh: Vec<f64> = g.iter().zip(&hd).map(|(a, b)| a - b).collect();
        let ghf = spectra(&gh);
        let sigma = p.sigma;
        let mut d_bins = vec![C64::default(); n * m];
        d_bins.par_chunks_mut(m).enumerate().for_each(|(bin, d)| {
            let x = |k: usize, f: usize| xfs[k][f * n + bin];
            for (f, v) in d.iter_mut().enumerate() {
                let mut b = ghf[f * n + bin] * sigma;
                for (k, sf) in sfs.iter().enumerate() {
                    b += x(k, f).conj() * sf[bin];
                }
                *v = b;
            }
            // Woodbury with A = [conj(x_1) .. conj(x_K)]: d = (b - A (sigma I + A^H A)^-1 A^H b) / sigma
            let mut gram = vec![C64::default(); k_tiles * k_tiles];
            let mut ahb = vec![C64::default(); k_tiles];
            for i in 0..k_tiles {
                for j in 0..k_tiles {
                    let mut s = C64::default();
                    for f in 0..m {
                        s += x(i, f) * x(j, f).conj();
                    }
                    gram[i * k_tiles + j] = s + if i == j { sigma } else { 0.0 };
                }
                ahb[i] = (0..m).map(|f| x(i, f) * d[f]).sum();
            }
            solve_small(&mut gram, &mut ahb, k_tiles);
            for (f, v) in d.iter_mut().enumerate() {
                let corr: C64 = (0..k_tiles).map(|i| x(i, f).conj() * ahb[i]).sum();
                *v = (*v - corr) / sigma;
            }
        });
        let mut df = vec![C64::default(); m * n];
        for bin in 0..n {
            for f in 0..m {
                df[f * n + bin] = d_bins[bin * m + f];
            }
        }
        let mut d_sp = vec![0.0; m * np];
        fft.inverse_batch(&df, &mut d_sp);
        // G = P(D + H); H += D - G
        for ((gp, hp), dp) in g
            .chunks_exact_mut(np)
            .zip(hd.chunks_exact_mut(np))
            .zip(d_sp.chunks_exact(np))
        {
            for i in 0..np {
                gp[i] = dp[i] + hp[i];
            }
            project(gp, h, w, p.size);
            for i in 0..np {
                hp[i] += dp[i] - gp[i];
            }
        }
        let gf = spectra(&g);
        for s in solvers.iter_mut() {
            s.set_filter_spectra(gf.clone());
        }
        let objective: Option<f64> = (it % 10 == 0 || it == p.iters)
            .then(|| solvers.iter().map(|s| s.stats().objective).sum());
        if let Some(o) = objective.filter(|o| !o.is_finite()) {
            return Err(crate::Error::Numerical(format!(
                "dictionary learning diverged (objective {o} at iteration {it}); lower --lambda or \
                 raise --sigma"
            )));
        }
        let unused_filters = (it == p.iters).then(|| unused_filters(&solvers, m, np));
        progress(&LearnProgress {
            iter: it,
            objective,
            unused_filters,
        });
        if let Some(u) = unused_filters.filter(|&u| u > 0) {
            // A filter no code uses gets no update: it stays its random start.
            log::warn!(
                "{u} of {m} learned filters are used by no training tile's sparse code, so they \
                 are still their random start: --lambda {} is large for this training data (the \
                 texture part of [0, 1] images is a few hundredths; try --lambda 0.003)",
                p.lambda
            );
        }
    }

    let mut data = vec![0.0; m * p.size * p.size];
    for f in 0..m {
        for y in 0..p.size {
            for x in 0..p.size {
                data[f * p.size * p.size + y * p.size + x] = g[f * np + y * w + x];
            }
        }
    }
    if data.iter().any(|v| !v.is_finite()) {
        return Err(crate::Error::Numerical(
            "dictionary learning produced non-finite filters; lower --lambda or raise --sigma"
                .into(),
        ));
    }
    Ok(Dictionary {
        fh: p.size,
        fw: p.size,
        m,
        data,
        source: PathBuf::from("<learned>"),
    })
}

/// Filters whose coefficient maps are zero in every solver.
fn unused_filters(solvers: &[Cbpdn<f64>], m: usize, np: usize) -> usize {
    (0..m)
        .filter(|&f| {
            solvers
                .iter()
                .all(|s| s.y()[f * np..(f + 1) * np].iter().all(|&v| v == 0.0))
        })
        .count()
}

/// Non-overlapping `tile x tile` crops of a plane (the remainder at the right/bottom is dropped).
pub fn tiles_of(p: &Plane, tile: usize) -> Vec<Plane> {
    let mut out = Vec::new();
    for ty in 0..p.h / tile {
        for tx in 0..p.w / tile {
            let mut t = Plane::zeros(tile, tile);
            for y in 0..tile {
                let src = (ty * tile + y) * p.w + tx * tile;
                t.data[y * tile..(y + 1) * tile].copy_from_slice(&p.data[src..src + tile]);
            }
            out.push(t);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_solver_solves() {
        let k = 3;
        let mut a: Vec<C64> = vec![
            C64::new(4.0, 0.0),
            C64::new(1.0, 1.0),
            C64::new(0.0, -1.0),
            C64::new(1.0, -1.0),
            C64::new(5.0, 0.0),
            C64::new(0.5, 0.0),
            C64::new(0.0, 1.0),
            C64::new(0.5, 0.0),
            C64::new(3.0, 0.0),
        ];
        let z = [C64::new(1.0, 2.0), C64::new(-1.0, 0.5), C64::new(0.3, -0.7)];
        let mut b: Vec<C64> = (0..k)
            .map(|r| (0..k).map(|c| a[r * k + c] * z[c]).sum())
            .collect();
        solve_small(&mut a, &mut b, k);
        for (u, v) in b.iter().zip(&z) {
            assert!((u - v).norm() < 1e-12);
        }
    }

    /// Three 32x32 tiles of random diagonal strokes of amplitude about `scale`.
    fn stroke_tiles(scale: f64) -> Vec<Plane> {
        let mut rng = SplitMix(7);
        (0..3)
            .map(|_| {
                let mut t = Plane::zeros(32, 32);
                for _ in 0..12 {
                    let (y, x, a) = (
                        (rng.uniform() * 28.0) as usize,
                        (rng.uniform() * 28.0) as usize,
                        scale * rng.normal(),
                    );
                    for d in 0..4 {
                        t.data[(y + d) * 32 + x + d] += a; // diagonal strokes
                        t.data[(y + d) * 32 + x] += 0.5 * a;
                    }
                }
                t
            })
            .collect()
    }

    fn small_params() -> LearnParams {
        LearnParams {
            filters: 4,
            size: 4,
            lambda: 0.05,
            iters: 40,
            sigma: 5.0,
            seed: 3,
        }
    }

    /// Learning on tiles made of a few known filters must lower the sparse-coding objective.
    #[test]
    fn learning_lowers_the_objective() {
        let mut objs = Vec::new();
        let mut unused = Vec::new();
        learn(&stroke_tiles(1.0), &small_params(), |pr| {
            objs.extend(pr.objective);
            unused.extend(pr.unused_filters);
        })
        .unwrap();
        assert!(objs.len() == 4);
        assert!(objs[3] < 0.8 * objs[0], "objective did not fall: {objs:?}");
        assert_eq!(unused, [0], "every filter codes some stroke");
    }

    /// Training data far below lambda leaves every code zero; learn must say so, not return its
    /// random start as if it had learned it.
    #[test]
    fn filters_no_code_uses_are_counted() {
        let mut unused = Vec::new();
        learn(&stroke_tiles(1e-3), &small_params(), |pr| {
            unused.extend(pr.unused_filters)
        })
        .unwrap();
        assert_eq!(unused, [4]);
    }
}
