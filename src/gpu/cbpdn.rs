//! CBPDN on the GPU for a batch of signals at once (GPU twin of [`crate::cbpdn::Cbpdn`]).
//!
//! All state stays on the device. Per iteration the host records: forward FFT of `Y - U` (after a dual
//! rescale when rho changed), X step, inverse FFT, fused shrink pass, reduction; then it reads back eight
//! scalars per item and runs the same stop rule and auto-rho logic as the CPU solver. Each item keeps
//! its own rho and stops on its own; a stopped item is skipped by the kernels.

use super::context::Gpu;
use super::fft::GpuFft2;
use super::kernels::{self, Item};
use crate::cbpdn::{data_fidelity, rho_factor, CbpdnOptions, PassNorms, SolveStats};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::fft2::Fft2;
use rustfft::num_complex::Complex;
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
        let dd = crate::cbpdn::power_sum(&df, n);
        let df32: Vec<[f32; 2]> = df.iter().map(|c| [c.re as f32, c.im as f32]).collect();
        let dd32: Vec<f32> = dd.iter().map(|v| *v as f32).collect();
        Ok(GpuDict {
            m: dict.m,
            df: gpu.upload("filter spectra", &df32)?,
            dd: gpu.upload("filter power", &dd32)?,
        })
    }
}

/// Device buffers of a batched solve: `batch` signals of `h x w`, `m` coefficient maps each.
pub struct Workspace {
    pub batch: usize,
    pub m: usize,
    pub h: usize,
    pub w: usize,
    /// Signals, `batch` planes (write the input here).
    pub s: wgpu::Buffer,
    pub sf: wgpu::Buffer,
    /// Coefficient maps Y (the solution), `batch * m` planes.
    pub y: wgpu::Buffer,
    pub u: wgpu::Buffer,
    /// Primal X inside an iteration, `Y - U` between iterations.
    pub work: wgpu::Buffer,
    /// Spectra of `Y - U` / X; free for other use after a solve.
    pub spec: wgpu::Buffer,
    pub dx: wgpu::Buffer,
    items: wgpu::Buffer,
    weights: wgpu::Buffer,
    partials: wgpu::Buffer,
    norms: wgpu::Buffer,
}

impl Workspace {
    /// Bytes of the largest buffer, to check against the adapter's binding limit before allocating.
    pub fn largest_binding(batch: usize, m: usize, h: usize, w: usize) -> u64 {
        (batch * m * (w / 2 + 1) * h * 8) as u64
    }

    pub fn new(gpu: &Gpu, batch: usize, m: usize, h: usize, w: usize) -> Result<Self> {
        let (np, nb) = (h * w, (w / 2 + 1) * h);
        let maps = (batch * m * np * 4) as u64;
        let groups = kernels::shrink_groups(m * np);
        Ok(Workspace {
            batch,
            m,
            h,
            w,
            s: gpu.storage("signals", (batch * np * 4) as u64)?,
            sf: gpu.storage("signal spectra", (batch * nb * 8) as u64)?,
            y: gpu.storage("coefficients Y", maps)?,
            u: gpu.storage("dual U", maps)?,
            work: gpu.storage("primal X / Y-U", maps)?,
            spec: gpu.storage("spectra", (batch * m * nb * 8) as u64)?,
            dx: gpu.storage("model spectra", (batch * nb * 8) as u64)?,
            items: gpu.storage("item parameters", (batch * 32) as u64)?,
            weights: gpu.storage("l1 weights", (m * 4) as u64)?,
            partials: gpu.storage("norm partials", (batch * groups * 32) as u64)?,
            norms: gpu.storage("norms", (batch * 32) as u64)?,
        })
    }
}

/// Host-side state of one item.
struct ItemState {
    rho: f64,
    active: bool,
    iters: usize,
    last: PassNorms,
    rs: (f64, f64),
}

