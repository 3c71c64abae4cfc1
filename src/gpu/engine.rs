//! [`GpuEngine`]: the [`Ops`] seam on the GPU. Every buffer is a named work buffer of the device
//! (`Gpu::scratch`), so repeated fusions of one size reuse the buffers and bind groups of the
//! first. Operations are recorded into one pending command encoder; the host submits and waits only
//! to read results: once per batched solve (its statistics) and once at the end of a fusion.

use super::cbpdn::{self, solve, GpuDict, GpuStart};
use super::context::{AdapterDesc, Counters, Gpu};
use super::fft::{FftCache, GpuFft2};
use super::kernels::{self, LowpassGeom};
use crate::cpu::cbpdn::{CbpdnOptions, SolveStats};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::pipeline::ops::{Finished, Ops, Start};
use crate::plane::{CoefMaps, DecisionMap, Plane};
use std::collections::HashMap;
use std::rc::Rc;

/// Device bytes the batches of one fusion may take unless `CSFUSE_GPU_MEMORY` (MiB) says otherwise.
const DEFAULT_DEVICE_BUDGET: u64 = 4 << 30;
/// Pairs per batch at most: beyond this a batch is already far larger than any GPU's thread count.
const MAX_PAIRS: usize = 64;

pub struct GpuEngine {
    gpu: Gpu,
    ffts: FftCache,
    /// Filter spectra per (dictionary content, h, w).
    dicts: HashMap<(u64, usize, usize), Rc<GpuDict>>,
    /// Work recorded but not yet submitted.
    pending: Option<wgpu::CommandEncoder>,
    device_budget: u64,
}

/// `n` planes of `h x w` in a device buffer (f32).
pub struct GpuPlanes {
    buf: wgpu::Buffer,
    n: usize,
    h: usize,
    w: usize,
}

/// A dictionary's spectra at one size and the coefficient maps Y of `n` signals with their scaled
/// duals U: all in one buffer each, or, when they are too large for one binding, one buffer per
/// signal (each solved on its own).
pub struct GpuCode {
    name: String,
    dict: Rc<GpuDict>,
    fft: Rc<GpuFft2>,
    y: Vec<wgpu::Buffer>,
    u: Vec<wgpu::Buffer>,
    n: usize,
    /// Where the last solve ended, for a warm start: each item's rho and the lambda. `None`
    /// before the first solve and after the maps were replaced.
    ends: Option<(Vec<f32>, f64)>,
}

impl GpuCode {
    /// Items in each buffer of `y`.
    fn per_buffer(&self) -> usize {
        if self.y.len() == 1 {
            self.n
        } else {
            1
        }
    }

    fn map_bytes(&self) -> u64 {
        (self.dict.m * self.fft.h * self.fft.w * 4) as u64
    }
}

/// One decision plane per pair (u32, 1 = from A).
pub struct GpuDecisions {
    buf: wgpu::Buffer,
    n: usize,
    h: usize,
    w: usize,
}

/// A cheap content key for a dictionary (FNV-1a over the f64 bits and shape).
fn dict_key(d: &Dictionary) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    for v in [d.fh as u64, d.fw as u64, d.m as u64]
        .into_iter()
        .chain(d.data.iter().map(|x| x.to_bits()))
    {
        h = (h ^ v).wrapping_mul(0x100000001b3);
    }
    h
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

fn planes_of(v: &[f32], n: usize, h: usize, w: usize) -> Vec<Plane> {
    (0..n)
        .map(|i| Plane::from_vec(h, w, to_f64(&v[i * h * w..(i + 1) * h * w])))
        .collect()
}

fn decisions_of(v: &[u32], n: usize, h: usize, w: usize) -> Vec<DecisionMap> {
    (0..n)
        .map(|i| DecisionMap {
            h,
            w,
            from_a: v[i * h * w..(i + 1) * h * w]
                .iter()
                .map(|d| *d != 0)
                .collect(),
        })
        .collect()
}

/// The device budget from `CSFUSE_GPU_MEMORY` (MiB), else the default.
fn device_budget() -> u64 {
    std::env::var("CSFUSE_GPU_MEMORY")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|m| *m > 0)
        .map_or(DEFAULT_DEVICE_BUDGET, |m| m << 20)
}

impl GpuEngine {
    /// Open the adapter (the best one, or the one `WGPU_ADAPTER_NAME` names).
    pub fn new() -> Result<Self> {
        Ok(Self::with_gpu(Gpu::new()?))
    }

