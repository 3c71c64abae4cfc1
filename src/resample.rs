//! Putting one volume on another's grid. Each voxel of the target grid is carried through the
//! target's voxel-to-world affine and the inverse of the source's into the source's voxel
//! coordinates, and the source is interpolated there.
//!
//! The conventions are ITK's (SimpleITK's `Resample`), because they follow the physics: a volume
//! covers its voxels, so its field of view reaches half a voxel beyond the outer voxel centres.
//! Inside it, a point beyond the outer centres takes the edge value (nearest, linear) or the
//! mirrored spline (cubic); outside it, the fill value. nibabel (SciPy's `map_coordinates` with
//! `mode="constant"`) stops at the outer centres instead, so the two differ only in that
//! half-voxel shell; docs/volumes-and-batch.md says so and the Python tests check both.

use crate::error::{Error, Result};
use rayon::prelude::*;
use serde::Serialize;
use std::path::Path;

/// How a source is sampled between its voxel centres.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Interp {
    /// The nearest voxel (ties round up), for label maps.
    Nearest,
    /// Trilinear.
    #[default]
    Linear,
    /// Cubic B-spline (the spline through the samples, after the prefilter that makes it
    /// interpolate), as SciPy's `order=3` and SimpleITK's `sitkBSpline`.
    Cubic,
}

impl Interp {
    pub fn name(self) -> &'static str {
        match self {
            Interp::Nearest => "nearest",
            Interp::Linear => "linear",
            Interp::Cubic => "cubic",
        }
    }
}

/// A voxel grid: its size along x, y, z and its voxel-to-world affine (RAS+ mm, the top three
/// rows of the 4x4 matrix; x is the fastest axis of the data).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Grid {
    pub dims: [usize; 3],
    pub affine: [[f64; 4]; 3],
}

type Affine = [[f64; 4]; 3];

/// The inverse of an affine, `None` when it is singular or not finite.
fn invert(m: &Affine) -> Option<Affine> {
    if m.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    let a = |i: usize, j: usize| m[i][j];
    let cof = |i: usize, j: usize| {
        let (r0, r1) = ((i + 1) % 3, (i + 2) % 3);
        let (c0, c1) = ((j + 1) % 3, (j + 2) % 3);
        a(r0, c0) * a(r1, c1) - a(r0, c1) * a(r1, c0)
    };
    let det = (0..3).map(|j| a(0, j) * cof(0, j)).sum::<f64>();
    let scale = (0..3)
        .flat_map(|i| (0..3).map(move |j| a(i, j).abs()))
        .fold(0.0, f64::max);
    // Singular relative to the matrix's own size: a degenerate axis, not a small voxel.
    if !det.is_finite() || det.abs() <= 1e-12 * scale.powi(3) {
        return None;
    }
    let mut inv = [[0.0; 4]; 3];
    for (i, row) in inv.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().take(3).enumerate() {
            *v = cof(j, i) / det;
        }
    }
    for row in inv.iter_mut() {
        row[3] = -(0..3).map(|j| row[j] * m[j][3]).sum::<f64>();
    }
    Some(inv)
}

/// `p` · `q` as 4x4 matrices with the last row (0, 0, 0, 1).
fn compose(p: &Affine, q: &Affine) -> Affine {
    let mut r = [[0.0; 4]; 3];
    for (i, row) in r.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v =
                (0..3).map(|k| p[i][k] * q[k][j]).sum::<f64>() + if j == 3 { p[i][3] } else { 0.0 };
        }
    }
    r
}

impl Grid {
    pub fn voxels(&self) -> usize {
        self.dims.iter().product()
    }

    /// Refuse an affine that places no volume: a non-finite entry, or a singular matrix (a zero
    /// voxel size, two axes along one direction).
    pub fn check(&self, path: &Path) -> Result<()> {
        if invert(&self.affine).is_none() {
            return Err(Error::BadImage {
                path: path.to_path_buf(),
                msg: format!(
                    "its voxel-to-world affine {:?} is {}, so it cannot be placed in space to \
                     resample it; fix the header (sform/qform, or the series' Image Orientation \
                     and Pixel Spacing), or pass --ignore-affine if the two volumes share one grid",
                    self.affine,
                    if self.affine.iter().flatten().all(|v| v.is_finite()) {
                        "singular"
                    } else {
                        "not finite"
                    }
                ),
            });
        }
        Ok(())
    }

