//! GPU twin of [`crate::cpu::fft::Fft2`]: batched real 2-D FFT in the same transposed half-spectrum layout.
//!
//! Each 1-D transform runs in one workgroup as a mixed-radix Stockham FFT (radices 8, 4, 2, 3, 5, 7);
//! a length with a larger prime factor goes through Bluestein's chirp-z algorithm on a 7-smooth length.
//! Twiddles and chirps are computed on the host in f64 (f64 is not portable in WGSL; docs/gpu.md).

use super::context::{grid, Gpu, Kernel, Slot};
use super::stockham::stockham_source;
use crate::error::Result;
use rustfft::num_complex::Complex;
use std::f64::consts::PI;
use std::rc::Rc;

const SOURCE: &str = include_str!("../../shaders/fft.wgsl");
const LONG: &str = include_str!("../../shaders/fft_long.wgsl");
const BUTTERFLY: &str = include_str!("../../shaders/fft_butterfly.wgsl");
pub(crate) const LONG_SLOTS: [Slot; 7] = [
    Slot::Uniform,
    Slot::Write,
    Slot::Write,
    Slot::Read,
    Slot::Read,
    Slot::Write,
    Slot::Write,
];
/// Line buffers of the global-memory FFT hold at most this many bytes; longer batches run in
/// chunks of lines.
const LONG_CHUNK_BYTES: u64 = 64 << 20;
pub(crate) const SLOTS: [Slot; 6] = [
    Slot::Uniform,
    Slot::Write,
    Slot::Write,
    Slot::Read,
    Slot::Read,
    Slot::Read,
];

/// The solver items that gate a batched transform: planes of item `i` are
/// `i * planes_per_item ..`, and those of a stopped item are skipped.
#[derive(Clone, Copy)]
pub struct Gate<'a> {
    pub items: &'a wgpu::Buffer,
    pub planes_per_item: usize,
}

/// Stockham passes for `n`, or `None` when `n` has a prime factor above 7.
pub fn radices(mut n: usize) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for r in [8, 4, 2, 3, 5, 7] {
        while n.is_multiple_of(r) {
            out.push(r);
            n /= r;
        }
    }
    (n == 1).then_some(out)
}

/// Smallest 7-smooth length at least `n`.
pub fn smooth_at_least(n: usize) -> usize {
    (n..)
        .find(|&m| radices(m).is_some())
        .expect("7-smooth numbers are unbounded")
}

/// How a line length runs.
enum Kernels {
    /// One line per workgroup, in workgroup memory.
    Shared {
        rows_r2c: Rc<Kernel>,
        cols: Rc<Kernel>,
        rows_c2r: Rc<Kernel>,
    },
    /// Lines too long for workgroup memory: passes over global memory (fft_long.wgsl).
    Global {
        load: Rc<Kernel>,
        pass: Rc<Kernel>,
        chirp: Rc<Kernel>,
        store: Rc<Kernel>,
        radices: Vec<usize>,
        /// Line buffers (ping-pong), shared by name with every long length.
        lines: (wgpu::Buffer, wgpu::Buffer),
    },
}

/// One 1-D transform length, compiled.
pub struct LinePlan {
    pub n: usize,
    /// Inner length (n, or the Bluestein length).
    pub l: usize,
    pub bluestein: bool,
    kernels: Kernels,
    tw: wgpu::Buffer,
    blue: wgpu::Buffer,
}

/// Which lines a transform runs on (see fft_long.wgsl's `mode`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lines {
    RowsR2c = 0,
    Cols = 1,
    RowsC2r = 2,
}

fn unit(k: i128, n: i128, num: f64) -> Complex<f64> {
    let a = -num * PI * k as f64 / n as f64;
    Complex::new(a.cos(), a.sin())
}

fn to_f32(v: &[Complex<f64>]) -> Vec<[f32; 2]> {
    v.iter().map(|c| [c.re as f32, c.im as f32]).collect()
}

/// Inner transform length of a line of `n` and whether it goes through Bluestein.
fn inner_length(n: usize) -> (usize, bool) {
    match radices(n) {
        Some(_) => (n, false),
        None => (smooth_at_least(2 * n - 1), true),
    }
}

