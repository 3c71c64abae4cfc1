//! GPU twin of [`crate::fft2::Fft2`]: batched real 2-D FFT in the same transposed half-spectrum layout.
//!
//! Each 1-D transform runs in one workgroup as a mixed-radix Stockham FFT (radices 8, 4, 2, 3, 5, 7);
//! a length with a larger prime factor goes through Bluestein's chirp-z algorithm on a 7-smooth length.
//! Twiddles and chirps are computed on the host in f64 (DESIGN.md section 4).

use super::context::{grid, Gpu, Kernel, Slot};
use crate::error::{Error, Result};
use rustfft::num_complex::Complex;
use std::f64::consts::PI;
use std::rc::Rc;

const SOURCE: &str = include_str!("../../shaders/fft.wgsl");
const SLOTS: [Slot; 5] = [
    Slot::Uniform,
    Slot::Write,
    Slot::Write,
    Slot::Read,
    Slot::Read,
];

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

/// One 1-D transform length, compiled.
pub struct LinePlan {
    pub n: usize,
    /// Inner length (n, or the Bluestein length).
    pub l: usize,
    pub bluestein: bool,
    rows_r2c: Rc<Kernel>,
    cols: Rc<Kernel>,
    rows_c2r: Rc<Kernel>,
    tw: wgpu::Buffer,
    blue: wgpu::Buffer,
}

fn unit(k: i128, n: i128, num: f64) -> Complex<f64> {
    let a = -num * PI * k as f64 / n as f64;
    Complex::new(a.cos(), a.sin())
}

fn to_f32(v: &[Complex<f64>]) -> Vec<[f32; 2]> {
    v.iter().map(|c| [c.re as f32, c.im as f32]).collect()
}

impl LinePlan {
    pub fn new(gpu: &Gpu, n: usize) -> Result<Self> {
        let (l, bluestein) = match radices(n) {
            Some(_) => (n, false),
            None => (smooth_at_least(2 * n - 1), true),
        };
        let need = 2 * l * 8;
        let have = gpu.limits.max_compute_workgroup_storage_size as usize;
        if need > have {
            return Err(Error::Gpu(format!(
                "an FFT line of {n} points needs {need} bytes of workgroup memory; {} allows {have}",
                gpu.desc
            )));
        }
        let rad = radices(l).expect("inner length is 7-smooth");
        let mut arr = rad.iter().map(|r| format!("{r}u")).collect::<Vec<_>>();
        arr.resize(16, "1u".into());
        // Threads per line: enough for the widest pass, at most 64.
        let wg = (l / rad.iter().min().copied().unwrap_or(1)).clamp(1, 64);
        let consts = format!(
            "const N: u32 = {n}u;\nconst L: u32 = {l}u;\nconst BLUE: bool = {bluestein};\n\
             const WG: u32 = {wg}u;\nconst NPASS: u32 = {}u;\n\
             var<private> RADIX: array<u32, 16> = array<u32, 16>({});",
            rad.len(),
            arr.join(", ")
        );
        let src = SOURCE.replace("//CONSTS", &consts);
        let key = format!("fft{n}");
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
            rows_r2c: gpu.kernel(&key, &src, "rows_r2c", &SLOTS),
            cols: gpu.kernel(&key, &src, "cols", &SLOTS),
            rows_c2r: gpu.kernel(&key, &src, "rows_c2r", &SLOTS),
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
        let (u, g) = self.params(gpu, planes, planes * self.h, false);
        let r = &self.rows;
        gpu.dispatch(
            enc,
            &r.rows_r2c,
            &[&u, real, spec, &r.tw, &r.blue],
            (g.0, g.1, 1),
        );
        let (u, g) = self.params(gpu, planes, planes * self.wc, false);
        let c = &self.cols;
        gpu.dispatch(
            enc,
            &c.cols,
            &[&u, gpu.dummy(0), spec, &c.tw, &c.blue],
            (g.0, g.1, 1),
        );
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
        let (u, g) = self.params(gpu, planes, planes * self.wc, true);
        let c = &self.cols;
        gpu.dispatch(
            enc,
            &c.cols,
            &[&u, gpu.dummy(0), spec, &c.tw, &c.blue],
            (g.0, g.1, 1),
        );
        let (u, g) = self.params(gpu, planes, planes * self.h, true);
        let r = &self.rows;
        gpu.dispatch(
            enc,
            &r.rows_c2r,
            &[&u, real, spec, &r.tw, &r.blue],
            (g.0, g.1, 1),
        );
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
