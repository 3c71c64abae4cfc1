//! [`GpuEngine`]: the [`Engine`] seam on the GPU. Single operations upload their inputs and read back
//! their result (for `sparse-code` and the kernel tests); [`Engine::fuse_resident`] runs the whole
//! CS-MCA fusion with every intermediate on the device, both sources batched in each dispatch.

use super::cbpdn::{solve, GpuDict, Workspace};
use super::context::{AdapterDesc, Gpu};
use super::fft::{FftCache, GpuFft2};
use super::kernels::{self, LowpassGeom};
use crate::cbpdn::{CbpdnOptions, SolveStats};
use crate::decompose::McaParams;
use crate::dictionary::Dictionary;
use crate::engine::{Engine, SparseCode};
use crate::error::Result;
use crate::fuse::{FuseOutput, FuseParams, SourceObjectives, StageTimes};
use crate::plane::{CoefMaps, DecisionMap, Plane};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

pub struct GpuEngine {
    gpu: Gpu,
    ffts: FftCache,
    /// Filter spectra per (dictionary content, h, w).
    dicts: HashMap<(u64, usize, usize), Rc<GpuDict>>,
    /// Solver buffers per (role, batch, m, h, w), reused across calls.
    spaces: HashMap<(&'static str, usize, usize, usize, usize), Rc<Workspace>>,
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

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|x| *x as f32).collect()
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

impl GpuEngine {
    /// Open the adapter (see [`Gpu::new`]).
    pub fn new() -> Result<Self> {
        Ok(Self::with_gpu(Gpu::new()?))
    }