/// Entry points of the workgroup-memory FFT ([`shared_source`]), bound as [`SLOTS`].
#[cfg(test)]
pub(crate) const SHARED_ENTRIES: [&str; 3] = ["rows_r2c", "cols", "rows_c2r"];
/// Entry points of the global-memory FFT ([`long_source`]), bound as [`LONG_SLOTS`].
#[cfg(test)]
pub(crate) const LONG_ENTRIES: [&str; 4] = ["load", "stockham", "chirp", "store"];

/// The workgroup-memory FFT module specialised for lines of `n`: lengths and radices are constants.
pub(crate) fn shared_source(n: usize) -> String {
    let (l, bluestein) = inner_length(n);
    let rad = radices(l).expect("inner length is 7-smooth");
    // Threads per line: enough for the widest pass, at most 64.
    let wg = (l / rad.iter().min().copied().unwrap_or(1)).clamp(1, 64);
    let consts = format!(
        "const N: u32 = {n}u;\nconst L: u32 = {l}u;\nconst BLUE: bool = {bluestein};\n\
         const WG: u32 = {wg}u;\n{BUTTERFLY}"
    );
    SOURCE
        .replace("//CONSTS", &consts)
        .replace("//PASSES", &stockham_source(l, &rad))
}

/// The global-memory FFT module, one for every long length (lengths and radices are uniforms).
pub(crate) fn long_source() -> String {
    format!("{BUTTERFLY}\n{LONG}")
}

impl LinePlan {
    pub fn new(gpu: &Gpu, n: usize) -> Result<Self> {
        let (l, bluestein) = inner_length(n);
        let need = 2 * l * 8;
        let have = gpu.limits.max_compute_workgroup_storage_size as usize;
        let rad = radices(l).expect("inner length is 7-smooth");
        let kernels = if need <= have {
            let src = shared_source(n);
            let key = format!("fft{n}");
            Kernels::Shared {
                rows_r2c: gpu.kernel(&key, &src, "rows_r2c", &SLOTS),
                cols: gpu.kernel(&key, &src, "cols", &SLOTS),
                rows_c2r: gpu.kernel(&key, &src, "rows_c2r", &SLOTS),
            }
        } else {
            // One module for every long length: the lengths and radices are uniforms.
            let src = long_source();
            let k = |entry| gpu.kernel("fft_long", &src, entry, &LONG_SLOTS);
            let bytes = LONG_CHUNK_BYTES.min(gpu.max_binding()).max((l * 8) as u64);
            Kernels::Global {
                load: k("load"),
                pass: k("stockham"),
                chirp: k("chirp"),
                store: k("store"),
                radices: rad,
                lines: (
                    gpu.scratch("fft: long lines A", bytes)?,
                    gpu.scratch("fft: long lines B", bytes)?,
                ),
            }
        };
        let tw: Vec<Complex<f64>> = (0..l).map(|k| unit(k as i128, l as i128, 2.0)).collect();
        let blue = if bluestein {
            // chirp c[n] = exp(-pi i n^2 / N) with n^2 reduced mod 2N in integers (exact angle)
            let nn = n as i128;
            let c: Vec<Complex<f64>> = (0..nn).map(|k| unit((k * k) % (2 * nn), nn, 1.0)).collect();
            let mut b = vec![Complex::new(0.0, 0.0); l];
            for k in 0..n {
                b[k] = c[k].conj();
                if k > 0 {
                    b[l - k] = c[k].conj();
                }
            }
            rustfft::FftPlanner::<f64>::new()
                .plan_fft_forward(l)
                .process(&mut b);
            let inv = 1.0 / l as f64;
            c.into_iter()
                .chain(b.into_iter().map(|v| v * inv))
                .collect()
        } else {
            vec![Complex::new(0.0, 0.0)]
        };
        Ok(LinePlan {
            n,
            l,
            bluestein,
            kernels,
            tw: gpu.upload("fft twiddles", &to_f32(&tw))?,
            blue: gpu.upload("fft chirp", &to_f32(&blue))?,
        })
    }
}

/// Real 2-D FFT of `h x w` planes on the GPU.
pub struct GpuFft2 {
    pub h: usize,
    pub w: usize,
    pub wc: usize,
    rows: Rc<LinePlan>,
    cols: Rc<LinePlan>,
}

