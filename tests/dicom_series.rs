//! A folder holding one DICOM series is a volume: slices sorted along their normal, laid out and
//! placed as dcm2niix writes them (checked here against the affine dcm2niix gave for the same
//! geometry; the Python tests compare with dcm2niix itself), fused like its NIfTI twin, resumed by
//! `batch`, and every broken series refused with its reason and nothing written.

mod common;
use common::dicom::{grey, write, Place, Spec};
use common::{csfuse, files_in, stderr};
use csfuse::formats::nifti::{self as nifti_io, affine};
use csfuse::formats::volume;
use nifti::NiftiType;
use std::path::Path;

const SERIES: &str = "2.25.77";

/// Stored value of pixel (r, c) of the k-th slice along the normal.
fn value(k: usize, r: usize, c: usize) -> i64 {
    (1000 * k + 20 * r + c) as i64
}

/// A sagittal series (rows along +y, columns down -z; the normal is -x in LPS) of `n` slices of
/// `rows` x `cols`, 2.5 mm apart, from (-10, 20, 30); `step(k)` gives slice k's position and
/// `spec(k)` may change anything else. Files are named in reverse order of position.
fn series(
    dir: &Path,
    (rows, cols, n): (usize, usize, usize),
    position: impl Fn(usize) -> Option<[f64; 3]>,
    spec: impl Fn(usize, Spec<'static>) -> Spec<'static>,
) {
    std::fs::create_dir_all(dir).unwrap();
    for k in 0..n {
        let values = (0..rows * cols)
            .map(|i| value(k, i / cols, i % cols))
            .collect();
        let place = Place {
            series: SERIES,
            position: position(k).map(|p| format!("{}\\{}\\{}", p[0], p[1], p[2])),
            orientation: Some("0\\1\\0\\0\\0\\-1"),
            spacing: "0.8\\0.9",
        };
        let s = Spec {
            place: Some(place),
            ..grey(rows as u16, cols as u16, 16, values)
        };
        write(&dir.join(format!("z{:02}.dcm", n - 1 - k)), &spec(k, s));
    }
}

fn regular(k: usize) -> Option<[f64; 3]> {
    Some([-10.0 - 2.5 * k as f64, 20.0, 30.0])
}

#[test]
fn slices_are_sorted_along_the_normal_and_laid_out_as_dcm2niix_does() {
    let d = tempfile::tempdir().unwrap();
    let (rows, cols, n) = (12, 10, 6);
    series(d.path(), (rows, cols, n), regular, |_, s| s);
    let info = volume::read_info(d.path()).unwrap();
    assert_eq!(info.dims, [cols, rows, n]);
    assert_eq!(info.datatype, NiftiType::Uint16);
    let v = volume::read(d.path()).unwrap();
    // x along a DICOM row, y up the rows, z along the normal (the files' name order reversed).
    for k in 0..n {
        for j in 0..rows {
            for i in 0..cols {
                let got = v.data[i + cols * (j + rows * k)];
                assert_eq!(
                    got as i64,
                    value(k, rows - 1 - j, i),
                    "voxel ({i}, {j}, {k})"
                );
            }
        }
    }
    // What dcm2niix 1.0.20220720 gave for this geometry (with 5 rows: z 30 - 4 x 0.8 = 26.8; here
    // 12 rows: 30 - 11 x 0.8 = 21.2).
    let want = [
        [0.0, 0.0, 2.5, 10.0],
        [-0.9, 0.0, 0.0, -20.0],
        [0.0, 0.8, 0.0, 21.2],
    ];
    let close =
        |a: [[f64; 4]; 3]| (0..3).all(|r| (0..4).all(|c| (a[r][c] - want[r][c]).abs() < 1e-5));
    assert!(close(affine(&v.header)), "sform {:?}", affine(&v.header));
    // The qform says the same (read with the sform ignored).
    let mut q = v.header.clone();
    q.sform_code = 0;
    assert!(close(affine(&q)), "qform {:?}", affine(&q));
    assert_eq!(q.pixdim[0], -1.0, "a left-handed grid has qfac -1");
}

/// Values are rescaled; MONOCHROME1 slices have their stored bits inverted; slices with different
/// rescale make a float32 volume.
#[test]
fn series_values_are_rescaled_per_slice() {
    let d = tempfile::tempdir().unwrap();
    let dims = (10, 9, 3);
    series(&d.path().join("same"), dims, regular, |_, s| Spec {
        rescale: Some(("1", "-1024")),
        ..s
    });
    let v = volume::read(&d.path().join("same")).unwrap();
    assert_eq!(v.datatype, NiftiType::Uint16);
    assert_eq!((v.header.scl_slope, v.header.scl_inter), (1.0, -1024.0));
    assert_eq!(v.data[0] as i64, value(0, 9, 0) - 1024);

    series(&d.path().join("varied"), dims, regular, |k, s| Spec {
        rescale: Some(if k == 1 { ("0.5", "0") } else { ("1", "0") }),
        ..s
    });
    let v = volume::read(&d.path().join("varied")).unwrap();
    assert_eq!(v.datatype, NiftiType::Float32);
    let at = |k: usize| v.data[9 * 10 * k] as f64;
    assert_eq!(at(1), 0.5 * value(1, 9, 0) as f64);
    assert_eq!(at(2), value(2, 9, 0) as f64);

    series(&d.path().join("m1"), dims, regular, |_, s| Spec {
        photometric: "MONOCHROME1",
        stored: 12,
        ..s
    });
    let v = volume::read(&d.path().join("m1")).unwrap();
    assert_eq!(v.data[0] as i64, 4095 - value(0, 9, 0));
}

/// The phantom's DICOM series reads back as the phantom volume, on its grid, and fuses exactly
/// like a NIfTI file holding the same volume and header.
#[test]
fn a_series_fuses_like_its_nifti_twin() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = csfuse(args, d.path());
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    run(&[
        "phantom",
        "--out-dir",
        ".",
        "--size",
        "40",
        "--depth",
        "6",
        "--dicom",
    ]);
    let p = |n: &str| d.path().join(n);
    let series = volume::read(&p("ct_like_dicom")).unwrap();
    let ct = nifti_io::read(&p("ct_like.nii.gz")).unwrap();
    assert_eq!(series.dims, ct.dims);
    assert_eq!(series.data, ct.data);
    assert_eq!(affine(&series.header), affine(&ct.header));

    // The twin stores the same values as float32 (a rescaled series fuses to float32 too).
    nifti_io::write(&p("twin.nii.gz"), &series, &series.data, NiftiType::Float32).unwrap();
    let fuse = |a: &str, out: &str| {
        run(&["fuse", a, "mr_like.nii.gz", "-o", out, "--backend", "cpu"]);
        nifti_io::read(&p(out)).unwrap()
    };
    let (from_series, from_twin) = (
        fuse("ct_like_dicom", "a.nii.gz"),
        fuse("twin.nii.gz", "b.nii.gz"),
    );
    assert_eq!(from_series.data, from_twin.data);
    assert_eq!(affine(&from_series.header), affine(&ct.header));
    assert_eq!(from_series.datatype, NiftiType::Float32, "rescaled input");

    // A volume is written as NIfTI or as a DICOM series, whatever it was read from.
    let o = csfuse(
        &["fuse", "ct_like_dicom", "mr_like.nii.gz", "-o", "out.png"],
        d.path(),
    );
    assert!(
        stderr(&o).contains("volumes are written as NIfTI") && stderr(&o).contains("DICOM series"),
        "{}",
        stderr(&o)
    );

    // As a series: read back, the NIfTI result on its grid, within the rescale step.
    run(&[
        "fuse",
        "ct_like_dicom",
        "mr_like.nii.gz",
        "-o",
        "fused_series/",
        "--backend",
        "cpu",
        "--report",
        "r.json",
    ]);
    let back = volume::read(&p("fused_series")).unwrap();
    assert_eq!(back.dims, from_series.dims);
    let (a, b) = (affine(&back.header), affine(&from_series.header));
    assert!((0..3).all(|i| (0..4).all(|j| (a[i][j] - b[i][j]).abs() < 1e-3)));
    let r = common::read_json(&p("r.json"));
    let series = &r["output"]["dicom_series"];
    let step = series["rescale_slope"].as_f64().unwrap();
    assert_eq!(series["files"], 6);
    assert_eq!(series["copied_from_first_input"], true);
    let worst = back
        .data
        .iter()
        .zip(&from_series.data)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max);
    assert!(worst <= 0.5 * step + 1e-3, "{worst} > half of {step}");
}

