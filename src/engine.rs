//! The seam between the CS-MCA recipe and a compute backend: [`Ops`], batched operations on data the
//! engine holds (host vectors on the CPU, device buffers on the GPU). The recipe (`decompose.rs`,
//! `fuse.rs`) is written once on these operations and drives both engines. [`CpuEngine`] is the
//! reference implementation; `gpu::GpuEngine` is the other.
//!
//! A batch holds `n` planes of one size. In a fusion batch, items `2q` and `2q + 1` are the two
//! sources of pair `q`.

use crate::cbpdn::{Cbpdn, CbpdnOptions, SolveStats};
use crate::dictionary::Dictionary;
use crate::error::Result;
use crate::fft2::Fft2;
use crate::fusion_rule;
use crate::gpu::{AdapterDesc, Counters};
use crate::lowpass;
use crate::plane::{CoefMaps, DecisionMap, Plane};
use crate::real::Real;
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use std::collections::HashMap;
use std::sync::Arc;

/// What a fusion batch reads back at its end.
pub struct Finished {
    /// One fused plane per pair.
    pub fused: Vec<Plane>,
    /// Cartoon and texture decisions, one per pair each.
    pub decisions: [Vec<DecisionMap>; 2],
    /// Milliseconds between the stage marks, when the engine measured them on its own clock.
    pub stage_ms: Option<Vec<f64>>,
}

/// Batched operations of CS-MCA fusion on engine-held data. Outputs are written into buffers the
/// caller made with [`Ops::planes`] or [`Ops::code`]: an engine may then keep every buffer across
/// calls (the GPU does, by name), so a second fusion of one size allocates nothing.
pub trait Ops {
    /// `n` planes of `h x w`.
    type Planes;
    /// A dictionary prepared for one size, with the coefficient maps of `n` signals.
    type Code;
    /// One decision map per pair.
    type Decisions;

    fn describe(&self) -> String;
    /// The adapter, for engines that run on one.
    fn adapter(&self) -> Option<AdapterDesc> {
        None
    }
    /// Device counters so far, for engines that have a device.
    fn counters(&self) -> Option<Counters> {
        None
    }
    /// How many pairs of `h x w` one batch may hold with dictionaries of `mc` and `mt` filters.
    fn pairs_per_batch(&self, _mc: usize, _mt: usize, _h: usize, _w: usize) -> usize {
        1
    }