impl GpuFft2 {
    pub fn new(rows: Rc<LinePlan>, cols: Rc<LinePlan>) -> Self {
        let (h, w) = (cols.n, rows.n);
        GpuFft2 {
            h,
            w,
            wc: w / 2 + 1,
            rows,
            cols,
        }
    }

    #[cfg(test)]
    /// Does either axis run as global-memory passes (lines too long for workgroup memory)?
    pub fn uses_global_memory(&self) -> bool {
        [&self.rows, &self.cols]
            .iter()
            .any(|p| matches!(p.kernels, Kernels::Global { .. }))
    }

    /// Complex bins per plane.
    pub fn spectrum_len(&self) -> usize {
        self.wc * self.h
    }

    fn params(
        &self,
        gpu: &Gpu,
        planes: usize,
        lines: usize,
        inverse: bool,
        gate: Option<Gate>,
    ) -> (Rc<wgpu::Buffer>, (u32, u32)) {
        let g = grid(lines, 1);
        let scale = 1.0f32 / (self.h * self.w) as f32;
        let u = gpu.uniform(&[
            planes as u32,
            self.h as u32,
            self.w as u32,
            g.0,
            scale.to_bits(),
            inverse as u32,
            gate.map_or(0, |g| g.planes_per_item as u32),
        ]);
        (u, g)
    }

    /// `planes` real planes in `real` -> their half spectra in `spec`.
    pub fn forward(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        real: &wgpu::Buffer,
        spec: &wgpu::Buffer,
        planes: usize,
    ) {
        self.forward_gated(gpu, enc, real, spec, planes, None)
    }

    /// [`GpuFft2::forward`], skipping the planes of stopped items.
    pub fn forward_gated(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        real: &wgpu::Buffer,
        spec: &wgpu::Buffer,
        planes: usize,
        gate: Option<Gate>,
    ) {
        self.both(gpu, enc, (real, spec), planes, false, gate);
    }

    /// Half spectra in `spec` (overwritten) -> normalised real planes in `real`.
    pub fn inverse(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        spec: &wgpu::Buffer,
        real: &wgpu::Buffer,
        planes: usize,
    ) {
        self.inverse_gated(gpu, enc, spec, real, planes, None)
    }

    /// [`GpuFft2::inverse`], skipping the planes of stopped items.
    pub fn inverse_gated(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        spec: &wgpu::Buffer,
        real: &wgpu::Buffer,
        planes: usize,
        gate: Option<Gate>,
    ) {
        self.both(gpu, enc, (real, spec), planes, true, gate);
    }

    /// Both passes: rows (real to half spectrum) then columns, or the reverse when inverse.
    fn both(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        bufs: (&wgpu::Buffer, &wgpu::Buffer),
        planes: usize,
        inverse: bool,
        gate: Option<Gate>,
    ) {
        let rows = (
            &self.rows,
            if inverse {
                Lines::RowsC2r
            } else {
                Lines::RowsR2c
            },
        );
        let cols = (&self.cols, Lines::Cols);
        let order = if inverse { [cols, rows] } else { [rows, cols] };
        for (k, lines) in order {
            self.run(gpu, enc, k, lines, bufs, planes, inverse, gate);
        }
    }