    /// Whether `other` is the same grid: the same shape, and affines equal to float32 storage
    /// precision (1e-4 relative, 1e-3 mm absolute).
    pub fn same_as(&self, other: &Grid) -> bool {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-3_f64.max(1e-4 * x.abs().max(y.abs()));
        self.dims == other.dims
            && (0..3).all(|i| (0..4).all(|j| close(self.affine[i][j], other.affine[i][j])))
    }

    /// The size of a voxel along each axis, in mm.
    pub fn spacing(&self) -> [f64; 3] {
        [0, 1, 2].map(|j| {
            (0..3)
                .map(|i| self.affine[i][j].powi(2))
                .sum::<f64>()
                .sqrt()
        })
    }
}

/// The rotation by `z_deg` degrees about z after `x_deg` about x (rows of the matrix): how the
/// phantom's oblique grids are turned.
pub fn rotation(z_deg: f64, x_deg: f64) -> [[f64; 3]; 3] {
    let (a, b) = (z_deg.to_radians(), x_deg.to_radians());
    let rz = [
        [a.cos(), -a.sin(), 0.0],
        [a.sin(), a.cos(), 0.0],
        [0.0, 0.0, 1.0],
    ];
    let rx = [
        [1.0, 0.0, 0.0],
        [0.0, b.cos(), -b.sin()],
        [0.0, b.sin(), b.cos()],
    ];
    [0, 1, 2].map(|i| [0, 1, 2].map(|j| (0..3).map(|k| rz[i][k] * rx[k][j]).sum::<f64>()))
}

/// Where the voxels of a target grid fall in a source's voxel coordinates.
struct Mapping {
    /// Target voxel (i, j, k, 1) to source voxel coordinates.
    m: Affine,
    source: [usize; 3],
}

impl Mapping {
    fn new(source: &Grid, target: &Grid) -> Option<Mapping> {
        Some(Mapping {
            m: compose(&invert(&source.affine)?, &target.affine),
            source: source.dims,
        })
    }

    fn at(&self, i: usize, j: usize, k: usize) -> [f64; 3] {
        let (i, j, k) = (i as f64, j as f64, k as f64);
        self.m.map(|r| r[0] * i + r[1] * j + r[2] * k + r[3])
    }

    /// Inside the source's field of view: within half a voxel of its outer centres.
    fn inside(&self, c: [f64; 3]) -> bool {
        (0..3).all(|a| c[a] >= -0.5 && c[a] < self.source[a] as f64 - 0.5)
    }
}

/// How many voxels of `target` lie inside `source`'s field of view (`None`: an affine cannot be
/// inverted, see [`Grid::check`]).
pub fn overlap(source: &Grid, target: &Grid) -> Option<usize> {
    let map = Mapping::new(source, target)?;
    let [nx, ny, nz] = target.dims;
    Some(
        (0..nz)
            .into_par_iter()
            .map(|k| {
                let mut n = 0;
                for j in 0..ny {
                    for i in 0..nx {
                        n += map.inside(map.at(i, j, k)) as usize;
                    }
                }
                n
            })
            .sum(),
    )
}

/// A volume's background, what its resampled voxels outside its field of view hold: its lowest
/// value (0 when it has no finite one).
pub fn lowest(data: &[f32]) -> f32 {
    let low = data.iter().copied().fold(f32::INFINITY, f32::min);
    if low.is_finite() {
        low
    } else {
        0.0
    }
}

/// A source on a target grid.
pub struct Resampled {
    /// Voxels of the target grid, x fastest.
    pub data: Vec<f32>,
    /// Target voxels outside the source's field of view, which hold the fill value.
    pub outside: usize,
}

