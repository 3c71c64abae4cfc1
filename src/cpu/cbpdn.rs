//! Convolutional basis pursuit denoising by ADMM in the DFT domain, compatible with SPORCO's `ConvBPDN`
//! (docs/method.md, "Sparse coding"):  `min_X 1/2 || sum_m d_m (*) x_m - s ||^2 + lam sum_m w_m ||x_m||_1`.
//!
//! Per iteration: one batched forward FFT of `Y - U`, the per-bin X step, one batched inverse FFT, and one
//! fused pass that relaxes, soft-thresholds, updates the dual, accumulates the residual norms and writes
//! `Y - U` for the next iteration.

use crate::cpu::fft::Fft2;
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::plane::CoefMaps;
use crate::real::Real;
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// Residual-balancing rho adjustment (SPORCO `AutoRho`).
#[derive(Clone, Debug, Serialize)]
pub struct AutoRho {
    pub enabled: bool,
    /// Adjust every `period` iterations (never after the first).
    pub period: usize,
    /// Cap on the multiplier (`RhoScaling`).
    pub scaling: f64,
    /// Residual ratio that triggers a change (`RsdlRatio`, mu).
    pub ratio: f64,
    /// Residual target ratio xi; `None` means `1 + 18.3^(log10(lam) + 1)` (`AutoScaling`).
    pub target: Option<f64>,
}

impl Default for AutoRho {
    fn default() -> Self {
        AutoRho {
            enabled: true,
            period: 1,
            scaling: 100.0,
            ratio: 1.2,
            target: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CbpdnOptions {
    pub lambda: f64,
    /// Initial penalty; `None` means SPORCO's default `50 lam + 1`.
    pub rho: Option<f64>,
    /// Over-relaxation alpha (`RelaxParam`).
    pub relax: f64,
    pub auto_rho: AutoRho,
    pub rel_tol: f64,
    pub abs_tol: f64,
    pub max_iter: usize,
    /// Per-filter l1 weights `w_m` (all 1 when `None`).
    pub l1_weights: Option<Vec<f64>>,
}

impl CbpdnOptions {
    /// SPORCO `ConvBPDN` defaults for the given lambda.
    pub fn new(lambda: f64) -> Self {
        CbpdnOptions {
            lambda,
            rho: None,
            relax: 1.8,
            auto_rho: AutoRho::default(),
            rel_tol: 1e-3,
            abs_tol: 0.0,
            max_iter: 1000,
            l1_weights: None,
        }
    }

    /// Auto-rho residual target xi.
    pub fn residual_target(&self) -> f64 {
        self.auto_rho
            .target
            .unwrap_or_else(|| 1.0 + 18.3f64.powf(self.lambda.log10() + 1.0))
    }

    pub fn initial_rho(&self) -> f64 {
        self.rho.unwrap_or(50.0 * self.lambda + 1.0)
    }

    pub(crate) fn validate(&self, m: usize) -> Result<()> {
        let bad = |s: String| Err(Error::Param(s));
        if !(self.lambda.is_finite() && self.lambda > 0.0) {
            return bad(format!(
                "lambda must be a positive number, got {}",
                self.lambda
            ));
        }
        let rho = self.initial_rho();
        if !(rho.is_finite() && rho > 0.0) {
            return bad(format!("rho must be a positive number, got {rho}"));
        }
        if !(self.relax > 0.0 && self.relax < 2.0) {
            return bad(format!(
                "relaxation alpha must be in (0, 2), got {}",
                self.relax
            ));
        }
        if !(self.rel_tol >= 0.0 && self.abs_tol >= 0.0) {
            return bad("stop tolerances must be >= 0".into());
        }
        if self.max_iter == 0 {
            return bad("the iteration cap must be at least 1".into());
        }
        if self.auto_rho.enabled && (self.auto_rho.period == 0 || self.auto_rho.scaling < 1.0) {
            return bad("auto-rho period must be >= 1 and scaling >= 1".into());
        }
        if let Some(w) = &self.l1_weights {
            if w.len() != m {
                return bad(format!("{} l1 weights given for {m} filters", w.len()));
            }
            if w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return bad("l1 weights must be finite and >= 0".into());
            }
        }
        Ok(())
    }
}

/// What a solve reports (SPORCO's iteration statistics of the last iteration).
#[derive(Clone, Debug, Serialize)]
pub struct SolveStats {
    pub iterations: usize,
    /// `dfid + lam * l1`, from the primal X of the last iteration.
    pub objective: f64,
    pub dfid: f64,
    pub l1: f64,
    pub r: f64,
    pub s: f64,
    /// Penalty after the last iteration.
    pub rho: f64,
    pub ms_per_iter: f64,
    pub setup_ms: f64,
    pub precision: &'static str,
}

impl SolveStats {
    /// `Err` when the solve diverged: a NaN or Inf objective or residual (`what` names the solve).
    pub fn check_finite(&self, what: &str) -> Result<()> {
        let vals = [
            ("objective", self.objective),
            ("data term", self.dfid),
            ("l1 term", self.l1),
            ("primal residual", self.r),
            ("dual residual", self.s),
            ("rho", self.rho),
        ];
        match vals.iter().find(|(_, v)| !v.is_finite()) {
            Some((name, v)) => Err(Error::Numerical(format!(
                "{what}: the sparse-coding solve diverged ({name} is {v} after {} iterations); \
                 check the dictionary (unit-norm filters) and the parameters",
                self.iterations
            ))),
            None => Ok(()),
        }
    }
}

/// Norms gathered by the fused shrink pass (f64 accumulators).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PassNorms {
    /// ||x||^2, ||Y||^2, ||x - Y||^2, ||Y_prev - Y||^2, ||U||^2, sum w_m |x|.
    pub x2: f64,
    pub y2: f64,
    pub xy2: f64,
    pub dy2: f64,
    pub u2: f64,
    pub l1: f64,
}

impl PassNorms {
    /// From the 8 values a GPU reduction produced (same order as the fields).
    pub fn from_slice(v: &[f32]) -> Self {
        PassNorms {
            x2: v[0] as f64,
            y2: v[1] as f64,
            xy2: v[2] as f64,
            dy2: v[3] as f64,
            u2: v[4] as f64,
            l1: v[5] as f64,
        }
    }

