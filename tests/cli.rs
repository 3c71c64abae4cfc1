//! The `csfuse` program as a user runs it: success paths, and every bad-input case failing with a
//! message that names the file, a non-zero exit code, and nothing written.

mod common;
use common::{csfuse, csfuse_env, files_in, read_json, stderr};
use std::path::Path;

/// A temp folder with a 64x64 phantom pair (and the PET-like colour image).
fn workdir() -> tempfile::TempDir {
    common::phantom_dir(64)
}

/// Run a fuse call that must fail: non-zero exit, stderr mentions each of `needles`, no new files.
fn fails(dir: &Path, args: &[&str], needles: &[&str]) {
    let before = files_in(dir);
    let o = csfuse(args, dir);
    let err = stderr(&o);
    assert!(!o.status.success(), "{args:?} succeeded");
    for n in needles {
        assert!(err.contains(n), "{args:?}: stderr lacks {n:?}:\n{err}");
    }
    assert_eq!(files_in(dir), before, "{args:?} left files behind");
}

/// Arguments of `csfuse fuse ct_like.png mr_like.png -o OUT EXTRA...` on the phantom pair.
fn fuse_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["fuse", "ct_like.png", "mr_like.png", "-o", out];
    args.extend_from_slice(extra);
    args
}

/// `csfuse fuse ct_like.png mr_like.png -o OUT EXTRA...` must fail as [`fails`] describes.
fn fuse_fails(dir: &Path, out: &str, extra: &[&str], needles: &[&str]) {
    fails(dir, &fuse_args(out, extra), needles);
}

fn write_npy(path: &Path, shape: &[usize], data: &[f64]) {
    std::fs::write(
        path,
        csfuse::formats::npy::to_bytes(shape, data, csfuse::formats::npy::NpyDtype::F32),
    )
    .unwrap();
}

