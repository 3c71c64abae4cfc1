//! The reliability issue's holes, one test (or a few) per hole, named after it: crafted files, non-
//! finite results, outputs that would replace each other or an input, concurrent and interrupted
//! runs, late checks, memory, silent surprises, non-UTF-8 names. Each runs the program as a user
//! would and checks the exit status, the message and what is left on disk.

mod common;
use common::{csfuse, csfuse_env, files_in, read_json, stderr};
use csfuse::formats::image::{write_image, Raster, SampleFormat};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A temp folder with a 64x64 phantom pair (and the PET-like colour image).
fn workdir() -> tempfile::TempDir {
    common::phantom_dir(64)
}

/// Names in `dir` that are csfuse temps.
fn temps_in(dir: &Path) -> Vec<String> {
    files_in(dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|n| n.contains(".csfuse-tmp-"))
        .collect()
}

/// `csfuse fuse A B -o OUT EXTRA...` in `dir`.
fn fuse(dir: &Path, a: &str, b: &str, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["fuse", a, b, "-o", out];
    args.extend_from_slice(extra);
    csfuse(&args, dir)
}

/// `.npy` bytes with an arbitrary header shape text and a little data.
fn npy_with_shape(shape: &str) -> Vec<u8> {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(header.len() as u16).to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(&[0x3f; 128]);
    b
}

fn write_dict(path: &Path, scale: f64) {
    let d = csfuse::assets::cartoon();
    let data: Vec<f64> = d.to_hwm().iter().map(|v| v * scale).collect();
    std::fs::write(
        path,
        csfuse::formats::npy::to_bytes(
            &[d.fh, d.fw, d.m],
            &data,
            csfuse::formats::npy::NpyDtype::F32,
        ),
    )
    .unwrap();
}

fn float_tiff(path: &Path, n: usize, f: impl Fn(usize, usize) -> f64) {
    let data = (0..n * n).map(|i| f(i / n, i % n)).collect();
    write_image(
        path,
        &Raster {
            h: n,
            w: n,
            channels: vec![data],
            format: SampleFormat::F32,
        },
    )
    .unwrap();
}

fn read_f32_tiff(path: &Path) -> Vec<f32> {
    let mut dec = tiff::decoder::Decoder::new(std::fs::File::open(path).unwrap()).unwrap();
    match dec.read_image().unwrap() {
        tiff::decoder::DecodingResult::F32(v) => v,
        _ => panic!("not a float TIFF"),
    }
}

// ---- Hole 1: crafted files panic -------------------------------------------------------------

#[test]
fn hole01_crafted_npy_shapes_are_refused_not_a_panic() {
    let d = workdir();
    for shape in [
        "(2, 1, 9223372036854775808)",
        "(8, 8, 288230376151711744)",
        "(4294967296, 4294967296, 1)",
    ] {
        std::fs::write(d.path().join("evil.npy"), npy_with_shape(shape)).unwrap();
        let o = fuse(
            d.path(),
            "ct_like.png",
            "mr_like.png",
            "f.png",
            &["--cartoon-dict", "evil.npy"],
        );
        assert_eq!(o.status.code(), Some(1), "{shape}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("evil.npy") && stderr(&o).contains("too large"),
            "{shape}: {}",
            stderr(&o)
        );
        assert!(!d.path().join("f.png").exists());
    }
}

