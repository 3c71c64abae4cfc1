//! A documented generator of a co-registered CT-like / MR-like head phantom pair (the bundled example).
//!
//! Both images share one geometry of ellipses (skull, brain, ventricles, lesions). The CT-like image
//! shows bright bone and nearly flat soft tissue; the MR-like image shows dark bone, grey/white-matter
//! contrast and a fine texture, so each source holds detail the other lacks.

use crate::learn::SplitMix;
use crate::plane::Plane;

/// Ellipse: centre (x, y) and half-axes in [-1, 1] units, rotation in degrees.
struct Ellipse {
    cx: f64,
    cy: f64,
    a: f64,
    b: f64,
    rot: f64,
    ct: f64,
    mr: f64,
}

const fn e(cx: f64, cy: f64, a: f64, b: f64, rot: f64, ct: f64, mr: f64) -> Ellipse {
    Ellipse {
        cx,
        cy,
        a,
        b,
        rot,
        ct,
        mr,
    }
}

/// Layers are painted in order (later ones replace earlier values inside them).
const LAYERS: [Ellipse; 10] = [
    e(0.0, 0.0, 0.72, 0.92, 0.0, 0.95, 0.05),      // skull
    e(0.0, -0.02, 0.66, 0.86, 0.0, 0.30, 0.55),    // brain (grey matter)
    e(0.0, -0.02, 0.52, 0.72, 0.0, 0.32, 0.75),    // white matter
    e(-0.13, 0.05, 0.07, 0.25, -18.0, 0.22, 0.20), // ventricles
    e(0.13, 0.05, 0.07, 0.25, 18.0, 0.22, 0.20),
    e(0.30, -0.45, 0.10, 0.07, 30.0, 0.33, 0.95), // lesion visible mostly in MR
    e(-0.28, -0.40, 0.05, 0.05, 0.0, 0.80, 0.45), // calcification visible mostly in CT
    e(0.0, 0.55, 0.18, 0.08, 0.0, 0.36, 0.35),
    e(-0.35, 0.45, 0.04, 0.09, -40.0, 0.75, 0.55),
    e(0.36, 0.40, 0.06, 0.06, 0.0, 0.34, 0.90),
];

/// `(ct_like, mr_like)` of size `n x n`, values in [0, 1]; deterministic.
pub fn head_pair(n: usize) -> (Plane, Plane) {
    let mut ct = Plane::zeros(n, n);
    let mut mr = Plane::zeros(n, n);
    let mut rng = SplitMix(2026);
    for y in 0..n {
        for x in 0..n {
            let px = 2.0 * (x as f64 + 0.5) / n as f64 - 1.0;
            let py = 2.0 * (y as f64 + 0.5) / n as f64 - 1.0;
            let (mut c, mut m) = (0.0, 0.0);
            for l in LAYERS.iter() {
                let (s, co) = l.rot.to_radians().sin_cos();
                let (dx, dy) = (px - l.cx, py - l.cy);
                let (u, v) = (dx * co + dy * s, -dx * s + dy * co);
                if (u / l.a).powi(2) + (v / l.b).powi(2) <= 1.0 {
                    c = l.ct;
                    m = l.mr;
                }
            }
            // MR gyri-like texture inside the brain; mild acquisition noise on both.
            if m > 0.3 {
                m += 0.06 * (18.0 * px + 7.0 * (9.0 * py).sin()).sin() * (15.0 * py).cos();
            }
            ct.data[y * n + x] = (c + 0.01 * rng.normal()).clamp(0.0, 1.0);
            mr.data[y * n + x] = (m + 0.02 * rng.normal()).clamp(0.0, 1.0);
        }
    }
    (ct, mr)
}