/// Resample `data` (on `source`, x fastest) onto `target` with `interp`; voxels outside the
/// source's field of view get `fill`. `None` when an affine cannot be inverted.
pub fn resample(
    data: &[f32],
    source: &Grid,
    target: &Grid,
    interp: Interp,
    fill: f32,
) -> Option<Resampled> {
    assert_eq!(data.len(), source.voxels(), "data fills the source grid");
    let map = Mapping::new(source, target)?;
    let coefficients;
    let samples = match interp {
        Interp::Cubic => {
            coefficients = spline_coefficients(data, source.dims);
            &coefficients[..]
        }
        _ => data,
    };
    let [nx, ny, nz] = target.dims;
    let mut out = vec![0f32; target.voxels()];
    let outside = out
        .par_chunks_mut((nx * ny).max(1))
        .enumerate()
        .take(nz)
        .map(|(k, plane)| {
            let mut outside = 0;
            for j in 0..ny {
                for i in 0..nx {
                    let c = map.at(i, j, k);
                    plane[j * nx + i] = if map.inside(c) {
                        sample(samples, source.dims, c, interp) as f32
                    } else {
                        outside += 1;
                        fill
                    };
                }
            }
            outside
        })
        .sum();
    Some(Resampled { data: out, outside })
}

/// The value at source voxel coordinates `c` (inside the field of view).
fn sample(s: &[f32], dims: [usize; 3], c: [f64; 3], interp: Interp) -> f64 {
    let at = |x: usize, y: usize, z: usize| s[x + dims[0] * (y + dims[1] * z)] as f64;
    match interp {
        Interp::Nearest => {
            let idx = |a: usize| ((c[a] + 0.5).floor().max(0.0) as usize).min(dims[a] - 1);
            at(idx(0), idx(1), idx(2))
        }
        Interp::Linear => {
            // Two taps per axis, clamped to the edge.
            let taps = |a: usize| {
                let f = c[a].floor();
                let t = c[a] - f;
                let clamp = |v: f64| (v.max(0.0) as usize).min(dims[a] - 1);
                ([clamp(f), clamp(f + 1.0)], [1.0 - t, t])
            };
            let ((xi, xw), (yi, yw), (zi, zw)) = (taps(0), taps(1), taps(2));
            let mut v = 0.0;
            for (z, wz) in zi.iter().zip(zw) {
                for (y, wy) in yi.iter().zip(yw) {
                    for (x, wx) in xi.iter().zip(xw) {
                        v += wz * wy * wx * at(*x, *y, *z);
                    }
                }
            }
            v
        }
        Interp::Cubic => {
            // Four taps per axis of the cubic B-spline, mirrored at the edges as the prefilter was.
            let taps = |a: usize| {
                let f = c[a].floor();
                let t = c[a] - f;
                let w = [
                    (1.0 - t).powi(3) / 6.0,
                    (3.0 * t * t * t - 6.0 * t * t + 4.0) / 6.0,
                    (-3.0 * t * t * t + 3.0 * t * t + 3.0 * t + 1.0) / 6.0,
                    t * t * t / 6.0,
                ];
                let i = [-1, 0, 1, 2].map(|d| mirror(f as i64 + d, dims[a]));
                (i, w)
            };
            let ((xi, xw), (yi, yw), (zi, zw)) = (taps(0), taps(1), taps(2));
            let mut v = 0.0;
            for (z, wz) in zi.iter().zip(zw) {
                for (y, wy) in yi.iter().zip(yw) {
                    let row: f64 = xi.iter().zip(xw).map(|(x, wx)| wx * at(*x, *y, *z)).sum();
                    v += wz * wy * row;
                }
            }
            v
        }
    }
}

/// Index `i` reflected about the outer samples (… c b | a b c d | c b …), the B-spline's
/// boundary in SciPy and ITK.
fn mirror(i: i64, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as i64 - 1);
    let i = i.rem_euclid(period);
    (if i >= n as i64 { period - i } else { i }) as usize
}

/// The cubic B-spline coefficients that interpolate `data`: the recursive prefilter of Unser,
/// Aldroubi and Eden (1991) along each axis, with mirror boundaries (SciPy's `spline_filter`).
fn spline_coefficients(data: &[f32], dims: [usize; 3]) -> Vec<f32> {
    let mut c = data.to_vec();
    for axis in 0..3 {
        let n = dims[axis];
        if n < 2 {
            continue;
        }
        // The volume as [outer][n][inner]: each outer block is filtered along n, one inner
        // vector at a time, so every axis is a contiguous block operation.
        let inner: usize = dims[..axis].iter().product();
        c.par_chunks_mut(n * inner)
            .for_each(|block| prefilter_block(block, n, inner));
    }
    c
}

