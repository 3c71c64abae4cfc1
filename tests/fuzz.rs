//! Fuzz targets for every loader that takes bytes from a user: `.npy` (and the dictionary checks
//! after it), NIfTI headers and data, the image decoders as csfuse drives them, and batch lists.
//!
//! Each target starts from the committed seed corpus in `tests/fuzz_corpus/<target>/` (valid files
//! csfuse wrote, and one small DICOM file per compressed transfer syntax it decodes, made from
//! those by DCMTK and pydicom with `tests/fuzz_corpus/make_compressed_seeds.sh`; it holds no
//! regression case: the one failure so far, dicom-rs's RLE adapter indexing past a short segment,
//! was answered by csfuse's own bounds-checked decoder) and
//! applies random mutations: bit flips, byte runs, inserted and deleted spans, and "interesting" integers (0, -1,
//! 2^31, 2^63, ...) written over header fields. proptest drives the generation and shrinks a failure
//! to a small case; a panic, an abort or a hang is a failure. The property for every target: the
//! loader returns `Ok` or a typed error, and what it returns is self-consistent. When a case fails,
//! proptest prints the shrunk input and records its seed in `tests/fuzz.regressions`, which later
//! runs replay first; the fix commits that file and adds the shrunk input to the target's corpus.
//!
//! `cargo test --release --test fuzz` runs a short pass (20,000-40,000 inputs per target, seconds);
//! `CSFUSE_FUZZ_CASES=200000 cargo test --release --test fuzz -- --nocapture` a long one.
//! `CSFUSE_WRITE_CORPUS=1 cargo test --release --test fuzz seed_corpus` rewrites the valid seeds.

mod common;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use std::path::{Path, PathBuf};

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(target)
}

/// Every file of a target's corpus (seeds and regression cases).
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("corpus {target}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {target} is empty");
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Int { at: usize, width: u8, value: u64 },
    Insert { at: usize, bytes: Vec<u8> },
    Delete { at: usize, len: usize },
    Truncate { at: usize },
    Copy { from: usize, to: usize, len: usize },
}

