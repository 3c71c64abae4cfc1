//! The seam between the pipeline and a compute backend. The pipeline calls only this trait; the CPU
//! engine is the reference implementation, and a GPU engine implements the same four operations.

use crate::cbpdn::{Cbpdn, CbpdnOptions, SolveStats};
use crate::dictionary::Dictionary;
use crate::error::Result;
use crate::fft2::Fft2;
use crate::fuse::{FuseOutput, FuseParams};
use crate::fusion_rule;
use crate::gpu::AdapterDesc;
use crate::lowpass;
use crate::plane::{CoefMaps, DecisionMap, Plane};
use crate::real::{Precision, Real};
use rustfft::num_complex::Complex;
use std::collections::HashMap;
use std::sync::Arc;

/// A sparse code with the statistics of the solve that produced it.
pub struct SparseCode {
    pub coef: CoefMaps,
    pub stats: SolveStats,
}

pub trait Engine {
    /// Human-readable description for logs and reports.
    fn describe(&self) -> String;
    /// Tikhonov base/detail split: `(low, high)`.
    fn lowpass(&mut self, s: &Plane, lambda: f64, pad: usize) -> Result<(Plane, Plane)>;
    /// CBPDN of `s` against `dict` from a zero start.
    fn sparse_code(
        &mut self,
        dict: &Dictionary,
        s: &Plane,
        opts: &CbpdnOptions,
    ) -> Result<SparseCode>;
    /// `sum_m d_m (*) x_m` (circular convolution).
    fn synthesize(&mut self, dict: &Dictionary, coef: &CoefMaps) -> Result<Plane>;
    /// Choose-max fusion of two coefficient sets with window radius `r`.
    fn fuse_maps(
        &mut self,
        a: &CoefMaps,
        b: &CoefMaps,
        r: usize,
    ) -> Result<(CoefMaps, DecisionMap)>;
    /// The adapter, for engines that run on one.
    fn adapter(&self) -> Option<AdapterDesc> {
        None
    }
    /// The whole fusion with intermediates kept inside the engine (GPU: resident on the device).
    /// `None` means "use the generic pipeline of single operations".
    fn fuse_resident(
        &mut self,
        _a: &Plane,
        _b: &Plane,
        _dc: &Dictionary,
        _dt: &Dictionary,
        _p: &FuseParams,
    ) -> Option<Result<FuseOutput>> {
        None
    }
}

/// CPU engine on rustfft + rayon in precision `T`; caches FFT plans per image size.
pub struct CpuEngine<T: Real> {
    plans: HashMap<(usize, usize), Arc<Fft2<T>>>,
}

impl<T: Real> Default for CpuEngine<T> {
    fn default() -> Self {
        CpuEngine {
            plans: HashMap::new(),
        }
    }
}

impl<T: Real> CpuEngine<T> {
    pub fn plan(&mut self, h: usize, w: usize) -> Arc<Fft2<T>> {
        self.plans
            .entry((h, w))
            .or_insert_with(|| Arc::new(Fft2::new(h, w)))
            .clone()
    }
}

/// A boxed CPU engine of the requested precision.
pub fn cpu_engine(p: Precision) -> Box<dyn Engine> {
    match p {
        Precision::F32 => Box::new(CpuEngine::<f32>::default()),
        Precision::F64 => Box::new(CpuEngine::<f64>::default()),
    }
}

impl<T: Real> Engine for CpuEngine<T> {
    fn describe(&self) -> String {
        format!(
            "cpu ({}, {} threads)",
            T::NAME,
            rayon::current_num_threads()
        )
    }

    fn lowpass(&mut self, s: &Plane, lambda: f64, pad: usize) -> Result<(Plane, Plane)> {
        Ok(lowpass::tikhonov_split(s, lambda, pad))
    }

    fn sparse_code(
        &mut self,
        dict: &Dictionary,
        s: &Plane,
        opts: &CbpdnOptions,
    ) -> Result<SparseCode> {
        let fft = self.plan(s.h, s.w);
        let mut solver = Cbpdn::<T>::new(fft, dict, &s.data, opts)?;
        let stats = solver.solve();
        Ok(SparseCode {
            coef: solver.coefficients(),
            stats,
        })
    }

    fn synthesize(&mut self, dict: &Dictionary, coef: &CoefMaps) -> Result<Plane> {
        dict.check_fits(coef.h, coef.w)?;
        let fft = self.plan(coef.h, coef.w);
        let n = fft.spectrum_len();
        let df = fft.filter_spectra(&dict.data, dict.fh, dict.fw);
        let mut planes: Vec<T> = coef.data.iter().map(|v| T::lit(*v)).collect();
        let mut xf = vec![Complex::default(); coef.m * n];
        fft.forward_batch(&mut planes, &mut xf);
        let sum = synth_spectrum(&df, &xf, n);
        let mut out = vec![T::zero(); coef.h * coef.w];
        fft.inverse(&sum, &mut out, &mut fft.scratch());
        Ok(Plane::from_vec(
            coef.h,
            coef.w,
            out.iter().map(|v| v.as_f64()).collect(),
        ))
    }

    fn fuse_maps(
        &mut self,
        a: &CoefMaps,
        b: &CoefMaps,
        r: usize,
    ) -> Result<(CoefMaps, DecisionMap)> {
        let d = fusion_rule::decide(a, b, r);
        Ok((fusion_rule::choose(a, b, &d), d))
    }
}

/// `sum_m Df_m X_m` per bin for `m = xf.len() / n` spectra of `n` bins (CPU twin of shaders/synth.wgsl).
pub fn synth_spectrum<T: Real>(df: &[Complex<T>], xf: &[Complex<T>], n: usize) -> Vec<Complex<T>> {
    let mut sum = vec![Complex::<T>::default(); n];
    for (d, x) in df.chunks_exact(n).zip(xf.chunks_exact(n)) {
        for ((acc, a), b) in sum.iter_mut().zip(d).zip(x) {
            *acc = *acc + *a * *b;
        }
    }
    sum
}