    pub fn with_gpu(gpu: Gpu) -> Self {
        GpuEngine {
            gpu,
            ffts: FftCache::default(),
            dicts: HashMap::new(),
            spaces: HashMap::new(),
        }
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    fn fft(&mut self, h: usize, w: usize) -> Result<Rc<GpuFft2>> {
        self.ffts.get(&self.gpu, h, w)
    }

    fn dict(&mut self, d: &Dictionary, h: usize, w: usize) -> Result<Rc<GpuDict>> {
        let key = (dict_key(d), h, w);
        if let Some(g) = self.dicts.get(&key) {
            return Ok(g.clone());
        }
        let g = Rc::new(GpuDict::new(&self.gpu, d, h, w)?);
        self.dicts.insert(key, g.clone());
        Ok(g)
    }

    fn space(
        &mut self,
        role: &'static str,
        batch: usize,
        m: usize,
        h: usize,
        w: usize,
    ) -> Result<Rc<Workspace>> {
        let key = (role, batch, m, h, w);
        if let Some(s) = self.spaces.get(&key) {
            return Ok(s.clone());
        }
        let s = Rc::new(Workspace::new(&self.gpu, batch, m, h, w)?);
        self.spaces.insert(key, s.clone());
        Ok(s)
    }

    /// Can both sources of an `h x w` pair be solved in one batch within the binding limit?
    fn fits_pair(&self, m: usize, h: usize, w: usize) -> bool {
        Workspace::largest_binding(2, m, h, w) <= self.gpu.max_binding()
    }

    /// `out = sum_m d_m (*) coef_m` for `batch` items whose maps are in `coef`; `spec` and `sspec` are
    /// scratch spectra (`batch * m` and `batch` planes).
    #[allow(clippy::too_many_arguments)]
    fn synth_into(
        &self,
        enc: &mut wgpu::CommandEncoder,
        fft: &GpuFft2,
        dict: &GpuDict,
        coef: &wgpu::Buffer,
        spec: &wgpu::Buffer,
        sspec: &wgpu::Buffer,
        out: &wgpu::Buffer,
        batch: usize,
    ) {
        let g = &self.gpu;
        fft.forward(g, enc, coef, spec, batch * dict.m);
        kernels::synth(
            g,
            enc,
            spec,
            &dict.df,
            sspec,
            fft.spectrum_len(),
            dict.m,
            batch,
        );
        fft.inverse(g, enc, sspec, out, batch);
    }

    /// Tikhonov split of the `batch` planes in `src` into `low` and `high`.
    #[allow(clippy::too_many_arguments)]
    fn lowpass_into(
        &mut self,
        enc: &mut wgpu::CommandEncoder,
        geom: LowpassGeom,
        src: &wgpu::Buffer,
        low: &wgpu::Buffer,
        high: &wgpu::Buffer,
    ) -> Result<()> {
        let (hp, wp) = (geom.hp(), geom.wp());
        let fft = self.fft(hp, wp)?;
        let g = &self.gpu;
        let padded = g.storage("padded", (geom.batch * hp * wp * 4) as u64)?;
        let spec = g.storage(
            "padded spectra",
            (geom.batch * fft.spectrum_len() * 8) as u64,
        )?;
        geom.pad(g, enc, src, &padded);
        fft.forward(g, enc, &padded, &spec, geom.batch);
        geom.gain(g, enc, &spec);
        fft.inverse(g, enc, &spec, &padded, geom.batch);
        geom.crop(g, enc, src, &padded, low, high);
        Ok(())
    }

    fn maps_buffer(&self, label: &str, planes: usize, h: usize, w: usize) -> Result<wgpu::Buffer> {
        self.gpu.storage(label, (planes * h * w * 4) as u64)
    }

    fn read_plane(&self, buf: &wgpu::Buffer, index: usize, h: usize, w: usize) -> Result<Plane> {
        let v: Vec<f32> = self.gpu.download(buf, index * h * w, h * w)?;
        Ok(Plane::from_vec(h, w, to_f64(&v)))
    }

    fn read_decision(&self, buf: &wgpu::Buffer, h: usize, w: usize) -> Result<DecisionMap> {
        let v: Vec<u32> = self.gpu.download(buf, 0, h * w)?;
        Ok(DecisionMap {
            h,
            w,
            from_a: v.iter().map(|d| *d != 0).collect(),
        })
    }

    /// Choose-max of the coefficient maps of items 0 and 1 in `coef` (window radius `r`) into `fused`.
    #[allow(clippy::too_many_arguments)]
    fn choose_into(
        &self,
        enc: &mut wgpu::CommandEncoder,
        coef: &wgpu::Buffer,
        (m, h, w): (usize, usize, usize),
        r: usize,
        fused: &wgpu::Buffer,
        decision: &wgpu::Buffer,
    ) -> Result<()> {
        let g = &self.gpu;
        let act = self.maps_buffer("activity", 2, h, w)?;
        let boxed = self.maps_buffer("windowed activity", 2, h, w)?;
        kernels::activity(g, enc, coef, &act, &boxed, (h, w, m), r, 2);
        kernels::choose(g, enc, coef, &boxed, fused, decision, h * w, m);
        Ok(())
    }

    fn fuse_on_device(
        &mut self,
        a: &Plane,
        b: &Plane,
        dc: &Dictionary,
        dt: &Dictionary,
        p: &FuseParams,
    ) -> Result<FuseOutput> {
        let t_all = Instant::now();
        let (h, w) = (a.h, a.w);
        let np = h * w;
        let mut times = StageTimes::default();
        let fft = self.fft(h, w)?;
        let gdc = self.dict(dc, h, w)?;
        let gdt = self.dict(dt, h, w)?;
        let wc = self.space("cartoon", 2, dc.m, h, w)?;
        let wt = self.space("texture", 2, dt.m, h, w)?;

        let t = Instant::now();
        let mut both = to_f32(&a.data);
        both.extend(to_f32(&b.data));
        let src = self.gpu.upload("sources", &both)?;
        let low = self.maps_buffer("base layers", 2, h, w)?;
        let high = self.maps_buffer("detail layers", 2, h, w)?;
        let mut enc = self.gpu.encoder();
        let geom = LowpassGeom {
            h,
            w,
            pad: p.lowpass_pad,
            lambda: p.lowpass_lambda as f32,
            batch: 2,
        };
        self.lowpass_into(&mut enc, geom, &src, &low, &high)?;
        self.gpu.submit(enc)?;
        times.lowpass_ms = ms_since(t);

        // CS-MCA for both sources at once: x_c = CBPDN(s_h - x_t), x_t = CBPDN(s_h - x_c).
        let t = Instant::now();
        let cart = self.maps_buffer("cartoon layers", 2, h, w)?;
        let tex = self.maps_buffer("texture layers", 2, h, w)?;
        let sspec = self
            .gpu
            .storage("synthesis spectra", (2 * fft.spectrum_len() * 8) as u64)?;
        let mut enc = self.gpu.encoder();
        enc.clear_buffer(&tex, 0, None);
        let mut last = None;
        for it in 1..=p.mca.outer_iters {
            let lam = McaParams::lambda(it);
            kernels::sub(&self.gpu, &mut enc, &high, &tex, &wc.s, 2 * np);
            self.gpu.submit(enc)?;
            let sc = solve(
                &self.gpu,
                &fft,
                &gdc,
                &wc,
                &p.mca.cbpdn(lam, 50.0 * lam + 1.0),
            )?;
            enc = self.gpu.encoder();
            self.synth_into(&mut enc, &fft, &gdc, &wc.y, &wc.spec, &sspec, &cart, 2);
            kernels::sub(&self.gpu, &mut enc, &high, &cart, &wt.s, 2 * np);
            self.gpu.submit(enc)?;
            let st = solve(
                &self.gpu,
                &fft,
                &gdt,
                &wt,
                &p.mca.cbpdn(lam, p.mca.texture_rho),
            )?;
            enc = self.gpu.encoder();
            self.synth_into(&mut enc, &fft, &gdt, &wt.y, &wt.spec, &sspec, &tex, 2);
            last = Some((sc, st));
        }
        self.gpu.submit(enc)?;
        let (sc, st) = last.ok_or_else(|| {
            crate::error::Error::Param("CS-MCA needs at least one outer iteration".into())
        })?;
        times.decompose_ms = ms_since(t);

        let t = Instant::now();
        let fc = self.maps_buffer("fused cartoon maps", dc.m, h, w)?;
        let ft = self.maps_buffer("fused texture maps", dt.m, h, w)?;
        let dec_c = self.gpu.storage("cartoon decision", (np * 4) as u64)?;
        let dec_t = self.gpu.storage("texture decision", (np * 4) as u64)?;
        let mut enc = self.gpu.encoder();
        self.choose_into(&mut enc, &wc.y, (dc.m, h, w), p.cartoon_radius, &fc, &dec_c)?;
        self.choose_into(&mut enc, &wt.y, (dt.m, h, w), p.texture_radius, &ft, &dec_t)?;
        self.gpu.submit(enc)?;
        times.fuse_rule_ms = ms_since(t);

        let t = Instant::now();
        let fused = self.maps_buffer("fused image", 1, h, w)?;
        let mut enc = self.gpu.encoder();
        self.synth_into(&mut enc, &fft, &gdc, &fc, &wc.spec, &sspec, &cart, 1);
        self.synth_into(&mut enc, &fft, &gdt, &ft, &wt.spec, &sspec, &tex, 1);
        kernels::combine(&self.gpu, &mut enc, &low, &cart, &tex, &fused, np);
        self.gpu.submit(enc)?;
        let fused = self.read_plane(&fused, 0, h, w)?;
        times.synthesis_ms = ms_since(t);
        let out = FuseOutput {
            fused,
            cartoon_decision: self.read_decision(&dec_c, h, w)?,
            texture_decision: self.read_decision(&dec_t, h, w)?,
            times: StageTimes {
                total_ms: ms_since(t_all),
                ..times
            },
            objectives: [0, 1].map(|i| SourceObjectives {
                cartoon: sc[i].clone(),
                texture: st[i].clone(),
            }),
        };
        Ok(out)
    }
}

impl Engine for GpuEngine {
    fn describe(&self) -> String {
        format!("gpu: {}", self.gpu.desc)
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        Some(self.gpu.desc.clone())
    }