fn interesting() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![
            0u64,
            1,
            2,
            7,
            255,
            256,
            0x7fff,
            0x8000,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            1 << 32,
            1 << 58,
            1 << 63,
            u64::MAX,
            u64::MAX - 1,
        ]),
        any::<u64>(),
        0u64..70000,
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        3 => (at, 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        2 => (at, any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        3 => (at, prop::sample::select(vec![1u8, 2, 4, 8]), interesting())
            .prop_map(|(at, width, value)| Mutation::Int { at, width, value }),
        1 => (at, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (at, 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => at.prop_map(|at| Mutation::Truncate { at }),
        1 => (at, at, 1usize..32).prop_map(|(from, to, len)| Mutation::Copy { from, to, len }),
    ]
}

/// Apply mutations to a seed; positions wrap around its length. Header fields sit near the
/// start, so half the positions are folded into the first 512 bytes.
fn apply(seed: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in muts {
        if b.is_empty() {
            b.push(0);
        }
        let pos = |at: usize, n: usize| {
            if at.is_multiple_of(2) {
                (at / 2) % n.min(512)
            } else {
                (at / 2) % n
            }
        };
        let n = b.len();
        match m {
            Mutation::Flip { at, bit } => b[pos(*at, n)] ^= 1 << bit,
            Mutation::Set { at, byte } => b[pos(*at, n)] = *byte,
            Mutation::Int { at, width, value } => {
                let p = pos(*at, n);
                let bytes = value.to_le_bytes();
                for (k, v) in bytes.iter().take(*width as usize).enumerate() {
                    if p + k < n {
                        b[p + k] = *v;
                    }
                }
            }
            Mutation::Insert { at, bytes } => {
                let p = pos(*at, n);
                b.splice(p..p, bytes.iter().copied());
            }
            Mutation::Delete { at, len } => {
                let p = pos(*at, n);
                b.drain(p..(p + len).min(n));
            }
            Mutation::Truncate { at } => b.truncate(pos(*at, n)),
            Mutation::Copy { from, to, len } => {
                let (f, t) = (pos(*from, n), pos(*to, n));
                let len = (*len).min(n - f).min(n - t);
                b.copy_within(f..f + len, t);
            }
        }
    }
    b
}

/// A seed from the corpus with 0-8 mutations.
fn mutated(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(target);
    (
        prop::sample::select(seeds),
        prop::collection::vec(mutation(), 0..8),
    )
        .prop_map(|(seed, muts)| apply(&seed, &muts))
}

/// Cases per target: `CSFUSE_FUZZ_CASES` or the target's short default.
fn cases(default: u32) -> u32 {
    std::env::var("CSFUSE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Run `check` on `cases` inputs from `strategy`; crashes are shrunk and reported by proptest (and
/// recorded in `tests/fuzz.regressions`, to be copied into the corpus as a regression case).
fn fuzz<S: Strategy>(name: &str, n: u32, strategy: S, check: impl Fn(S::Value) -> bool)
where
    S::Value: std::fmt::Debug,
{
    let accepted = std::cell::Cell::new(0u64);
    let config = Config {
        cases: n,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let t = std::time::Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| {
        if check(v) {
            accepted.set(accepted.get() + 1);
        }
        Ok(())
    });
    eprintln!(
        "fuzz {name}: {n} inputs ({} accepted, the rest refused with an error) in {:.2} s",
        accepted.get(),
        t.elapsed().as_secs_f64(),
    );
    if let Err(e) = result {
        panic!("fuzz {name}: {e}");
    }
}

/// A structured `.npy` header: any shape (huge values included), dtype and order, short data.
fn npy_structured() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec!["<f4", "<f8", ">f4", ">f8", "<i4", "|u1", "<f2"]),
        any::<bool>(),
        prop::collection::vec(interesting(), 0..5),
        prop::collection::vec(any::<u8>(), 0..600),
        prop::sample::select(vec![1u8, 2, 3, 9]),
    )
        .prop_map(|(descr, fortran, shape, data, major)| {
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            let shape = match dims.len() {
                1 => format!("({},)", dims[0]),
                _ => format!("({})", dims.join(", ")),
            };
            let order = if fortran { "True" } else { "False" };
            let header =
                format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}\n");
            let mut b = b"\x93NUMPY".to_vec();
            b.push(major);
            b.push(0);
            if major == 1 {
                b.extend_from_slice(&(header.len() as u16).to_le_bytes());
            } else {
                b.extend_from_slice(&(header.len() as u32).to_le_bytes());
            }
            b.extend_from_slice(header.as_bytes());
            b.extend_from_slice(&data);
            b
        })
}

fn check_npy(bytes: Vec<u8>) -> bool {
    let parsed = csfuse::formats::npy::parse(&bytes);
    if let Ok(a) = &parsed {
        let count = a.shape.iter().try_fold(1usize, |x, d| x.checked_mul(*d));
        assert_eq!(count, Some(a.data.len()), "shape {:?}", a.shape);
        // The dictionary checks run on whatever parses.
        if let Ok(d) = csfuse::dictionary::Dictionary::from_hwm(&a.shape, &a.data, Path::new("x")) {
            assert_eq!(d.data.len(), d.fh * d.fw * d.m);
            assert!(
                d.norms().iter().all(|n| (n - 1.0).abs() < 1.001e-3),
                "{:?}",
                d.norms()
            );
        }
    }
    parsed.is_ok()
}

#[test]
fn fuzz_npy() {
    fuzz("npy (mutated)", cases(40_000), mutated("npy"), check_npy);
    fuzz(
        "npy (structured)",
        cases(40_000),
        npy_structured(),
        check_npy,
    );
}

