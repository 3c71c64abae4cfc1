//! A single DICOM file as a 2-D source: files written here with dicom-rs, read back through
//! csfuse's reader (rescale, MONOCHROME1, signed and planar RGB data, implicit VR), fused by the
//! CLI like any other image, and every bad file refused with its reason and nothing written.

mod common;
use common::dicom::{grey, write, Spec, DEFLATED_LE, EXPLICIT_LE, IMPLICIT_LE, RLE_LOSSLESS};
use common::{csfuse, files_in, stderr};
use csfuse::formats::image::{read_image, SampleFormat};

fn ramp(n: usize, modulo: i64) -> Vec<i64> {
    (0..n as i64).map(|i| (i * 37) % modulo).collect()
}

#[test]
fn grey_files_are_read_with_their_rescale_and_photometry() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);

    // 12 bits in 16, no rescale: 16-bit integers as stored; implicit VR reads the same.
    let v12 = ramp(37 * 23, 4096);
    write(
        &p("u16.dcm"),
        &Spec {
            stored: 12,
            ..grey(23, 37, 16, v12.clone())
        },
    );
    let implicit = Spec {
        stored: 12,
        ts: IMPLICIT_LE,
        ..grey(23, 37, 16, v12.clone())
    };
    write(&p("implicit.dcm"), &implicit);
    // RLE Lossless (two byte segments) and a deflated data set read the same too.
    for (name, ts) in [("rle.dcm", RLE_LOSSLESS), ("deflated.dcm", DEFLATED_LE)] {
        let spec = Spec {
            stored: 12,
            ts,
            ..grey(23, 37, 16, v12.clone())
        };
        write(&p(name), &spec);
    }
    for name in ["u16.dcm", "implicit.dcm", "rle.dcm", "deflated.dcm"] {
        let r = read_image(&p(name)).unwrap();
        assert_eq!((r.h, r.w, r.format), (23, 37, SampleFormat::U16), "{name}");
        let want: Vec<f64> = v12.iter().map(|v| *v as f64).collect();
        assert_eq!(r.channels[0], want, "{name}");
    }
    assert_eq!(
        csfuse::formats::image::image_dims(&p("u16.dcm")).unwrap(),
        (23, 37)
    );

    // A CT: signed 16 bits, slope 1, intercept -1024: Hounsfield units, as float.
    let hu: Vec<i64> = ramp(40 * 30, 3000).iter().map(|v| v - 1000).collect();
    let ct = Spec {
        signed: true,
        rescale: Some(("1", "-1024")),
        ..grey(30, 40, 16, hu.iter().map(|v| v + 1024).collect())
    };
    write(&p("ct.dcm"), &ct);
    let r = read_image(&p("ct.dcm")).unwrap();
    assert_eq!(r.format, SampleFormat::F32);
    let want: Vec<f64> = hu.iter().map(|v| *v as f64).collect();
    assert_eq!(r.channels[0], want);
    // Negative stored values: two's complement in 16 bits, and a slope of 2.
    let signed = Spec {
        signed: true,
        rescale: Some(("2", "0.5")),
        ..grey(2, 3, 16, vec![-5, 0, 7, -32768, 32767, -1])
    };
    write(&p("signed.dcm"), &signed);
    let r = read_image(&p("signed.dcm")).unwrap();
    assert_eq!(
        r.channels[0],
        vec![-9.5, 0.5, 14.5, -65535.5, 65534.5, -1.5]
    );

    // MONOCHROME1 (white is low): inverted, so bright means high as in every other source.
    let v8 = ramp(16 * 16, 256);
    let m1 = Spec {
        photometric: "MONOCHROME1",
        ..grey(16, 16, 8, v8.clone())
    };
    write(&p("m1.dcm"), &m1);
    let r = read_image(&p("m1.dcm")).unwrap();
    assert_eq!(r.format, SampleFormat::U8);
    let want: Vec<f64> = v8.iter().map(|v| 255.0 - *v as f64).collect();
    assert_eq!(r.channels[0], want);
}

#[test]
fn rgb_files_are_colour_sources_interleaved_or_planar() {
    let d = tempfile::tempdir().unwrap();
    let (rows, cols) = (5u16, 7u16);
    let n = (rows * cols) as usize;
    let rgb = |c: usize, i: usize| ((i * 11 + c * 80) % 256) as i64;
    let interleaved: Vec<i64> = (0..n)
        .flat_map(|i| (0..3).map(move |c| rgb(c, i)))
        .collect();
    let planar: Vec<i64> = (0..3)
        .flat_map(|c| (0..n).map(move |i| rgb(c, i)))
        .collect();
    let colour = |values, planar| Spec {
        photometric: "RGB",
        samples: 3,
        planar,
        ..grey(rows, cols, 8, values)
    };
    write(&d.path().join("i.dcm"), &colour(interleaved, false));
    write(&d.path().join("p.dcm"), &colour(planar, true));
    for name in ["i.dcm", "p.dcm"] {
        let r = read_image(&d.path().join(name)).unwrap();
        assert!(r.is_colour(), "{name}");
        for c in 0..3 {
            let want: Vec<f64> = (0..n).map(|i| rgb(c, i) as f64).collect();
            assert_eq!(r.channels[c], want, "{name} channel {c}");
        }
    }
}

