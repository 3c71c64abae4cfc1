//! Cartoon/texture split of a detail layer by total-variation (ROF) denoising, Chambolle's projection
//! algorithm: cartoon = argmin_u ||u - f||^2 / (2 w) + TV(u), texture = f - cartoon. Used to make the
//! training components for dictionary learning (cartoon parts for Dc, texture parts for Dt).

use crate::plane::Plane;

/// ROF solution `u` for data `f` and weight `weight`, after `iters` projection steps (step 1/8).
pub fn rof(f: &Plane, weight: f64, iters: usize) -> Plane {
    let (h, w) = (f.h, f.w);
    let n = h * w;
    let (mut px, mut py) = (vec![0.0; n], vec![0.0; n]);
    let mut div = vec![0.0; n];
    let tau = 0.125;
    for _ in 0..iters {
        divergence(&px, &py, h, w, &mut div);
        // g = div p - f / weight; p <- (p + tau grad g) / (1 + tau |grad g|)
        let g: Vec<f64> = div
            .iter()
            .zip(&f.data)
            .map(|(d, v)| d - v / weight)
            .collect();
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let gx = if x + 1 < w { g[i + 1] - g[i] } else { 0.0 };
                let gy = if y + 1 < h { g[i + w] - g[i] } else { 0.0 };
                let norm = 1.0 + tau * (gx * gx + gy * gy).sqrt();
                px[i] = (px[i] + tau * gx) / norm;
                py[i] = (py[i] + tau * gy) / norm;
            }
        }
    }
    divergence(&px, &py, h, w, &mut div);
    let data = f
        .data
        .iter()
        .zip(&div)
        .map(|(v, d)| v - weight * d)
        .collect();
    Plane::from_vec(h, w, data)
}

/// Discrete divergence, the negative adjoint of the forward-difference gradient.
fn divergence(px: &[f64], py: &[f64], h: usize, w: usize, out: &mut [f64]) {
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let dx = if x + 1 < w { px[i] } else { 0.0 } - if x > 0 { px[i - 1] } else { 0.0 };
            let dy = if y + 1 < h { py[i] } else { 0.0 } - if y > 0 { py[i - w] } else { 0.0 };
            out[i] = dx + dy;
        }
    }
}

/// `(cartoon, texture)` of `f`.
pub fn split(f: &Plane, weight: f64) -> (Plane, Plane) {
    let cartoon = rof(f, weight, 100);
    let texture = f.sub(&cartoon);
    (cartoon, texture)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rof_keeps_a_step_and_removes_fine_oscillation() {
        let (h, w) = (32, 32);
        let data = (0..h * w)
            .map(|i| {
                let (y, x) = (i / w, i % w);
                let step = if x < w / 2 { 0.0 } else { 1.0 };
                step + if (x + y) % 2 == 0 { 0.05 } else { -0.05 }
            })
            .collect();
        let f = Plane::from_vec(h, w, data);
        let (c, t) = split(&f, 0.1);
        // The texture is the checkerboard, the cartoon keeps the edge.
        let osc: f64 = t.data.iter().map(|v| v.abs()).sum::<f64>() / (h * w) as f64;
        assert!(osc > 0.03, "texture lost the oscillation: mean |t| = {osc}");
        let edge = c.at(16, 20) - c.at(16, 11);
        assert!(edge > 0.7, "cartoon lost the edge: jump {edge}");
    }
}