#[test]
fn fuzz_nifti() {
    fuzz("nifti", cases(20_000), mutated("nifti"), |bytes| {
        // A 64 MiB read limit keeps a header that claims a huge volume from being believed.
        let r = csfuse::formats::nifti::parse(Path::new("fuzz.nii"), &bytes, 64 << 20);
        if let Ok(v) = &r {
            assert_eq!(v.data.len(), v.dims.iter().product::<usize>());
            assert!(v.data.iter().all(|x| x.is_finite()));
            let _ = csfuse::formats::nifti::affine(&v.header);
        }
        r.is_ok()
    });
}

#[test]
fn fuzz_images() {
    fuzz("images", cases(20_000), mutated("image"), |bytes| {
        let r = csfuse::formats::image::decode_image(Path::new("fuzz.img"), &bytes);
        if let Ok(r) = &r {
            assert!(r.h > 0 && r.w > 0);
            assert!(r.channels.len() == 1 || r.channels.len() == 3);
            assert!(r.channels.iter().all(|c| c.len() == r.h * r.w));
            assert!(r.samples().all(f64::is_finite));
        }
        r.is_ok()
    });
}

fn csv_text() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        "a.png",
        "b.png",
        "x.nii.gz",
        "y.nii",
        ",",
        ",",
        "\n",
        "\n",
        "\r\n",
        "#",
        "\"",
        "..",
        "/",
        "/abs",
        " ",
        "a,b,output",
        "out/f.png",
        "\u{fffd}",
        "\t",
        "",
    ]);
    prop::collection::vec(token, 0..40).prop_map(|t| t.concat().into_bytes())
}

#[test]
fn fuzz_batch_lists() {
    let check = |bytes: Vec<u8>| {
        let r = csfuse::jobs::batch::parse_list(Path::new("list.csv"), &bytes, Path::new("out"));
        if let Ok(items) = &r {
            assert!(!items.is_empty());
            for (k, it) in items.iter().enumerate() {
                assert_eq!(it.index, k);
                assert!(it.line >= 1);
                assert!(it.out.starts_with("out"));
            }
        }
        r.is_ok()
    };
    fuzz("batch lists (tokens)", cases(40_000), csv_text(), check);
    fuzz(
        "batch lists (mutated)",
        cases(40_000),
        mutated("csv"),
        check,
    );
}