    /// Normalised primal and dual residuals `(r, s)` (SPORCO, StdResiduals = False); a zero denominator
    /// counts as 1.
    pub fn residuals(&self) -> (f64, f64) {
        let rn = self.x2.sqrt().max(self.y2.sqrt());
        let rn = if rn == 0.0 { 1.0 } else { rn };
        let sn = if self.u2 == 0.0 { 1.0 } else { self.u2.sqrt() };
        (self.xy2.sqrt() / rn, self.dy2.sqrt() / sn)
    }

    /// Stop thresholds (docs/method.md, "Stopping") for `nx` coefficients; with AbsStopTol > 0 they grow as in SPORCO.
    pub fn stop_thresholds(&self, rho: f64, nx: usize, opts: &CbpdnOptions) -> (f64, f64) {
        let rn = self.x2.sqrt().max(self.y2.sqrt());
        let un = rho * self.u2.sqrt();
        let abs = (nx as f64).sqrt() * opts.abs_tol;
        let epri = if rn > 0.0 { abs / rn } else { 0.0 } + opts.rel_tol;
        let edua = if un > 0.0 { abs / un } else { 0.0 } + opts.rel_tol;
        (epri, edua)
    }

    fn add(self, o: Self) -> Self {
        PassNorms {
            x2: self.x2 + o.x2,
            y2: self.y2 + o.y2,
            xy2: self.xy2 + o.xy2,
            dy2: self.dy2 + o.dy2,
            u2: self.u2 + o.u2,
            l1: self.l1 + o.l1,
        }
    }
}

/// Bins handled together by one task of the X step (its working set stays in L1/L2).
const XSTEP_CHUNK: usize = 256;

/// Per-bin X step (Sherman-Morrison): solves `(D^H D + rho I) X = D^H S + rho YU` in place of `YU`.
///
/// With `p = sum_k Df_k YU_k` the solution is `X_m = YU_m + conj(Df_m) (S - p) / (sum_k |Df_k|^2 + rho)`,
/// the usual `(b - conj(Df) sum_k C_k b_k) / rho` with `b = DS + rho YU` and `C = Df / (sum |Df|^2 + rho)`,
/// without storing C or DS.
/// `spec` and `df` hold `m` spectra of `dd.len()` bins each. `dx` receives `sum_m Df_m X_m = p + dd q`
/// per bin (the model spectrum, for the data term of the objective).
pub(crate) fn x_step<T: Real>(
    spec: &mut [Complex<T>],
    df: &[Complex<T>],
    dd: &[T],
    sf: &[Complex<T>],
    rho: T,
    dx: &mut [Complex<T>],
) {
    let n = dd.len();
    let chunks = n.div_ceil(XSTEP_CHUNK);
    // Regroup the filter-major buffer into per-chunk lists of disjoint slices (one per filter).
    let mut groups: Vec<Vec<&mut [Complex<T>]>> = (0..chunks).map(|_| Vec::new()).collect();
    for plane in spec.chunks_exact_mut(n) {
        for (c, piece) in plane.chunks_mut(XSTEP_CHUNK).enumerate() {
            groups[c].push(piece);
        }
    }
    groups
        .into_par_iter()
        .zip(dx.par_chunks_mut(XSTEP_CHUNK))
        .enumerate()
        .for_each(|(c, (mut pieces, dxc))| {
            let n0 = c * XSTEP_CHUNK;
            let len = pieces[0].len();
            let mut q = [Complex::<T>::default(); XSTEP_CHUNK];
            for (k, yu) in pieces.iter().enumerate() {
                let d = &df[k * n + n0..k * n + n0 + len];
                for i in 0..len {
                    q[i] = q[i] + d[i] * yu[i];
                }
            }
            for i in 0..len {
                let p = q[i];
                q[i] = (sf[n0 + i] - p) / (dd[n0 + i] + rho);
                dxc[i] = p + q[i] * dd[n0 + i];
            }
            for (k, yu) in pieces.iter_mut().enumerate() {
                let d = &df[k * n + n0..k * n + n0 + len];
                for i in 0..len {
                    yu[i] = yu[i] + d[i].conj() * q[i];
                }
            }
        });
}

/// Lanes of the shrink pass: independent accumulators that the compiler keeps in SIMD registers.
const LANES: usize = 8;

/// One element of the shrink pass; `acc[q][l]` collects the six norms in lane `l`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn shrink_one<T: Real>(
    acc: &mut [[T; LANES]; 6],
    l: usize,
    j: usize,
    x: &mut [T],
    y: &mut [T],
    u: &mut [T],
    alpha: T,
    one_m_alpha: T,
    th: T,
    nth: T,
) {
    let (xi, yp) = (x[j], y[j]);
    let v = alpha * xi + one_m_alpha * yp + u[j];
    let un = if v > th {
        th
    } else if v < nth {
        nth
    } else {
        v
    };
    let yn = v - un;
    y[j] = yn;
    u[j] = un;
    x[j] = yn - un;
    let (dxy, dyy) = (xi - yn, yp - yn);
    acc[0][l] = acc[0][l] + xi * xi;
    acc[1][l] = acc[1][l] + yn * yn;
    acc[2][l] = acc[2][l] + dxy * dxy;
    acc[3][l] = acc[3][l] + dyy * dyy;
    acc[4][l] = acc[4][l] + un * un;
    acc[5][l] = acc[5][l] + xi.abs();
}