    pub(crate) fn with_gpu(gpu: Gpu) -> Self {
        GpuEngine {
            gpu,
            ffts: FftCache::default(),
            dicts: HashMap::new(),
            pending: None,
            device_budget: device_budget(),
        }
    }

    pub(crate) fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The adapter this engine runs on.
    pub fn adapter_desc(&self) -> &AdapterDesc {
        &self.gpu.desc
    }

    /// Submissions, host waits, dispatches and allocations since the engine opened.
    pub fn device_counters(&self) -> Counters {
        self.gpu.counters()
    }

    fn fft(&mut self, h: usize, w: usize) -> Result<Rc<GpuFft2>> {
        self.ffts.get(&self.gpu, h, w)
    }

    fn dict(&mut self, d: &Dictionary, h: usize, w: usize) -> Result<Rc<GpuDict>> {
        let key = (dict_key(d), h, w);
        if let Some(g) = self.dicts.get(&key) {
            return Ok(g.clone());
        }
        if self.dicts.len() >= 16 {
            // A job that keeps changing sizes: keep the device memory bounded.
            self.dicts.clear();
        }
        let g = Rc::new(GpuDict::new(&self.gpu, d, h, w)?);
        self.dicts.insert(key, g.clone());
        Ok(g)
    }

    /// The pending encoder (a new one if none).
    fn enc(&mut self) -> &mut wgpu::CommandEncoder {
        let gpu = &self.gpu;
        self.pending.get_or_insert_with(|| gpu.encoder())
    }

    /// The pending work, to be submitted by the caller.
    fn take(&mut self) -> wgpu::CommandEncoder {
        self.pending.take().unwrap_or_else(|| self.gpu.encoder())
    }

    /// Submit the pending work without waiting.
    fn flush(&mut self) {
        if let Some(enc) = self.pending.take() {
            self.gpu.submit_nowait(enc);
        }
    }

    /// `queue.write_buffer` lands before the next submission: submit what is pending first, so
    /// commands recorded earlier see the old contents.
    fn write(&mut self, buf: &wgpu::Buffer, data: &[f32]) {
        self.flush();
        self.gpu
            .queue
            .write_buffer(buf, 0, bytemuck::cast_slice(data));
    }

    fn scratch_planes(&self, name: &str, n: usize, h: usize, w: usize) -> Result<GpuPlanes> {
        let buf = self.gpu.scratch(name, (n * h * w * 4) as u64)?;
        Ok(GpuPlanes { buf, n, h, w })
    }

    /// Device bytes of one pair in a batch: sources, layers and targets, both codes, their work
    /// buffers and the fused codes.
    fn bytes_per_pair(mc: usize, mt: usize, h: usize, w: usize) -> u64 {
        let np = (h * w) as u64;
        let (pw, ph) = ((w + 32) as u64, (h + 32) as u64);
        let planes = 2 * 8 * np * 4 + 2 * pw * ph * 4;
        // Y and U of both sources' codes, and the fused codes.
        let codes = 2 * 2 * (mc + mt) as u64 * np * 4 + (mc + mt) as u64 * np * 4;
        planes + codes + 2 * cbpdn::work_bytes_per_item(mc.max(mt), h, w)
    }
}

impl Ops for GpuEngine {
    type Planes = GpuPlanes;
    type Code = GpuCode;
    type Decisions = GpuDecisions;

    fn describe(&self) -> String {
        format!("gpu: {}", self.gpu.desc)
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        Some(self.gpu.desc.clone())
    }

    fn counters(&self) -> Option<Counters> {
        Some(self.gpu.counters())
    }

    /// Limited by the largest binding (the solve's spectra), the device budget and `MAX_PAIRS`;
    /// 0 when one pair is already too large for the adapter.
    fn pairs_per_batch(&self, mc: usize, mt: usize, h: usize, w: usize) -> usize {
        let one = cbpdn::largest_binding(2, mc.max(mt), h, w).max(1);
        let by_binding = (self.gpu.max_binding() / one) as usize;
        let by_budget = (self.device_budget / Self::bytes_per_pair(mc, mt, h, w).max(1)) as usize;
        by_binding.min(by_budget.max(1)).min(MAX_PAIRS)
    }

    fn upload(&mut self, name: &str, data: &[&Plane]) -> Result<GpuPlanes> {
        let (h, w) = data.first().map_or((0, 0), |p| (p.h, p.w));
        let p = self.scratch_planes(name, data.len(), h, w)?;
        let flat: Vec<f32> = data.iter().flat_map(|p| to_f32(&p.data)).collect();
        self.write(&p.buf, &flat);
        Ok(p)
    }