    /// Transform the `lines` of `planes` planes with `plan` (rows are `w` long, columns `h`).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        plan: &LinePlan,
        lines: Lines,
        (real, spec): (&wgpu::Buffer, &wgpu::Buffer),
        planes: usize,
        inverse: bool,
        gate: Option<Gate>,
    ) {
        let count = planes
            * if lines == Lines::Cols {
                self.wc
            } else {
                self.h
            };
        match &plan.kernels {
            Kernels::Shared {
                rows_r2c,
                cols,
                rows_c2r,
            } => {
                let items = gate.map_or(gpu.dummy(1), |g| g.items);
                // Two real rows of a plane go through one complex transform.
                let count = match lines {
                    Lines::Cols => count,
                    _ => planes * self.h.div_ceil(2),
                };
                let (u, g) = self.params(gpu, planes, count, inverse, gate);
                let (k, real) = match lines {
                    Lines::RowsR2c => (rows_r2c, real),
                    Lines::Cols => (cols, gpu.dummy(0)),
                    Lines::RowsC2r => (rows_c2r, real),
                };
                gpu.dispatch(
                    enc,
                    k,
                    &[&u, real, spec, &plan.tw, &plan.blue, items],
                    (g.0, g.1, 1),
                );
            }
            Kernels::Global {
                load,
                pass,
                chirp,
                store,
                radices,
                lines: (ba, bb),
            } => {
                let real = if lines == Lines::Cols {
                    gpu.dummy(0)
                } else {
                    real
                };
                self.run_global(
                    gpu,
                    enc,
                    plan,
                    [load, pass, chirp, store],
                    (radices, ba, bb),
                    (lines, count, planes, inverse),
                    (real, spec),
                );
            }
        }
    }

    /// The global-memory transform of `count` lines, in chunks that fit the line buffers.
    #[allow(clippy::too_many_arguments)]
    fn run_global(
        &self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        plan: &LinePlan,
        [load, pass, chirp, store]: [&Rc<Kernel>; 4],
        (radices, ba, bb): (&[usize], &wgpu::Buffer, &wgpu::Buffer),
        (lines, count, planes, inverse): (Lines, usize, usize, bool),
        (real, spec): (&wgpu::Buffer, &wgpu::Buffer),
    ) {
        let (n, l) = (plan.n, plan.l);
        let chunk = ((ba.size().min(bb.size()) / (l * 8) as u64) as usize).clamp(1, count.max(1));
        let scale = 1.0f32 / (self.h * self.w) as f32;
        let mut first = 0;
        while first < count {
            let c = chunk.min(count - first);
            let words = |threads: usize, r: usize, ls: usize| {
                let g = grid(threads, 256);
                (
                    gpu.uniform(&[
                        planes as u32,
                        self.h as u32,
                        self.w as u32,
                        lines as u32,
                        first as u32,
                        c as u32,
                        inverse as u32,
                        n as u32,
                        l as u32,
                        plan.bluestein as u32,
                        r as u32,
                        ls as u32,
                        g.0 * 256,
                        scale.to_bits(),
                    ]),
                    (g.0, g.1, 1),
                )
            };
            // The current data is in bufs[cur]; a pass writes the other.
            let bufs = [ba, bb];
            let mut cur = 0;
            let bind = |cur: usize| [real, spec, &plan.tw, &plan.blue, bufs[cur], bufs[1 - cur]];
            let run = |enc: &mut wgpu::CommandEncoder, k: &Kernel, u: &wgpu::Buffer, g, cur| {
                let [a, b, c, d, e, f] = bind(cur);
                gpu.dispatch(enc, k, &[u, a, b, c, d, e, f], g);
            };
            let passes = |enc: &mut wgpu::CommandEncoder, cur: &mut usize| {
                let mut ls = 1;
                for &r in radices {
                    let (u, g) = words(c * l / r, r, ls);
                    run(enc, pass, &u, g, *cur);
                    *cur = 1 - *cur;
                    ls *= r;
                }
            };
            let (u, g) = words(c * l, 1, 1);
            run(enc, load, &u, g, cur);
            passes(enc, &mut cur);
            if plan.bluestein {
                run(enc, chirp, &u, g, cur);
                passes(enc, &mut cur);
            }
            let (u, g) = words(c * n, 1, 1);
            run(enc, store, &u, g, cur);
            first += c;
        }
    }
}

/// Compiled line plans and 2-D plans, reused across calls.
#[derive(Default)]
pub struct FftCache {
    lines: std::collections::HashMap<usize, Rc<LinePlan>>,
    plans: std::collections::HashMap<(usize, usize), Rc<GpuFft2>>,
}

impl FftCache {
    fn line(&mut self, gpu: &Gpu, n: usize) -> Result<Rc<LinePlan>> {
        if let Some(p) = self.lines.get(&n) {
            return Ok(p.clone());
        }
        let p = Rc::new(LinePlan::new(gpu, n)?);
        self.lines.insert(n, p.clone());
        Ok(p)
    }

    /// The plan for `h x w` planes.
    pub fn get(&mut self, gpu: &Gpu, h: usize, w: usize) -> Result<Rc<GpuFft2>> {
        if let Some(p) = self.plans.get(&(h, w)) {
            return Ok(p.clone());
        }
        let p = Rc::new(GpuFft2::new(self.line(gpu, w)?, self.line(gpu, h)?));
        self.plans.insert((h, w), p.clone());
        Ok(p)
    }
}
