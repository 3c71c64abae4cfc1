//! `csfuse batch`: shards add up to one run byte for byte, a second run does no work, a killed run
//! resumes with nothing lost or duplicated, and a corrupt item fails alone.

mod common;
use common::{csfuse, csfuse_env, read_json, stderr};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Phantoms and a list of `n` pairs (gray pairs both ways round, a colour pair, a small volume).
fn setup(n: usize) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let o = csfuse(
        &["phantom", "--size", "48", "--depth", "6", "--out-dir", "in"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = [
        "in/ct_like.png,in/mr_like.png",
        "in/mr_like.png,in/ct_like.png",
        "in/mr_like.png,in/pet_like.png,colour/mr_pet.png",
        "in/ct_like.nii.gz,in/mr_like.nii.gz",
    ];
    let mut list = String::from("a,b,output\n");
    for i in 0..n {
        match rows.get(i) {
            Some(r) => list += &format!("{r}\n"),
            None => list += &format!("in/ct_like.png,in/mr_like.png,extra{i}.tif\n"),
        }
    }
    std::fs::write(d.path().join("pairs.csv"), list).unwrap();
    d
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// The fused outputs only (sidecars carry timings, which differ run to run).
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir)
        .into_iter()
        .filter(|(k, _)| !k.ends_with(".json"))
        .collect()
}

fn batch(d: &Path, out: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["batch", "pairs.csv", "--out-dir", out, "--backend", "cpu"];
    args.extend_from_slice(extra);
    csfuse(&args, d)
}

