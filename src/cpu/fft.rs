//! Real 2-D FFT of `h x w` planes on rustfft/realfft.
//!
//! The half spectrum has `h * (w/2 + 1)` bins and is stored **transposed**: bin `(ky, kx)` is at
//! `kx * h + ky`. Every frequency-domain step of the engine is element-wise per bin, so the layout is
//! free to choose; transposed keeps the column FFTs on contiguous memory and saves a transpose back.
//! Any size works (rustfft plans mixed radix and Bluestein for primes). The inverse is normalised.

use crate::real::Real;
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

pub struct Fft2<T: Real> {
    pub h: usize,
    pub w: usize,
    /// Number of kept columns of the half spectrum, `w / 2 + 1`.
    pub wc: usize,
    r2c: Arc<dyn RealToComplex<T>>,
    c2r: Arc<dyn ComplexToReal<T>>,
    col_fwd: Arc<dyn Fft<T>>,
    col_inv: Arc<dyn Fft<T>>,
}

/// Per-thread work buffers for one plane transform.
pub struct Scratch<T: Real> {
    rows: Vec<Complex<T>>,
    cols: Vec<Complex<T>>,
    row_scratch: Vec<Complex<T>>,
    col_scratch: Vec<Complex<T>>,
}

impl<T: Real> Fft2<T> {
    pub fn new(h: usize, w: usize) -> Self {
        assert!(h > 0 && w > 0, "FFT of an empty plane");
        let mut rp = RealFftPlanner::<T>::new();
        let mut cp = FftPlanner::<T>::new();
        Fft2 {
            h,
            w,
            wc: w / 2 + 1,
            r2c: rp.plan_fft_forward(w),
            c2r: rp.plan_fft_inverse(w),
            col_fwd: cp.plan_fft_forward(h),
            col_inv: cp.plan_fft_inverse(h),
        }
    }

    /// Bins in one half spectrum.
    pub fn spectrum_len(&self) -> usize {
        self.h * self.wc
    }

    /// Index of bin (ky, kx) in a spectrum.
    #[inline]
    pub fn bin(&self, ky: usize, kx: usize) -> usize {
        kx * self.h + ky
    }

    pub fn scratch(&self) -> Scratch<T> {
        let n = self.spectrum_len();
        let rs = self.r2c.get_scratch_len().max(self.c2r.get_scratch_len());
        let cs = self
            .col_fwd
            .get_inplace_scratch_len()
            .max(self.col_inv.get_inplace_scratch_len());
        Scratch {
            rows: vec![Complex::default(); n],
            cols: vec![Complex::default(); n],
            row_scratch: vec![Complex::default(); rs],
            col_scratch: vec![Complex::default(); cs],
        }
    }

    /// Forward transform of one plane. `input` (h*w, row-major) is used as scratch and destroyed.
    pub fn forward(&self, input: &mut [T], out: &mut [Complex<T>], s: &mut Scratch<T>) {
        let (h, w, wc) = (self.h, self.w, self.wc);
        for (row, spec) in input.chunks_exact_mut(w).zip(s.rows.chunks_exact_mut(wc)) {
            // Lengths are right by construction, so realfft cannot fail here.
            let _ = self.r2c.process_with_scratch(row, spec, &mut s.row_scratch);
        }
        transpose::transpose(&s.rows, out, wc, h);
        self.col_fwd.process_with_scratch(out, &mut s.col_scratch);
    }

    /// Normalised inverse transform of one spectrum into an `h*w` plane; `spec` is left intact.
    pub fn inverse(&self, spec: &[Complex<T>], out: &mut [T], s: &mut Scratch<T>) {
        let (h, w, wc) = (self.h, self.w, self.wc);
        s.cols.copy_from_slice(spec);
        self.col_inv
            .process_with_scratch(&mut s.cols, &mut s.col_scratch);
        transpose::transpose(&s.cols, &mut s.rows, h, wc);
        let scale = T::one() / T::lit((h * w) as f64);
        let even = w.is_multiple_of(2);
        for (row, dst) in s.rows.chunks_exact_mut(wc).zip(out.chunks_exact_mut(w)) {
            // The DC (and Nyquist) bins of a real row are real; drop rounding noise so realfft accepts them.
            row[0].im = T::zero();
            if even {
                row[wc - 1].im = T::zero();
            }
            let _ = self.c2r.process_with_scratch(row, dst, &mut s.row_scratch);
            for v in dst.iter_mut() {
                *v = *v * scale;
            }
        }
    }

    /// Planes per parallel task: one group per worker thread, so scratch is set up once per thread.
    fn group(&self, planes: usize) -> usize {
        planes.div_ceil(rayon::current_num_threads()).max(1)
    }

    /// Forward transforms of a batch of planes (destroyed), in parallel across planes.
    pub fn forward_batch(&self, planes: &mut [T], specs: &mut [Complex<T>]) {
        let (np, ns) = (self.h * self.w, self.spectrum_len());
        let g = self.group(specs.len() / ns);
        planes
            .par_chunks_mut(np * g)
            .zip(specs.par_chunks_mut(ns * g))
            .for_each(|(ps, fs)| {
                let mut s = self.scratch();
                for (p, f) in ps.chunks_exact_mut(np).zip(fs.chunks_exact_mut(ns)) {
                    self.forward(p, f, &mut s);
                }
            });
    }

