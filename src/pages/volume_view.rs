//! `fuse --html`: the two sources and the fused volume, each in axial, coronal and sagittal views
//! that follow one cursor, with a slice slider per view, keyboard stepping, window/level per
//! volume, and an overlay of a source in colour over the fused volume.
//!
//! The page holds the voxels itself, so it can be mailed or archived alone: each volume is
//! quantized to 4096 levels of its own range (finer than the 256 a display shows at any window),
//! stored as 16-bit words, gzipped and base64-encoded; the browser inflates them with its built-in
//! `DecompressionStream`. A 256×256×128 volume costs 16 MiB before compression.

use super::{base64, escape, page, script_json};
use crate::resample::Grid;
use flate2::{write::GzEncoder, Compression};
use serde_json::json;
use std::io::Write;

/// The largest quantized level: 12 bits, as CT is stored.
pub const LEVELS: u16 = 4095;

/// The most voxels a page holds per volume (a 512×512×128 volume): beyond it a browser's strings
/// and memory run short (three such volumes are up to 270 MB of base64), so larger volumes are
/// shown at a coarser grid ([`shrink`]).
pub const MAX_VOXELS: usize = 1 << 25;

/// Halve the axis with the most voxels (block means of two, the last block of an odd axis
/// alone) until the volume holds at most `max` voxels. Returns the new grid and the factor of
/// each axis; every volume of a view shrinks the same way.
pub fn shrunk_grid(grid: &Grid, max: usize) -> (Grid, [usize; 3]) {
    let mut dims = grid.dims;
    let mut factor = [1usize; 3];
    while dims.iter().product::<usize>() > max {
        let axis = (0..3).max_by_key(|&a| dims[a]).expect("three axes");
        if dims[axis] == 1 {
            break;
        }
        dims[axis] = dims[axis].div_ceil(2);
        factor[axis] *= 2;
    }
    let mut affine = grid.affine;
    for (r, row) in affine.iter_mut().enumerate() {
        // The first block's centre is (f - 1) / 2 voxels from the first voxel.
        row[3] += (0..3)
            .map(|a| grid.affine[r][a] * (factor[a] as f64 - 1.0) / 2.0)
            .sum::<f64>();
        for (a, f) in factor.iter().enumerate() {
            row[a] *= *f as f64;
        }
    }
    (Grid { dims, affine }, factor)
}

/// A volume on `grid` (x fastest) as block means of `factor` voxels per axis, on `to`; voxels
/// that are not finite are left out of their block's mean.
fn shrink(data: &[f32], grid: &Grid, to: &Grid, factor: [usize; 3]) -> Vec<f32> {
    let [nx, ny, _] = grid.dims;
    let [mx, my, mz] = to.dims;
    let mut out = Vec::with_capacity(mx * my * mz);
    for z in 0..mz {
        for y in 0..my {
            for x in 0..mx {
                let (mut sum, mut n) = (0f64, 0usize);
                for k in z * factor[2]..((z + 1) * factor[2]).min(grid.dims[2]) {
                    for j in y * factor[1]..((y + 1) * factor[1]).min(ny) {
                        for i in x * factor[0]..((x + 1) * factor[0]).min(nx) {
                            let v = data[i + nx * (j + ny * k)];
                            if v.is_finite() {
                                sum += v as f64;
                                n += 1;
                            }
                        }
                    }
                }
                out.push(if n > 0 {
                    (sum / n as f64) as f32
                } else {
                    f32::NAN
                });
            }
        }
    }
    out
}

/// One volume of the view: its label (`A`, `B`, `fused`), the file it came from and its voxels
/// (x fastest, on the view's grid).
pub struct Shown<'a> {
    pub label: &'a str,
    pub name: String,
    pub data: &'a [f32],
}