    fn lowpass(&mut self, s: &Plane, lambda: f64, pad: usize) -> Result<(Plane, Plane)> {
        let src = self.gpu.upload("source", &to_f32(&s.data))?;
        let low = self.maps_buffer("base", 1, s.h, s.w)?;
        let high = self.maps_buffer("detail", 1, s.h, s.w)?;
        let geom = LowpassGeom {
            h: s.h,
            w: s.w,
            pad,
            lambda: lambda as f32,
            batch: 1,
        };
        let mut enc = self.gpu.encoder();
        self.lowpass_into(&mut enc, geom, &src, &low, &high)?;
        self.gpu.submit(enc)?;
        Ok((
            self.read_plane(&low, 0, s.h, s.w)?,
            self.read_plane(&high, 0, s.h, s.w)?,
        ))
    }

    fn sparse_code(
        &mut self,
        dict: &Dictionary,
        s: &Plane,
        opts: &CbpdnOptions,
    ) -> Result<SparseCode> {
        let (h, w) = (s.h, s.w);
        let fft = self.fft(h, w)?;
        let gd = self.dict(dict, h, w)?;
        let ws = self.space("single", 1, dict.m, h, w)?;
        self.gpu
            .queue
            .write_buffer(&ws.s, 0, bytemuck::cast_slice(&to_f32(&s.data)));
        let stats: SolveStats = solve(&self.gpu, &fft, &gd, &ws, opts)?.remove(0);
        let y: Vec<f32> = self.gpu.download(&ws.y, 0, dict.m * h * w)?;
        Ok(SparseCode {
            coef: CoefMaps {
                m: dict.m,
                h,
                w,
                data: to_f64(&y),
            },
            stats,
        })
    }

