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
    let n: usize = grid.dims.iter().product();
    let spacing: Vec<f64> = (0..3)
        .map(|i| {
            (0..3)
                .map(|r| grid.affine[r][i].powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .map(|s| if s.is_finite() && s > 0.0 { s } else { 1.0 })
        .collect();
    let mut meta_volumes = Vec::new();
    let mut data = String::new();
    for (k, v) in volumes.iter().enumerate() {
        assert_eq!(v.data.len(), n, "a view's volumes share its grid");
        let (q, min, max) = quantize(v.data);
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
    });
    let body = format!(
        "<h1>{}</h1>\n<p class=\"note\">csfuse {}: {} × {} × {} voxels of {:.3} × {:.3} × {:.3} mm. \
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