/// A small uncompressed NIfTI of the phantom, its header then patched by `patch`.
fn patched_nifti(dir: &Path, name: &str, patch: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let (ct, _) = csfuse::phantom::phantom_volumes(16, 4);
    let p = dir.join(name);
    csfuse::formats::nifti::write(&p, &ct, &ct.data, ct.datatype).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    patch(&mut bytes);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn set_i16(b: &mut [u8], at: usize, v: i16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn hole01_crafted_nifti_headers_are_refused_not_a_panic() {
    let d = tempfile::tempdir().unwrap();
    // dim[1..3] at byte 42, bitpix at 72, vox_offset (f32) at 108.
    type Patch = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Patch, &str)> = vec![
        (
            "huge.nii",
            Box::new(|b| {
                for k in 0..3 {
                    set_i16(b, 42 + 2 * k, 30000);
                }
            }),
            "truncated",
        ),
        ("bitpix.nii", Box::new(|b| set_i16(b, 72, 0)), "bitpix"),
        (
            "offset.nii",
            Box::new(|b| b[108..112].copy_from_slice(&f32::NAN.to_le_bytes())),
            "vox_offset",
        ),
        ("short.nii", Box::new(|b| b.truncate(200)), "short.nii"),
    ];
    for (name, patch, needle) in cases {
        let a = patched_nifti(d.path(), name, patch);
        let (ct, _) = csfuse::phantom::phantom_volumes(16, 4);
        let b = d.path().join("ok.nii");
        csfuse::formats::nifti::write(&b, &ct, &ct.data, ct.datatype).unwrap();
        let o = fuse(
            d.path(),
            a.to_str().unwrap(),
            "ok.nii",
            "f.nii.gz",
            &["--force"],
        );
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{name}: {}", stderr(&o));
    }
}

// ---- Hole 2: non-finite results ----------------------------------------------------------------

#[test]
fn hole02_float_tiff_near_the_float32_limit_gives_no_inf() {
    let d = tempfile::tempdir().unwrap();
    let n = 48;
    float_tiff(&d.path().join("a.tif"), n, |y, x| {
        3e38 * (((x * 7 + y * 3) % 13) as f64 / 6.0 - 1.0)
    });
    float_tiff(&d.path().join("b.tif"), n, |y, x| {
        if (x / 8 + y / 8) % 2 == 0 {
            -3.3e38
        } else {
            3.3e38
        }
    });
    let o = fuse(d.path(), "a.tif", "b.tif", "f.tif", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = read_f32_tiff(&d.path().join("f.tif"));
    assert_eq!(v.len(), n * n);
    assert!(
        v.iter().all(|x| x.is_finite()),
        "the fused float TIFF holds Inf or NaN"
    );
}

#[test]
fn hole02_huge_and_tiny_filters_are_refused() {
    let d = workdir();
    for (scale, name) in [(1e30, "huge.npy"), (1e-30, "tiny.npy")] {
        write_dict(&d.path().join(name), scale);
        let o = fuse(
            d.path(),
            "ct_like.png",
            "mr_like.png",
            "f.png",
            &["--cartoon-dict", name],
        );
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(name) && stderr(&o).contains("norm"),
            "{name}: {}",
            stderr(&o)
        );
        assert!(!d.path().join("f.png").exists());
    }
    // Slightly off norms are normalised, with a warning, and give the unit-norm result.
    write_dict(&d.path().join("off.npy"), 1.05);
    let o = fuse(
        d.path(),
        "ct_like.png",
        "mr_like.png",
        "f.png",
        &["--cartoon-dict", "off.npy"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("normalising"), "{}", stderr(&o));
    let o = fuse(d.path(), "ct_like.png", "mr_like.png", "unit.png", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = image::open(d.path().join("f.png")).unwrap().to_luma8();
    let b = image::open(d.path().join("unit.png")).unwrap().to_luma8();
    let maxd = a
        .pixels()
        .zip(b.pixels())
        .map(|(p, q)| p.0[0].abs_diff(q.0[0]))
        .max()
        .unwrap();
    assert!(maxd <= 1, "normalised dictionary differs by {maxd} levels");
}

#[test]
fn hole02_nan_and_zero_parameters_are_refused_before_any_work() {
    let d = workdir();
    let learn = |extra: &[&str]| {
        let mut a = vec![
            "learn",
            "ct_like.png",
            "--kind",
            "cartoon",
            "--tile",
            "32",
            "--iters",
            "2",
            "-o",
            "D.npy",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let code = |extra: &[&str]| {
        let mut a = vec![
            "sparse-code",
            "ct_like.png",
            "--dict",
            "D0.npy",
            "--lambda",
            "0.1",
            "--out-coef",
            "X.npy",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    write_dict(&d.path().join("D0.npy"), 1.0);
    let cases = [
        learn(&["--sigma", "0"]),
        learn(&["--sigma", "nan"]),
        learn(&["--lambda", "NaN"]),
        learn(&["--tv-weight", "nan"]),
        learn(&["--lambda", "inf"]),
        code(&["--highpass", "nan"]),
        code(&["--rho=-1"]),
        code(&["--tol", "nan"]),
        code(&["--relax", "2"]),
    ];
    for args in cases {
        let before = files_in(d.path());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = csfuse(&refs, d.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("invalid value"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_eq!(files_in(d.path()), before, "{args:?} wrote something");
    }
    let o = fuse(
        d.path(),
        "ct_like.png",
        "mr_like.png",
        "f.png",
        &["--memory-budget", "inf"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn hole02_a_diverged_solve_is_an_error_not_an_image() {
    // A NaN that slips into the pipeline (here: in the input plane) must stop the fusion.
    let (ct, mr) = csfuse::phantom::head_pair(32);
    let mut bad = ct.clone();
    bad.data[100] = f64::NAN;
    let mut e = csfuse::jobs::session::cpu_engine(csfuse::real::Precision::F32);
    let (dc, dt) = (csfuse::assets::cartoon(), csfuse::assets::texture());
    let r = csfuse::pipeline::fuse::fuse_pair(e.as_mut(), &bad, &mr, &dc, &dt, &Default::default());
    match r {
        Err(csfuse::Error::Numerical(msg)) => assert!(msg.contains("diverged"), "{msg}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a NaN input gave an image"),
    }
}

// ---- Hole 3: one output overwrites another -----------------------------------------------------

#[test]
fn hole03_outputs_naming_the_same_file_are_refused() {
    let d = workdir();
    for extra in [["--montage", "./f.png"], ["--report", "./f.png"]] {
        let mut args = vec!["fuse", "ct_like.png", "mr_like.png", "-o", "f.png"];
        args.extend_from_slice(&extra);
        let o = csfuse(&args, d.path());
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("two outputs"),
            "{extra:?}: {}",
            stderr(&o)
        );
        assert!(!d.path().join("f.png").exists());
    }
    write_dict(&d.path().join("Dc.npy"), 1.0);
    let before = std::fs::read(d.path().join("Dc.npy")).unwrap();
    let o = fuse(
        d.path(),
        "ct_like.png",
        "mr_like.png",
        "f.png",
        &["--report", "Dc.npy", "--force", "--cartoon-dict", "Dc.npy"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("same file as input"), "{}", stderr(&o));
    assert_eq!(std::fs::read(d.path().join("Dc.npy")).unwrap(), before);
}

// ---- Hole 4: batch destroys inputs -------------------------------------------------------------

#[test]
fn hole04_batch_refuses_an_output_that_is_another_rows_input() {
    let d = workdir();
    std::fs::write(
        d.path().join("list.csv"),
        "ct_like.png,mr_like.png,pet_like.png\npet_like.png,mr_like.png,x.png\n",
    )
    .unwrap();
    let pet = std::fs::read(d.path().join("pet_like.png")).unwrap();
    let o = csfuse(&["batch", "list.csv", "--out-dir", "."], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("list.csv:1") && stderr(&o).contains("input of the list"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(d.path().join("pet_like.png")).unwrap(), pet);
    assert!(!d.path().join("x.png").exists());
}

#[test]
fn hole04_batch_keeps_files_csfuse_did_not_write_unless_forced() {
    let d = workdir();
    std::fs::write(d.path().join("list.csv"), "ct_like.png,mr_like.png,f.png\n").unwrap();
    std::fs::create_dir(d.path().join("out")).unwrap();
    std::fs::write(d.path().join("out/f.png"), b"precious").unwrap();
    let o = csfuse(&["batch", "list.csv", "--out-dir", "out"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(d.path().join("out/f.png")).unwrap(),
        b"precious"
    );
    let o = csfuse(
        &["batch", "list.csv", "--out-dir", "out", "--force"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(image::open(d.path().join("out/f.png")).is_ok());
}

#[cfg(unix)]
#[test]
fn hole04_batch_outputs_stay_inside_out_dir_through_symlinks() {
    let d = workdir();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("out")).unwrap();
    std::os::unix::fs::symlink(outside.path(), d.path().join("out/link")).unwrap();
    std::fs::write(
        d.path().join("list.csv"),
        "ct_like.png,mr_like.png,link/f.png\n",
    )
    .unwrap();
    let o = csfuse(&["batch", "list.csv", "--out-dir", "out"], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("outside --out-dir"), "{}", stderr(&o));
    assert!(files_in(outside.path()).is_empty());
}

/// The confinement check must accept an absolute --out-dir that does not exist yet (its deepest
/// existing folder lies above it).
#[test]
fn hole04_a_new_absolute_out_dir_is_inside_itself() {
    let d = workdir();
    std::fs::write(d.path().join("list.csv"), "ct_like.png,mr_like.png,f.png\n").unwrap();
    let out = d.path().join("new/deeper");
    let o = csfuse(
        &["batch", "list.csv", "--out-dir", out.to_str().unwrap()],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("f.png.json").exists());
}

// ---- Hole 5: concurrent runs -------------------------------------------------------------------

#[test]
fn hole05_a_concurrent_batch_leaves_the_first_runs_temps_alone() {
    let d = workdir();
    std::fs::write(d.path().join("list.csv"), "ct_like.png,mr_like.png,f.png\n").unwrap();
    // The first run stops for a while with its outputs staged as temps.
    let first = Command::new(env!("CARGO_BIN_EXE_csfuse"))
        .args(["batch", "list.csv", "--out-dir", "out"])
        .env("CSFUSE_FAULT", "pause_before_commit_ms=4000")
        .current_dir(d.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = d.path().join("out");
    let t = std::time::Instant::now();
    while !out.is_dir() || temps_in(&out).is_empty() {
        assert!(t.elapsed().as_secs() < 60, "the first run staged nothing");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let second = csfuse(&["batch", "list.csv", "--out-dir", "out"], d.path());
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        !stderr(&second).contains("left by an interrupted run"),
        "{}",
        stderr(&second)
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "first run: {}", stderr(&first));
    assert!(temps_in(&out).is_empty(), "{:?}", temps_in(&out));
    assert!(read_json(&out.join("f.png.json"))["output"]["sha256"].is_string());
}

#[test]
fn hole05_shards_without_an_index_is_an_error() {
    let d = workdir();
    std::fs::write(d.path().join("list.csv"), "ct_like.png,mr_like.png\n").unwrap();
    let o = csfuse_env(
        &["batch", "list.csv", "--out-dir", "out", "--shards", "2"],
        d.path(),
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no shard index"), "{}", stderr(&o));
    assert!(!d.path().join("out").exists());
}

// ---- Hole 6: partial output sets ---------------------------------------------------------------

#[test]
fn hole06_a_failed_write_leaves_no_output_of_the_job() {
    let d = workdir();
    // Writes: 1 the image, 2 the montage, 3 the report.
    for k in 1..=3 {
        let o = csfuse_env(
            &[
                "fuse",
                "ct_like.png",
                "mr_like.png",
                "-o",
                "f.png",
                "--montage",
                "m.png",
                "--report",
                "r.json",
            ],
            d.path(),
            &[("CSFUSE_FAULT", &format!("io_error_at_write={k}"))],
        );
        assert_eq!(o.status.code(), Some(1), "write {k}: {}", stderr(&o));
        assert!(stderr(&o).contains("injected"), "{}", stderr(&o));
        for f in ["f.png", "m.png", "r.json"] {
            assert!(
                !d.path().join(f).exists(),
                "write {k} failed but {f} exists"
            );
        }
        assert!(temps_in(d.path()).is_empty(), "{:?}", temps_in(d.path()));
    }
    // Nothing was left, so a re-run needs no --force.
    let o = fuse(
        d.path(),
        "ct_like.png",
        "mr_like.png",
        "f.png",
        &["--montage", "m.png", "--report", "r.json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn hole06_a_failed_sidecar_write_leaves_no_batch_output() {
    let d = workdir();
    std::fs::write(d.path().join("list.csv"), "ct_like.png,mr_like.png,f.png\n").unwrap();
    let o = csfuse_env(
        &["batch", "list.csv", "--out-dir", "out"],
        d.path(),
        &[("CSFUSE_FAULT", "io_error_at_write=2")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!d.path().join("out/f.png").exists());
    assert!(!d.path().join("out/f.png.json").exists());
    assert!(temps_in(&d.path().join("out")).is_empty());
    let o = csfuse(&["batch", "list.csv", "--out-dir", "out"], d.path());
    assert!(stderr(&o).contains("1 fused"), "{}", stderr(&o));
}

// ---- Hole 7: checks that come after the work ---------------------------------------------------

#[test]
fn hole07_an_unwritable_folder_fails_before_the_work() {
    let d = workdir();
    // Root writes into any mode-555 folder; /sys refuses even root.
    let ro = tempfile::tempdir().unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    let dir = if root {
        PathBuf::from("/sys")
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(ro.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
        ro.path().to_path_buf()
    };
    let out = dir.join("csfuse-test-f.png");
    let o = fuse(
        d.path(),
        "ct_like.png",
        "mr_like.png",
        out.to_str().unwrap(),
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("cannot create files in folder"),
        "{}",
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("fusing ct_like"),
        "the work ran first: {}",
        stderr(&o)
    );
}

#[test]
fn hole07_inputs_are_checked_before_any_adapter_is_probed() {
    let d = workdir();
    let o = csfuse_env(
        &[
            "fuse",
            "missing.png",
            "mr_like.png",
            "-o",
            "f.png",
            "--backend",
            "gpu",
        ],
        d.path(),
        &[("WGPU_ADAPTER_NAME", "no-such-adapter")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("missing.png"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("GPU"), "{}", stderr(&o));
}

// ---- Hole 8: signals ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn hole08_sigterm_and_sigint_remove_the_runs_temps() {
    let d = workdir();
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let child = Command::new(env!("CARGO_BIN_EXE_csfuse"))
            .args([
                "fuse",
                "ct_like.png",
                "mr_like.png",
                "-o",
                "f.png",
                "--report",
                "r.json",
            ])
            .env("CSFUSE_FAULT", "pause_before_commit_ms=20000")
            .current_dir(d.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while temps_in(d.path()).len() < 2 {
            assert!(t.elapsed().as_secs() < 60, "nothing was staged");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        unsafe { libc::kill(child.id() as libc::pid_t, sig) };
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        assert!(stderr(&o).contains("interrupted"), "{}", stderr(&o));
        assert!(temps_in(d.path()).is_empty(), "{:?}", temps_in(d.path()));
        assert!(!d.path().join("f.png").exists());
    }
}

#[test]
fn hole08_fuse_removes_temps_of_dead_runs_for_its_outputs() {
    let d = workdir();
    // A pid far above any pid_max is never alive.
    let stale = d.path().join(".f.png.csfuse-tmp-4000000");
    std::fs::write(&stale, b"half").unwrap();
    let nifti_dir = d.path().join(".r.json.csfuse-tmp-4000001");
    std::fs::create_dir(&nifti_dir).unwrap();
    let o = fuse(
        d.path(),
        "ct_like.png",
        "mr_like.png",
        "f.png",
        &["--report", "r.json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(temps_in(d.path()).is_empty(), "{:?}", temps_in(d.path()));
}

// ---- Hole 9: memory ----------------------------------------------------------------------------

#[test]
fn hole09_a_pair_over_the_memory_budget_is_refused_before_work() {
    let d = workdir();
    let o = fuse(
        d.path(),
        "ct_like.png",
        "mr_like.png",
        "f.png",
        &["--memory-budget", "1M"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--memory-budget"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("fusing ct_like"), "{}", stderr(&o));
    // 4096x4096 needs far more than 8 GiB.
    let big = image::GrayImage::from_fn(4096, 4096, |x, y| image::Luma([((x ^ y) & 255) as u8]));
    big.save(d.path().join("big_a.png")).unwrap();
    big.save(d.path().join("big_b.png")).unwrap();
    let o = fuse(
        d.path(),
        "big_a.png",
        "big_b.png",
        "f.png",
        &["--memory-budget", "8G"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("4096x4096") && stderr(&o).contains("MiB"),
        "{}",
        stderr(&o)
    );
}

// ---- Hole 10: silent surprises -----------------------------------------------------------------

#[test]
fn hole10_a_multipage_tiff_is_refused() {
    let d = workdir();
    let f = std::fs::File::create(d.path().join("stack.tif")).unwrap();
    let mut enc = tiff::encoder::TiffEncoder::new(f).unwrap();
    let page: Vec<u8> = (0..64 * 64).map(|i| (i % 251) as u8).collect();
    for _ in 0..3 {
        enc.write_image::<tiff::encoder::colortype::Gray8>(64, 64, &page)
            .unwrap();
    }
    drop(enc);
    let o = fuse(d.path(), "stack.tif", "mr_like.png", "f.png", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("3 pages"), "{}", stderr(&o));
}

fn write_u16(path: &Path, n: u32, f: impl Fn(u32, u32) -> u16) {
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(n, n, |x, y| image::Luma([f(x, y)]))
        .save(path)
        .unwrap();
}

#[test]
fn hole10_a_constant_source_keeps_its_value() {
    let d = tempfile::tempdir().unwrap();
    let n = 48;
    write_u16(&d.path().join("a.png"), n, |x, y| ((x + y) * 625) as u16);
    write_u16(&d.path().join("b.png"), n, |_, _| 30000);
    let o = fuse(d.path(), "a.png", "b.png", "f.png", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let f = image::open(d.path().join("f.png")).unwrap().to_luma16();
    let mean_f = f.pixels().map(|p| p.0[0] as f64).sum::<f64>() / (n * n) as f64;
    let mean_a = (0..n * n)
        .map(|i| ((i / n + i % n) * 625) as f64)
        .sum::<f64>()
        / (n * n) as f64;
    // The base layers are averaged: the result's mean sits between A's mean and 30000.
    let want = 0.5 * (mean_a + 30000.0);
    assert!(
        (mean_f - want).abs() < 0.1 * want,
        "mean {mean_f}, want about {want} (a constant source mapped to 0 gives {})",
        0.5 * mean_a
    );
}

#[test]
fn hole10_a_hot_pixel_is_warned_about_and_a_robust_range_resists_it() {
    let d = tempfile::tempdir().unwrap();
    let n = 48;
    let val = |y: usize, x: usize| ((x * 5 + y * 3) % 17) as f64 * 100.0;
    float_tiff(&d.path().join("a.tif"), n, |y, x| {
        if (y, x) == (3, 3) {
            1e30
        } else {
            val(y, x)
        }
    });
    float_tiff(&d.path().join("b.tif"), n, |y, x| val(x, y));
    let o = fuse(d.path(), "a.tif", "b.tif", "f.tif", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--intensity-range p0.5-99.5"),
        "{}",
        stderr(&o)
    );
    let o = fuse(
        d.path(),
        "a.tif",
        "b.tif",
        "g.tif",
        &["--intensity-range", "p0.5-99.5", "--report", "r.json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("outliers"), "{}", stderr(&o));
    let g = read_f32_tiff(&d.path().join("g.tif"));
    // The result keeps the structure in the inputs' units instead of a squashed constant.
    let (lo, hi) = g
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
    assert!(hi - lo > 800.0 && hi < 2000.0, "range {lo}..{hi}");
    assert!(read_json(&d.path().join("r.json"))["intensity_range"]["Percentile"].is_object());
    let o = fuse(
        d.path(),
        "a.tif",
        "b.tif",
        "h.tif",
        &["--intensity-range", "p99-1"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn hole10_batch_errors_name_the_right_line_after_comments_and_blanks() {
    let d = workdir();
    std::fs::write(
        d.path().join("list.csv"),
        "# pairs\n\n# more\nct_like.png,mr_like.png,a.png\n\nct_like.png\n",
    )
    .unwrap();
    let o = csfuse(&["batch", "list.csv", "--out-dir", "out"], d.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("list.csv:6"), "{}", stderr(&o));
    std::fs::write(
        d.path().join("list.csv"),
        "# pairs\n\nct_like.png,mr_like.png,a.png\n# x\nmissing.png,mr_like.png,b.png\n",
    )
    .unwrap();
    let o = csfuse(&["batch", "list.csv", "--out-dir", "out"], d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("list.csv:5"), "{}", stderr(&o));
}

#[test]
fn hole10_adding_montage_to_a_finished_batch_makes_the_montages() {
    let d = workdir();
    std::fs::write(d.path().join("list.csv"), "ct_like.png,mr_like.png,f.png\n").unwrap();
    let o = csfuse(&["batch", "list.csv", "--out-dir", "out"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = csfuse(
        &["batch", "list.csv", "--out-dir", "out", "--montage"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 fused"), "{}", stderr(&o));
    assert!(d.path().join("out/f.png.montage.png").exists());
    let o = csfuse(
        &["batch", "list.csv", "--out-dir", "out", "--montage"],
        d.path(),
    );
    assert!(
        stderr(&o).contains("0 fused, 1 up to date"),
        "{}",
        stderr(&o)
    );
}

// ---- Hole 11: non-UTF-8 names ------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn hole11_file_names_that_are_not_utf8_work() {
    use std::os::unix::ffi::OsStrExt;
    let d = workdir();
    let name = |s: &[u8]| PathBuf::from(std::ffi::OsStr::from_bytes(s));
    let (a, out) = (name(b"ct_\xff.png"), name(b"fused_\xfe.png"));
    std::fs::copy(d.path().join("ct_like.png"), d.path().join(&a)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_csfuse"))
        .arg("fuse")
        .arg(&a)
        .arg("mr_like.png")
        .arg("-o")
        .arg(&out)
        .args(["--report", "r.json"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(d.path().join(&out).exists());
    // A batch into a folder whose name is not UTF-8 writes each output with its sidecar.
    std::fs::write(d.path().join("list.csv"), "ct_like.png,mr_like.png,f.png\n").unwrap();
    let dir = name(b"out_\xff");
    for _ in 0..2 {
        let o = Command::new(env!("CARGO_BIN_EXE_csfuse"))
            .args(["batch", "list.csv", "--out-dir"])
            .arg(&dir)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert!(d.path().join(&dir).join("f.png.json").exists());
}

// ---- Hole 12: small files, huge memory; too many threads ---------------------------------------

#[test]
fn hole12_a_small_nifti_claiming_a_huge_volume_is_refused_before_reading() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let p = patched_nifti(d.path(), "big.nii", |b| {
        for k in 0..3 {
            set_i16(b, 42 + 2 * k, 3000);
        }
    });
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(d.path().join("big.nii.gz")).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(&std::fs::read(&p).unwrap()).unwrap();
    gz.finish().unwrap();
    std::fs::copy(d.path().join("big.nii.gz"), d.path().join("big2.nii.gz")).unwrap();
    let o = fuse(
        d.path(),
        "big.nii.gz",
        "big2.nii.gz",
        "f.nii.gz",
        &["--memory-budget", "16G"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--memory-budget") && stderr(&o).contains("[3000, 3000, 3000]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn hole12_more_threads_than_cores_are_capped_with_a_warning() {
    let d = tempfile::tempdir().unwrap();
    let o = csfuse(
        &[
            "--threads",
            "512",
            "phantom",
            "--size",
            "16",
            "--out-dir",
            ".",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("more than the"), "{}", stderr(&o));
}
