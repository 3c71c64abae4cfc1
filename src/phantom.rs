//! A documented generator of a co-registered CT-like / MR-like head phantom pair (the bundled example).
//!
//! Both images share one geometry of ellipses (skull, brain, ventricles, lesions). The CT-like image
//! shows bright bone and nearly flat soft tissue; the MR-like image shows dark bone, grey/white-matter
//! contrast and a fine texture, so each source holds detail the other lacks.

use crate::cpu::choose::box_sum;
use crate::formats::nifti::{new_volume, scanner_header, Slicer, Volume};
use crate::learn::SplitMix;
use crate::plane::Plane;
use crate::resample::Interp;
use nifti::NiftiType;

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
    paint(n, 1.0, &mut SplitMix(2026), true)
}

/// Paint the layers shrunk by `scale` (1 = the full head). Noise is added everywhere when
/// `noise_outside`, else only inside the head, so slices past its top stay exactly empty.
fn paint(n: usize, scale: f64, rng: &mut SplitMix, noise_outside: bool) -> (Plane, Plane) {
    let mut ct = Plane::zeros(n, n);
    let mut mr = Plane::zeros(n, n);
    for y in 0..n {
        for x in 0..n {
            let px = 2.0 * (x as f64 + 0.5) / n as f64 - 1.0;
            let py = 2.0 * (y as f64 + 0.5) / n as f64 - 1.0;
            let (mut c, mut m) = (0.0, 0.0);
            let mut inside = false;
            for l in LAYERS.iter() {
                let (s, co) = l.rot.to_radians().sin_cos();
                let (dx, dy) = (px - l.cx * scale, py - l.cy * scale);
                let (u, v) = (dx * co + dy * s, -dx * s + dy * co);
                if (u / (l.a * scale)).powi(2) + (v / (l.b * scale)).powi(2) <= 1.0 {
                    c = l.ct;
                    m = l.mr;
                    inside = true;
                }
            }
            // MR gyri-like texture inside the brain; mild acquisition noise on both.
            if m > 0.3 {
                m += 0.06 * (18.0 * px + 7.0 * (9.0 * py).sin()).sin() * (15.0 * py).cos();
            }
            if inside || noise_outside {
                c += 0.01 * rng.normal();
                m += 0.02 * rng.normal();
            }
            ct.data[y * n + x] = c.clamp(0.0, 1.0);
            mr.data[y * n + x] = m.clamp(0.0, 1.0);
        }
    }
    (ct, mr)
}

/// Slice `z` of `depth` of a head-shaped volume pair: the head is an ellipsoid whose cross-section
/// shrinks towards the top and bottom; the outer 8 % of slices at each end lie outside it (empty).
pub fn head_volume_slice(n: usize, z: usize, depth: usize) -> (Plane, Plane) {
    let pz = 2.0 * (z as f64 + 0.5) / depth as f64 - 1.0;
    let scale = (1.0 - (pz / 0.84).powi(2)).max(0.0).sqrt();
    paint(n, scale, &mut SplitMix(2026 + z as u64), false)
}

/// A PET-like colour image on the same geometry: smooth uptake (grey matter warm, white matter
/// cool, a hot lesion where the MR-like image shows one) under the "hot" colour map
/// (black - red - yellow - white). Returns R, G, B planes in [0, 1].
pub fn pet_like(n: usize) -> [Plane; 3] {
    let (_, mr) = head_pair(n);
    let mut act = Plane::zeros(n, n);
    for y in 0..n {
        for x in 0..n {
            let px = 2.0 * (x as f64 + 0.5) / n as f64 - 1.0;
            let py = 2.0 * (y as f64 + 0.5) / n as f64 - 1.0;
            let m = mr.data[y * n + x];
            let hot = (-((px - 0.30).powi(2) + (py + 0.45).powi(2)) / 0.01).exp();
            let tissue = if m > 0.6 {
                0.35
            } else if m > 0.4 {
                0.6
            } else {
                0.0
            };
            act.data[y * n + x] = (tissue + 0.6 * hot).min(1.0);
        }
    }
    // PET resolution is coarse: blur with a box of radius n/64 three times (about Gaussian).
    let r = (n / 64).max(1);
    for _ in 0..3 {
        act = box_blur(&act, r);
    }
    let ch = |f: fn(f64) -> f64| {
        Plane::from_vec(
            n,
            n,
            act.data.iter().map(|a| f(*a).clamp(0.0, 1.0)).collect(),
        )
    };
    [
        ch(|a| 3.0 * a),
        ch(|a| 3.0 * a - 1.0),
        ch(|a| 3.0 * a - 2.0),
    ]
}