/// The valid seeds are what csfuse writes today: this test regenerates them and fails when the
/// committed ones differ (a format change), and with `CSFUSE_WRITE_CORPUS=1` writes them instead.
/// Regression cases (files named `crash-*`) are never touched.
#[test]
fn seed_corpus_is_what_csfuse_writes() {
    use csfuse::formats::image::{encode_image, Raster, SampleFormat};
    let write = std::env::var_os("CSFUSE_WRITE_CORPUS").is_some();
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = corpus_dir(target);
        if write {
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), bytes).unwrap();
        } else {
            let have = std::fs::read(d.join(name)).unwrap_or_default();
            assert!(
                have == bytes,
                "tests/fuzz_corpus/{target}/{name} is not what csfuse writes now; rerun with \
                 CSFUSE_WRITE_CORPUS=1"
            );
        }
    };
    // npy: dictionaries and coefficient maps as csfuse and NumPy write them.
    let d = csfuse::assets::cartoon();
    let small: Vec<f64> = d.to_hwm()[..4 * 4 * 2].to_vec();
    put(
        "npy",
        "dict_f32.npy",
        &csfuse::formats::npy::to_bytes(&[4, 4, 2], &small, csfuse::formats::npy::NpyDtype::F32),
    );
    put(
        "npy",
        "dict_f64.npy",
        &csfuse::formats::npy::to_bytes(&[4, 4, 2], &small, csfuse::formats::npy::NpyDtype::F64),
    );
    let mut fortran =
        csfuse::formats::npy::to_bytes(&[2, 3], &[1.0; 6], csfuse::formats::npy::NpyDtype::F32);
    let pos = fortran.windows(5).position(|w| w == b"False").unwrap();
    fortran.splice(pos..pos + 5, b"True ".iter().copied());
    put("npy", "fortran.npy", &fortran);
    // NIfTI: the phantom volumes, small, plain and gzipped.
    let dir = tempfile::tempdir().unwrap();
    let (ct, mr) = csfuse::phantom::phantom_volumes(16, 3);
    for (v, name) in [(&ct, "ct"), (&mr, "mr")] {
        for ext in ["nii", "nii.gz"] {
            let p = dir.path().join(format!("{name}.{ext}"));
            csfuse::formats::nifti::write(&p, v, &v.data, v.datatype).unwrap();
            put(
                "nifti",
                &format!("{name}.{ext}"),
                &std::fs::read(&p).unwrap(),
            );
        }
    }
    // Images: every format and sample type csfuse reads.
    let (h, w) = (12, 10);
    let plane: Vec<f64> = (0..h * w).map(|i| (i * 37 % 256) as f64).collect();
    let raster = |channels: usize, format: SampleFormat, scale: f64| Raster {
        h,
        w,
        channels: (0..channels)
            .map(|c| {
                plane
                    .iter()
                    .map(|v| (v + c as f64 * 30.0) * scale)
                    .collect()
            })
            .collect(),
        format,
    };
    for (name, r) in [
        ("gray8.png", raster(1, SampleFormat::U8, 1.0)),
        ("gray16.png", raster(1, SampleFormat::U16, 200.0)),
        ("rgb8.png", raster(3, SampleFormat::U8, 0.5)),
        ("gray8.tif", raster(1, SampleFormat::U8, 1.0)),
        ("gray16.tif", raster(1, SampleFormat::U16, 200.0)),
        ("grayf32.tif", raster(1, SampleFormat::F32, -3.5)),
        ("rgbf32.tif", raster(3, SampleFormat::F32, 0.01)),
        ("gray8.bmp", raster(1, SampleFormat::U8, 1.0)),
        ("rgb8.jpg", raster(3, SampleFormat::U8, 0.5)),
    ] {
        put("image", name, &encode_image(Path::new(name), &r).unwrap());
    }
    // DICOM: a signed CT with a rescale, and planar RGB, as dicom-rs writes them.
    use common::dicom::{grey, Spec};
    let values: Vec<i64> = (0..h * w).map(|i| (i as i64 * 37 % 3000) - 1000).collect();
    let ct = Spec {
        signed: true,
        rescale: Some(("1", "-1024")),
        ..grey(h as u16, w as u16, 16, values)
    };
    let colour: Vec<i64> = (0..3 * h * w).map(|i| (i as i64 * 11) % 256).collect();
    let rgb = Spec {
        photometric: "RGB",
        samples: 3,
        planar: true,
        ..grey(h as u16, w as u16, 8, colour)
    };
    // RLE Lossless (16 bits: two segments) and a deflated data set.
    let rle = Spec {
        ts: common::dicom::RLE_LOSSLESS,
        ..grey(
            h as u16,
            w as u16,
            16,
            (0..h * w).map(|i| (i * 211 % 4096) as i64).collect(),
        )
    };
    let deflated = Spec {
        ts: common::dicom::DEFLATED_LE,
        ..grey(
            h as u16,
            w as u16,
            8,
            (0..h * w).map(|i| (i * 7 % 256) as i64).collect(),
        )
    };
    for (name, spec) in [
        ("ct16.dcm", ct),
        ("rgb8.dcm", rgb),
        ("rle16.dcm", rle),
        ("deflated8.dcm", deflated),
    ] {
        let p = dir.path().join(name);
        common::dicom::write(&p, &spec);
        put("image", name, &std::fs::read(&p).unwrap());
    }
    // Batch lists.
    put(
        "csv",
        "header.csv",
        b"a,b,output\n# comment\nct/1.png,mr/1.png,o/1.png\n\"x,1.nii.gz\",y.nii.gz\n",
    );
    put("csv", "plain.csv", b"a.png,b.png\n\nc.png,d.png,e.tif\r\n");
}