    fn planes(&mut self, name: &str, n: usize, h: usize, w: usize) -> Result<GpuPlanes> {
        let p = self.scratch_planes(name, n, h, w)?;
        let bytes = (n * h * w * 4) as u64;
        self.enc()
            .clear_buffer(&p.buf, 0, Some(bytes.next_multiple_of(4)));
        Ok(p)
    }

    fn download(&mut self, p: &GpuPlanes) -> Result<Vec<Plane>> {
        let enc = self.take();
        let v: Vec<f32> = self.gpu.read(enc, &p.buf, 0, p.n * p.h * p.w)?;
        Ok(planes_of(&v, p.n, p.h, p.w))
    }

    fn lowpass(
        &mut self,
        src: &GpuPlanes,
        lambda: f64,
        pad: usize,
        low: &mut GpuPlanes,
        high: &mut GpuPlanes,
    ) -> Result<()> {
        let geom = LowpassGeom {
            h: src.h,
            w: src.w,
            pad,
            lambda: lambda as f32,
            batch: src.n,
        };
        let (hp, wp) = (geom.hp(), geom.wp());
        let fft = self.fft(hp, wp)?;
        let padded = self
            .gpu
            .scratch("lowpass: padded", (src.n * hp * wp * 4) as u64)?;
        let spec = self
            .gpu
            .scratch("spectra", (src.n * fft.spectrum_len() * 8) as u64)?;
        let mut enc = self.take();
        let g = &self.gpu;
        geom.pad(g, &mut enc, &src.buf, &padded);
        fft.forward(g, &mut enc, &padded, &spec, geom.batch);
        geom.gain(g, &mut enc, &spec);
        fft.inverse(g, &mut enc, &spec, &padded, geom.batch);
        geom.crop(g, &mut enc, &src.buf, &padded, &low.buf, &high.buf);
        self.pending = Some(enc);
        Ok(())
    }

    fn sub(&mut self, a: &GpuPlanes, b: &GpuPlanes, out: &mut GpuPlanes) -> Result<()> {
        let n = a.n * a.h * a.w;
        let mut enc = self.take();
        kernels::sub(&self.gpu, &mut enc, &a.buf, &b.buf, &out.buf, n);
        self.pending = Some(enc);
        Ok(())
    }

    fn combine(
        &mut self,
        low: &GpuPlanes,
        cart: &GpuPlanes,
        tex: &GpuPlanes,
        out: &mut GpuPlanes,
    ) -> Result<()> {
        let mut enc = self.take();
        let np = cart.h * cart.w;
        kernels::combine(
            &self.gpu, &mut enc, &low.buf, &cart.buf, &tex.buf, &out.buf, np, cart.n,
        );
        self.pending = Some(enc);
        Ok(())
    }