/// Fused relax + soft-threshold + dual update of one plane (unweighted l1 in the result).
///
/// In: `x` (primal, from the X step), `y`, `u`. Out: `y`, `u` updated and `x` overwritten with `Y - U`,
/// the input of the next X step. Soft thresholding is written as `v - clamp(v, -t, t)`, so the new
/// dual is the clamped value.
pub(crate) fn shrink_plane<T: Real>(
    x: &mut [T],
    y: &mut [T],
    u: &mut [T],
    th: T,
    alpha: T,
) -> PassNorms {
    let (one_m_alpha, nth) = (T::one() - alpha, -th);
    let mut nrm = PassNorms::default();
    // Partial sums in T over blocks of 1024 elements, folded into f64 per block.
    for ((xb, yb), ub) in x
        .chunks_mut(1024)
        .zip(y.chunks_mut(1024))
        .zip(u.chunks_mut(1024))
    {
        let mut acc = [[T::zero(); LANES]; 6];
        let mut xs = xb.chunks_exact_mut(LANES);
        let mut ys = yb.chunks_exact_mut(LANES);
        let mut us = ub.chunks_exact_mut(LANES);
        for ((xc, yc), uc) in (&mut xs).zip(&mut ys).zip(&mut us) {
            // Fixed-size views: no bounds checks in the lane loop.
            let xc: &mut [T; LANES] = xc.try_into().expect("lane width");
            let yc: &mut [T; LANES] = yc.try_into().expect("lane width");
            let uc: &mut [T; LANES] = uc.try_into().expect("lane width");
            for l in 0..LANES {
                shrink_one(&mut acc, l, l, xc, yc, uc, alpha, one_m_alpha, th, nth);
            }
        }
        let (xr, yr, ur) = (
            xs.into_remainder(),
            ys.into_remainder(),
            us.into_remainder(),
        );
        for j in 0..xr.len() {
            shrink_one(&mut acc, 0, j, xr, yr, ur, alpha, one_m_alpha, th, nth);
        }
        let sum = |a: &[T; LANES]| a.iter().map(|v| v.as_f64()).sum::<f64>();
        nrm = nrm.add(PassNorms {
            x2: sum(&acc[0]),
            y2: sum(&acc[1]),
            xy2: sum(&acc[2]),
            dy2: sum(&acc[3]),
            u2: sum(&acc[4]),
            l1: sum(&acc[5]),
        });
    }
    nrm
}

