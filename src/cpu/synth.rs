//! Synthesis on the CPU: `sum_m d_m (*) x_m` per item through the spectra (twin of synth.wgsl),
//! and the final per-pixel combination of base and detail layers (twin of elementwise.wgsl).

use crate::cpu::fft::Fft2;
use crate::plane::{CoefMaps, Plane};
use crate::real::Real;
use rustfft::num_complex::Complex;

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

pub(crate) fn synthesize_one<T: Real>(fft: &Fft2<T>, df: &[Complex<T>], coef: &CoefMaps) -> Plane {
    let n = fft.spectrum_len();
    let mut planes: Vec<T> = coef.data.iter().map(|v| T::lit(*v)).collect();
    let mut xf = vec![Complex::default(); coef.m * n];
    fft.forward_batch(&mut planes, &mut xf);
    let sum = synth_spectrum(df, &xf, n);
    let mut out = vec![T::zero(); coef.h * coef.w];
    fft.inverse(&sum, &mut out, &mut fft.scratch());
    Plane::from_vec(coef.h, coef.w, out.iter().map(|v| v.as_f64()).collect())
}