/// Filter `block` ([n][inner]) along n.
fn prefilter_block(block: &mut [f32], n: usize, inner: usize) {
    let z = 3f64.sqrt() - 2.0;
    let mut line = vec![0f64; n];
    for q in 0..inner {
        for (i, v) in line.iter_mut().enumerate() {
            // The gain (1 - z)(1 - 1/z) = 6 first.
            *v = 6.0 * block[i * inner + q] as f64;
        }
        // Causal initial value for a mirrored signal, summed exactly over one period.
        let zn = z.powi(n as i32 - 1);
        let mut c0 = line[0] + zn * line[n - 1];
        let mut zi = z;
        for i in 1..n - 1 {
            c0 += zi * (line[i] + zn * line[n - 1 - i]);
            zi *= z;
        }
        line[0] = c0 / (1.0 - zn * zn);
        for i in 1..n {
            line[i] += z * line[i - 1];
        }
        line[n - 1] = (z * line[n - 2] + line[n - 1]) * z / (z * z - 1.0);
        for i in (0..n - 1).rev() {
            line[i] = z * (line[i + 1] - line[i]);
        }
        for (i, v) in line.iter().enumerate() {
            block[i * inner + q] = *v as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(dims: [usize; 3], affine: Affine) -> Grid {
        Grid { dims, affine }
    }

    fn diag(s: [f64; 3], o: [f64; 3]) -> Affine {
        [
            [s[0], 0.0, 0.0, o[0]],
            [0.0, s[1], 0.0, o[1]],
            [0.0, 0.0, s[2], o[2]],
        ]
    }

    /// An oblique affine: rotations about z and x, voxel sizes `s`, origin `o`.
    fn oblique(s: [f64; 3], o: [f64; 3], deg: (f64, f64)) -> Affine {
        let r = rotation(deg.0, deg.1);
        [0, 1, 2].map(|i| [r[i][0] * s[0], r[i][1] * s[1], r[i][2] * s[2], o[i]])
    }

    fn ramp(dims: [usize; 3], f: impl Fn(f64, f64, f64) -> f64) -> Vec<f32> {
        let mut v = Vec::new();
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                for x in 0..dims[0] {
                    v.push(f(x as f64, y as f64, z as f64) as f32);
                }
            }
        }
        v
    }

    #[test]
    fn the_same_grid_gives_the_data_back_with_every_interpolation() {
        let g = grid(
            [7, 5, 4],
            oblique([1.0, 1.2, 2.0], [-3.0, 4.0, 5.0], (7.0, -3.0)),
        );
        let data = ramp(g.dims, |x, y, z| (x * 1.3 + y * y - z).sin() * 100.0);
        for interp in [Interp::Nearest, Interp::Linear, Interp::Cubic] {
            let r = resample(&data, &g, &g, interp, -1.0).unwrap();
            assert_eq!(r.outside, 0, "{interp:?}");
            let worst = r
                .data
                .iter()
                .zip(&data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(worst < 1e-3, "{interp:?}: {worst}");
        }
    }

    #[test]
    fn linear_and_cubic_reproduce_a_linear_ramp_between_the_centres() {
        // A linear function is reproduced exactly by both; the target is a rotated, finer grid
        // inside the source's outer centres.
        let src = grid([24, 22, 20], diag([1.0, 1.0, 2.0], [0.0, 0.0, 0.0]));
        let f = |x: f64, y: f64, z: f64| 3.0 * x - 2.0 * y + 0.5 * z + 7.0;
        let data = ramp(src.dims, |i, j, k| f(i, j, 2.0 * k));
        let tgt = grid(
            [14, 12, 10],
            oblique([0.9, 0.8, 1.5], [5.0, 5.0, 9.0], (10.0, 5.0)),
        );
        for interp in [Interp::Linear, Interp::Cubic] {
            let r = resample(&data, &src, &tgt, interp, -99.0).unwrap();
            let mut checked = 0;
            for k in 0..10 {
                for j in 0..12 {
                    for i in 0..14 {
                        let w = tgt
                            .affine
                            .map(|r| r[0] * i as f64 + r[1] * j as f64 + r[2] * k as f64 + r[3]);
                        let inside = w[0] >= 0.0 && w[0] <= 23.0 && w[1] >= 0.0 && w[1] <= 21.0;
                        if inside && w[2] >= 0.0 && w[2] <= 38.0 {
                            let v = r.data[i + 14 * (j + 12 * k)] as f64;
                            // The cubic spline reproduces a ramp away from the mirrored edges.
                            let near_edge = [w[0], w[1], w[2] / 2.0]
                                .iter()
                                .zip([23.0, 21.0, 19.0])
                                .any(|(c, n)| *c < 6.0 || *c > n - 6.0);
                            if interp == Interp::Linear || !near_edge {
                                let want = f(w[0], w[1], w[2]);
                                assert!((v - want).abs() < 1e-3, "{interp:?}: {v} vs {want}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
            assert!(checked > 200, "{interp:?}: {checked} voxels checked");
        }
    }

    #[test]
    fn voxels_outside_the_field_of_view_get_the_fill_and_are_counted() {
        // Source covers x in [-0.5, 3.5) mm; the target runs from x = -2 to 7 in 1 mm steps.
        let src = grid([4, 1, 1], diag([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]));
        let tgt = grid([10, 1, 1], diag([1.0, 1.0, 1.0], [-2.0, 0.0, 0.0]));
        let data = vec![1.0, 2.0, 3.0, 4.0];
        let r = resample(&data, &src, &tgt, Interp::Nearest, -5.0).unwrap();
        assert_eq!(
            r.data,
            vec![-5.0, -5.0, 1.0, 2.0, 3.0, 4.0, -5.0, -5.0, -5.0, -5.0]
        );
        assert_eq!(r.outside, 6);
        assert_eq!(overlap(&src, &tgt), Some(4));
        // Half a voxel beyond the outer centres is still inside, with the edge value.
        let tgt = grid([2, 1, 1], diag([1.0, 1.0, 1.0], [-0.4, 0.0, 0.0]));
        let r = resample(&data, &src, &tgt, Interp::Linear, -5.0).unwrap();
        assert_eq!(r.outside, 0);
        assert!((r.data[0] - 1.0).abs() < 1e-6 && (r.data[1] - 1.6).abs() < 1e-5);
    }

    #[test]
    fn the_spline_prefilter_makes_the_spline_interpolate() {
        // Filtered coefficients, put back through the B-spline's kernel (1, 4, 1)/6 with mirrored
        // edges, give the samples again, for even and odd lengths.
        for n in [2usize, 3, 8, 13] {
            let data: Vec<f32> = (0..n).map(|i| ((i * 7 % 5) as f32) - 1.5).collect();
            let c = spline_coefficients(&data, [n, 1, 1]);
            for i in 0..n {
                let l = c[mirror(i as i64 - 1, n)] as f64;
                let r = c[mirror(i as i64 + 1, n)] as f64;
                let v = (l + 4.0 * c[i] as f64 + r) / 6.0;
                assert!((v - data[i] as f64).abs() < 1e-5, "n {n}, i {i}: {v}");
            }
        }
    }

    #[test]
    fn singular_and_non_finite_affines_are_refused_by_name() {
        let mut a = diag([1.0, 1.0, 1.0], [0.0; 3]);
        a[2] = [0.0, 0.0, 0.0, 5.0];
        let e = grid([2, 2, 2], a)
            .check(Path::new("flat.nii"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("flat.nii") && e.contains("singular"), "{e}");
        let mut a = diag([1.0, 1.0, 1.0], [0.0; 3]);
        a[0][3] = f64::NAN;
        let e = grid([2, 2, 2], a)
            .check(Path::new("nan.nii"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nan.nii") && e.contains("not finite"), "{e}");
        // Small voxels are not singular.
        grid([2, 2, 2], diag([1e-3, 1e-3, 1e-3], [0.0; 3]))
            .check(Path::new("x"))
            .unwrap();
    }

    #[test]
    fn mirror_reflects_about_the_outer_samples() {
        let got: Vec<usize> = (-3..8).map(|i| mirror(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(mirror(-7, 1), 0);
    }
}
