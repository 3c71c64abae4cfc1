//! Colour sources and sample formats as a user meets them: a PET-like RGB image fused with an MR-like
//! gray one keeps its colours, two RGB sources blend chroma by the documented rule, and float TIFF
//! comes back as float in the inputs' units.

mod common;
use common::{csfuse, full_range_8bit, fuse_2d_with, stderr};
use csfuse::formats::image::{read_image, Raster};
use csfuse::pipeline::fuse::Mode;
use csfuse::plane::Plane;
use std::path::Path;

/// BT.601 full-range YCbCr, written out here independently of the program's colour module.
fn ycbcr(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    (y, 0.5 + 0.5 * (b - y) / 0.886, 0.5 + 0.5 * (r - y) / 0.701)
}

fn read(dir: &Path, name: &str) -> Raster {
    read_image(&dir.join(name)).unwrap()
}

/// Per-pixel (Y, Cb, Cr) of an RGB raster scaled by `max`.
fn to_ycbcr(r: &Raster, max: f64) -> Vec<(f64, f64, f64)> {
    assert!(r.is_colour(), "expected an RGB image");
    (0..r.h * r.w)
        .map(|i| {
            ycbcr(
                r.channels[0][i] / max,
                r.channels[1][i] / max,
                r.channels[2][i] / max,
            )
        })
        .collect()
}

fn fuse_gray(a: Vec<f64>, b: Vec<f64>, n: usize, mode: Mode) -> Vec<f64> {
    fuse_2d_with(&Plane::from_vec(n, n, a), &Plane::from_vec(n, n, b), mode)
}

fn phantoms() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let o = csfuse(&["phantom", "--size", "64", "--out-dir", "."], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    d
}

