//! CBPDN on the GPU for a batch of signals at once (GPU twin of [`crate::cpu::cbpdn::Cbpdn`]).
//!
//! All state stays on the device. Per iteration the host records: the dual rescale of items whose rho
//! changed, forward FFT of `Y - U`, X step, inverse FFT, fused shrink pass, reduction, and the control
//! kernel, which applies the stop rule and auto-rho on the device. The whole solve is one submission;
//! the host reads back eight scalars per item at its end. Each item keeps its own rho and stops on
//! its own; a stopped item is skipped by the kernels. Once every item has stopped, the rest of the
//! recorded iterations launch nothing: their dispatches read indirect grids that skip.wgsl zeroes.
//!
//! The control runs in f32 where the CPU's runs in f64. It can decide differently only at a near tie:
//! a residual within float rounding (~1e-7 relative) of its stop threshold, or of the auto-rho
//! switching ratios. The item then stops one iteration earlier or later, or changes rho one
//! iteration apart, which moves the final objective by far less than `--validate`'s 1e-3 tolerance.

use super::context::{Gpu, SKIP_SLOTS};
use super::fft::{Gate, GpuFft2};
use super::kernels::{self, Ctrl, Item};
use crate::cpu::cbpdn::{CbpdnOptions, SolveStats};
use crate::cpu::fft::Fft2;
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use std::time::Instant;

/// Filter spectra of one dictionary at one image size, resident on the device.
pub struct GpuDict {
    pub m: usize,
    /// `m` spectra of `nb` bins (Complex f32).
    pub df: wgpu::Buffer,
    /// `sum_m |Df_m|^2` per bin.
    pub dd: wgpu::Buffer,
}

impl GpuDict {
    /// Spectra computed on the host in f64 (once per dictionary and size), then uploaded.
    pub fn new(gpu: &Gpu, dict: &Dictionary, h: usize, w: usize) -> Result<Self> {
        dict.check_fits(h, w)?;
        let fft = Fft2::<f64>::new(h, w);
        let n = fft.spectrum_len();
        let df = fft.filter_spectra(&dict.data, dict.fh, dict.fw);
        let dd = crate::cpu::cbpdn::power_sum(&df, n);
        let df32: Vec<[f32; 2]> = df.iter().map(|c| [c.re as f32, c.im as f32]).collect();
        let dd32: Vec<f32> = dd.iter().map(|v| *v as f32).collect();
        Ok(GpuDict {
            m: dict.m,
            df: gpu.upload("filter spectra", &df32)?,
            dd: gpu.upload("filter power", &dd32)?,
        })
    }
}

/// Bytes of the largest buffer of a solve of `batch` signals with `m` maps (the spectra), to check
/// against the adapter's binding limit before allocating.
pub fn largest_binding(batch: usize, m: usize, h: usize, w: usize) -> u64 {
    (batch as u64) * (m as u64) * ((w / 2 + 1) * h) as u64 * 8
}

/// Device bytes one signal of a batch takes in the shared work buffers of a solve: the primal /
/// `Y - U` maps and the spectra (2 maps' worth), plus signal and model spectra. (Its coefficient
/// maps Y and dual U belong to its code.)
pub fn work_bytes_per_item(m: usize, h: usize, w: usize) -> u64 {
    let (np, nb) = ((h * w) as u64, ((w / 2 + 1) * h) as u64);
    let m = m as u64;
    4 * m * np + 8 * m * nb + 16 * nb + 4 * np
}

/// Bytes one ADMM iteration must move for `batch` signals with `m` maps of `h x w`, counting
/// each kernel reading and writing its arrays once: forward and inverse FFT (row and column
/// passes), the X step and the fused shrink pass. The dual rescale after a rho change, the
/// reductions and the control are left out, so a bandwidth computed from it is a lower bound.
pub fn bytes_per_iteration(batch: usize, m: usize, h: usize, w: usize) -> u64 {
    let (p, s) = ((h * w * 4) as u64, ((w / 2 + 1) * h * 8) as u64);
    let m = m as u64;
    let fft = 2 * m * (p + 3 * s);
    let xstep = 3 * m * s + 2 * s + s / 2;
    let shrink = 6 * m * p;
    batch as u64 * (fft + xstep + shrink)
}

/// The work buffers of a solve: named, so every solve of a job shares them.
pub struct SolveBuffers {
    work: wgpu::Buffer,
    spec: wgpu::Buffer,
    sf: wgpu::Buffer,
    dx: wgpu::Buffer,
    items: wgpu::Buffer,
    weights: wgpu::Buffer,
    partials: wgpu::Buffer,
    norms: wgpu::Buffer,
    stats: wgpu::Buffer,
}