    /// Inverse transforms of a batch of spectra, in parallel across planes.
    pub fn inverse_batch(&self, specs: &[Complex<T>], planes: &mut [T]) {
        let (np, ns) = (self.h * self.w, self.spectrum_len());
        let g = self.group(specs.len() / ns);
        specs
            .par_chunks(ns * g)
            .zip(planes.par_chunks_mut(np * g))
            .for_each(|(fs, ps)| {
                let mut s = self.scratch();
                for (f, p) in fs.chunks_exact(ns).zip(ps.chunks_exact_mut(np)) {
                    self.inverse(f, p, &mut s);
                }
            });
    }

    /// Spectra of filters of size `fh x fw` (filter-major, row-major, f64), zero-padded to the plane
    /// size with their origin at (0, 0), as SPORCO pads them.
    pub fn filter_spectra(&self, filters: &[f64], fh: usize, fw: usize) -> Vec<Complex<T>> {
        let m = filters.len() / (fh * fw);
        let (h, w) = (self.h, self.w);
        let mut planes = vec![T::zero(); m * h * w];
        for k in 0..m {
            for y in 0..fh {
                for x in 0..fw {
                    planes[k * h * w + y * w + x] = T::lit(filters[k * fh * fw + y * fw + x]);
                }
            }
        }
        let mut specs = vec![Complex::default(); m * self.spectrum_len()];
        self.forward_batch(&mut planes, &mut specs);
        specs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward O(N^2) DFT in f64: the reference the fast transform is checked against.
    fn naive_dft(h: usize, w: usize, x: &[f64], ky: usize, kx: usize) -> Complex<f64> {
        let mut acc = Complex::new(0.0, 0.0);
        for y in 0..h {
            for xx in 0..w {
                let ph = -2.0
                    * std::f64::consts::PI
                    * ((ky * y) as f64 / h as f64 + (kx * xx) as f64 / w as f64);
                acc += Complex::new(ph.cos(), ph.sin()) * x[y * w + xx];
            }
        }
        acc
    }

    fn test_plane(h: usize, w: usize) -> Vec<f64> {
        (0..h * w)
            .map(|i| ((i * 7919 % 1013) as f64 / 1013.0) - 0.3 + ((i / w) as f64 * 0.01))
            .collect()
    }

    fn check_size<T: Real>(h: usize, w: usize, tol: f64) {
        let f = Fft2::<T>::new(h, w);
        let x = test_plane(h, w);
        let mut inp: Vec<T> = x.iter().map(|v| T::lit(*v)).collect();
        let mut spec = vec![Complex::default(); f.spectrum_len()];
        let mut s = f.scratch();
        f.forward(&mut inp, &mut spec, &mut s);
        let mut err = 0.0f64;
        let mut norm = 0.0f64;
        for ky in 0..h {
            for kx in 0..f.wc {
                let r = naive_dft(h, w, &x, ky, kx);
                let g = spec[f.bin(ky, kx)];
                err += (g.re.as_f64() - r.re).powi(2) + (g.im.as_f64() - r.im).powi(2);
                norm += r.norm_sqr();
            }
        }
        let rel = (err / norm).sqrt();
        assert!(rel < tol, "forward {h}x{w}: relative error {rel:e}");
        let mut back = vec![T::zero(); h * w];
        f.inverse(&spec, &mut back, &mut s);
        let e2: f64 = back
            .iter()
            .zip(&x)
            .map(|(a, b)| (a.as_f64() - b).powi(2))
            .sum();
        let n2: f64 = x.iter().map(|v| v * v).sum();
        let rel = (e2 / n2).sqrt();
        assert!(rel < tol, "roundtrip {h}x{w}: relative error {rel:e}");
    }

    #[test]
    fn matches_naive_dft_on_odd_and_prime_sizes() {
        for (h, w) in [
            (8, 8),
            (9, 12),
            (17, 13),
            (15, 21),
            (31, 7),
            (6, 35),
            (11, 11),
        ] {
            check_size::<f64>(h, w, 1e-12);
            check_size::<f32>(h, w, 1e-5);
        }
    }

    #[test]
    fn batch_equals_single() {
        let f = Fft2::<f64>::new(10, 14);
        let x = test_plane(10, 14);
        let mut batch: Vec<f64> = x
            .iter()
            .chain(x.iter().map(|v| v * 2.0).collect::<Vec<_>>().iter())
            .copied()
            .collect();
        let mut specs = vec![Complex::default(); 2 * f.spectrum_len()];
        f.forward_batch(&mut batch, &mut specs);
        let (a, b) = specs.split_at(f.spectrum_len());
        for (u, v) in a.iter().zip(b) {
            assert!((u * 2.0 - v).norm() < 1e-12);
        }
    }
}
