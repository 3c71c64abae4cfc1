//! `csfuse evaluate`: every pair fused by every method, scored as `csfuse metrics` scores it,
//! summed up in tables and charts, resumed like `batch`; and the README's table reproduced from
//! the dev pairs byte for byte.

mod common;
use common::{csfuse, stderr};
use std::path::Path;

fn run(args: &[&str], dir: &Path) -> String {
    let o = csfuse(args, dir);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    stderr(&o)
}

/// Two phantom pairs (CT/MR grey, MR/PET colour) at 96 px (VIFF needs 81) and their list.
fn pairs() -> tempfile::TempDir {
    let d = common::phantom_dir(96);
    std::fs::write(
        d.path().join("list.csv"),
        "a,b,output\nct_like.png,mr_like.png,ct_mr_1.png\nmr_like.png,pet_like.png,mr_pet_1.png\n",
    )
    .unwrap();
    d
}

const EVAL: [&str; 6] = [
    "evaluate",
    "list.csv",
    "--out-dir",
    "eval",
    "--backend",
    "cpu",
];

#[test]
fn every_method_is_fused_scored_and_summed_up() {
    let d = pairs();
    let p = |s: &str| d.path().join(s);
    let log = run(&EVAL, d.path());
    assert!(
        log.contains("[2/2] mr_pet_1.png: 5 fused, 0 up to date"),
        "{log}"
    );
    for m in ["pyramid", "paper", "average", "max", "laplacian"] {
        for pair in ["ct_mr_1.png", "mr_pet_1.png"] {
            let out = p(&format!("eval/{m}/{pair}"));
            assert!(
                out.exists() && p(&format!("eval/{m}/{pair}.json")).exists(),
                "{m} {pair}"
            );
            // The scores recorded are what `csfuse metrics` gives for the written result.
            let (a, b) = if pair.starts_with("ct") {
                ("ct_like.png", "mr_like.png")
            } else {
                ("mr_like.png", "pet_like.png")
            };
            let o = csfuse(
                &["metrics", a, b, out.to_str().unwrap(), "--json"],
                d.path(),
            );
            let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let side = common::read_json(&p(&format!("eval/{m}/{pair}.json")));
            for k in ["Q_ABF", "Q_CB", "VIFF", "Q_P"] {
                let (x, y) = (side["scores"][k].as_f64(), want[k].as_f64());
                assert!(x.is_some() && x == y, "{m} {pair} {k}: {x:?} vs {y:?}");
            }
        }
    }
    // The colour pair stays colour for every method.
    let r = csfuse::formats::image::read_image(&p("eval/max/mr_pet_1.png")).unwrap();
    assert!(r.is_colour());
    let scores = std::fs::read_to_string(p("eval/scores.csv")).unwrap();
    assert_eq!(scores.lines().count(), 1 + 2 * 5);
    assert!(scores.starts_with("pair,group,method,EN,SD,SF,MI,Q_MI,SSIM_sum,Q_ABF"));
    assert!(scores.contains("\nmr_pet_1.png,mr_pet,laplacian,"));
    let md = std::fs::read_to_string(p("eval/summary.md")).unwrap();
    assert!(md.starts_with("All pairs (2 pairs)\n\n| method | Q_ABF | Q_CB | Q_P | Q_Y | VIFF |"));
    assert!(md.contains("Group `ct_mr` (1 pair)") && md.contains("Group `mr_pet` (1 pair)"));
    // One bold best per metric at least, in the first table.
    let first = md.split("\n\n").nth(1).unwrap();
    let header = first.lines().next().unwrap();
    let metrics = header.matches('|').count() - 2;
    for col in 2..2 + metrics {
        assert!(
            first
                .lines()
                .skip(2)
                .any(|l| l.split('|').nth(col).unwrap().contains("**")),
            "column {col} has no best: {first}"
        );
    }
    let summary = std::fs::read_to_string(p("eval/summary.csv")).unwrap();
    assert!(summary.starts_with("method,pairs,EN_mean,EN_sd,"));
    assert_eq!(summary.lines().count(), 6);
    for k in ["Q_ABF", "Q_CB", "Q_P", "Q_Y", "VIFF", "Q_MI", "SSIM_sum"] {
        let plot = csfuse::formats::image::read_image(&p(&format!("eval/plots/{k}.png"))).unwrap();
        assert_eq!((plot.h, plot.is_colour()), (360, true), "{k}");
    }
    let montage = csfuse::formats::image::read_image(&p("eval/montages/ct_mr_1.png")).unwrap();
    assert!(montage.w > 7 * 96, "A, B and five results side by side");

    // A second run fuses nothing and writes the same tables.
    let before = std::fs::read(p("eval/summary.md")).unwrap();
    let log = run(&EVAL, d.path());
    assert!(
        log.contains("[1/2] ct_mr_1.png: 0 fused, 5 up to date"),
        "{log}"
    );
    assert_eq!(std::fs::read(p("eval/summary.md")).unwrap(), before);
    // A changed input makes its pairs out of date (mr_like.png is in both).
    let mut mr = image::open(p("mr_like.png")).unwrap().to_luma8();
    mr.put_pixel(10, 10, image::Luma([255]));
    mr.save(p("mr_like.png")).unwrap();
    let log = run(&EVAL, d.path());
    assert!(log.contains("[1/2] ct_mr_1.png: 5 fused"), "{log}");
}