/// Sum over filters of `|Df_k|^2` per bin, accumulated in f64.
pub(crate) fn power_sum<T: Real>(df: &[Complex<T>], n: usize) -> Vec<T> {
    let mut acc = vec![0.0f64; n];
    for d in df.chunks_exact(n) {
        for (a, v) in acc.iter_mut().zip(d) {
            *a += v.re.as_f64().powi(2) + v.im.as_f64().powi(2);
        }
    }
    acc.into_iter().map(T::lit).collect()
}

/// One CBPDN problem with its ADMM state; `step` runs one iteration, `solve` runs to the stop rule.
pub struct Cbpdn<T: Real> {
    fft: Arc<Fft2<T>>,
    m: usize,
    opts: CbpdnOptions,
    weights: Vec<f64>,
    xi: f64,
    df: Vec<Complex<T>>,
    dd: Vec<T>,
    sf: Vec<Complex<T>>,
    y: Vec<T>,
    u: Vec<T>,
    /// Holds `Y - U` between iterations and the primal x inside one.
    work: Vec<T>,
    /// Spectra: FFT(Y - U) going into the X step, X coming out of it.
    spec: Vec<Complex<T>>,
    /// `sum_m Df_m X_m` per bin from the last X step (the data term of the objective).
    dx: Vec<Complex<T>>,
    /// `spec` already holds FFT(Y - U) for the next X step (the fused pass computed it).
    spec_is_yu: bool,
    /// Keep the X spectra after each iteration (for [`Cbpdn::primal`]); disables the fused forward FFT.
    keep_primal: bool,
    rho: f64,
    iters: usize,
    last: PassNorms,
    last_rs: (f64, f64),
    /// Stop thresholds (eps_pri, eps_dua) of the last iteration, taken before any rho change.
    last_eps: (f64, f64),
    setup_ms: f64,
}