/// `fuse A B -o OUT --out-depth DEPTH --mode MODE` in `d`, on the CPU.
fn fuse_in(d: &Path, [a, b]: [&str; 2], out: &str, depth: &str, mode: &str) {
    let args = [
        "fuse",
        a,
        b,
        "-o",
        out,
        "--out-depth",
        depth,
        "--backend",
        "cpu",
        "--mode",
        mode,
    ];
    let o = csfuse(&args, d);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The MR phantom fused with the PET phantom (colour).
fn fuse_colour(d: &Path, out: &str, depth: &str, mode: &str) {
    fuse_in(d, ["mr_like.png", "pet_like.png"], out, depth, mode);
}

/// The phantoms' PET as (Y, Cb, Cr) and the grayscale fusion of the MR with its Y under `mode`.
fn pet_and_fused_y(d: &Path, mode: Mode) -> (Vec<(f64, f64, f64)>, Vec<f64>) {
    let (mr, pet) = (read(d, "mr_like.png"), read(d, "pet_like.png"));
    let src = to_ycbcr(&pet, 255.0);
    let y = fuse_gray(
        mr.channels[0].iter().map(|v| v / 255.0).collect(),
        src.iter().map(|p| p.0).collect(),
        64,
        mode,
    );
    (src, y)
}

#[test]
fn colour_source_keeps_its_chroma_and_its_luminance_is_fused() {
    let d = phantoms();
    fuse_colour(d.path(), "f.tif", "f32", "paper");
    fuse_colour(d.path(), "f.png", "8", "paper");
    let (src, want_y) = pet_and_fused_y(d.path(), Mode::Paper);
    // Float output: luminance is the grayscale fusion of Y, chroma the PET's, at every pixel.
    let got = to_ycbcr(&read(d.path(), "f.tif"), 1.0);
    let mut moved = 0;
    for i in 0..64 * 64 {
        assert!(
            (got[i].0 - want_y[i]).abs() < 1e-5,
            "Y at {i}: {} vs {}",
            got[i].0,
            want_y[i]
        );
        assert!(
            (got[i].1 - src[i].1).abs() < 1e-5 && (got[i].2 - src[i].2).abs() < 1e-5,
            "chroma at {i}"
        );
        moved += ((got[i].0 - src[i].0).abs() > 0.05) as usize;
    }
    assert!(
        moved > 200,
        "fusion changed the PET luminance at only {moved} pixels"
    );
    // 8-bit output: the chroma is the PET's up to rounding wherever no channel had to be clipped
    // (which includes every pixel whose luminance the fusion left unchanged).
    let png = read(d.path(), "f.png");
    let got = to_ycbcr(&png, 255.0);
    let mut checked = 0;
    for i in 0..64 * 64 {
        let clipped = (0..3).any(|c| png.channels[c][i] == 0.0 || png.channels[c][i] == 255.0);
        if !clipped {
            checked += 1;
            let (dcb, dcr) = ((got[i].1 - src[i].1).abs(), (got[i].2 - src[i].2).abs());
            assert!(
                dcb < 2.0 / 255.0 && dcr < 2.0 / 255.0,
                "chroma at {i} off by {dcb}, {dcr}"
            );
        }
    }
    // The "hot" colour map puts green and blue at 0 over much of the image, so fewer pixels qualify.
    assert!(checked > 300, "only {checked} pixels without clipping");
}

#[test]
fn the_pyramid_mode_writes_the_fused_luminance_and_keeps_the_hue() {
    let d = phantoms();
    fuse_colour(d.path(), "f.png", "8", "pyramid");
    fuse_colour(d.path(), "paper.png", "8", "paper");
    let (src, want_y) = pet_and_fused_y(d.path(), Mode::Pyramid);
    let png = read(d.path(), "f.png");
    let got = to_ycbcr(&png, 255.0);
    let (mut faded, mut lost_luma_paper) = (0, 0);
    let paper = to_ycbcr(&read(d.path(), "paper.png"), 255.0);
    let (_, paper_y) = pet_and_fused_y(d.path(), Mode::Paper);
    for i in 0..64 * 64 {
        // The written luminance is the fused one (clamped to the range) up to 8-bit rounding.
        let y = want_y[i].clamp(0.0, 1.0);
        assert!(
            (got[i].0 - y).abs() < 1.0 / 255.0,
            "Y at {i}: {} vs {y}",
            got[i].0
        );
        // Chroma: the PET's direction (hue) and at most its strength.
        let (sb, sr) = (src[i].1 - 0.5, src[i].2 - 0.5);
        let (gb, gr) = (got[i].1 - 0.5, got[i].2 - 0.5);
        let (s_len, g_len) = (sb.hypot(sr), gb.hypot(gr));
        assert!(g_len <= s_len + 2.0 / 255.0, "chroma at {i} grew");
        if g_len > 8.0 / 255.0 {
            let cos = (sb * gb + sr * gr) / (s_len * g_len);
            assert!(cos > 0.99, "hue at {i} turned: cos {cos}");
        }
        faded += (g_len < s_len - 4.0 / 255.0) as usize;
        // The published colour rule clips channels instead, and loses luminance there.
        lost_luma_paper += (paper[i].0 < paper_y[i].clamp(0.0, 1.0) - 4.0 / 255.0) as usize;
    }
    assert!(
        faded > 0 && lost_luma_paper > 0,
        "{faded} {lost_luma_paper}"
    );
    println!(
        "{faded} pixels desaturated to keep their luminance; clipping lost it at {lost_luma_paper}"
    );
}

#[test]
fn two_colour_sources_blend_chroma_by_saturation() {
    let d = phantoms();
    // A second colour source: the PET with its channels rotated (a different colour map).
    let pet = read(d.path(), "pet_like.png");
    let rot = image::RgbImage::from_fn(64, 64, |x, y| {
        let i = (y * 64 + x) as usize;
        image::Rgb([
            pet.channels[2][i] as u8,
            pet.channels[0][i] as u8,
            pet.channels[1][i] as u8,
        ])
    });
    rot.save(d.path().join("spect.png")).unwrap();
    fuse_in(
        d.path(),
        ["pet_like.png", "spect.png"],
        "f.tif",
        "f32",
        "paper",
    );
    let (a, b) = (
        to_ycbcr(&pet, 255.0),
        to_ycbcr(&read(d.path(), "spect.png"), 255.0),
    );
    let got = to_ycbcr(&read(d.path(), "f.tif"), 1.0);
    for i in 0..64 * 64 {
        let wa = (a[i].1 - 0.5).abs() + (a[i].2 - 0.5).abs();
        let wb = (b[i].1 - 0.5).abs() + (b[i].2 - 0.5).abs();
        let (wa, wb) = if wa + wb > 0.0 { (wa, wb) } else { (1.0, 1.0) };
        let cb = (wa * a[i].1 + wb * b[i].1) / (wa + wb);
        let cr = (wa * a[i].2 + wb * b[i].2) / (wa + wb);
        assert!(
            (got[i].1 - cb).abs() < 1e-5 && (got[i].2 - cr).abs() < 1e-5,
            "chroma at {i}"
        );
    }
}

#[test]
fn float_tiff_in_gives_float_tiff_out_in_the_inputs_units() {
    let d = phantoms();
    // Float sources in Hounsfield-like units spanning exactly [-1000, 3000], and their 8-bit twins.
    let mut units = Vec::new();
    for name in ["ct_like", "mr_like"] {
        let g = full_range_8bit(d.path(), name);
        let f: Vec<f32> = g
            .pixels()
            .map(|p| p[0] as f32 / 255.0 * 4000.0 - 1000.0)
            .collect();
        let mut bytes = std::io::Cursor::new(Vec::new());
        tiff::encoder::TiffEncoder::new(&mut bytes)
            .unwrap()
            .write_image::<tiff::encoder::colortype::Gray32Float>(64, 64, &f)
            .unwrap();
        std::fs::write(d.path().join(format!("{name}.tif")), bytes.into_inner()).unwrap();
        units.push(f);
    }
    let o = csfuse(
        &[
            "fuse",
            "ct_like.tif",
            "mr_like.tif",
            "-o",
            "f.tif",
            "--backend",
            "cpu",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = csfuse(
        &[
            "fuse",
            "ct_like8.png",
            "mr_like8.png",
            "-o",
            "f8.png",
            "--backend",
            "cpu",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f = read(d.path(), "f.tif");
    assert_eq!(f.format, csfuse::formats::image::SampleFormat::F32);
    let f8 = read(d.path(), "f8.png");
    let worst = f.channels[0]
        .iter()
        .zip(&f8.channels[0])
        .map(|(x, y)| (((x + 1000.0) / 4000.0).clamp(0.0, 1.0) - y / 255.0).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 0.51 / 255.0,
        "float and 8-bit results differ by {worst}"
    );
    // Float output is not clamped: the fused values may leave the inputs' range slightly.
    assert!(
        f.channels[0].iter().any(|v| v.fract() != 0.0),
        "float output looks quantised"
    );
    // A float TIFF with a NaN is refused, naming the file and the pixel.
    units[0][5] = f32::NAN;
    let mut bytes = std::io::Cursor::new(Vec::new());
    tiff::encoder::TiffEncoder::new(&mut bytes)
        .unwrap()
        .write_image::<tiff::encoder::colortype::Gray32Float>(64, 64, &units[0])
        .unwrap();
    std::fs::write(d.path().join("nan.tif"), bytes.into_inner()).unwrap();
    let o = csfuse(&["fuse", "nan.tif", "mr_like.tif", "-o", "g.tif"], d.path());
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains("nan.tif") && e.contains("x=5, y=0"),
        "{e}"
    );
    // Formats that cannot hold the depth asked for are refused before any work.
    let o = csfuse(
        &[
            "fuse",
            "ct_like.tif",
            "mr_like.tif",
            "-o",
            "g.png",
            "--out-depth",
            "f32",
        ],
        d.path(),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("cannot hold"),
        "{}",
        stderr(&o)
    );
}
