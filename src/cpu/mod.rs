//! The CPU engine: the reference implementation of [`Ops`] on rustfft + rayon, one file per stage
//! with the stem of its GPU twin's shader (`cbpdn`: xstep, shrink, control, fidelity, rescale;
//! `choose`: activity, choose; `fft`; `lowpass`; `synth`: synth, elementwise).

pub mod cbpdn;
pub(crate) mod choose;
pub mod fft;
pub mod lowpass;
pub(crate) mod synth;

#[cfg(test)]
mod tests;

use crate::cpu::cbpdn::{Cbpdn, CbpdnOptions, SolveStats};
use crate::cpu::fft::Fft2;
use crate::cpu::synth::{combine_planes, synthesize_one};
use crate::dictionary::Dictionary;
use crate::error::Result;
use crate::pipeline::ops::{Finished, Ops, Start};
use crate::plane::{CoefMaps, DecisionMap, Plane};
use crate::real::Real;
use rayon::prelude::*;
use rustfft::num_complex::Complex;
use std::collections::HashMap;
use std::sync::Arc;

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
    /// Where each item's last solve ended, for a warm start (`None`: never solved, or maps replaced).
    ends: Vec<Option<SolveEnd<T>>>,
}

/// The ADMM state a solve leaves besides its coefficients.
struct SolveEnd<T> {
    /// Scaled dual U.
    u: Vec<T>,
    rho: f64,
    lambda: f64,
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
            ends: (0..n).map(|_| None).collect(),
        })
    }

    fn solve(
        &mut self,
        code: &mut CpuCode<T>,
        s: &Vec<Plane>,
        opts: &CbpdnOptions,
        start: Start,
    ) -> Result<Vec<SolveStats>> {
        let mut stats = Vec::with_capacity(s.len());
        // Items one after another: each solve is already parallel inside.
        for ((maps, end), sig) in code.maps.iter_mut().zip(&mut code.ends).zip(s) {
            let mut solver = Cbpdn::<T>::new(code.fft.clone(), &code.dict, &sig.data, opts)?;
            if let (Start::Warm, Some(e)) = (start, end.as_ref()) {
                let y: Vec<T> = maps.data.iter().map(|v| T::lit(*v)).collect();
                solver.warm_start(&y, &e.u, e.rho, opts.lambda / e.lambda);
            }
            stats.push(solver.solve());
            crate::cancel::check()?;
            *maps = solver.coefficients();
            *end = Some(SolveEnd {
                u: solver.dual().to_vec(),
                rho: solver.rho(),
                lambda: opts.lambda,
            });
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
        vote: usize,
        sum: bool,
        fused: &mut CpuCode<T>,
    ) -> Result<Vec<DecisionMap>> {
        let mut out = Vec::new();
        for (q, pair) in code.maps.chunks_exact(2).enumerate() {
            let d = choose::decide(&pair[0], &pair[1], r, vote);
            fused.maps[q] = if sum {
                choose::sum(&pair[0], &pair[1])
            } else {
                choose::choose(&pair[0], &pair[1], &d)
            };
            out.push(d);
        }
        Ok(out)
    }

    fn download_code(&mut self, code: &CpuCode<T>) -> Result<Vec<CoefMaps>> {
        Ok(code.maps.clone())
    }

    fn upload_code(&mut self, code: &mut CpuCode<T>, maps: &[&CoefMaps]) -> Result<()> {
        code.maps = maps.iter().map(|m| (*m).clone()).collect();
        code.ends = (0..code.maps.len()).map(|_| None).collect();
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