/// Pyramid variants in one run share each pair's decomposition, and each result is what `fuse`
/// gives with the variant's settings.
#[test]
fn pyramid_variants_share_a_decomposition_and_match_fuse() {
    let d = pairs();
    let p = |s: &str| d.path().join(s);
    let variant = "pyramid-share-1-vote-9";
    let methods = format!("pyramid,{variant},max");
    let evaluate = || {
        run(
            &[EVAL.as_slice(), &["--methods", &methods]].concat(),
            d.path(),
        )
    };
    let log = evaluate();
    assert_eq!(
        log.matches("with 2 rule settings from one decomposition")
            .count(),
        2,
        "{log}"
    );
    run(
        &[
            "fuse",
            "ct_like.png",
            "mr_like.png",
            "-o",
            "alone.png",
            "--backend",
            "cpu",
            "--base-share",
            "1",
            "--vote-radius",
            "9",
        ],
        d.path(),
    );
    let shared = std::fs::read(p(&format!("eval/{variant}/ct_mr_1.png"))).unwrap();
    assert_eq!(shared, std::fs::read(p("alone.png")).unwrap());
    assert_ne!(
        shared,
        std::fs::read(p("eval/pyramid/ct_mr_1.png")).unwrap()
    );
    let side = common::read_json(&p(&format!("eval/{variant}/ct_mr_1.png.json")));
    let fuse = &side["parameters"]["fusion"]["fuse"];
    assert_eq!(
        (fuse["base"]["share"].as_f64(), fuse["vote_radius"].as_u64()),
        (Some(1.0), Some(9))
    );
    let md = std::fs::read_to_string(p("eval/summary.md")).unwrap();
    assert!(md.contains(&format!("| {variant} |")), "{md}");
    // A second run finds every variant up to date.
    let log = evaluate();
    assert!(
        log.contains("[2/2] mr_pet_1.png: 0 fused, 3 up to date"),
        "{log}"
    );
    // A run with fewer methods resumes them, and its tables and montages show those alone.
    let width = || {
        csfuse::formats::image::read_image(&p("eval/montages/ct_mr_1.png"))
            .unwrap()
            .w
    };
    let all_three = width();
    let log = run(
        &[EVAL.as_slice(), &["--methods", "pyramid"]].concat(),
        d.path(),
    );
    assert!(log.contains("0 fused, 1 up to date"), "{log}");
    let md = std::fs::read_to_string(p("eval/summary.md")).unwrap();
    assert!(!md.contains(variant) && md.contains("| pyramid |"), "{md}");
    assert!(
        width() < all_three,
        "the montage still has every method of the first run"
    );
}

