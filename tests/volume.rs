//! NIfTI volumes: a generated co-registered 3-D phantom pair is written, fused by the program, read
//! back and checked: shape, affine, datatype, and every slice equal to the 2-D fusion of that slice.

mod common;
use common::{csfuse, fuse_2d, read_json, stderr};
use csfuse::formats::nifti as volume;
use csfuse::phantom::phantom_volumes;
use csfuse::plane::Plane;
use nifti::{NiftiObject, ReaderOptions};
use std::path::Path;

const N: usize = 40;
const DEPTH: usize = 12;

fn write_pair(dir: &Path) {
    let (ct, mr) = phantom_volumes(N, DEPTH);
    volume::write(&dir.join("ct.nii.gz"), &ct, &ct.data, ct.datatype).unwrap();
    volume::write(&dir.join("mr.nii"), &mr, &mr.data, mr.datatype).unwrap();
}

fn min_max(v: &[f32]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), x| {
            (l.min(*x as f64), h.max(*x as f64))
        })
}

/// The slice of an x-fastest volume at index k along `axis`, as a plane (rows along the higher
/// remaining axis), written out here independently of the program's slicer.
fn slice(data: &[f32], dims: [usize; 3], axis: usize, k: usize) -> (usize, usize, Vec<f64>) {
    let mut out = Vec::new();
    let (cols, rows) = match axis {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    for r in 0..dims[rows] {
        for c in 0..dims[cols] {
            let mut ijk = [0; 3];
            ijk[axis] = k;
            ijk[cols] = c;
            ijk[rows] = r;
            out.push(data[ijk[0] + dims[0] * (ijk[1] + dims[1] * ijk[2])] as f64);
        }
    }
    (dims[rows], dims[cols], out)
}

/// Check that slice k along `axis` of the fused volume equals the 2-D fusion of the two source
/// slices under the documented intensity rule (each volume's [min, max] to [0, 1]; back to the span
/// of both; int16 rounding). Returns whether the slice was non-empty.
fn check_slice(ct: &[f32], mr: &[f32], fused: &[f32], axis: usize, k: usize) -> bool {
    let dims = [N, N, DEPTH];
    let ((clo, chi), (mlo, mhi)) = (min_max(ct), min_max(mr));
    let (lo, hi) = (clo.min(mlo), chi.max(mhi));
    let (h, w, a) = slice(ct, dims, axis, k);
    let (_, _, b) = slice(mr, dims, axis, k);
    let (_, _, got) = slice(fused, dims, axis, k);
    let pa = Plane::from_vec(h, w, a.iter().map(|v| (v - clo) / (chi - clo)).collect());
    let pb = Plane::from_vec(h, w, b.iter().map(|v| (v - mlo) / (mhi - mlo)).collect());
    let flat = |p: &Plane| p.data.iter().all(|v| (v - p.data[0]).abs() < 1e-9);
    let unit = if flat(&pa) && flat(&pb) {
        pa.data
            .iter()
            .zip(&pb.data)
            .map(|(x, y)| 0.5 * (x + y))
            .collect()
    } else {
        fuse_2d(&pa, &pb)
    };
    let want: Vec<f64> = unit
        .iter()
        .map(|u| (lo + u.clamp(0.0, 1.0) * (hi - lo)).round())
        .collect();
    let off = want
        .iter()
        .zip(&got)
        .filter(|(x, y)| (**x - **y).abs() > 0.0)
        .count();
    let worst = want
        .iter()
        .zip(&got)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    eprintln!("axis {axis} slice {k}: {off} voxels off by up to {worst}");
    // docs/volumes-and-batch.md: 0 voxels differ.
    assert_eq!(
        off,
        0,
        "axis {axis} slice {k}: {off} of {} voxels differ, worst by {worst}",
        want.len()
    );
    !(flat(&pa) && flat(&pb))
}

#[test]
fn volume_round_trip_equals_per_slice_2d_fusion() {
    let d = tempfile::tempdir().unwrap();
    write_pair(d.path());
    let o = csfuse(
        &[
            "fuse",
            "ct.nii.gz",
            "mr.nii",
            "-o",
            "f.nii.gz",
            "--backend",
            "cpu",
            "--report",
            "r.json",
            "--montage",
            "m.png",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // Header, affine and datatype as the first input's, read with the nifti crate directly.
    let read = |name: &str| ReaderOptions::new().read_file(d.path().join(name)).unwrap();
    let (src, out) = (read("ct.nii.gz"), read("f.nii.gz"));
    let (hs, ho) = (src.header(), out.header());
    assert_eq!(ho.dim, hs.dim, "shape");
    assert_eq!(ho.datatype, hs.datatype, "datatype");
    assert_eq!(ho.datatype, nifti::NiftiType::Int16 as i16);
    assert_eq!(
        (ho.srow_x, ho.srow_y, ho.srow_z),
        (hs.srow_x, hs.srow_y, hs.srow_z),
        "sform"
    );
    assert_eq!(
        (ho.sform_code, ho.qform_code),
        (hs.sform_code, hs.qform_code)
    );
    assert_eq!(ho.pixdim[..4], hs.pixdim[..4], "voxel size");
    assert_eq!(
        (ho.quatern_x, ho.quatern_y, ho.quatern_z),
        (hs.quatern_x, hs.quatern_y, hs.quatern_z)
    );

    let (ct, mr) = phantom_volumes(N, DEPTH);
    let fused = volume::read(&d.path().join("f.nii.gz")).unwrap();
    assert_eq!(fused.dims, [N, N, DEPTH]);
    let mut non_empty = 0;
    for k in 0..DEPTH {
        non_empty += check_slice(&ct.data, &mr.data, &fused.data, 2, k) as usize;
    }
    let r = read_json(&d.path().join("r.json"));
    assert_eq!(r["slices"]["fused"], non_empty);
    assert_eq!(r["slices"]["empty_passed_through"], DEPTH - non_empty);
    assert!(
        DEPTH - non_empty >= 2 && non_empty >= 8,
        "phantom has {non_empty} non-empty slices"
    );
    let m = image::open(d.path().join("m.png")).unwrap();
    assert_eq!(
        m.height() as usize,
        N + 11,
        "montage: label strip + one slice"
    );
}

#[test]
fn other_axis_slices_and_budget_of_one_slice() {
    let d = tempfile::tempdir().unwrap();
    write_pair(d.path());
    let run = |budget: &str| {
        csfuse(
            &[
                "fuse",
                "ct.nii.gz",
                "mr.nii",
                "-o",
                "f.nii",
                "--axis",
                "0",
                "--memory-budget",
                budget,
                "--backend",
                "cpu",
            ],
            d.path(),
        )
    };
    // The volumes and one 40x12 slice pair need about 3 MiB: 1 MiB is refused before any work,
    // 4 MiB leaves room for one slice pair at a time.
    let o = run("1M");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--memory-budget"), "{}", stderr(&o));
    let o = run("4M");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 in flight"), "{}", stderr(&o));
    let (ct, mr) = phantom_volumes(N, DEPTH);
    let fused = volume::read(&d.path().join("f.nii")).unwrap();
    for k in [0, N / 2, N - 7] {
        check_slice(&ct.data, &mr.data, &fused.data, 0, k);
    }
}

/// Fuse `args` (with the CPU engine) in `dir`, asserting success; the report.
fn fuse_ok(args: &[&str], dir: &Path) -> serde_json::Value {
    let mut all = vec!["fuse"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--backend", "cpu", "--report", "r.json", "--force"]);
    let o = csfuse(&all, dir);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    read_json(&dir.join("r.json"))
}

#[test]
fn volumes_on_other_grids_are_resampled_onto_the_first() {
    let d = tempfile::tempdir().unwrap();
    write_pair(d.path());
    let (_, mr) = phantom_volumes(N, DEPTH);
    // B shifted by 5 mm along x (5 voxels): resampled, it is B moved by 5 columns, with its
    // lowest value in the 5 columns of A's grid it does not cover. Fusing that, written on A's
    // grid, must give the same volume.
    let mut shifted = mr;
    shifted.header.srow_x[3] += 5.0;
    volume::write(
        &d.path().join("shifted.nii.gz"),
        &shifted,
        &shifted.data,
        shifted.datatype,
    )
    .unwrap();
    let (_, mr) = phantom_volumes(N, DEPTH);
    let lowest = mr.data.iter().copied().fold(f32::INFINITY, f32::min);
    let mut moved = vec![lowest; mr.data.len()];
    for (idx, v) in moved.iter_mut().enumerate() {
        let (i, rest) = (idx % N, idx / N);
        if i + 5 < N {
            *v = mr.data[i + 5 + N * rest];
        }
    }
    volume::write(&d.path().join("moved.nii"), &mr, &moved, mr.datatype).unwrap();
    let r = fuse_ok(&["ct.nii.gz", "shifted.nii.gz", "-o", "f.nii"], d.path());
    let by_hand = fuse_ok(&["ct.nii.gz", "moved.nii", "-o", "g.nii"], d.path());
    let (f, g) = (
        volume::read(&d.path().join("f.nii")).unwrap(),
        volume::read(&d.path().join("g.nii")).unwrap(),
    );
    let worst = f
        .data
        .iter()
        .zip(&g.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(worst <= 1.0, "resampled fusion differs by {worst}");
    assert_eq!(by_hand["grid"]["resampled"], serde_json::Value::Null);
    let moved = &r["grid"]["resampled"];
    assert_eq!(r["grid"]["fused_on"], "a");
    assert_eq!(moved["input"], "b");
    assert_eq!(moved["interp"], "linear");
    assert_eq!(moved["outside_voxels"], 5 * N * DEPTH);
    assert_eq!(moved["outside_value"], lowest as f64);
    assert_eq!(r["inputs"][1]["affine"][0][3], (N / 2 + 5) as f64);

    // --ignore-affine fuses voxel by voxel: no resampling.
    let r = fuse_ok(
        &[
            "ct.nii.gz",
            "shifted.nii.gz",
            "-o",
            "h.nii",
            "--ignore-affine",
        ],
        d.path(),
    );
    assert_eq!(r["grid"]["resampled"], serde_json::Value::Null);

    // Another shape: resampled onto A's grid, or with --grid b A onto B's.
    let (small, _) = phantom_volumes(N, DEPTH - 2);
    let small_path = d.path().join("small.nii.gz");
    volume::write(&small_path, &small, &small.data, small.datatype).unwrap();
    fuse_ok(&["mr.nii", "small.nii.gz", "-o", "s.nii"], d.path());
    assert_eq!(
        volume::read(&d.path().join("s.nii")).unwrap().dims,
        [N, N, DEPTH]
    );
    let r = fuse_ok(
        &[
            "mr.nii",
            "small.nii.gz",
            "-o",
            "t.nii",
            "--grid",
            "b",
            "--interp",
            "cubic",
        ],
        d.path(),
    );
    let t = volume::read(&d.path().join("t.nii")).unwrap();
    assert_eq!(t.dims, [N, N, DEPTH - 2]);
    // On B's grid, in A's datatype (float32).
    assert_eq!(t.datatype, nifti::NiftiType::Float32);
    assert_eq!(volume::affine(&t.header), volume::affine(&small.header));
    assert_eq!(r["grid"]["fused_on"], "b");
    assert_eq!(r["grid"]["resampled"]["input"], "a");
    assert_eq!(r["grid"]["resampled"]["interp"], "cubic");
}

#[test]
fn volumes_that_cannot_be_put_on_one_grid_are_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    write_pair(d.path());
    let (_, mr) = phantom_volumes(N, DEPTH);
    let write = |name: &str, v: &volume::Volume| {
        volume::write(&d.path().join(name), v, &v.data, v.datatype).unwrap();
    };
    let mut far = mr;
    far.header.srow_x[3] += 1000.0;
    write("far.nii", &far);
    let (_, mut flat) = phantom_volumes(N, DEPTH);
    flat.header.srow_z = [0.0, 0.0, 0.0, 3.0];
    write("flat.nii", &flat);
    let (small, _) = phantom_volumes(N, DEPTH - 1);
    write("small.nii.gz", &small);
    for (args, needles) in [
        (
            vec!["ct.nii.gz", "far.nii"],
            vec!["hardly overlap", "ct.nii.gz", "far.nii", "0.0 %"],
        ),
        (vec!["ct.nii.gz", "flat.nii"], vec!["flat.nii", "singular"]),
        (
            vec!["ct.nii.gz", "small.nii.gz", "--ignore-affine"],
            vec!["differ in shape", "small.nii.gz", "--ignore-affine"],
        ),
    ] {
        let mut all = vec!["fuse"];
        all.extend_from_slice(&args);
        all.extend_from_slice(&["-o", "out.nii", "--report", "out.json"]);
        let o = csfuse(&all, d.path());
        let e = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        for n in needles {
            assert!(e.contains(n), "{args:?}: `{n}` not in {e}");
        }
        assert!(!d.path().join("out.nii").exists() && !d.path().join("out.json").exists());
    }
}

#[test]
fn bad_volume_options_are_refused() {
    let d = tempfile::tempdir().unwrap();
    write_pair(d.path());
    // An image with a volume, a volume to PNG, --out-depth on volumes.
    for (args, needle) in [
        (
            vec!["fuse", "ct.nii.gz", "x.png", "-o", "g.nii.gz"],
            "not both images or both volumes",
        ),
        (
            vec!["fuse", "ct.nii.gz", "mr.nii", "-o", "g.png"],
            "use .nii or .nii.gz",
        ),
        (
            vec![
                "fuse",
                "ct.nii.gz",
                "mr.nii",
                "-o",
                "g.nii",
                "--out-depth",
                "16",
            ],
            "keeps the first input's datatype",
        ),
        (
            vec!["fuse", "ct.nii.gz", "mr.nii", "-o", "g.nii", "--axis", "3"],
            "--axis must be 0, 1 or 2",
        ),
    ] {
        let o = csfuse(&args, d.path());
        assert!(
            !o.status.success() && stderr(&o).contains(needle),
            "{args:?}: {}",
            stderr(&o)
        );
    }
    std::fs::write(d.path().join("junk.nii.gz"), b"not a volume").unwrap();
    let o = csfuse(&["fuse", "junk.nii.gz", "mr.nii", "-o", "g.nii"], d.path());
    let e = stderr(&o);
    assert!(
        !o.status.success() && e.contains("junk.nii.gz") && e.contains("NIfTI"),
        "{e}"
    );
    assert!(!d.path().join("g.nii").exists() && !d.path().join("g.nii.gz").exists());
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn volume_on_the_gpu_validates_against_the_cpu() {
    // Small, because CI's adapter is lavapipe (software): 2 non-empty slices of 32x32.
    let d = tempfile::tempdir().unwrap();
    let (ct, mr) = phantom_volumes(32, 4);
    volume::write(&d.path().join("ct.nii.gz"), &ct, &ct.data, ct.datatype).unwrap();
    volume::write(&d.path().join("mr.nii.gz"), &mr, &mr.data, mr.datatype).unwrap();
    let o = csfuse(
        &[
            "fuse",
            "ct.nii.gz",
            "mr.nii.gz",
            "-o",
            "f.nii.gz",
            "--backend",
            "gpu",
            "--validate",
            "--report",
            "r.json",
        ],
        d.path(),
    );
    assert!(
        o.status.success(),
        "GPU volume fusion failed (a GPU adapter is needed; on CI lavapipe: apt-get install \
         mesa-vulkan-drivers libvulkan1): {}",
        stderr(&o)
    );
    let r = read_json(&d.path().join("r.json"));
    assert_eq!(r["validation"]["passed"], true, "{}", r["validation"]);
    assert!(r["adapter"]["name"].is_string());
    // The GPU fuses the slice pairs as batches: all four in one here.
    assert!(
        r["slices"]["in_flight"].as_u64().unwrap() > 1,
        "{}",
        r["slices"]
    );
    assert_eq!(r["slices"]["gpu_batches"], 1, "{}", r["slices"]);
    eprintln!("GPU vs CPU on the volume: {}", r["validation"]);
}
