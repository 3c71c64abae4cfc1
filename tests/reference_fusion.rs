//! The whole pipeline with the reference dictionaries on the reference pair reproduces the published
//! implementation's output (docs/method.md, "How it is checked").

mod common;
use common::*;
use csfuse::dictionary::Dictionary;
use csfuse::formats::image::{quantize, read_gray, BitDepth};
use csfuse::jobs::session::cpu_engine;
use csfuse::pipeline::fuse::{fuse_pair, FuseParams, Mode};
use csfuse::real::Precision;

#[test]
#[ignore = "needs the published reference data: set CSFUSE_REFERENCE_DIR to shared/data/csmca_reference, then pass --include-ignored"]
fn reference_pair_matches_published_output() {
    let a = read_gray(&reference("source1.tif")).unwrap();
    let b = read_gray(&reference("source2.tif")).unwrap();
    let dc = Dictionary::load(&reference("Dc_8_8_32.npy")).unwrap();
    let dt = Dictionary::load(&reference("Dt_8_8_32.npy")).unwrap();
    let want = read_gray(&reference("fused_csmca.tif")).unwrap();
    for p in [Precision::F32, Precision::F64] {
        let mut eng = cpu_engine(p);
        let out = fuse_pair(
            eng.as_mut(),
            &a.plane,
            &b.plane,
            &dc,
            &dt,
            &FuseParams::new(Mode::Paper),
        )
        .unwrap();
        let got: Vec<f64> = out
            .fused
            .data
            .iter()
            .map(|v| quantize(*v, BitDepth::U8))
            .collect();
        let want: Vec<f64> = want
            .plane
            .data
            .iter()
            .map(|v| (v * 255.0).round())
            .collect();
        let (psnr, maxd) = psnr_u8(&got, &want);
        println!("{p:?}: PSNR {psnr:.2} dB, max abs diff {maxd}");
        // The README's figures: 76.8 dB, at most 1 grey level anywhere.
        assert!(
            psnr >= 76.0,
            "{p:?}: PSNR {psnr:.2} dB against fused_csmca.tif is below 76 dB"
        );
        assert!(
            maxd <= 1.0,
            "{p:?}: a pixel differs from fused_csmca.tif by {maxd} grey levels (at most 1)"
        );
    }
}