/// A volume's voxels as levels 0..=[`LEVELS`] of its finite range `(min, max)`; non-finite voxels
/// become level 0.
pub fn quantize(data: &[f32]) -> (Vec<u16>, f64, f64) {
    let finite = data.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
    let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if min > max {
        return (vec![0; data.len()], 0.0, 0.0);
    }
    let step = (max - min) / LEVELS as f64;
    let q = data
        .iter()
        .map(|&v| {
            if !v.is_finite() || step == 0.0 {
                0
            } else {
                ((v as f64 - min) / step).round().clamp(0.0, LEVELS as f64) as u16
            }
        })
        .collect();
    (q, min, max)
}

/// The window a volume opens with: its 0.5th to 99.5th percentile, in its own units, so that a
/// few extreme voxels (metal in CT, a hot spot in PET) do not grey out the rest.
fn default_window(q: &[u16], min: f64, max: f64) -> [f64; 2] {
    let mut hist = vec![0usize; LEVELS as usize + 1];
    for &v in q {
        hist[v as usize] += 1;
    }
    let level_at = |fraction: f64| {
        let target = (fraction * q.len() as f64).ceil().max(1.0) as usize;
        let mut seen = 0;
        hist.iter()
            .position(|&n| {
                seen += n;
                seen >= target
            })
            .unwrap_or(LEVELS as usize)
    };
    let (lo, mut hi) = (level_at(0.005), level_at(0.995));
    if hi <= lo {
        hi = LEVELS as usize;
    }
    let value = |l: usize| min + (max - min) * l as f64 / LEVELS as f64;
    [value(lo), value(hi)]
}