    /// The planes `name`, holding `data`.
    fn upload(&mut self, name: &str, data: &[&Plane]) -> Result<Self::Planes>;
    /// The planes `name`: `n` zero planes of `h x w`.
    fn planes(&mut self, name: &str, n: usize, h: usize, w: usize) -> Result<Self::Planes>;
    fn download(&mut self, p: &Self::Planes) -> Result<Vec<Plane>>;
    /// Tikhonov base/detail split of every plane of `src`.
    fn lowpass(
        &mut self,
        src: &Self::Planes,
        lambda: f64,
        pad: usize,
        low: &mut Self::Planes,
        high: &mut Self::Planes,
    ) -> Result<()>;
    /// `out = a - b`.
    fn sub(&mut self, a: &Self::Planes, b: &Self::Planes, out: &mut Self::Planes) -> Result<()>;
    /// Per pair `q`: `out[q] = (low[2q] + low[2q + 1]) / 2 + cart[q] + tex[q]`.
    fn combine(
        &mut self,
        low: &Self::Planes,
        cart: &Self::Planes,
        tex: &Self::Planes,
        out: &mut Self::Planes,
    ) -> Result<()>;
    /// Coefficient maps `name` of `n` signals of `h x w` against `dict`.
    fn code(
        &mut self,
        name: &str,
        dict: &Dictionary,
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<Self::Code>;
    /// CBPDN of every plane of `s` from a zero start into `code`; statistics per item.
    fn solve(
        &mut self,
        code: &mut Self::Code,
        s: &Self::Planes,
        opts: &CbpdnOptions,
    ) -> Result<Vec<SolveStats>>;
    /// `out[i] = sum_m d_m (*) x_{i,m}` (circular convolution).
    fn synthesize(&mut self, code: &Self::Code, out: &mut Self::Planes) -> Result<()>;
    /// Choose-max with window radius `r`: pair `q`'s maps (items `2q`, `2q + 1` of `code`) into item
    /// `q` of `fused`.
    fn choose(
        &mut self,
        code: &Self::Code,
        r: usize,
        fused: &mut Self::Code,
    ) -> Result<Self::Decisions>;
    fn download_code(&mut self, code: &Self::Code) -> Result<Vec<CoefMaps>>;
    /// Replace the maps of `code` (one per item) by `maps`.
    fn upload_code(&mut self, code: &mut Self::Code, maps: &[&CoefMaps]) -> Result<()>;
    fn download_decisions(&mut self, d: &Self::Decisions) -> Result<Vec<DecisionMap>>;
    /// Mark the boundary `i` of a recipe stage (engines with a device clock time them).
    fn mark(&mut self, _i: u32) {}
    /// Read back a fusion batch's results (and the stage times of marks `0..marks`).
    fn finish(
        &mut self,
        fused: &Self::Planes,
        decisions: [&Self::Decisions; 2],
        marks: u32,
    ) -> Result<Finished>;
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

/// A dictionary's spectra at one size with the maps of a batch, on the host.
pub struct CpuCode<T: Real> {
    fft: Arc<Fft2<T>>,
    dict: Dictionary,
    df: Arc<Vec<Complex<T>>>,
    pub maps: Vec<CoefMaps>,
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

/// `(a + b) / 2 + c + d` per pixel (CPU twin of elementwise.wgsl's `combine`).
pub fn combine_planes(a: &Plane, b: &Plane, c: &Plane, d: &Plane) -> Plane {
    let data = (0..a.data.len())
        .map(|i| 0.5 * (a.data[i] + b.data[i]) + c.data[i] + d.data[i])
        .collect();
    Plane::from_vec(a.h, a.w, data)
}

fn synthesize_one<T: Real>(fft: &Fft2<T>, df: &[Complex<T>], coef: &CoefMaps) -> Plane {
    let n = fft.spectrum_len();
    let mut planes: Vec<T> = coef.data.iter().map(|v| T::lit(*v)).collect();
    let mut xf = vec![Complex::default(); coef.m * n];
    fft.forward_batch(&mut planes, &mut xf);
    let sum = synth_spectrum(df, &xf, n);
    let mut out = vec![T::zero(); coef.h * coef.w];
    fft.inverse(&sum, &mut out, &mut fft.scratch());
    Plane::from_vec(coef.h, coef.w, out.iter().map(|v| v.as_f64()).collect())
}

impl<T: Real> Ops for CpuEngine<T> {
    type Planes = Vec<Plane>;
    type Code = CpuCode<T>;
    type Decisions = Vec<DecisionMap>;

    fn describe(&self) -> String {
        format!(
            "cpu ({}, {} threads)",
            T::NAME,
            rayon::current_num_threads()
        )
    }

    fn upload(&mut self, _name: &str, data: &[&Plane]) -> Result<Vec<Plane>> {
        Ok(data.iter().map(|p| (*p).clone()).collect())
    }

    fn planes(&mut self, _name: &str, n: usize, h: usize, w: usize) -> Result<Vec<Plane>> {
        Ok(vec![Plane::zeros(h, w); n])
    }

    fn download(&mut self, p: &Vec<Plane>) -> Result<Vec<Plane>> {
        Ok(p.clone())
    }

    fn lowpass(
        &mut self,
        src: &Vec<Plane>,
        lambda: f64,
        pad: usize,
        low: &mut Vec<Plane>,
        high: &mut Vec<Plane>,
    ) -> Result<()> {
        let split: Vec<(Plane, Plane)> = src
            .par_iter()
            .map(|s| lowpass::tikhonov_split(s, lambda, pad))
            .collect();
        (*low, *high) = split.into_iter().unzip();
        Ok(())
    }

    fn sub(&mut self, a: &Vec<Plane>, b: &Vec<Plane>, out: &mut Vec<Plane>) -> Result<()> {
        *out = a.iter().zip(b).map(|(x, y)| x.sub(y)).collect();
        Ok(())
    }

    fn combine(
        &mut self,
        low: &Vec<Plane>,
        cart: &Vec<Plane>,
        tex: &Vec<Plane>,
        out: &mut Vec<Plane>,
    ) -> Result<()> {
        *out = (0..cart.len())
            .map(|q| combine_planes(&low[2 * q], &low[2 * q + 1], &cart[q], &tex[q]))
            .collect();
        Ok(())
    }

    fn code(
        &mut self,
        _name: &str,
        dict: &Dictionary,
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<CpuCode<T>> {
        dict.check_fits(h, w)?;
        let fft = self.plan(h, w);
        let df = Arc::new(fft.filter_spectra(&dict.data, dict.fh, dict.fw));
        let zero = CoefMaps {
            m: dict.m,
            h,
            w,
            data: vec![0.0; dict.m * h * w],
        };
        Ok(CpuCode {
            fft,
            dict: dict.clone(),
            df,
            maps: vec![zero; n],
        })
    }

    fn solve(
        &mut self,
        code: &mut CpuCode<T>,
        s: &Vec<Plane>,
        opts: &CbpdnOptions,
    ) -> Result<Vec<SolveStats>> {
        let mut stats = Vec::with_capacity(s.len());
        // Items one after another: each solve is already parallel inside.
        for (maps, sig) in code.maps.iter_mut().zip(s) {
            let mut solver = Cbpdn::<T>::new(code.fft.clone(), &code.dict, &sig.data, opts)?;
            stats.push(solver.solve());
            *maps = solver.coefficients();
        }
        Ok(stats)
    }

    fn synthesize(&mut self, code: &CpuCode<T>, out: &mut Vec<Plane>) -> Result<()> {
        *out = code
            .maps
            .iter()
            .map(|c| synthesize_one(&code.fft, &code.df, c))
            .collect();
        Ok(())
    }

    fn choose(
        &mut self,
        code: &CpuCode<T>,
        r: usize,
        fused: &mut CpuCode<T>,
    ) -> Result<Vec<DecisionMap>> {
        let mut out = Vec::new();
        for (q, pair) in code.maps.chunks_exact(2).enumerate() {
            let d = fusion_rule::decide(&pair[0], &pair[1], r);
            fused.maps[q] = fusion_rule::choose(&pair[0], &pair[1], &d);
            out.push(d);
        }
        Ok(out)
    }

    fn download_code(&mut self, code: &CpuCode<T>) -> Result<Vec<CoefMaps>> {
        Ok(code.maps.clone())
    }

    fn upload_code(&mut self, code: &mut CpuCode<T>, maps: &[&CoefMaps]) -> Result<()> {
        code.maps = maps.iter().map(|m| (*m).clone()).collect();
        Ok(())
    }

    fn download_decisions(&mut self, d: &Vec<DecisionMap>) -> Result<Vec<DecisionMap>> {
        Ok(d.clone())
    }

    fn finish(
        &mut self,
        fused: &Vec<Plane>,
        [dc, dt]: [&Vec<DecisionMap>; 2],
        _marks: u32,
    ) -> Result<Finished> {
        Ok(Finished {
            fused: fused.clone(),
            decisions: [dc.clone(), dt.clone()],
            stage_ms: None,
        })
    }
}

/// Single operations on host data (for tools and the kernel tests): upload, run one operation of
/// an engine, read back.
pub mod single {
    use super::Ops;
    use crate::dictionary::Dictionary;
    use crate::error::Result;
    use crate::plane::{CoefMaps, DecisionMap, Plane};

    /// Tikhonov split of one plane: `(low, high)`.
    pub fn lowpass<E: Ops>(
        e: &mut E,
        s: &Plane,
        lambda: f64,
        pad: usize,
    ) -> Result<(Plane, Plane)> {
        let src = e.upload("single: source", &[s])?;
        let mut low = e.planes("single: low", 1, s.h, s.w)?;
        let mut high = e.planes("single: high", 1, s.h, s.w)?;
        e.lowpass(&src, lambda, pad, &mut low, &mut high)?;
        Ok((e.download(&low)?.remove(0), e.download(&high)?.remove(0)))
    }

    /// `sum_m d_m (*) x_m` of one set of maps.
    pub fn synthesize<E: Ops>(e: &mut E, dict: &Dictionary, coef: &CoefMaps) -> Result<Plane> {
        let mut code = e.code("single", dict, 1, coef.h, coef.w)?;
        e.upload_code(&mut code, &[coef])?;
        let mut out = e.planes("single: synthesis", 1, coef.h, coef.w)?;
        e.synthesize(&code, &mut out)?;
        Ok(e.download(&out)?.remove(0))
    }

    /// Choose-max of two sets of maps of `dict`'s size with window radius `r`.
    pub fn fuse_maps<E: Ops>(
        e: &mut E,
        dict: &Dictionary,
        a: &CoefMaps,
        b: &CoefMaps,
        r: usize,
    ) -> Result<(CoefMaps, DecisionMap)> {
        let mut code = e.code("single pair", dict, 2, a.h, a.w)?;
        e.upload_code(&mut code, &[a, b])?;
        let mut fused = e.code("single fused", dict, 1, a.h, a.w)?;
        let d = e.choose(&code, r, &mut fused)?;
        Ok((
            e.download_code(&fused)?.remove(0),
            e.download_decisions(&d)?.remove(0),
        ))
    }
}