    fn code(
        &mut self,
        name: &str,
        dict: &Dictionary,
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<GpuCode> {
        let max = self.gpu.max_binding();
        let np = h * w;
        // All signals in one buffer when their spectra fit one binding, else one buffer each.
        let together = cbpdn::largest_binding(n, dict.m, h, w) <= max;
        let per = if together { n } else { 1 };
        let need = cbpdn::largest_binding(per, dict.m, h, w);
        if need > max {
            return Err(Error::Gpu(format!(
                "a sparse code of {w}x{h} with {} filters needs {} MiB in one binding, over {}'s \
                 {} MiB limit",
                dict.m,
                need >> 20,
                self.gpu.desc,
                max >> 20
            )));
        }
        let fft = self.fft(h, w)?;
        let gd = self.dict(dict, h, w)?;
        // Size the shared work buffers now, before anything binds them (see Gpu::scratch).
        cbpdn::SolveBuffers::get(&self.gpu, per, dict.m, h, w)?;
        self.gpu
            .scratch("synthesis spectra", (per * fft.spectrum_len() * 8) as u64)?;
        if !together {
            self.gpu.scratch("one signal", (np * 4) as u64)?;
            self.gpu.scratch("one synthesis", (np * 4) as u64)?;
        }
        let maps = |what: &str| -> Result<Vec<wgpu::Buffer>> {
            match together {
                true => Ok(vec![self.gpu.scratch(
                    &format!("{name}: {what}"),
                    (n * dict.m * np * 4) as u64,
                )?]),
                false => (0..n)
                    .map(|i| {
                        self.gpu
                            .scratch(&format!("{name}: {what} {i}"), (dict.m * np * 4) as u64)
                    })
                    .collect(),
            }
        };
        Ok(GpuCode {
            name: name.into(),
            dict: gd,
            fft,
            y: maps("coefficients")?,
            u: maps("dual")?,
            n,
            ends: None,
        })
    }

    fn solve(
        &mut self,
        code: &mut GpuCode,
        s: &GpuPlanes,
        opts: &CbpdnOptions,
        start: Start,
    ) -> Result<Vec<SolveStats>> {
        // The solve writes its parameter buffers first: nothing pending may still read them.
        self.flush();
        let g = &self.gpu;
        let ends = match start {
            Start::Warm => code.ends.take(),
            Start::Zero => None,
        };
        let start_of = |items: std::ops::Range<usize>| match &ends {
            Some((rho, lambda)) => GpuStart::Warm {
                rho: &rho[items],
                dual_scale: (opts.lambda / lambda) as f32,
            },
            None => GpuStart::Zero,
        };
        let (fft, dict) = (&code.fft, &code.dict);
        let stats = if code.y.len() == 1 {
            let yu = [&code.y[0], &code.u[0]];
            solve(
                g,
                g.encoder(),
                fft,
                dict,
                &s.buf,
                yu,
                s.n,
                opts,
                &start_of(0..s.n),
            )?
        } else {
            // One signal at a time, each copied beside its own maps.
            let bytes = (s.h * s.w * 4) as u64;
            let one = g.scratch("one signal", bytes)?;
            let mut stats = Vec::with_capacity(s.n);
            for (i, (y, u)) in code.y.iter().zip(&code.u).enumerate() {
                let mut enc = g.encoder();
                enc.copy_buffer_to_buffer(&s.buf, i as u64 * bytes, &one, 0, bytes);
                let st = start_of(i..i + 1);
                stats.extend(solve(g, enc, fft, dict, &one, [y, u], 1, opts, &st)?);
            }
            stats
        };
        code.ends = Some((stats.iter().map(|s| s.rho as f32).collect(), opts.lambda));
        Ok(stats)
    }

    fn synthesize(&mut self, code: &GpuCode, out: &mut GpuPlanes) -> Result<()> {
        let (fft, m, per) = (&code.fft, code.dict.m, code.per_buffer());
        let nb = fft.spectrum_len();
        let spec = self.gpu.scratch("spectra", (per * m * nb * 8) as u64)?;
        let sspec = self
            .gpu
            .scratch("synthesis spectra", (per * nb * 8) as u64)?;
        let one = match code.y.len() {
            1 => None,
            _ => Some(
                self.gpu
                    .scratch("one synthesis", (fft.h * fft.w * 4) as u64)?,
            ),
        };
        let mut enc = self.take();
        let g = &self.gpu;
        let plane = (fft.h * fft.w * 4) as u64;
        for (i, y) in code.y.iter().enumerate() {
            fft.forward(g, &mut enc, y, &spec, per * m);
            kernels::synth(g, &mut enc, &spec, &code.dict.df, &sspec, nb, m, per);
            match &one {
                None => fft.inverse(g, &mut enc, &sspec, &out.buf, per),
                Some(one) => {
                    fft.inverse(g, &mut enc, &sspec, one, 1);
                    enc.copy_buffer_to_buffer(one, 0, &out.buf, i as u64 * plane, plane);
                }
            }
        }
        self.pending = Some(enc);
        Ok(())
    }

    fn choose(
        &mut self,
        code: &GpuCode,
        r: usize,
        vote: usize,
        sum: bool,
        fused: &mut GpuCode,
    ) -> Result<GpuDecisions> {
        let (h, w, m) = (code.fft.h, code.fft.w, code.dict.m);
        let np = h * w;
        let act = self.gpu.scratch("activity", (code.n * np * 4) as u64)?;
        let boxed = self
            .gpu
            .scratch("windowed activity", (code.n * np * 4) as u64)?;
        let pairs = code.n / 2;
        let dec = self.gpu.scratch(
            &format!("{}: decisions", fused.name),
            (pairs * np * 4) as u64,
        )?;
        let mut enc = self.take();
        let g = &self.gpu;
        let per = code.per_buffer();
        for (i, y) in code.y.iter().enumerate() {
            kernels::activity(g, &mut enc, y, &act, &boxed, (h, w, m), r, (i * per, per));
        }
        if vote > 0 {
            // The activities are spent: their buffer holds the marks.
            let any = &code.y[0];
            kernels::vote(g, &mut enc, any, &act, &boxed, (h, w), vote, pairs);
        }
        use kernels::PairMaps;
        if code.y.len() == 1 {
            let maps = PairMaps::Batch {
                coef: &code.y[0],
                pairs,
            };
            kernels::choose(g, &mut enc, maps, &boxed, &fused.y[0], &dec, (np, m), sum);
        } else {
            for q in 0..pairs {
                let (out, fy) = match fused.y.len() {
                    1 => (q, &fused.y[0]),
                    _ => (0, &fused.y[q]),
                };
                let maps = PairMaps::Alone {
                    a: &code.y[2 * q],
                    b: &code.y[2 * q + 1],
                    q,
                    out,
                };
                kernels::choose(g, &mut enc, maps, &boxed, fy, &dec, (np, m), sum);
            }
        }
        self.pending = Some(enc);
        Ok(GpuDecisions {
            buf: dec,
            n: pairs,
            h,
            w,
        })
    }

    fn download_code(&mut self, code: &GpuCode) -> Result<Vec<CoefMaps>> {
        let (h, w, m) = (code.fft.h, code.fft.w, code.dict.m);
        let enc = self.take();
        let bytes = code.per_buffer() as u64 * code.map_bytes();
        let parts: Vec<(&wgpu::Buffer, u64, u64)> = code.y.iter().map(|y| (y, 0, bytes)).collect();
        let raw = self.gpu.read_many(enc, &parts)?;
        let v: Vec<f32> = raw
            .iter()
            .flat_map(|b| bytemuck::pod_collect_to_vec::<u8, f32>(b))
            .collect();
        Ok((0..code.n)
            .map(|i| CoefMaps {
                m,
                h,
                w,
                data: to_f64(&v[i * m * h * w..(i + 1) * m * h * w]),
            })
            .collect())
    }

    fn upload_code(&mut self, code: &mut GpuCode, maps: &[&CoefMaps]) -> Result<()> {
        let per = code.per_buffer();
        for (y, chunk) in code.y.clone().iter().zip(maps.chunks(per)) {
            let flat: Vec<f32> = chunk.iter().flat_map(|m| to_f32(&m.data)).collect();
            self.write(y, &flat);
        }
        code.ends = None;
        Ok(())
    }

    fn download_decisions(&mut self, d: &GpuDecisions) -> Result<Vec<DecisionMap>> {
        let enc = self.take();
        let v: Vec<u32> = self.gpu.read(enc, &d.buf, 0, d.n * d.h * d.w)?;
        Ok(decisions_of(&v, d.n, d.h, d.w))
    }

    fn mark(&mut self, i: u32) {
        let mut enc = self.take();
        self.gpu.stamp(&mut enc, i);
        self.pending = Some(enc);
    }

    fn finish(
        &mut self,
        fused: &GpuPlanes,
        [dc, dt]: [&GpuDecisions; 2],
        marks: u32,
    ) -> Result<Finished> {
        let mut enc = self.take();
        let np = (fused.h * fused.w) as u64;
        let mut parts = vec![
            (&fused.buf, 0, fused.n as u64 * np * 4),
            (&dc.buf, 0, dc.n as u64 * np * 4),
            (&dt.buf, 0, dt.n as u64 * np * 4),
        ];
        if let Some(ts) = self.gpu.resolve_stamps(&mut enc, marks) {
            parts.push((ts, 0, marks as u64 * 8));
        }
        let raw = self.gpu.read_many(enc, &parts)?;
        let f: Vec<f32> = bytemuck::pod_collect_to_vec(&raw[0]);
        let c: Vec<u32> = bytemuck::pod_collect_to_vec(&raw[1]);
        let t: Vec<u32> = bytemuck::pod_collect_to_vec(&raw[2]);
        let stage_ms = raw.get(3).map(|b| {
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(b);
            let ns = self.gpu.tick_ns();
            ticks
                .windows(2)
                .map(|p| p[1].saturating_sub(p[0]) as f64 * ns / 1e6)
                .collect()
        });
        Ok(Finished {
            fused: planes_of(&f, fused.n, fused.h, fused.w),
            decisions: [
                decisions_of(&c, dc.n, dc.h, dc.w),
                decisions_of(&t, dt.n, dt.h, dt.w),
            ],
            stage_ms,
        })
    }
}