impl SolveBuffers {
    /// The buffers for `batch` signals of `h x w` with `m` maps each (grown if too small). Calling
    /// it before any work is recorded sizes them once for a job.
    pub fn get(gpu: &Gpu, batch: usize, m: usize, h: usize, w: usize) -> Result<Self> {
        let (np, nb) = (h * w, (w / 2 + 1) * h);
        let maps = (batch * m * np * 4) as u64;
        let groups = kernels::shrink_groups(m * np);
        Ok(SolveBuffers {
            work: gpu.scratch("solve: primal X / Y-U", maps)?,
            spec: gpu.scratch("spectra", largest_binding(batch, m, h, w))?,
            sf: gpu.scratch("solve: signal spectra", (batch * nb * 8) as u64)?,
            dx: gpu.scratch("solve: model spectra", (batch * nb * 8) as u64)?,
            items: gpu.scratch("solve: item parameters", (batch * 32) as u64)?,
            weights: gpu.scratch("solve: l1 weights", (m * 4) as u64)?,
            partials: gpu.scratch("solve: norm partials", (batch * groups * 32) as u64)?,
            norms: gpu.scratch("solve: norms", (batch * 32) as u64)?,
            stats: gpu.scratch("solve: statistics", (batch * 32) as u64)?,
        })
    }
}

/// Where the items of a solve start.
pub enum GpuStart<'a> {
    /// `Y = U = 0`, the options' initial rho.
    Zero,
    /// From the Y and U the buffers hold, with each item's `rho` and the dual multiplied by
    /// `dual_scale` (`Cbpdn::warm_start` on the CPU).
    Warm { rho: &'a [f32], dual_scale: f32 },
}