#[test]
fn methods_metrics_and_bad_rows_are_checked() {
    let d = pairs();
    let p = |s: &str| d.path().join(s);
    // A chosen subset, in the order given.
    run(
        &[
            "evaluate",
            "list.csv",
            "--out-dir",
            "sub",
            "--backend",
            "cpu",
            "--methods",
            "max,average",
            "--metrics",
            "Q_ABF,VIFF",
        ],
        d.path(),
    );
    let md = std::fs::read_to_string(p("sub/summary.md")).unwrap();
    let table: Vec<&str> = md.lines().take(5).collect();
    assert_eq!(table[2], "| method | Q_ABF | VIFF |", "{md}");
    assert!(table[4].starts_with("| max |") && md.contains("| average |"));
    assert!(!p("sub/paper").exists() && p("sub/plots/VIFF.png").exists());
    assert!(!p("sub/plots/Q_CB.png").exists());

    for (args, needle) in [
        (vec!["--methods", "best"], "not a method"),
        (vec!["--metrics", "PSNR"], "not a metric"),
        (vec!["--methods", "max,max"], "twice"),
        (vec!["--methods", "pyramid-share-2"], "from 0 to 1"),
    ] {
        let mut all = vec!["evaluate", "list.csv", "--out-dir", "x"];
        all.extend(args);
        let o = csfuse(&all, d.path());
        assert!(
            !o.status.success() && stderr(&o).contains(needle),
            "{all:?}: {}",
            stderr(&o)
        );
        assert!(!p("x").exists(), "{all:?} wrote something");
    }
    // A file in the way that csfuse did not write is kept unless --force.
    std::fs::create_dir_all(p("kept/max")).unwrap();
    std::fs::write(p("kept/max/ct_mr_1.png"), b"mine").unwrap();
    let args = [
        "evaluate",
        "list.csv",
        "--out-dir",
        "kept",
        "--backend",
        "cpu",
        "--methods",
        "max",
    ];
    let o = csfuse(&args, d.path());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no csfuse sidecar vouches"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(p("kept/max/ct_mr_1.png")).unwrap(), b"mine");
    // The other pair went on.
    assert!(p("kept/max/mr_pet_1.png").exists());
    let mut forced = args.to_vec();
    forced.push("--force");
    run(&forced, d.path());
    assert_ne!(std::fs::read(p("kept/max/ct_mr_1.png")).unwrap(), b"mine");
    // Volumes are refused up front.
    std::fs::write(p("vol.csv"), "a.nii.gz,b.nii.gz\n").unwrap();
    let o = csfuse(&["evaluate", "vol.csv", "--out-dir", "v"], d.path());
    assert!(
        stderr(&o).contains("evaluate compares images"),
        "{}",
        stderr(&o)
    );
}

/// The README's evaluation table and docs/method.md's cross-validated tables are what
/// `benches/cross_validate.py` writes for the dev pairs: its `reference` run is the README's
/// `evaluate` command, and its `cv.md` the choice of the base rule (CI has the pairs beside the
/// clone; `CSFUSE_MEDICAL_DEV_DIR` points at them).
#[test]
#[ignore = "needs the dev pairs (CSFUSE_MEDICAL_DEV_DIR=shared/data/medical_dev)"]
fn the_readme_and_cross_validated_tables_are_what_evaluate_writes_for_the_dev_pairs() {
    let dev = std::env::var_os("CSFUSE_MEDICAL_DEV_DIR")
        .map(std::path::PathBuf::from)
        .expect("CSFUSE_MEDICAL_DEV_DIR is not set: point it at shared/data/medical_dev");
    let list = dev.join("pairs.csv").canonicalize().expect("its pairs.csv");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |p: &str| std::fs::read_to_string(repo.join(p)).unwrap();
    let (readme, method) = (read("README.md"), read("docs/method.md"));
    // The README's command is the script's reference run.
    assert!(
        readme.contains("csfuse --threads 2 evaluate DEV/pairs.csv --out-dir eval --backend cpu\n"),
        "the README shows another evaluate command than the script runs"
    );
    let d = tempfile::tempdir().unwrap();
    let o = std::process::Command::new("python3")
        .arg(repo.join("benches/cross_validate.py"))
        .arg(&list)
        .arg(d.path())
        .args(["--csfuse", env!("CARGO_BIN_EXE_csfuse")])
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "cross_validate.py: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let written = std::fs::read_to_string(d.path().join("reference/summary.md")).unwrap();
    let table = written.split("\n\nGroup").next().unwrap().trim_end();
    assert!(
        readme.contains(table),
        "the README's table differs from what evaluate writes now:\n{table}"
    );
    let cv = std::fs::read_to_string(d.path().join("cv.md")).unwrap();
    let missing: Vec<&str> = cv
        .lines()
        .filter(|l| l.starts_with('|') || l.contains("Chosen on all pairs"))
        .filter(|l| !method.contains(l))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/method.md lacks these lines of the cross-validation (cv.md):\n{}\n\nall of it:\n{cv}",
        missing.join("\n")
    );
}