#[test]
fn fuse_writes_image_and_report() {
    let d = workdir();
    let o = csfuse(&fuse_args("f.png", &["--report", "r.json"]), d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let img = image::open(d.path().join("f.png")).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    assert!(matches!(img, image::DynamicImage::ImageLuma8(_)));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("r.json")).unwrap()).unwrap();
    for key in [
        "params",
        "timings_ms",
        "objectives",
        "backend",
        "dictionaries",
        "inputs",
    ] {
        assert!(r.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(r["params"]["lowpass_lambda"], 60.0);
    let obj = r["objectives"]["a"]["cartoon"]["objective"]
        .as_f64()
        .unwrap();
    assert!(obj.is_finite() && obj > 0.0);
    assert!(r["timings_ms"]["fusion_total"].as_f64().unwrap() > 0.0);
    // Every solve's ADMM iterations, within each outer iteration's cap, and their total.
    let admm_iterations = |r: &serde_json::Value| {
        let caps: Vec<u64> = r["params"]["mca"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["max_iter"].as_u64().unwrap())
            .collect();
        let it = &r["admm_iterations"];
        let mut total = 0;
        for (src, part) in [
            ("a", "cartoon"),
            ("a", "texture"),
            ("b", "cartoon"),
            ("b", "texture"),
        ] {
            let per: Vec<u64> = it[src][part]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(
                per.len(),
                caps.len(),
                "{src} {part}: one count per outer iteration"
            );
            assert!(
                per.iter().zip(&caps).all(|(n, c)| (1..=*c).contains(n)),
                "{per:?}"
            );
            total += per.iter().sum::<u64>();
        }
        assert_eq!(it["total"], total);
        (caps.len(), total)
    };
    let (outer, total) = admm_iterations(&r);
    assert!(
        outer == 3 && total <= 200,
        "default mode: {outer} outer iterations, {total}"
    );
    let o = csfuse(
        &fuse_args("p.png", &["--mode", "paper", "--report", "p.json"]),
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let (outer, total) = admm_iterations(&read_json(&d.path().join("p.json")));
    assert!(outer == 6 && total <= 720, "paper: {outer}, {total}");
    // A second run refuses to replace the result unless --force.
    fuse_fails(d.path(), "f.png", &[], &["f.png", "exists", "--force"]);
    let o = csfuse(&fuse_args("f.png", &["--force"]), d.path());
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn sixteen_bit_pair_gives_sixteen_bit_tiff_in_the_inputs_range() {
    let d = workdir();
    // 12-bit data in 16-bit files (as CT often is), spanning exactly [0, 4095]; the 8-bit twins span
    // [0, 255], so both runs fuse the same [0, 1] values.
    for name in ["ct_like", "mr_like"] {
        let g = common::full_range_8bit(d.path(), name);
        let g16 =
            image::ImageBuffer::<image::Luma<u16>, _>::from_fn(g.width(), g.height(), |x, y| {
                image::Luma([(g.get_pixel(x, y)[0] as f64 * 4095.0 / 255.0).round() as u16])
            });
        g16.save(d.path().join(format!("{name}16.png"))).unwrap();
    }
    let o = csfuse(
        &["fuse", "ct_like16.png", "mr_like16.png", "-o", "f16.tif"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f16 = image::open(d.path().join("f16.tif")).unwrap();
    assert!(matches!(f16, image::DynamicImage::ImageLuma16(_)));
    let a = f16.to_luma16();
    assert!(
        a.pixels().all(|p| p[0] <= 4095),
        "result leaves the inputs' range"
    );
    assert!(
        a.pixels().any(|p| p[0] > 3000),
        "result not scaled back to the inputs' range"
    );
    let o = csfuse(
        &["fuse", "ct_like8.png", "mr_like8.png", "-o", "f8.png"],
        d.path(),
    );
    assert!(o.status.success());
    let b = image::open(d.path().join("f8.png")).unwrap().to_luma8();
    let maxd = a
        .pixels()
        .zip(b.pixels())
        .map(|(p, q)| (p[0] as f64 / 4095.0 - q[0] as f64 / 255.0).abs())
        .fold(0.0, f64::max);
    assert!(
        maxd < 2.0 / 255.0,
        "16-bit and 8-bit results differ by {maxd}"
    );
}

#[test]
fn sparse_code_prints_json_and_writes_hwm_npy() {
    let d = workdir();
    // The built-in cartoon dictionary, as a user would pass a file.
    let dict = d.path().join("Dc.npy");
    let dc = csfuse::assets::cartoon();
    write_npy(&dict, &[dc.fh, dc.fw, dc.m], &dc.to_hwm());
    let o = csfuse(
        &[
            "sparse-code",
            "mr_like.png",
            "--dict",
            dict.to_str().unwrap(),
            "--lambda",
            "0.1",
            "--highpass",
            "60",
            "--iters",
            "12",
            "--tol",
            "0",
            "--out-coef",
            "x.npy",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "iterations",
        "objective",
        "dfid",
        "l1",
        "r",
        "s",
        "rho",
        "ms_per_iter",
    ] {
        assert!(line[key].is_number(), "JSON line lacks {key}: {line}");
    }
    assert_eq!(line["iterations"], 12);
    let arr = csfuse::formats::npy::read(&d.path().join("x.npy")).unwrap();
    assert_eq!(arr.shape, vec![64, 64, 32]);
}

/// `sparse-code` codes against the filters as given, as SPORCO's ConvBPDN does: filters scaled by
/// 2 at (lambda, rho) are the problem of the unit filters at (lambda / 2, rho / 4) with every
/// iterate doubled, so the objectives agree and the maps are halved; `--normalize` undoes the
/// scaling.
#[test]
fn sparse_code_uses_the_filters_as_given() {
    let d = workdir();
    let dc = csfuse::assets::cartoon();
    let doubled: Vec<f64> = dc.to_hwm().iter().map(|v| 2.0 * v).collect();
    write_npy(
        &d.path().join("D1.npy"),
        &[dc.fh, dc.fw, dc.m],
        &dc.to_hwm(),
    );
    write_npy(&d.path().join("D2.npy"), &[dc.fh, dc.fw, dc.m], &doubled);
    let code = |dict: &str, lam: &str, rho: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "sparse-code",
            "mr_like.png",
            "--dict",
            dict,
            "--lambda",
            lam,
            "--rho",
            rho,
            "--no-auto-rho",
            "--highpass",
            "60",
            "--iters",
            "15",
            "--tol",
            "0",
            "--out-coef",
            out,
            "--precision",
            "f64",
        ];
        args.extend_from_slice(extra);
        let o = csfuse(&args, d.path());
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(!stderr(&o).contains("normalising"), "{}", stderr(&o));
        let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let maps = csfuse::formats::npy::read(&d.path().join(out))
            .unwrap()
            .data;
        (line["objective"].as_f64().unwrap(), maps)
    };
    let (o1, x1) = code("D1.npy", "0.05", "1", "x1.npy", &[]);
    let (o2, x2) = code("D2.npy", "0.1", "4", "x2.npy", &[]);
    assert!((o2 / o1 - 1.0).abs() < 1e-9, "objectives {o2} and {o1}");
    let worst = x1
        .iter()
        .zip(&x2)
        .map(|(a, b)| (a - 2.0 * b).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 1e-9,
        "maps differ from half the unit filters' by {worst}"
    );
    // Normalised on request: both give the unit filters' problem.
    let (on1, xn1) = code("D1.npy", "0.05", "1", "xn1.npy", &["--normalize"]);
    let (on2, xn2) = code("D2.npy", "0.05", "1", "xn2.npy", &["--normalize"]);
    assert!((on2 / on1 - 1.0).abs() < 1e-9, "objectives {on2} and {on1}");
    assert!(xn1.iter().zip(&xn2).all(|(a, b)| (a - b).abs() < 1e-9));
}

#[test]
fn missing_corrupt_and_empty_inputs() {
    let d = workdir();
    fails(
        d.path(),
        &["fuse", "nope.png", "mr_like.png", "-o", "f.png"],
        &["nope.png", "No such file"],
    );
    std::fs::write(
        d.path().join("junk.png"),
        b"\x89PNG\r\n\x1a\nthis is not a png",
    )
    .unwrap();
    fails(
        d.path(),
        &["fuse", "junk.png", "mr_like.png", "-o", "f.png"],
        &["junk.png", "cannot decode"],
    );
    std::fs::write(d.path().join("empty.tif"), b"").unwrap();
    fails(
        d.path(),
        &["fuse", "ct_like.png", "empty.tif", "-o", "f.png"],
        &["empty.tif"],
    );
}

#[test]
fn size_mismatch_and_transparency_are_refused() {
    let d = workdir();
    image::GrayImage::new(64, 48)
        .save(d.path().join("small.png"))
        .unwrap();
    fails(
        d.path(),
        &["fuse", "ct_like.png", "small.png", "-o", "f.png"],
        &["differ in size", "small.png", "64x48"],
    );
    let mut rgba = image::RgbaImage::new(64, 64);
    rgba.put_pixel(3, 3, image::Rgba([200, 10, 10, 128]));
    rgba.save(d.path().join("pet.png")).unwrap();
    fails(
        d.path(),
        &["fuse", "ct_like.png", "pet.png", "-o", "f.png"],
        &["pet.png", "transparent"],
    );
    // Gray stored as RGB is accepted.
    let grey_rgb = image::open(d.path().join("mr_like.png")).unwrap().to_rgb8();
    grey_rgb.save(d.path().join("mr_rgb.png")).unwrap();
    let o = csfuse(
        &["fuse", "ct_like.png", "mr_rgb.png", "-o", "g.png"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn bad_dictionaries_are_refused() {
    let d = workdir();
    write_npy(&d.path().join("flat.npy"), &[8, 32], &vec![0.1; 256]);
    fuse_fails(
        d.path(),
        "f.png",
        &["--cartoon-dict", "flat.npy"],
        &["flat.npy", "(h, w, M)"],
    );
    let mut v = vec![0.1; 8 * 8 * 4];
    v[17] = f64::NAN;
    write_npy(&d.path().join("nan.npy"), &[8, 8, 4], &v);
    fuse_fails(
        d.path(),
        "f.png",
        &["--texture-dict", "nan.npy"],
        &["nan.npy", "non-finite"],
    );
    write_npy(
        &d.path().join("big.npy"),
        &[80, 80, 2],
        &vec![0.1; 80 * 80 * 2],
    );
    fuse_fails(
        d.path(),
        "f.png",
        &["--texture-dict", "big.npy"],
        &["big.npy", "80x80"],
    );
    std::fs::write(d.path().join("text.npy"), b"hello").unwrap();
    fuse_fails(
        d.path(),
        "f.png",
        &["--cartoon-dict", "text.npy"],
        &["text.npy", "magic"],
    );
}

#[test]
fn outputs_that_would_lose_data_are_refused() {
    let d = workdir();
    let before = std::fs::read(d.path().join("mr_like.png")).unwrap();
    fuse_fails(
        d.path(),
        "mr_like.png",
        &["--force"],
        &["mr_like.png", "same file as input"],
    );
    // The same file reached by another path is still the same file.
    std::fs::create_dir(d.path().join("sub")).unwrap();
    fuse_fails(
        d.path(),
        "./sub/../ct_like.png",
        &["--force"],
        &["same file"],
    );
    assert_eq!(std::fs::read(d.path().join("mr_like.png")).unwrap(), before);
    fuse_fails(d.path(), "f.xyz", &[], &["f.xyz", "extension"]);
    fuse_fails(d.path(), "nodir/f.png", &[], &["nodir", "does not exist"]);
    fuse_fails(
        d.path(),
        "f.png",
        &["--report", "f.png"],
        &["f.png", "two outputs"],
    );
}

/// `--backend gpu --validate` runs on whatever adapter there is (lavapipe without a GPU), passes its
/// tolerance, names the adapter in the report, and gives the CPU engine's image to within one level.
#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn gpu_backend_validates_and_reports_adapter() {
    let d = workdir();
    let dc = csfuse::assets::cartoon();
    write_npy(
        &d.path().join("Dc.npy"),
        &[dc.fh, dc.fw, dc.m],
        &dc.to_hwm(),
    );
    let o = csfuse(
        &fuse_args(
            "g.png",
            &["--backend", "gpu", "--validate", "--report", "g.json"],
        ),
        d.path(),
    );
    assert!(
        o.status.success(),
        "GPU fuse failed (is an adapter installed?): {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("validate: GPU vs CPU"),
        "{}",
        stderr(&o)
    );
    let r = read_json(&d.path().join("g.json"));
    assert!(!r["adapter"]["name"].as_str().unwrap().is_empty());
    assert!(r["adapter"]["backend"].is_string() && r["adapter"]["device_type"].is_string());
    assert_eq!(r["validation"]["passed"], true);
    assert!(r["validation"]["max_abs_diff"].as_f64().unwrap() < 0.01);
    let o = csfuse(&fuse_args("c.png", &["--backend", "cpu"]), d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let g = image::open(d.path().join("g.png")).unwrap().to_luma8();
    let c = image::open(d.path().join("c.png")).unwrap().to_luma8();
    let maxd = g
        .pixels()
        .zip(c.pixels())
        .map(|(a, b)| a.0[0].abs_diff(b.0[0]))
        .max()
        .unwrap();
    assert!(maxd <= 1, "GPU and CPU images differ by {maxd} levels");

    let o = csfuse(
        &[
            "sparse-code",
            "ct_like.png",
            "--dict",
            "Dc.npy",
            "--lambda",
            "0.1",
            "--iters",
            "10",
            "--out-coef",
            "x.npy",
            "--backend",
            "gpu",
            "--validate",
        ],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(line["adapter"]["name"].is_string() && line["validation"]["passed"] == true);
}

#[test]
fn backend_choices_fail_clearly_or_fall_back() {
    let d = workdir();
    fuse_fails(
        d.path(),
        "f.png",
        &["--backend", "gpu", "--precision", "f64"],
        &["f32", "--backend cpu"],
    );
    fuse_fails(
        d.path(),
        "f.png",
        &["--backend", "cpu", "--validate"],
        &["--validate"],
    );
    let no_such = [("WGPU_ADAPTER_NAME", "no-such-adapter")];
    let before = files_in(d.path());
    let o = csfuse_env(
        &fuse_args("f.png", &["--backend", "gpu"]),
        d.path(),
        &no_such,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no-such-adapter"), "{}", stderr(&o));
    assert_eq!(files_in(d.path()), before);
    // auto falls back to the CPU with a log line and still fuses
    let o = csfuse_env(
        &fuse_args("f.png", &["--report", "r.json"]),
        d.path(),
        &no_such,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("falling back to the CPU engine"),
        "{}",
        stderr(&o)
    );
    assert!(read_json(&d.path().join("r.json"))["backend"]
        .as_str()
        .unwrap()
        .starts_with("cpu"));
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn devices_lists_adapters() {
    let d = tempfile::tempdir().unwrap();
    let o = csfuse(&["devices", "--json"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let first: serde_json::Value = serde_json::from_str(
        text.lines()
            .next()
            .expect("no adapter listed: install mesa-vulkan-drivers libvulkan1"),
    )
    .unwrap();
    for key in [
        "name",
        "backend",
        "device_type",
        "max_storage_binding",
        "max_workgroup_storage",
    ] {
        assert!(first.get(key).is_some(), "devices --json lacks {key}");
    }
    let o = csfuse(&["devices"], d.path());
    assert!(String::from_utf8_lossy(&o.stdout).contains(first["name"].as_str().unwrap()));
}

/// A headless run (no display, no XDG_RUNTIME_DIR: SSH, containers, Slurm) prints only csfuse's own
/// log lines, and nothing with -q; the GPU probing of `auto` and `devices` included.
#[test]
fn headless_runs_print_only_csfuse_lines() {
    let d = workdir();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_csfuse"))
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("WAYLAND_DISPLAY")
            .env_remove("DISPLAY")
            .current_dir(d.path())
            .output()
            .unwrap()
    };
    let o = run(&["-q", "fuse", "ct_like.png", "mr_like.png", "-o", "q.png"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "-q printed something");
    let o = run(&["fuse", "ct_like.png", "mr_like.png", "-o", "v.png"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for line in stderr(&o).lines() {
        assert!(
            line.starts_with("[INFO ]") || line.starts_with("[WARN ]"),
            "a line that is not csfuse's: {line:?}"
        );
    }
    let o = run(&["devices"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("XDG_RUNTIME_DIR"), "{}", stderr(&o));
}

#[test]
fn completions_and_man_page_are_generated() {
    let d = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "_csfuse()"),
        ("zsh", "#compdef csfuse"),
        ("fish", "complete -c csfuse"),
    ] {
        let o = csfuse(&["completions", shell], d.path());
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(marker) && text.contains("batch"),
            "{shell}: {text:.200}"
        );
    }
    let o = csfuse(&["man"], d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(".TH csfuse 1") && text.contains("fuse"),
        "{text:.200}"
    );
}

/// On a terminal a single fusion shows a bar over its sparse-coding solves (through `script`, which
/// gives the program a pseudo-terminal); on a pipe it prints only its log lines (see the test above).
#[test]
fn a_single_fusion_shows_a_progress_bar_on_a_terminal() {
    let d = workdir();
    let bin = env!("CARGO_BIN_EXE_csfuse");
    let o = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{bin} fuse ct_like.png mr_like.png -o f.png --backend cpu"),
            "/dev/null",
        ])
        .current_dir(d.path())
        .output()
        .expect("`script` (util-linux) runs the program on a pseudo-terminal");
    assert!(o.status.success(), "{}", stderr(&o));
    let tty = String::from_utf8_lossy(&o.stdout);
    // The default mode's 3 outer iterations, a cartoon and a texture solve each (both sources
    // solved as one batch).
    assert!(tty.contains("6/6 sparse-coding solves"), "{tty}");
}

#[test]
fn metrics_scores_a_fusion_and_names_a_bad_input() {
    let d = workdir();
    let o = csfuse(&fuse_args("f.png", &["--backend", "cpu"]), d.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = csfuse(
        &["metrics", "ct_like.png", "mr_like.png", "f.png", "--json"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for k in [
        "EN",
        "SD",
        "SF",
        "MI",
        "Q_MI",
        "SSIM_sum",
        "Q_ABF",
        "Q_ABF_vifb",
        "Q_S",
        "Q_Y",
        "Q_CB",
    ] {
        assert!(s[k].as_f64().is_some_and(f64::is_finite), "{k}: {s}");
    }
    // The fusion keeps more of both sources' edges than either source alone does of the other.
    let alone = csfuse(
        &[
            "metrics",
            "ct_like.png",
            "mr_like.png",
            "ct_like.png",
            "--json",
        ],
        d.path(),
    );
    let alone: serde_json::Value = serde_json::from_slice(&alone.stdout).unwrap();
    assert!(
        s["Q_ABF"].as_f64() > alone["Q_ABF"].as_f64(),
        "{s} vs {alone}"
    );
    // The table names every metric.
    let o = csfuse(
        &["metrics", "ct_like.png", "mr_like.png", "f.png"],
        d.path(),
    );
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("Q_ABF ") && table.contains("SSIM_sum"),
        "{table}"
    );
    fails(
        d.path(),
        &["metrics", "ct_like.png", "missing.png", "f.png"],
        &["missing.png"],
    );
}

/// `learn` takes a colour image by its luminance Y, the plane `fuse` decomposes: the dictionary
/// equals the one learned from Y stored as a float TIFF.
#[test]
fn learn_takes_colour_images_by_their_luminance() {
    let d = common::phantom_dir(64);
    let rgb = image::open(d.path().join("pet_like.png"))
        .unwrap()
        .to_rgb8();
    let planes: [csfuse::plane::Plane; 3] = std::array::from_fn(|c| {
        let v = rgb.pixels().map(|p| p.0[c] as f64 / 255.0).collect();
        csfuse::plane::Plane::from_vec(64, 64, v)
    });
    let [y, _, _] = csfuse::formats::colour::split(&planes);
    // Y as a float TIFF, written by csfuse's own writer (f32: Y rounded to float precision).
    csfuse::formats::image::write_gray(
        &d.path().join("y.tif"),
        &y,
        csfuse::formats::image::SampleFormat::F32,
    )
    .unwrap();
    let learn = |src: &str, out: &str| {
        let args = [
            "--threads",
            "1",
            "learn",
            src,
            "--kind",
            "texture",
            "--filters",
            "4",
            "--tile",
            "32",
            "--iters",
            "5",
            "-o",
            out,
        ];
        let o = csfuse(&args, d.path());
        assert!(o.status.success(), "{src}: {}", stderr(&o));
        csfuse::dictionary::Dictionary::load(&d.path().join(out)).unwrap()
    };
    let (colour, gray) = (learn("pet_like.png", "colour.npy"), learn("y.tif", "y.npy"));
    let diff = colour
        .data
        .iter()
        .zip(&gray.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, f64::max);
    assert!(diff < 1e-4, "dictionaries differ by {diff}");
}

/// With a --lambda far above the texture's scale no code uses most filters, so they are their
/// random start: `learn` says so and suggests a smaller one; with that one it is quiet.
#[test]
fn learn_warns_when_filters_stay_random() {
    let d = common::phantom_dir(128);
    let learn = |lambda: &str| {
        let out = format!("d{lambda}.npy");
        let args = [
            "learn",
            "ct_like.png",
            "mr_like.png",
            "--kind",
            "texture",
            "--filters",
            "8",
            "--iters",
            "10",
            "--tile",
            "64",
            "--lambda",
            lambda,
            "-o",
            &out,
        ];
        let o = csfuse(&args, d.path());
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    let warned = learn("0.1");
    assert!(
        warned.contains("of 8 learned filters are used by no training tile")
            && warned.contains("--lambda 0.003"),
        "{warned}"
    );
    let quiet = learn("0.003");
    assert!(!quiet.contains("random start"), "{quiet}");
}

/// `--base-share`, `--base-top`, `--base-bright` and `--vote-radius` set the pyramid mode's rules:
/// the defaults given explicitly change nothing, other values change the result, the paper mode and
/// values out of range are refused with nothing written, and the report records the settings.
#[test]
fn the_rule_options_set_the_pyramid_rules() {
    let d = workdir();
    let fuse = |out: &str, extra: &[&str]| {
        let mut args = fuse_args(out, extra);
        args.extend(["--backend", "cpu", "--threads", "2"]);
        let o = csfuse(&args, d.path());
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        std::fs::read(d.path().join(out)).unwrap()
    };
    let params = |report: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(d.path().join(report)).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()["params"].clone()
    };
    let default = fuse("default.png", &["--report", "default.json"]);
    let p = params("default.json");
    let given = [
        p["base"]["share"].to_string(),
        p["base"]["top"].to_string(),
        p["base"]["bright"].to_string(),
        p["vote_radius"].to_string(),
        p["texture_rule"].as_str().unwrap().to_string(),
    ];
    let explicit = fuse(
        "explicit.png",
        &[
            "--base-share",
            &given[0],
            "--base-top",
            &given[1],
            "--base-bright",
            &given[2],
            "--vote-radius",
            &given[3],
            "--texture-rule",
            &given[4],
        ],
    );
    assert_eq!(
        default, explicit,
        "the defaults given explicitly ({given:?}) changed the result"
    );
    let other = fuse(
        "other.png",
        &[
            "--base-share",
            "0.9",
            "--base-top",
            "1",
            "--base-bright",
            "0.7",
            "--vote-radius",
            "7",
            "--texture-rule",
            "choose",
            "--report",
            "other.json",
        ],
    );
    assert_ne!(default, other, "other rule settings changed nothing");
    let p = params("other.json");
    assert_eq!(p["base"]["share"], 0.9, "{p}");
    assert_eq!(p["base"]["top"], 1.0, "{p}");
    assert_eq!(p["base"]["bright"], 0.7, "{p}");
    assert_eq!(p["vote_radius"], 7, "{p}");
    assert_eq!(p["texture_rule"], "choose", "{p}");
    for (option, value) in [
        ("--base-bright", "0.7"),
        ("--vote-radius", "7"),
        ("--texture-rule", "choose"),
    ] {
        let one = fuse("one.png", &[option, value, "--force"]);
        assert_ne!(default, one, "{option} {value} changed nothing");
        fuse_fails(
            d.path(),
            "paper.png",
            &["--mode", "paper", option, value],
            &[option, "pyramid mode"],
        );
    }
    fuse_fails(
        d.path(),
        "bad.png",
        &["--base-top", "1.5"],
        &["--base-top", "from 0 to 1"],
    );
    fuse_fails(
        d.path(),
        "bad.png",
        &["--vote-radius", "65"],
        &["--vote-radius", "at most 64"],
    );
    fuse_fails(
        d.path(),
        "bad.png",
        &["--texture-rule", "max"],
        &["--texture-rule", "choose", "sum"],
    );
}