/// A series in a batch list: fused once, up to date on the next run, redone when a slice changes.
#[test]
fn batch_resumes_a_series_and_notices_a_changed_slice() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = csfuse(args, d.path());
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stderr(&o)
    };
    run(&[
        "phantom",
        "--out-dir",
        ".",
        "--size",
        "32",
        "--depth",
        "4",
        "--dicom",
    ]);
    std::fs::write(
        d.path().join("l.csv"),
        "a,b\nct_like_dicom,mr_like.nii.gz\n",
    )
    .unwrap();
    let batch = ["batch", "l.csv", "--out-dir", "o", "--backend", "cpu"];
    assert!(run(&batch).contains("1 fused"));
    assert!(d.path().join("o/ct_like_dicom__mr_like.nii.gz").exists());
    assert!(run(&batch).contains("1 up to date"));
    // One slice's values change (same size): the item is out of date.
    let slice = d.path().join("ct_like_dicom/slice_0002.dcm");
    let mut bytes = std::fs::read(&slice).unwrap();
    let n = bytes.len();
    bytes[n - 40] ^= 0x10;
    std::fs::write(&slice, bytes).unwrap();
    assert!(run(&batch).contains("1 fused"));
}

#[test]
fn broken_series_are_refused_with_the_reason_and_nothing_written() {
    let d = tempfile::tempdir().unwrap();
    let p = |n: &str| d.path().join(n);
    // The size of the MR phantom they are fused with, so that only the reading can fail.
    let dims = (16, 16, 5);
    let o = csfuse(
        &["phantom", "--out-dir", ".", "--size", "16", "--depth", "5"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let ident = |_, s| s;
    series(&p("two"), dims, regular, |k, s: Spec<'static>| {
        let mut place = s.place.clone().unwrap();
        place.series = if k < 2 { "2.25.1" } else { "2.25.2" };
        Spec {
            place: Some(place),
            ..s
        }
    });
    series(
        &p("no_orientation"),
        dims,
        regular,
        |k, s: Spec<'static>| {
            let mut place = s.place.clone().unwrap();
            if k == 3 {
                place.orientation = None;
            }
            Spec {
                place: Some(place),
                ..s
            }
        },
    );
    series(
        &p("no_position"),
        dims,
        |k| regular(k).filter(|_| k != 2),
        ident,
    );
    series(
        &p("gap"),
        dims,
        |k| regular(if k < 3 { k } else { k + 1 }),
        ident,
    );
    series(
        &p("tilt"),
        dims,
        |k| regular(k).map(|[x, y, z]| [x, y, z - 0.8 * k as f64]),
        ident,
    );
    series(&p("same_place"), dims, |k| regular(k.min(3)), ident);
    series(&p("sizes"), dims, regular, |k, s: Spec<'static>| {
        if k != 1 {
            return s;
        }
        Spec {
            rows: 15,
            values: s.values[..15 * 16].to_vec(),
            ..s
        }
    });
    series(&p("colour"), dims, regular, |_, s: Spec<'static>| Spec {
        photometric: "RGB",
        samples: 3,
        bits: 8,
        stored: 8,
        values: (0..3 * 16 * 16).map(|i| i % 256).collect(),
        ..s
    });
    series(&p("rle"), dims, regular, ident);
    let slice = p("rle/z02.dcm");
    let mut bytes = std::fs::read(&slice).unwrap();
    let at = bytes
        .windows(20)
        .position(|w| w == b"1.2.840.10008.1.2.1\0")
        .unwrap();
    bytes[at..at + 20].copy_from_slice(b"1.2.840.10008.1.2.5\0");
    std::fs::write(&slice, bytes).unwrap();
    series(&p("cut"), dims, regular, ident);
    let slice = p("cut/z03.dcm");
    let bytes = std::fs::read(&slice).unwrap();
    std::fs::write(&slice, &bytes[..bytes.len() - 50]).unwrap();
    std::fs::create_dir_all(p("nested/inner")).unwrap();
    std::fs::create_dir_all(p("empty")).unwrap();
    std::fs::write(p("empty/notes.txt"), "not DICOM").unwrap();

    let cases = [
        ("two", vec!["holds 2 series", "2.25.1", "2.25.2"]),
        (
            "no_orientation",
            vec!["z01.dcm", "Image Orientation (Patient)"],
        ),
        ("no_position", vec!["z02.dcm", "Image Position (Patient)"]),
        (
            "gap",
            vec![
                "irregular slice spacing: steps from 2.5 to 5 mm",
                "5 mm between z02.dcm and z01.dcm",
            ],
        ),
        ("tilt", vec!["gantry tilt"]),
        ("same_place", vec!["same position"]),
        ("sizes", vec!["differ in size", "z03.dcm"]),
        ("colour", vec!["colour (RGB)"]),
        (
            "rle",
            vec!["z02.dcm", "transfer syntax 1.2.840.10008.1.2.5"],
        ),
        ("cut", vec!["z03.dcm"]),
        ("nested", vec!["no DICOM files", "subfolders (inner)"]),
        ("empty", vec!["no DICOM files"]),
    ];
    for (case, needles) in cases {
        let before = files_in(d.path());
        let o = csfuse(
            &[
                "fuse",
                case,
                "mr_like.nii.gz",
                "-o",
                "out.nii.gz",
                "--backend",
                "cpu",
                // Past the grid check to the pixels, for the faults found only there.
                "--ignore-affine",
            ],
            d.path(),
        );
        let e = stderr(&o);
        println!("{case}: {}", e.trim());
        assert_eq!(o.status.code(), Some(1), "{case}: {e}");
        for n in needles {
            assert!(e.contains(n), "{case}: `{n}` not in {e}");
        }
        assert_eq!(files_in(d.path()), before, "{case}: something was written");
    }
    // The same slices, whole, fuse.
    series(&p("good"), dims, regular, ident);
    let o = csfuse(
        &[
            "fuse",
            "good",
            "mr_like.nii.gz",
            "-o",
            "out.nii.gz",
            "--ignore-affine",
            "--backend",
            "cpu",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}