/// Solve CBPDN for all `ws.batch` signals in `ws.s` against `dict` from `Y = U = 0`.
/// Returns the statistics per item; Y stays in `ws.y`.
pub fn solve(
    gpu: &Gpu,
    fft: &GpuFft2,
    dict: &GpuDict,
    ws: &Workspace,
    opts: &CbpdnOptions,
) -> Result<Vec<SolveStats>> {
    let t0 = Instant::now();
    opts.validate(dict.m)?;
    let (b, m) = (ws.batch, ws.m);
    let (np, nb) = (ws.h * ws.w, fft.spectrum_len());
    let per_item = m * np;
    let weights: Vec<f32> = match &opts.l1_weights {
        Some(w) => w.iter().map(|v| *v as f32).collect(),
        None => vec![1.0; m],
    };
    gpu.queue
        .write_buffer(&ws.weights, 0, bytemuck::cast_slice(&weights));
    let xi = opts.residual_target();
    let rho0 = opts.initial_rho();
    let mut st: Vec<ItemState> = (0..b)
        .map(|_| ItemState {
            rho: rho0,
            active: true,
            iters: 0,
            last: PassNorms::default(),
            rs: (f64::INFINITY, f64::INFINITY),
        })
        .collect();
    let mut scales = vec![1.0f64; b];
    let write_items = |st: &[ItemState], scales: &[f64]| {
        let items: Vec<Item> = st
            .iter()
            .zip(scales)
            .map(|(s, f)| Item {
                rho: s.rho as f32,
                lam_over_rho: (opts.lambda / s.rho) as f32,
                alpha: opts.relax as f32,
                live: s.active as u32,
                u_scale: *f as f32,
                _pad: [0.0; 3],
            })
            .collect();
        gpu.queue
            .write_buffer(&ws.items, 0, bytemuck::cast_slice(&items));
    };
    write_items(&st, &scales);
    let mut enc = gpu.encoder();
    for buf in [&ws.y, &ws.u, &ws.work, &ws.spec] {
        enc.clear_buffer(buf, 0, None);
    }
    fft.forward(gpu, &mut enc, &ws.s, &ws.sf, b);
    gpu.submit(enc)?;
    let setup_ms = t0.elapsed().as_secs_f64() * 1e3;

    let t1 = Instant::now();
    let mut ran = 0;
    while ran < opts.max_iter && st.iter().any(|s| s.active) {
        crate::fault::gpu_iteration().map_err(|m| Error::Gpu(format!("{}: {m}", gpu.desc)))?;
        let mut enc = gpu.encoder();
        if ran > 0 {
            if scales.iter().any(|f| *f != 1.0) {
                kernels::rescale(
                    gpu, &mut enc, &ws.work, &ws.y, &ws.u, &ws.items, per_item, b,
                );
            }
            fft.forward(gpu, &mut enc, &ws.work, &ws.spec, b * m);
        }
        kernels::x_step(
            gpu, &mut enc, &ws.spec, &dict.df, &dict.dd, &ws.sf, &ws.dx, &ws.items, nb, m, b,
        );
        fft.inverse(gpu, &mut enc, &ws.spec, &ws.work, b * m);
        kernels::shrink(
            gpu,
            &mut enc,
            &ws.work,
            &ws.y,
            &ws.u,
            &ws.weights,
            &ws.items,
            &ws.partials,
            per_item,
            np,
            b,
        );
        kernels::reduce(gpu, &mut enc, &ws.partials, &ws.norms, per_item, b);
        let norms: Vec<f32> = gpu.read(enc, &ws.norms, 0, 8 * b)?;
        ran += 1;
        for (i, s) in st.iter_mut().enumerate() {
            scales[i] = 1.0;
            if !s.active {
                continue;
            }
            let nrm = PassNorms::from_slice(&norms[8 * i..8 * i + 8]);
            s.iters += 1;
            s.last = nrm;
            s.rs = nrm.residuals();
            let eps = nrm.stop_thresholds(s.rho, per_item, opts);
            if let Some(f) = rho_factor(opts, xi, s.iters, s.rs.0, s.rs.1) {
                s.rho *= f;
                scales[i] = 1.0 / f;
            }
            if s.rs.0 <= eps.0 && s.rs.1 <= eps.1 {
                s.active = false;
            }
        }
        write_items(&st, &scales);
    }
    let ms = t1.elapsed().as_secs_f64() * 1e3;

    // Final statistics: the data term from the model and signal spectra (one read-back per solve).
    let dx: Vec<Complex<f32>> = gpu
        .download::<[f32; 2]>(&ws.dx, 0, b * nb)?
        .into_iter()
        .map(|c| Complex::new(c[0], c[1]))
        .collect();
    let sf: Vec<Complex<f32>> = gpu
        .download::<[f32; 2]>(&ws.sf, 0, b * nb)?
        .into_iter()
        .map(|c| Complex::new(c[0], c[1]))
        .collect();
    Ok(st
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let dfid = data_fidelity(
                ws.h,
                ws.w,
                &dx[i * nb..(i + 1) * nb],
                &sf[i * nb..(i + 1) * nb],
            );
            SolveStats {
                iterations: s.iters,
                objective: dfid + opts.lambda * s.last.l1,
                dfid,
                l1: s.last.l1,
                r: s.rs.0,
                s: s.rs.1,
                rho: s.rho,
                ms_per_iter: if ran > 0 { ms / ran as f64 } else { 0.0 },
                setup_ms,
                precision: "f32",
            }
        })
        .collect())
}