impl<T: Real> Cbpdn<T> {
    /// Set up for signal `s` (row-major `fft.h x fft.w`), starting from `Y = U = 0`.
    pub fn new(
        fft: Arc<Fft2<T>>,
        dict: &Dictionary,
        s: &[f64],
        opts: &CbpdnOptions,
    ) -> Result<Self> {
        let t0 = Instant::now();
        opts.validate(dict.m)?;
        dict.check_fits(fft.h, fft.w)?;
        assert_eq!(s.len(), fft.h * fft.w, "signal size");
        let df = fft.filter_spectra(&dict.data, dict.fh, dict.fw);
        let mut sig: Vec<T> = s.iter().map(|v| T::lit(*v)).collect();
        let mut sf = vec![Complex::default(); fft.spectrum_len()];
        fft.forward(&mut sig, &mut sf, &mut fft.scratch());
        let mut me = Self::with_spectra(fft, dict.m, df, sf, opts);
        me.setup_ms = t0.elapsed().as_secs_f64() * 1e3;
        Ok(me)
    }

    /// Set up from precomputed filter and signal spectra (used by dictionary learning).
    pub fn with_spectra(
        fft: Arc<Fft2<T>>,
        m: usize,
        df: Vec<Complex<T>>,
        sf: Vec<Complex<T>>,
        opts: &CbpdnOptions,
    ) -> Self {
        let n = fft.spectrum_len();
        let np = fft.h * fft.w;
        let dd = power_sum(&df, n);
        let xi = opts.residual_target();
        Cbpdn {
            m,
            weights: opts.l1_weights.clone().unwrap_or_else(|| vec![1.0; m]),
            xi,
            dd,
            df,
            sf,
            y: vec![T::zero(); m * np],
            u: vec![T::zero(); m * np],
            work: vec![T::zero(); m * np],
            spec: vec![Complex::default(); m * n],
            dx: vec![Complex::default(); n],
            spec_is_yu: false,
            keep_primal: false,
            rho: opts.initial_rho(),
            iters: 0,
            last: PassNorms::default(),
            last_rs: (f64::INFINITY, f64::INFINITY),
            last_eps: (0.0, 0.0),
            setup_ms: 0.0,
            opts: opts.clone(),
            fft,
        }
    }

    /// Start from a previous solve's state instead of `Y = U = 0`: its coefficients `y`, its scaled
    /// dual `u` and its penalty `rho` (all as that solve left them, for `m` maps of this size).
    /// Before the first step the dual is multiplied by `dual_scale`: a solve for another lambda
    /// passes `lambda_new / lambda_old`, which keeps `|U| <= lambda / rho` where it held before.
    pub fn warm_start(&mut self, y: &[T], u: &[T], rho: f64, dual_scale: f64) {
        assert_eq!(y.len(), self.y.len(), "warm start: coefficient count");
        assert_eq!(u.len(), self.u.len(), "warm start: dual count");
        let f = T::lit(dual_scale);
        self.y.copy_from_slice(y);
        self.u
            .par_iter_mut()
            .zip(self.work.par_iter_mut())
            .zip(u.par_iter().zip(y.par_iter()))
            .for_each(|((un, w), (uo, yo))| {
                *un = *uo * f;
                *w = *yo - *un;
            });
        self.rho = rho;
        self.spec_is_yu = false;
    }

    /// The scaled dual U (for a later [`Cbpdn::warm_start`]).
    pub fn dual(&self) -> &[T] {
        &self.u
    }

    /// Replace the dictionary (its spectra), keeping the ADMM state (dictionary learning).
    pub fn set_filter_spectra(&mut self, df: Vec<Complex<T>>) {
        self.dd = power_sum(&df, self.fft.spectrum_len());
        self.df = df;
    }

    pub fn rho(&self) -> f64 {
        self.rho
    }

    pub fn iterations(&self) -> usize {
        self.iters
    }

