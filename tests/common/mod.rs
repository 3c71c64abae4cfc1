//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod dicom;
mod reference;
#[allow(unused_imports)] // not every test file needs the data
pub use reference::{reference, reference_dir};

/// PSNR in dB of two 8-bit images given as values in 0..=255, and the max abs difference.
pub fn psnr_u8(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mse = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    let maxd = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    (10.0 * (255.0f64 * 255.0 / mse).log10(), maxd)
}

/// The GPU engine the tests run on: a real GPU if present, else Mesa's lavapipe. GPU tests are
/// `#[ignore]`d (a fresh clone may have no adapter); run with `--include-ignored`, they fail and say
/// how to install the software adapter when there is none.
pub fn gpu_engine() -> csfuse::gpu::GpuEngine {
    match csfuse::gpu::GpuEngine::new() {
        Ok(g) => g,
        Err(e) => panic!(
            "GPU tests need an adapter and found none ({e}). On Debian/Ubuntu install the software \
             Vulkan adapter: sudo apt-get install mesa-vulkan-drivers libvulkan1"
        ),
    }
}

/// Run the `csfuse` binary in `dir`.
pub fn csfuse(args: &[&str], dir: &Path) -> Output {
    csfuse_env(args, dir, &[])
}

pub fn csfuse_env(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_csfuse"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("run csfuse")
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The 2-D fusion of two [0, 1] planes on the CPU engine (f32) with the built-in dictionaries.
pub fn fuse_2d(a: &csfuse::plane::Plane, b: &csfuse::plane::Plane) -> Vec<f64> {
    fuse_2d_with(a, b, Default::default())
}

/// [`fuse_2d`] with the rules of `mode`.
#[allow(dead_code)]
pub fn fuse_2d_with(
    a: &csfuse::plane::Plane,
    b: &csfuse::plane::Plane,
    mode: csfuse::pipeline::fuse::Mode,
) -> Vec<f64> {
    let mut e = csfuse::jobs::session::cpu_engine(csfuse::real::Precision::F32);
    let (dc, dt) = (csfuse::assets::cartoon(), csfuse::assets::texture());
    let p = csfuse::pipeline::fuse::FuseParams::new(mode);
    csfuse::pipeline::fuse::fuse_pair(e.as_mut(), a, b, &dc, &dt, &p)
        .unwrap()
        .fused
        .data
}

/// `{name}.png` in `dir` with pixel (0, 0) set to 0 and (1, 0) to 255, so it spans the full 8-bit
/// range (then min-max scaling equals division by 255); saved as `{name}8.png` and returned.
pub fn full_range_8bit(dir: &Path, name: &str) -> image::GrayImage {
    let mut g = image::open(dir.join(format!("{name}.png")))
        .unwrap()
        .to_luma8();
    g.put_pixel(0, 0, image::Luma([0]));
    g.put_pixel(1, 0, image::Luma([255]));
    g.save(dir.join(format!("{name}8.png"))).unwrap();
    g
}

/// A temp folder with the phantoms at `size` (`ct_like.png`, `mr_like.png`, `pet_like.png`).
pub fn phantom_dir(size: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let n = size.to_string();
    let o = csfuse(&["phantom", "--size", &n, "--out-dir", "."], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    d
}

/// The paths in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}