/// Solve CBPDN for the `batch` signals in `s` against `dict`, with Y in `y` and the scaled dual
/// U in `u` (`batch * m` planes each), starting as `start` says. Everything is recorded after
/// what `enc` holds and submitted at once: the ADMM control runs on the device (control.wgsl), so
/// the host waits once, for the statistics.
#[allow(clippy::too_many_arguments)]
pub fn solve(
    gpu: &Gpu,
    mut enc: wgpu::CommandEncoder,
    fft: &GpuFft2,
    dict: &GpuDict,
    s: &wgpu::Buffer,
    [y, u]: [&wgpu::Buffer; 2],
    batch: usize,
    opts: &CbpdnOptions,
    start: &GpuStart,
) -> Result<Vec<SolveStats>> {
    let t0 = Instant::now();
    opts.validate(dict.m)?;
    let (b, m) = (batch, dict.m);
    let (h, w) = (fft.h, fft.w);
    let (np, nb) = (h * w, fft.spectrum_len());
    let per_item = m * np;
    let SolveBuffers {
        work,
        spec,
        sf,
        dx,
        items,
        weights,
        partials,
        norms,
        stats,
    } = SolveBuffers::get(gpu, b, m, h, w)?;
    let weights_v: Vec<f32> = match &opts.l1_weights {
        Some(wt) => wt.iter().map(|v| *v as f32).collect(),
        None => vec![1.0; m],
    };
    gpu.queue
        .write_buffer(&weights, 0, bytemuck::cast_slice(&weights_v));
    let item = |rho: f64, u_scale: f32, fresh: u32| Item {
        rho: rho as f32,
        lam_over_rho: (opts.lambda / rho) as f32,
        alpha: opts.relax as f32,
        live: 1,
        u_scale,
        fresh,
        _pad: [0.0; 2],
    };
    let item_v: Vec<Item> = match start {
        GpuStart::Zero => vec![item(opts.initial_rho(), 1.0, 0); b],
        GpuStart::Warm { rho, dual_scale } => {
            if rho.len() != b || rho.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
                return Err(Error::Gpu(format!(
                    "{}: a warm start needs a positive rho for each of {b} items",
                    gpu.desc
                )));
            }
            rho.iter()
                .map(|r| item(*r as f64, *dual_scale, 1))
                .collect()
        }
    };
    gpu.queue
        .write_buffer(&items, 0, bytemuck::cast_slice(&item_v));
    let a = &opts.auto_rho;
    let ctrl = Ctrl {
        batch: b as u32,
        auto_rho: a.enabled as u32,
        period: a.period.max(1) as u32,
        lambda: opts.lambda as f32,
        rel_tol: opts.rel_tol as f32,
        abs_tol: ((per_item as f64).sqrt() * opts.abs_tol) as f32,
        xi: opts.residual_target() as f32,
        ratio: a.ratio as f32,
        scaling: a.scaling as f32,
        ..Ctrl::default()
    };
    let warm = matches!(start, GpuStart::Warm { .. });
    // Stopped items skip their transforms too, which is most of an iteration's work.
    let gate = Gate {
        items: &items,
        planes_per_item: m,
    };
    if warm {
        // Scale the dual and write Y - U (fresh items), then its spectra for the first X step.
        kernels::rescale(gpu, &mut enc, &work, y, u, &items, per_item, b);
        fft.forward_gated(gpu, &mut enc, &work, &spec, b * m, Some(gate));
    } else {
        // Y and U start at zero, and so does Y - U (the first X step's input spectra).
        let yb = (b * per_item * 4) as u64;
        enc.clear_buffer(y, 0, Some(yb));
        enc.clear_buffer(u, 0, Some(yb));
        enc.clear_buffer(&work, 0, Some(yb));
        enc.clear_buffer(&spec, 0, Some((b * m * nb * 8) as u64));
    }
    enc.clear_buffer(&stats, 0, Some((b * 32) as u64));
    fft.forward(gpu, &mut enc, s, &sf, b);
    // The grids of one iteration's heavy dispatches (the same every iteration after the first).
    let mut grids: Option<Vec<[u32; 3]>> = None;
    for it in 0..opts.max_iter {
        crate::fault::gpu_iteration().map_err(|e| Error::Gpu(format!("{}: {e}", gpu.desc)))?;
        crate::cancel::check()?;
        if it > 0 {
            gpu.open_skip();
            // A no-op for items whose rho did not change (u_scale = 1) or that have stopped.
            kernels::rescale(gpu, &mut enc, &work, y, u, &items, per_item, b);
            fft.forward_gated(gpu, &mut enc, &work, &spec, b * m, Some(gate));
        }
        kernels::x_step(
            gpu, &mut enc, &spec, &dict.df, &dict.dd, &sf, &dx, &items, nb, m, b,
        );
        fft.inverse_gated(gpu, &mut enc, &spec, &work, b * m, Some(gate));
        kernels::shrink(
            gpu, &mut enc, &work, y, u, &weights, &items, &partials, per_item, np, b,
        );
        kernels::reduce(gpu, &mut enc, &partials, &norms, per_item, b);
        if it > 0 {
            let g = gpu.close_skip();
            // One table serves every iteration; a recording that differs would misdirect grids.
            if grids.as_ref().is_some_and(|p| *p != g) {
                return Err(Error::Gpu(format!(
                    "{}: ADMM iteration {it} recorded other grids than the first",
                    gpu.desc
                )));
            }
            grids.get_or_insert(g);
        }
        kernels::control(gpu, &mut enc, &ctrl, &norms, &items, &stats);
        if let (Some(t), true) = (gpu.skip_tables(), it + 1 < opts.max_iter) {
            kernels::skip(gpu, &mut enc, &items, &t.full, &t.args, b, 3 * SKIP_SLOTS);
        }
    }
    // A rho change in the last iteration leaves its dual rescale pending (u_scale); apply it now,
    // so U matches the rho the statistics report, as on the CPU, and a warm start can build on both.
    kernels::rescale(gpu, &mut enc, &work, y, u, &items, per_item, b);
    if let (Some(t), Some(g)) = (gpu.skip_tables(), &grids) {
        // Lands before the submission below, so before any skip dispatch reads it.
        gpu.queue.write_buffer(&t.full, 0, bytemuck::cast_slice(g));
    }
    kernels::fidelity(gpu, &mut enc, &dx, &sf, &stats, h, w, b);
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let st: Vec<f32> = gpu.read(enc, &stats, 0, 8 * b)?;
    let ms = t1.elapsed().as_secs_f64() * 1e3;
    // Iterations after the last item stopped launch nothing.
    let ran = st.chunks_exact(8).map(|v| v[0] as usize).max().unwrap_or(0);
    Ok(st
        .chunks_exact(8)
        .map(|v| {
            let iterations = v[0] as usize;
            let (dfid, l1) = (v[5] as f64, v[3] as f64);
            SolveStats {
                iterations,
                objective: dfid + opts.lambda * l1,
                dfid,
                l1,
                r: v[1] as f64,
                s: v[2] as f64,
                rho: v[4] as f64,
                // Every item ran as long as the longest one (stopped ones were skipped).
                ms_per_iter: ms / ran.max(1) as f64,
                setup_ms,
                precision: "f32",
            }
        })
        .collect())
}

#[cfg(test)]
/// CPU twin of skip.wgsl: the grid table the next iteration reads, from the full one and the items'
/// live flags.
pub fn skip_grids(live: &[bool], full: &[u32]) -> Vec<u32> {
    let any = live.iter().any(|l| *l);
    full.iter().map(|g| if any { *g } else { 0 }).collect()
}