/// A DICOM source fuses exactly as the same pixels in a PNG do.
#[test]
fn a_dicom_source_fuses_like_the_same_pixels_in_a_png() {
    let d = common::phantom_dir(48);
    let ct = image::open(d.path().join("ct_like.png"))
        .unwrap()
        .to_luma8();
    let values: Vec<i64> = ct.pixels().map(|p| p.0[0] as i64).collect();
    write(&d.path().join("ct.dcm"), &grey(48, 48, 8, values));
    let fuse = |a: &str, out: &str| {
        let o = csfuse(
            &["fuse", a, "mr_like.png", "-o", out, "--backend", "cpu"],
            d.path(),
        );
        assert!(o.status.success(), "{a}: {}", stderr(&o));
        std::fs::read(d.path().join(out)).unwrap()
    };
    assert_eq!(
        fuse("ct.dcm", "from_dicom.png"),
        fuse("ct_like.png", "from_png.png")
    );
}

#[test]
fn bad_dicom_files_are_refused_with_the_reason_and_nothing_written() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    let mr: Vec<i64> = ramp(32 * 32, 256);
    write(&p("good.dcm"), &grey(32, 32, 8, mr.clone()));
    write(
        &p("frames.dcm"),
        &Spec {
            frames: Some("3"),
            ..grey(32, 32, 8, mr.clone())
        },
    );
    write(
        &p("ybr.dcm"),
        &Spec {
            photometric: "PALETTE COLOR",
            ..grey(32, 32, 8, mr.clone())
        },
    );
    // RLE Lossless declared over native pixel data: the same file with its syntax UID changed
    // (the same length, so the meta group stays valid).
    let mut bytes = std::fs::read(p("good.dcm")).unwrap();
    let at = bytes
        .windows(EXPLICIT_LE.len() + 1)
        .position(|w| w == b"1.2.840.10008.1.2.1\0")
        .expect("the transfer syntax UID in the meta group");
    bytes[at..at + 20].copy_from_slice(b"1.2.840.10008.1.2.5\0");
    std::fs::write(p("rle.dcm"), &bytes).unwrap();
    let good = std::fs::read(p("good.dcm")).unwrap();
    std::fs::write(p("truncated.dcm"), &good[..good.len() - 300]).unwrap();
    std::fs::write(p("header_only.dcm"), &good[..200]).unwrap();
    // A pixel data length of 3.75 GiB in a small file: refused from the header, before the parser
    // would allocate what it claims.
    let mut huge = good.clone();
    let at = huge
        .windows(6)
        .rposition(|w| w == b"\xe0\x7f\x10\x00OW" || w == b"\xe0\x7f\x10\x00OB")
        .expect("the pixel data element");
    huge[at + 8..at + 12].copy_from_slice(&0xF000_0000u32.to_le_bytes());
    std::fs::write(p("huge.dcm"), &huge).unwrap();
    image::GrayImage::from_fn(32, 32, |x, y| image::Luma([((x + y) * 4) as u8]))
        .save(p("mr.png"))
        .unwrap();

    let cases = [
        // A multi-frame file is a volume: it does not pair with an image.
        ("frames.dcm", "are not both images or both volumes"),
        ("ybr.dcm", "photometric interpretation \"PALETTE COLOR\""),
        (
            "rle.dcm",
            "transfer syntax 1.2.840.10008.1.2.5 needs encapsulated pixel data",
        ),
        ("truncated.dcm", "truncated.dcm"),
        ("header_only.dcm", "cannot read this DICOM file"),
        ("huge.dcm", "element (7FE0,0010) at byte"),
        ("huge.dcm", "claims 4026531840 bytes, but only"),
    ];
    for (name, needle) in cases {
        let before = files_in(d.path());
        let o = csfuse(
            &["fuse", name, "mr.png", "-o", "out.png", "--backend", "cpu"],
            d.path(),
        );
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let e = stderr(&o);
        println!("{}", e.trim());
        assert!(e.contains(name) && e.contains(needle), "{name}: {e}");
        assert_eq!(files_in(d.path()), before, "{name}: something was written");
    }
    // The good one fuses.
    let o = csfuse(
        &[
            "fuse",
            "good.dcm",
            "mr.png",
            "-o",
            "out.png",
            "--backend",
            "cpu",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `phantom --dicom` writes the CT-like phantom as a CT file that reads back in HU-like units and
/// fuses with a PNG.
#[test]
fn the_dicom_phantom_reads_back_in_its_units_and_fuses() {
    let d = tempfile::tempdir().unwrap();
    let o = csfuse(
        &["phantom", "--out-dir", ".", "--size", "40", "--dicom"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let r = read_image(&d.path().join("ct_like.dcm")).unwrap();
    let (ct, _) = csfuse::phantom::head_pair(40);
    let want: Vec<f64> = ct
        .data
        .iter()
        .map(|v| (v * 3000.0).round() - 1000.0)
        .collect();
    assert_eq!((r.format, &r.channels[0]), (SampleFormat::F32, &want));
    let o = csfuse(
        &[
            "fuse",
            "ct_like.dcm",
            "mr_like.png",
            "-o",
            "f.png",
            "--backend",
            "cpu",
            "--intensity-range",
            "-1000:2000",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The compressed seeds of the fuzz corpus, made from csfuse's own seeds by DCMTK and pydicom
/// (`tests/fuzz_corpus/make_compressed_seeds.sh`), decode to the files they were made from:
/// exactly for the lossless syntaxes, and close for the lossy JPEG (8- and 12-bit) and JPEG 2000
/// ones.
#[test]
fn compressed_files_decode_to_the_files_they_were_made_from() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/image");
    let read =
        |name: &str| read_image(&corpus.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    // (largest, mean) absolute difference.
    let error = |a: &[f64], b: &[f64]| {
        assert_eq!(a.len(), b.len());
        let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| (x - y).abs()).collect();
        let worst = d.iter().copied().fold(0.0, f64::max);
        (worst, d.iter().sum::<f64>() / d.len() as f64)
    };
    let ct = read("ct16.dcm");
    for name in ["jpeg_lossless16.dcm", "jpeg_lossless_sv1_16.dcm"] {
        let r = read(name);
        assert_eq!((r.h, r.w, r.format), (ct.h, ct.w, ct.format), "{name}");
        assert_eq!(r.channels, ct.channels, "{name}");
    }
    // JPEG 2000 needs 32 pixels each way: the CT seed tiled 3 × 4.
    let tiled: Vec<f64> = (0..3 * ct.h)
        .flat_map(|y| (0..4 * ct.w).map(move |x| (y % 12, x % 10)))
        .map(|(y, x)| ct.channels[0][y * ct.w + x])
        .collect();
    let j2k = read("j2k_lossless16.dcm");
    assert_eq!((j2k.h, j2k.w), (36, 40));
    assert_eq!(j2k.channels[0], tiled);
    // Lossy: a 3:1 JPEG 2000 of a range of 3000, 8-bit JPEG of noise-like test patterns.
    let (worst, mean) = error(&read("j2k_lossy16.dcm").channels[0], &tiled);
    assert!(
        worst > 0.0 && worst <= 100.0 && mean <= 20.0,
        "JPEG 2000 3:1: {worst}, {mean}"
    );
    let grey8 = read("deflated8.dcm");
    let (worst, mean) = error(&read("jpeg_extended8.dcm").channels[0], &grey8.channels[0]);
    assert!(
        worst <= 16.0 && mean <= 4.0,
        "JPEG extended: {worst}, {mean}"
    );
    // 12-bit lossy JPEG (csfuse's own decoder) of 12-bit data.
    let (native12, jpeg12) = (read("native12.dcm"), read("jpeg_extended12.dcm"));
    assert_eq!(
        (jpeg12.h, jpeg12.w, jpeg12.format),
        (12, 10, SampleFormat::U16)
    );
    let (worst, mean) = error(&jpeg12.channels[0], &native12.channels[0]);
    assert!(worst <= 16.0 && mean <= 3.0, "12-bit JPEG: {worst}, {mean}");
    // Baseline from RGB through YCbCr 4:2:2 and back.
    let (rgb, baseline) = (read("rgb8.dcm"), read("jpeg_baseline_rgb8.dcm"));
    assert_eq!(baseline.channels.len(), 3);
    for c in 0..3 {
        let (worst, mean) = error(&baseline.channels[c], &rgb.channels[c]);
        assert!(
            worst <= 128.0 && mean <= 20.0,
            "JPEG baseline {c}: {worst}, {mean}"
        );
    }
}

/// JPEG-LS through CharLS: lossless exactly, near-lossless (NEAR = 2) within 2 of every sample.
/// A build without the `jpegls` feature runs the test below instead: each build tests what it
/// does with these files.
#[test]
#[cfg(feature = "jpegls")]
fn jpeg_ls_files_decode_to_the_files_they_were_made_from() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/image");
    let ct = read_image(&corpus.join("ct16.dcm")).unwrap();
    let lossless = read_image(&corpus.join("jpegls16.dcm")).unwrap();
    assert_eq!(lossless.channels, ct.channels);
    let near = read_image(&corpus.join("jpegls_near16.dcm")).unwrap();
    let worst = near.channels[0]
        .iter()
        .zip(&ct.channels[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(worst > 0.0 && worst <= 2.0, "near-lossless error {worst}");
}

/// Without the `jpegls` feature a JPEG-LS file is refused by name, saying how to get it read.
#[test]
#[cfg(not(feature = "jpegls"))]
fn jpeg_ls_is_refused_by_a_build_without_charls() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_corpus/image");
    let e = read_image(&corpus.join("jpegls16.dcm"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("jpegls16.dcm") && e.contains("--features jpegls"),
        "{e}"
    );
}
