//! Base/detail split by a Tikhonov low-pass filter (docs/method.md, step 1), as SPORCO's `tikhonov_filter`:
//! `S_l = FFT(pad(s)) / (1 + lam (|G_r|^2 + |G_c|^2))` on the image mirrored by `pad` pixels per side.

use crate::cpu::fft::Fft2;
use crate::plane::Plane;

/// Index into `0..n` of position `i` of a symmetric (edge-including) mirror extension, any distance out.
fn mirror(i: isize, n: usize) -> usize {
    let p = 2 * n as isize;
    let j = i.rem_euclid(p);
    (if j < n as isize { j } else { p - 1 - j }) as usize
}

/// Symmetric padding by `pad` pixels on every side (MATLAB `padarray(..., 'symmetric')`).
pub fn pad_symmetric(s: &Plane, pad: usize) -> Plane {
    let (hp, wp) = (s.h + 2 * pad, s.w + 2 * pad);
    let mut data = Vec::with_capacity(hp * wp);
    for y in 0..hp {
        let sy = mirror(y as isize - pad as isize, s.h);
        for x in 0..wp {
            data.push(s.at(sy, mirror(x as isize - pad as isize, s.w)));
        }
    }
    Plane::from_vec(hp, wp, data)
}

/// Tikhonov low-pass of `s`; returns `(low, high)` with `high = s - low`. Computed in f64 (cheap, once).
pub fn tikhonov_split(s: &Plane, lambda: f64, pad: usize) -> (Plane, Plane) {
    let padded = pad_symmetric(s, pad);
    let (hp, wp) = (padded.h, padded.w);
    let fft = Fft2::<f64>::new(hp, wp);
    let mut buf = padded.data;
    let mut spec = vec![Default::default(); fft.spectrum_len()];
    let mut scratch = fft.scratch();
    fft.forward(&mut buf, &mut spec, &mut scratch);
    let tau = 2.0 * std::f64::consts::PI;
    for kx in 0..fft.wc {
        let gr = 2.0 - 2.0 * (tau * kx as f64 / wp as f64).cos();
        for ky in 0..hp {
            let gc = 2.0 - 2.0 * (tau * ky as f64 / hp as f64).cos();
            spec[fft.bin(ky, kx)] /= 1.0 + lambda * (gr + gc);
        }
    }
    let mut low_p = vec![0.0; hp * wp];
    fft.inverse(&spec, &mut low_p, &mut scratch);
    let mut low = Plane::zeros(s.h, s.w);
    for y in 0..s.h {
        let row = &low_p[(y + pad) * wp + pad..(y + pad) * wp + pad + s.w];
        low.data[y * s.w..(y + 1) * s.w].copy_from_slice(row);
    }
    let high = s.sub(&low);
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_edge_including() {
        let idx: Vec<usize> = (-3..7).map(|i| mirror(i, 4)).collect();
        assert_eq!(idx, vec![2, 1, 0, 0, 1, 2, 3, 3, 2, 1]);
    }

    #[test]
    fn constant_image_is_all_base() {
        let s = Plane::from_vec(9, 11, vec![0.7; 99]);
        let (l, hgh) = tikhonov_split(&s, 60.0, 16);
        assert!(l.data.iter().all(|v| (v - 0.7).abs() < 1e-12));
        assert!(hgh.data.iter().all(|v| v.abs() < 1e-12));
    }

    /// Direct check of the normal equations on the padded image: (I + lam(Gr'Gr + Gc'Gc)) x = s,
    /// circular differences, evaluated in the spatial domain.
    #[test]
    fn lowpass_solves_tikhonov_system() {
        let s = Plane::from_vec(
            13,
            10,
            (0..130).map(|i| ((i * 37 % 17) as f64) / 17.0).collect(),
        );
        let lam = 5.0;
        let padded = pad_symmetric(&s, 0);
        let (l, _) = tikhonov_split(&s, lam, 0);
        let (h, w) = (s.h, s.w);
        let at = |y: isize, x: isize| {
            l.at(
                y.rem_euclid(h as isize) as usize,
                x.rem_euclid(w as isize) as usize,
            )
        };
        for y in 0..h as isize {
            for x in 0..w as isize {
                let lap =
                    4.0 * at(y, x) - at(y - 1, x) - at(y + 1, x) - at(y, x - 1) - at(y, x + 1);
                let lhs = at(y, x) + lam * lap;
                assert!((lhs - padded.at(y as usize, x as usize)).abs() < 1e-10);
            }
        }
    }
}