#[test]
fn four_shards_equal_one_run_and_a_rerun_does_nothing() {
    let d = setup(6);
    let o = batch(d.path(), "one", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    for i in 0..4 {
        let shard = format!("{i}/4");
        let o = batch(d.path(), "sharded", &["--shard", &shard]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (one, sharded) = (
        outputs(&d.path().join("one")),
        outputs(&d.path().join("sharded")),
    );
    assert_eq!(one.len(), 6, "{:?}", one.keys());
    assert!(one.contains_key("colour/mr_pet.png") && one.contains_key("ct_like__mr_like.nii.gz"));
    assert_eq!(one, sharded, "sharded outputs differ from the single run");

    // Each sidecar records the inputs' hashes, the parameters and the output's hash.
    let side = read_json(&d.path().join("one/ct_like__mr_like.png.json"));
    assert_eq!(side["inputs"][0]["sha256"].as_str().unwrap().len(), 64);
    assert!(side["parameters"]["cartoon_dict_sha256"].is_string());
    assert_eq!(side["csfuse_version"], env!("CARGO_PKG_VERSION"));
    assert!(side["backend"].as_str().unwrap().starts_with("cpu"));
    assert!(side["seconds"].as_f64().unwrap() > 0.0);

    // A second run does no work and changes no file.
    let before = tree(&d.path().join("one"));
    let o = batch(d.path(), "one", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("0 fused, 6 up to date, 0 failed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(before, tree(&d.path().join("one")));

    // Other parameters, an edited input, or a damaged output make an item stale again.
    let o = batch(d.path(), "one", &["--out-depth", "16"]);
    assert!(
        stderr(&o).contains("6 fused, 0 up to date"),
        "{}",
        stderr(&o)
    );
    // A damaged (or hand-edited) output is no longer what the sidecar vouches for: it is kept
    // unless --force says to replace it.
    std::fs::write(d.path().join("one/extra4.tif"), b"truncated").unwrap();
    let o = batch(d.path(), "one", &["--out-depth", "16"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("pass --force"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(d.path().join("one/extra4.tif")).unwrap(),
        b"truncated"
    );
    let o = batch(d.path(), "one", &["--out-depth", "16", "--force"]);
    assert!(
        stderr(&o).contains("1 fused, 5 up to date"),
        "{}",
        stderr(&o)
    );

    // The shard can come from a Slurm array task or a Kubernetes Indexed Job.
    let o = csfuse_env(
        &[
            "batch",
            "pairs.csv",
            "--out-dir",
            "slurm",
            "--backend",
            "cpu",
        ],
        d.path(),
        &[
            ("SLURM_ARRAY_TASK_ID", "5"),
            ("SLURM_ARRAY_TASK_MIN", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ],
    );
    assert!(
        o.status.success() && stderr(&o).contains("shard 1/3 from SLURM_ARRAY_TASK_ID"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        outputs(&d.path().join("slurm")).len(),
        2,
        "rows 1 and 4 of 6"
    );
    let o = csfuse_env(
        &[
            "batch",
            "pairs.csv",
            "--out-dir",
            "k8s",
            "--backend",
            "cpu",
            "--shards",
            "6",
        ],
        d.path(),
        &[("JOB_COMPLETION_INDEX", "3")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        outputs(&d.path().join("k8s")).keys().collect::<Vec<_>>(),
        vec!["ct_like__mr_like.nii.gz"]
    );
}

#[test]
fn a_killed_run_resumes_with_nothing_lost_or_duplicated() {
    let d = setup(10);
    let mut child = Command::new(env!("CARGO_BIN_EXE_csfuse"))
        .args(["batch", "pairs.csv", "--out-dir", "out", "--backend", "cpu"])
        .current_dir(d.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sidecars = || {
        tree(&d.path().join("out"))
            .keys()
            .filter(|k| k.ends_with(".json"))
            .count()
    };
    let t = Instant::now();
    while d.path().join("out").exists().then(sidecars).unwrap_or(0) < 3 {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "batch made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let done_before = sidecars();
    assert!(
        done_before < 10,
        "the run finished before it could be killed"
    );

    let o = batch(d.path(), "out", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    let summary = format!(
        "{} fused, {done_before} up to date, 0 failed",
        10 - done_before
    );
    assert!(e.contains(&summary), "expected `{summary}`: {e}");
    let files = tree(&d.path().join("out"));
    assert!(
        files.keys().all(|k| !k.contains("csfuse-tmp")),
        "temporary files left: {:?}",
        files.keys()
    );
    assert_eq!(
        files.len(),
        20,
        "10 outputs and 10 sidecars: {:?}",
        files.keys()
    );

    // Same bytes as an uninterrupted run.
    let o = batch(d.path(), "clean", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        outputs(&d.path().join("out")),
        outputs(&d.path().join("clean"))
    );
}

#[test]
fn a_corrupt_item_fails_alone_and_usage_errors_exit_2() {
    let d = setup(4);
    std::fs::write(d.path().join("in/broken.png"), b"\x89PNG\r\n\x1a\n garbage").unwrap();
    let mut list = std::fs::read_to_string(d.path().join("pairs.csv")).unwrap();
    list += "in/broken.png,in/mr_like.png\n";
    std::fs::write(d.path().join("pairs.csv"), list).unwrap();
    let o = batch(d.path(), "out", &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("pairs.csv:6") && e.contains("broken.png"), "{e}");
    assert!(e.contains("4 fused, 0 up to date, 1 failed"), "{e}");
    assert_eq!(outputs(&d.path().join("out")).len(), 4);
    assert!(!d.path().join("out/broken__mr_like.png").exists());

    let usage = |args: &[&str], needle: &str| {
        let o = csfuse(args, d.path());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
    };
    usage(&["batch", "missing.csv", "--out-dir", "x"], "missing.csv");
    usage(
        &["batch", "pairs.csv", "--out-dir", "x", "--shard", "4/4"],
        "not a shard",
    );
    std::fs::write(
        d.path().join("dup.csv"),
        "in/ct_like.png,in/mr_like.png,o.png\nin/mr_like.png,in/ct_like.png,o.png\n",
    )
    .unwrap();
    usage(
        &["batch", "dup.csv", "--out-dir", "x"],
        "also written by line 1",
    );
    std::fs::write(
        d.path().join("mixed.csv"),
        "in/ct_like.png,in/mr_like.nii.gz\n",
    )
    .unwrap();
    usage(&["batch", "mixed.csv", "--out-dir", "x"], "mixed.csv:1");
    assert!(
        !d.path().join("x").exists(),
        "a usage error wrote something"
    );
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn same_size_images_are_fused_as_one_gpu_batch() {
    let d = setup(3);
    let o = csfuse(
        &["batch", "pairs.csv", "--out-dir", "out", "--backend", "gpu"],
        d.path(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("3 fused, 0 up to date, 0 failed"));
    let out = d.path().join("out");
    let sidecars = [
        "ct_like__mr_like.png.json",
        "mr_like__ct_like.png.json",
        "colour/mr_pet.png.json",
    ];
    for name in sidecars {
        let r = &read_json(&out.join(name))["report"];
        assert_eq!(r["batch_pairs"], 3, "{name}: {r}");
        // One batch for the whole list: its solves' waits plus the final read (and the base
        // layers' read of the pyramid mode), nothing per pair.
        let solves = 2 * r["params"]["mca"]["stages"].as_array().unwrap().len() as u64;
        let bases = u64::from(r["params"]["mode"] == "pyramid");
        assert_eq!(
            r["gpu"]["counters"]["host_waits"],
            solves + 1 + bases,
            "{name}"
        );
    }
    // Every pair fused alone gives the same image: each item of a batch is solved, stopped and
    // chosen on its own.
    for (a, b, name) in [
        ("ct_like", "mr_like", "ct_like__mr_like.png"),
        ("mr_like", "ct_like", "mr_like__ct_like.png"),
        ("mr_like", "pet_like", "colour/mr_pet.png"),
    ] {
        let alone = format!("alone_{a}_{b}.png");
        let (pa, pb) = (format!("in/{a}.png"), format!("in/{b}.png"));
        let o = csfuse(
            &["fuse", &pa, &pb, "-o", &alone, "--backend", "gpu"],
            d.path(),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let pixels = |p: &Path| image::open(p).unwrap().to_rgb8().into_raw();
        assert!(
            pixels(&out.join(name)) == pixels(&d.path().join(&alone)),
            "{name}: the batch's output differs from the pair fused alone"
        );
    }
}

/// `--plan` sizes an array from the list: pairs and work per shard, only the shards with work left
/// in `--array`, speed measured from finished sidecars; it writes nothing.
#[test]
fn the_plan_sizes_a_slurm_array_and_follows_what_is_done() {
    let d = setup(5);
    let stdout = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let o = batch(d.path(), "out", &["--shards", "2", "--plan"]);
    let table = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        table.contains("5 pairs in 2 shards, 0 done, 5 to do")
            && table.contains("no finished pair to measure from"),
        "{table}"
    );
    assert!(!d.path().join("out").exists(), "--plan writes nothing");
    let o = batch(d.path(), "out", &["--shards", "2", "--plan", "sbatch"]);
    let line = stdout(&o);
    assert!(
        line.starts_with("--array=0-1 --cpus-per-task=1 --mem=") && line.contains(" --time="),
        "{line}"
    );
    // --threads sets the cores asked for; --backend gpu asks for a GPU too.
    let o = batch(
        d.path(),
        "out",
        &["--shards", "2", "--plan", "sbatch", "--threads", "3"],
    );
    assert!(stdout(&o).contains("--cpus-per-task=3"), "{}", stdout(&o));
    let mut gpu = vec!["batch", "pairs.csv", "--out-dir", "out", "--backend", "gpu"];
    gpu.extend(["--shards", "2", "--plan", "sbatch"]);
    let o = csfuse(&gpu, d.path());
    assert!(
        stdout(&o).trim_end().ends_with("--gres=gpu:1"),
        "{}",
        stdout(&o)
    );

    // Shard 1 done (rows 1 and 3): the array holds shard 0 alone and the speed is measured.
    assert!(batch(d.path(), "out", &["--shard", "1/2"]).status.success());
    let side = read_json(&d.path().join("out/ct_like__mr_like.nii.gz.json"));
    assert_eq!(side["shard"], "1/2");
    assert!(side["threads"].as_u64().unwrap() >= 1 && side["host"].is_string());
    let o = batch(d.path(), "out", &["--shards", "2", "--plan"]);
    let table = stdout(&o);
    assert!(
        table.contains("2 done, 3 to do")
            && table.contains("measured from 2 finished pairs")
            && table.contains("sbatch --array=0 "),
        "{table}"
    );
    assert!(batch(d.path(), "out", &["--shard", "0/2"]).status.success());
    let o = batch(d.path(), "out", &["--shards", "2", "--plan", "sbatch"]);
    assert!(
        o.status.success() && stdout(&o).is_empty(),
        "{}",
        stdout(&o)
    );
    let o = batch(d.path(), "out", &["--shards", "2", "--plan"]);
    assert!(stdout(&o).contains("nothing to submit"), "{}", stdout(&o));

    // --plan plans all shards; a bad list is still a usage error.
    let o = batch(d.path(), "out", &["--shard", "0/2", "--plan"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    std::fs::write(d.path().join("pairs.csv"), "a.png\n").unwrap();
    let o = batch(d.path(), "out", &["--shards", "2", "--plan"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// A Slurm task's shard, cores and memory come from its allocation: with --shards the task id is
/// the shard index (so a resubmitted array may be sparse), SLURM_CPUS_PER_TASK sets the threads
/// and SLURM_MEM_PER_NODE bounds the memory budget.
#[test]
fn a_slurm_task_uses_its_allocation() {
    let d = setup(6);
    let run = |out: &str, extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["batch", "pairs.csv", "--out-dir", out, "--backend", "cpu"];
        args.extend_from_slice(extra);
        csfuse_env(&args, d.path(), env)
    };
    // `--array=1,3` of 4 shards: task 3 is shard 3/4 (rows 3 only of 0..5, since 3 + 4 > 5).
    let sparse = [
        ("SLURM_ARRAY_JOB_ID", "41"),
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "3"),
        ("SLURM_ARRAY_TASK_COUNT", "2"),
        ("SLURM_CPUS_PER_TASK", "1"),
        ("SLURM_MEM_PER_NODE", "2048"),
    ];
    let o = run("sparse", &["--shards", "4"], &sparse);
    assert!(
        o.status.success() && stderr(&o).contains("shard 3/4 from SLURM_ARRAY_TASK_ID"),
        "{}",
        stderr(&o)
    );
    let side = read_json(&d.path().join("sparse/ct_like__mr_like.nii.gz.json"));
    assert_eq!(side["threads"], 1, "SLURM_CPUS_PER_TASK");
    assert_eq!(side["scheduler_task"], "slurm 41_3");
    assert_eq!(outputs(&d.path().join("sparse")).len(), 1);
    // Without --shards a sparse array has no meaning: refused, saying what to do.
    let o = run("sparse2", &[], &sparse);
    assert!(
        o.status.code() == Some(2) && stderr(&o).contains("pass --shards N"),
        "{}",
        stderr(&o)
    );
    let o = run("sparse3", &["--shards", "3"], &sparse);
    assert_eq!(o.status.code(), Some(2), "task 3 of 3 shards");
    // 1 MiB of allocation is too little for any pair: every item fails on memory, naming why.
    let o = run("tiny", &["--shard", "0/6"], &[("SLURM_MEM_PER_NODE", "1")]);
    assert!(
        o.status.code() == Some(1) && stderr(&o).contains("SLURM_MEM_PER_NODE"),
        "{}",
        stderr(&o)
    );
}