/// Letters for the negative and positive direction of each voxel axis in the NIfTI world (RAS+),
/// by the world axis it runs closest to.
fn axis_letters(grid: &Grid) -> [[&'static str; 2]; 3] {
    const NAMES: [[&str; 2]; 3] = [["L", "R"], ["P", "A"], ["I", "S"]];
    std::array::from_fn(|i| {
        let col = [grid.affine[0][i], grid.affine[1][i], grid.affine[2][i]];
        let j = (0..3)
            .max_by(|&p, &q| col[p].abs().total_cmp(&col[q].abs()))
            .expect("three components");
        if col[j] < 0.0 {
            [NAMES[j][1], NAMES[j][0]]
        } else {
            NAMES[j]
        }
    })
}

/// The page for `volumes` (all on `grid`), titled `title`.
pub fn page_html(title: &str, grid: &Grid, volumes: &[Shown]) -> crate::Result<String> {
    page_within(title, grid, volumes, MAX_VOXELS)
}

/// [`page_html`] with at most `max` voxels a volume.
fn page_within(title: &str, full: &Grid, volumes: &[Shown], max: usize) -> crate::Result<String> {
    let (shrunk, factor) = shrunk_grid(full, max);
    let grid = &shrunk;
    // A degenerate axis is drawn at 1 mm rather than not at all.
    let spacing = grid
        .spacing()
        .map(|s| if s.is_finite() && s > 0.0 { s } else { 1.0 });
    let mut meta_volumes = Vec::new();
    let mut data = String::new();
    for (k, v) in volumes.iter().enumerate() {
        assert_eq!(
            v.data.len(),
            full.dims.iter().product::<usize>(),
            "a view's volumes share its grid"
        );
        let small;
        let voxels = if factor == [1; 3] {
            v.data
        } else {
            small = shrink(v.data, full, grid, factor);
            &small[..]
        };
        let (q, min, max) = quantize(voxels);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        let bytes: Vec<u8> = q.iter().flat_map(|l| l.to_le_bytes()).collect();
        gz.write_all(&bytes)
            .map_err(|e| crate::Error::Param(format!("compressing the view's voxels: {e}")))?;
        let gz = gz
            .finish()
            .map_err(|e| crate::Error::Param(format!("compressing the view's voxels: {e}")))?;
        meta_volumes.push(json!({
            "label": v.label,
            "name": v.name,
            "min": min,
            "max": max,
            "window": default_window(&q, min, max),
        }));
        data.push_str(&format!(
            "<script type=\"application/octet-stream\" id=\"voxels-{k}\">{}</script>\n",
            base64(&gz)
        ));
    }
    let meta = json!({
        "title": title,
        "version": env!("CARGO_PKG_VERSION"),
        "dims": grid.dims,
        "spacing": spacing,
        "axes": axis_letters(grid),
        "levels": LEVELS,
        "volumes": meta_volumes,
        "shrunk_by": factor,
    });
    let coarser = if factor == [1; 3] {
        String::new()
    } else {
        format!(
            " Shown on a coarser grid than the files' {} × {} × {} (means of {} × {} × {} voxels), \
             to keep the page within what a browser can hold.",
            full.dims[0], full.dims[1], full.dims[2], factor[0], factor[1], factor[2]
        )
    };
    let body = format!(
        "<h1>{}</h1>\n<p class=\"note\">csfuse {}: {} × {} × {} voxels of {:.3} × {:.3} × {:.3} mm.{coarser} \
         Click a view to move the cursor; arrow keys or Page Up/Down step the slice of the view \
         under the mouse.</p>\n<div id=\"app\"><p id=\"loading\">Loading the volumes…</p></div>\n\
         <script type=\"application/json\" id=\"meta\">{}</script>\n{data}",
        escape(title),
        env!("CARGO_PKG_VERSION"),
        grid.dims[0],
        grid.dims[1],
        grid.dims[2],
        spacing[0],
        spacing[1],
        spacing[2],
        script_json(&meta),
    );
    Ok(page(title, &body, include_str!("assets/volume_view.js")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizing_keeps_the_range_and_rounds_to_the_nearest_level() {
        let (q, min, max) = quantize(&[-1000.0, 0.0, 3095.0, f32::NAN, 1047.5]);
        assert_eq!((min, max), (-1000.0, 3095.0));
        // One level is exactly 1 unit here.
        assert_eq!(q, vec![0, 1000, 4095, 0, 2048]);
        let (flat, lo, hi) = quantize(&[5.0; 4]);
        assert_eq!((flat, lo, hi), (vec![0; 4], 5.0, 5.0));
    }

    #[test]
    fn the_default_window_leaves_out_the_extreme_half_percent() {
        let mut data = vec![100.0f32; 1000];
        data[0] = -5000.0;
        data[1] = 90000.0;
        for (i, v) in data.iter_mut().enumerate().skip(2) {
            *v = (i % 200) as f32;
        }
        let (q, min, max) = quantize(&data);
        let [lo, hi] = default_window(&q, min, max);
        // Within a level (23 units here) of the bulk's 0 and 199, far from -5000 and 90000.
        let step = (max - min) / LEVELS as f64;
        assert!(lo.abs() <= step, "{lo}");
        assert!((hi - 199.0).abs() <= step, "{hi}");
    }

    /// RFC 4648 base64 back to bytes (the test's own, to check the page's encoder).
    fn unbase64(s: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        } as u32;
        let mut out = Vec::new();
        for chunk in s.as_bytes().chunks(4) {
            let n = chunk.iter().take_while(|&&c| c != b'=').count();
            let v = chunk[..n]
                .iter()
                .enumerate()
                .fold(0u32, |acc, (k, &c)| acc | value(c) << (18 - 6 * k));
            out.extend((0..n - 1).map(|k| (v >> (16 - 8 * k)) as u8));
        }
        out
    }

    #[test]
    fn the_page_holds_each_volumes_levels_and_its_range() {
        use std::io::Read;
        let grid = Grid {
            dims: [5, 3, 2],
            affine: [
                [0.5, 0.0, 0.0, 0.0],
                [0.0, 0.5, 0.0, 0.0],
                [0.0, 0.0, 3.0, 0.0],
            ],
        };
        let a: Vec<f32> = (0..30).map(|i| i as f32 * 7.5 - 100.0).collect();
        let b: Vec<f32> = (0..30).map(|i| ((i * 13) % 30) as f32 / 29.0).collect();
        let shown = [
            Shown {
                label: "A",
                name: "a<b>.nii".into(),
                data: &a,
            },
            Shown {
                label: "B",
                name: "b.nii".into(),
                data: &b,
            },
        ];
        let html = page_html("a + b", &grid, &shown).unwrap();
        // A file name cannot open an element: it is in the JSON, escaped.
        assert!(html.contains("a\\u003cb\\u003e.nii") && !html.contains("a<b>"));
        assert!(html.contains("5 × 3 × 2 voxels of 0.500 × 0.500 × 3.000 mm"));
        for (k, v) in [&a, &b].into_iter().enumerate() {
            let open = format!("id=\"voxels-{k}\">");
            let start = html.find(&open).unwrap() + open.len();
            let end = start + html[start..].find("</script>").unwrap();
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(&unbase64(&html[start..end])[..])
                .read_to_end(&mut raw)
                .unwrap();
            let levels: Vec<u16> = raw
                .chunks(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            assert_eq!(levels, quantize(v).0, "volume {k}");
        }
        let meta_at = html.find("id=\"meta\">").unwrap();
        let meta: serde_json::Value =
            serde_json::from_str(html[meta_at + 10..].split("</script>").next().unwrap()).unwrap();
        assert_eq!(meta["volumes"][0]["min"], -100.0);
        assert_eq!(meta["volumes"][0]["max"], 117.5);
        assert_eq!(meta["dims"], serde_json::json!([5, 3, 2]));
    }

    #[test]
    fn large_volumes_are_shown_as_block_means_on_a_coarser_grid() {
        let grid = Grid {
            dims: [5, 4, 3],
            affine: [
                [-0.5, 0.0, 0.0, 10.0],
                [0.0, 0.8, 0.0, -4.0],
                [0.0, 0.0, 2.0, 1.0],
            ],
        };
        // 60 voxels, at most 20: x (5) halves to 3, then y (4) to 2: 18.
        let (small, factor) = shrunk_grid(&grid, 20);
        assert_eq!((small.dims, factor), ([3, 2, 3], [2, 2, 1]));
        // Voxel (0, 0, 0) of the coarse grid is the centre of the first 2 x 2 block.
        assert_eq!(small.affine[0], [-1.0, 0.0, 0.0, 9.75]);
        assert_eq!(small.affine[1], [0.0, 1.6, 0.0, -3.6]);
        assert_eq!(small.affine[2], grid.affine[2]);
        let mut data: Vec<f32> = (0..60).map(|i| i as f32).collect();
        data[1] = f32::NAN;
        let out = shrink(&data, &grid, &small, factor);
        assert_eq!(out.len(), 18);
        // Block (0, 0, 0): voxels 0, (1 is NaN), 5, 6.
        assert_eq!(out[0], (0.0 + 5.0 + 6.0) / 3.0);
        // Block (2, 1, 2): x = 4 alone (odd axis), y = 2..4, z = 2: voxels 54 and 59.
        assert_eq!(out[17], (54.0 + 59.0) / 2.0);
        let page = page_within(
            "t",
            &grid,
            &[Shown {
                label: "A",
                name: "a".into(),
                data: &data,
            }],
            20,
        )
        .unwrap();
        assert!(page.contains("3 × 2 × 3 voxels of 1.000 × 1.600 × 2.000 mm. Shown on a coarser grid than the files' 5 × 4 × 3 (means of 2 × 2 × 1 voxels)"));
        // Within the limit nothing changes.
        assert_eq!(shrunk_grid(&grid, 60), (grid, [1, 1, 1]));
    }

    #[test]
    fn axes_are_named_by_the_world_direction_they_run_along() {
        // LPS-like: x runs to the left, y to the back, z up; a slight rotation keeps the names.
        let grid = Grid {
            dims: [2, 2, 2],
            affine: [
                [-0.9, 0.1, 0.0, 0.0],
                [0.1, -1.0, 0.0, 0.0],
                [0.0, 0.0, 2.0, 0.0],
            ],
        };
        assert_eq!(axis_letters(&grid), [["R", "L"], ["A", "P"], ["I", "S"]]);
    }
}