    /// Keep the primal X spectra after each iteration so [`Cbpdn::primal`] can return X. This runs the
    /// forward FFT as a separate batch instead of fused into the shrink pass (same results, slower).
    pub fn keep_primal(&mut self, keep: bool) {
        self.keep_primal = keep;
    }

    /// One ADMM iteration; returns the normalised residuals `(r, s)`.
    pub fn step(&mut self) -> (f64, f64) {
        let fft = &*self.fft;
        let np = fft.h * fft.w;
        let rho = self.rho;
        if !self.spec_is_yu {
            fft.forward_batch(&mut self.work, &mut self.spec);
        }
        x_step(
            &mut self.spec,
            &self.df,
            &self.dd,
            &self.sf,
            T::lit(rho),
            &mut self.dx,
        );
        // Per plane, in a cache-sized buffer: inverse FFT of X, shrink, then the forward FFT of Y - U
        // for the next iteration. The pass is memory-bound, so x and Y - U never go to main memory.
        let fuse_forward = !self.keep_primal;
        let alpha = T::lit(self.opts.relax);
        let (lam, weights, ns) = (self.opts.lambda, &self.weights, fft.spectrum_len());
        let group = self.m.div_ceil(rayon::current_num_threads()).max(1);
        let nrm = self
            .spec
            .par_chunks_mut(ns * group)
            .zip(self.work.par_chunks_mut(np * group))
            .zip(self.y.par_chunks_mut(np * group))
            .zip(self.u.par_chunks_mut(np * group))
            .enumerate()
            .map(|(g, (((fs, ws), ys), us))| {
                let mut scratch = fft.scratch();
                let mut buf = vec![T::zero(); np];
                let mut acc = PassNorms::default();
                let planes = fs.chunks_exact_mut(ns).zip(ws.chunks_exact_mut(np));
                let duals = ys.chunks_exact_mut(np).zip(us.chunks_exact_mut(np));
                for (i, ((f, w), (y, u))) in planes.zip(duals).enumerate() {
                    let wk = weights[g * group + i];
                    fft.inverse(f, &mut buf, &mut scratch);
                    let mut n = shrink_plane(&mut buf, y, u, T::lit(wk * lam / rho), alpha);
                    n.l1 *= wk;
                    acc = acc.add(n);
                    if fuse_forward {
                        fft.forward(&mut buf, f, &mut scratch);
                    } else {
                        w.copy_from_slice(&buf);
                    }
                }
                acc
            })
            .reduce(PassNorms::default, PassNorms::add);
        self.spec_is_yu = fuse_forward;
        self.iters += 1;
        self.last = nrm;
        let (r, s) = nrm.residuals();
        self.last_rs = (r, s);
        self.last_eps = nrm.stop_thresholds(self.rho, self.m * np, &self.opts);
        self.update_rho(r, s);
        (r, s)
    }

    /// SPORCO's residual balancing, after every `period` iterations except the first.
    fn update_rho(&mut self, r: f64, s: f64) {
        let Some(rsf) = rho_factor(&self.opts, self.xi, self.iters, r, s) else {
            return;
        };
        self.rho *= rsf;
        // Scaled dual follows rho; Y - U changes with it, so its spectrum is recomputed next step.
        self.spec_is_yu = false;
        let inv = T::lit(1.0 / rsf);
        self.u
            .par_iter_mut()
            .zip(self.work.par_iter_mut())
            .zip(self.y.par_iter())
            .for_each(|((u, w), y)| {
                *u = *u * inv;
                *w = *y - *u;
            });
    }

    fn converged(&self) -> bool {
        self.last_rs.0 <= self.last_eps.0 && self.last_rs.1 <= self.last_eps.1
    }

    /// Iterate until the stop rule holds or `max_iter` iterations have run (or a cancel request
    /// arrives, see [`crate::cancel`]).
    pub fn solve(&mut self) -> SolveStats {
        let t0 = Instant::now();
        let start = self.iters;
        while self.iters - start < self.opts.max_iter && !crate::cancel::requested() {
            self.step();
            if self.converged() {
                break;
            }
        }
        let ran = self.iters - start;
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let mut st = self.stats();
        st.ms_per_iter = if ran > 0 { ms / ran as f64 } else { 0.0 };
        st
    }