    fn synthesize(&mut self, dict: &Dictionary, coef: &CoefMaps) -> Result<Plane> {
        let (h, w) = (coef.h, coef.w);
        let fft = self.fft(h, w)?;
        let gd = self.dict(dict, h, w)?;
        let maps = self.gpu.upload("coefficients", &to_f32(&coef.data))?;
        let spec = self
            .gpu
            .storage("spectra", (coef.m * fft.spectrum_len() * 8) as u64)?;
        let sspec = self
            .gpu
            .storage("synthesis spectrum", (fft.spectrum_len() * 8) as u64)?;
        let out = self.maps_buffer("synthesis", 1, h, w)?;
        let mut enc = self.gpu.encoder();
        self.synth_into(&mut enc, &fft, &gd, &maps, &spec, &sspec, &out, 1);
        self.gpu.submit(enc)?;
        self.read_plane(&out, 0, h, w)
    }

    fn fuse_maps(
        &mut self,
        a: &CoefMaps,
        b: &CoefMaps,
        r: usize,
    ) -> Result<(CoefMaps, DecisionMap)> {
        let (m, h, w) = (a.m, a.h, a.w);
        let mut both = to_f32(&a.data);
        both.extend(to_f32(&b.data));
        let coef = self.gpu.upload("coefficients A, B", &both)?;
        let fused = self.maps_buffer("fused maps", m, h, w)?;
        let dec = self.gpu.storage("decision", (h * w * 4) as u64)?;
        let mut enc = self.gpu.encoder();
        self.choose_into(&mut enc, &coef, (m, h, w), r, &fused, &dec)?;
        self.gpu.submit(enc)?;
        let f: Vec<f32> = self.gpu.download(&fused, 0, m * h * w)?;
        Ok((
            CoefMaps {
                m,
                h,
                w,
                data: to_f64(&f),
            },
            self.read_decision(&dec, h, w)?,
        ))
    }

    fn fuse_resident(
        &mut self,
        a: &Plane,
        b: &Plane,
        dc: &Dictionary,
        dt: &Dictionary,
        p: &FuseParams,
    ) -> Option<Result<FuseOutput>> {
        if !(self.fits_pair(dc.m, a.h, a.w) && self.fits_pair(dt.m, a.h, a.w)) {
            log::info!(
                "{}x{} pair too large to batch within {}'s binding limit; fusing one source at a time",
                a.w,
                a.h,
                self.gpu.desc
            );
            return None;
        }
        Some(self.fuse_on_device(a, b, dc, dt, p))
    }
}