/// Box average over the (2r+1)² window clipped to the image.
fn box_blur(p: &Plane, r: usize) -> Plane {
    let sums = box_sum(&p.data, p.h, p.w, r);
    let count = |i: usize, n: usize| (i + r + 1).min(n) - i.saturating_sub(r);
    let data = (0..p.h * p.w)
        .map(|i| sums[i] / (count(i / p.w, p.h) * count(i % p.w, p.w)) as f64)
        .collect();
    Plane::from_vec(p.h, p.w, data)
}

/// The CT-like (int16, -1000..2000) and MR-like (float32, [0, 1]) phantom volumes.
pub fn phantom_volumes(n: usize, depth: usize) -> (Volume, Volume) {
    let dims = [n, n, depth];
    let slicer = Slicer { dims, axis: 2 };
    let mut ct = vec![0f32; n * n * depth];
    let mut mr = vec![0f32; n * n * depth];
    for z in 0..depth {
        let (c, m) = head_volume_slice(n, z, depth);
        let hu = Plane::from_vec(
            n,
            n,
            c.data
                .iter()
                .map(|v| (v * 3000.0 - 1000.0).round())
                .collect(),
        );
        slicer.put(&mut ct, z, &hu);
        slicer.put(&mut mr, z, &m);
    }
    let (sp, org) = (
        [1.0, 1.0, 2.0],
        [(n as f32) / 2.0, -(n as f32) / 2.0, -(depth as f32)],
    );
    (
        new_volume(dims, sp, org, NiftiType::Int16, ct),
        new_volume(dims, sp, org, NiftiType::Float32, mr),
    )
}

/// The same head on two other grids, as a CT and an MR of one session come: `(ct, mr)` where
/// the CT-like volume (int16) has 0.5 x 0.5 x 2 mm voxels (twice the in-plane resolution, painted
/// at that resolution) and the MR-like one (float32) 1 mm isotropic voxels on a grid turned 5°
/// about z and 3° about x (resampled, cubic, from [`phantom_volumes`]). Both cover the head of
/// [`phantom_volumes`]`(n, depth)` in the same world frame.
pub fn phantom_volumes_on_other_grids(n: usize, depth: usize) -> (Volume, Volume) {
    let fine = 2 * n;
    let slicer = Slicer {
        dims: [fine, fine, depth],
        axis: 2,
    };
    let mut ct = vec![0f32; fine * fine * depth];
    for z in 0..depth {
        let (c, _) = head_volume_slice(fine, z, depth);
        let hu = c
            .data
            .iter()
            .map(|v| (v * 3000.0 - 1000.0).round())
            .collect();
        slicer.put(&mut ct, z, &Plane::from_vec(fine, fine, hu));
    }
    // Voxel i' of the fine grid sits where voxel i'/2 - 1/4 of the coarse one does.
    let half = n as f32 / 2.0;
    let ct = new_volume(
        [fine, fine, depth],
        [0.5, 0.5, 2.0],
        [half + 0.25, -half - 0.25, -(depth as f32)],
        NiftiType::Int16,
        ct,
    );

    let (_, mr) = phantom_volumes(n, depth);
    let source = mr.grid();
    let dims = [n, n, 2 * depth];
    let rot = crate::resample::rotation(5.0, 3.0);
    let r = |i: usize, j: usize| rot[i][j];
    // The centre of the new grid lies on the centre of the old one.
    let centre = |g: &crate::resample::Grid| {
        let c = g.dims.map(|d| (d as f64 - 1.0) / 2.0);
        g.affine
            .map(|row| row[0] * c[0] + row[1] * c[1] + row[2] * c[2] + row[3])
    };
    let world = centre(&source);
    let half = dims.map(|d| (d as f64 - 1.0) / 2.0);
    let affine = [0, 1, 2].map(|i| {
        let t = world[i] - (0..3).map(|j| r(i, j) * half[j]).sum::<f64>();
        [r(i, 0), r(i, 1), r(i, 2), t]
    });
    let target = crate::resample::Grid { dims, affine };
    let data = crate::resample::resample(&mr.data, &source, &target, Interp::Cubic, 0.0)
        .expect("the phantom's affines are invertible")
        .data
        .into_iter()
        .map(|v| v.clamp(0.0, 1.0))
        .collect();
    let header = scanner_header(
        dims,
        affine,
        NiftiType::Float32,
        (1.0, 0.0),
        "csfuse phantom",
    );
    let mr = Volume {
        dims,
        ndim: 3,
        data,
        header,
        datatype: NiftiType::Float32,
    };
    (ct, mr)
}