    /// Statistics of the last iteration (objective from the primal X, as SPORCO reports by default).
    pub fn stats(&self) -> SolveStats {
        let dfid = self.data_fidelity();
        SolveStats {
            iterations: self.iters,
            objective: dfid + self.opts.lambda * self.last.l1,
            dfid,
            l1: self.last.l1,
            r: self.last_rs.0,
            s: self.last_rs.1,
            rho: self.rho,
            ms_per_iter: 0.0,
            setup_ms: self.setup_ms,
            precision: T::NAME,
        }
    }

    /// `1/2 ||sum_m Df_m X_m - S||^2` by Parseval on the half spectrum (interior columns count twice).
    /// The model spectrum comes from the last X step.
    fn data_fidelity(&self) -> f64 {
        data_fidelity(self.fft.h, self.fft.w, &self.dx, &self.sf)
    }

    /// The sparse coefficient maps Y (the solution SPORCO returns).
    pub fn coefficients(&self) -> CoefMaps {
        CoefMaps {
            m: self.m,
            h: self.fft.h,
            w: self.fft.w,
            data: self.y.iter().map(|v| v.as_f64()).collect(),
        }
    }

    /// The primal X of the last iteration; `None` unless [`Cbpdn::keep_primal`] was set before stepping.
    pub fn primal(&self) -> Option<CoefMaps> {
        if !self.keep_primal || self.iters == 0 {
            return None;
        }
        let mut x = vec![T::zero(); self.y.len()];
        self.fft.inverse_batch(&self.spec, &mut x);
        Some(CoefMaps {
            m: self.m,
            h: self.fft.h,
            w: self.fft.w,
            data: x.iter().map(|v| v.as_f64()).collect(),
        })
    }

    /// Y in the solver's own precision (dictionary learning works on it directly).
    pub fn y(&self) -> &[T] {
        &self.y
    }
}

/// SPORCO's residual-balancing factor for rho after iteration `iters` (1-based), if rho changes:
/// every `period` iterations except the first.
pub(crate) fn rho_factor(
    opts: &CbpdnOptions,
    xi: f64,
    iters: usize,
    r: f64,
    s: f64,
) -> Option<f64> {
    let a = &opts.auto_rho;
    let k = iters - 1; // SPORCO's 0-based iteration index
    if !a.enabled || k == 0 || !(k + 1).is_multiple_of(a.period) {
        return None;
    }
    let mult = if r == 0.0 || s == 0.0 {
        a.scaling
    } else {
        let m = (r / (s * xi)).sqrt();
        (if m < 1.0 { 1.0 / m } else { m }).min(a.scaling)
    };
    if r > xi * a.ratio * s {
        Some(mult)
    } else if s > (a.ratio / xi) * r {
        Some(1.0 / mult)
    } else {
        None
    }
}

/// `1/2 ||DX - S||^2` by Parseval from the model spectrum `dx` and signal spectrum `sf` of an `h x w`
/// image (transposed half spectra; interior columns count twice).
pub(crate) fn data_fidelity<T: Real>(
    h: usize,
    w: usize,
    dx: &[Complex<T>],
    sf: &[Complex<T>],
) -> f64 {
    let wc = w / 2 + 1;
    let mut acc = 0.0;
    for kx in 0..wc {
        let mirrored = kx != 0 && !(w.is_multiple_of(2) && kx == wc - 1);
        let wgt = if mirrored { 2.0 } else { 1.0 };
        for ky in 0..h {
            let b = kx * h + ky;
            let e = dx[b] - sf[b];
            acc += wgt * (e.re.as_f64().powi(2) + e.im.as_f64().powi(2));
        }
    }
    0.5 * acc / (h * w) as f64
}
