//! The GPU engine's structure, checked on its counters (deterministic, unlike timings): one host
//! wait per batched solve, nothing created on a second fusion of one size, many slice pairs per
//! batch, and batched results equal to one-at-a-time results and to the CPU engine.

use crate::assets;
use crate::gpu::{Counters, GpuEngine};
use crate::jobs::report::Outcome;
use crate::jobs::session::cpu_engine;
use crate::phantom::head_pair;
use crate::pipeline::fuse::{fuse_pair, Engine, FuseOutput, FuseParams, Mode, TextureRule};
use crate::plane::Plane;
use crate::real::Precision;
use crate::test_support::*;

fn engine() -> GpuEngine {
    GpuEngine::with_gpu(gpu())
}

/// Short solves for the structure tests: the counters' relations hold for any iteration counts,
/// and a software adapter runs the full method slowly. The default schedule's stages, warm start
/// included, each capped at 5 iterations.
fn quick() -> FuseParams {
    let mut p = FuseParams::default();
    for s in &mut p.mca.stages {
        s.max_iter = 5;
    }
    p
}

/// Host waits of one batch besides its solves': the results, and the base layers that the
/// pyramid mode fuses on the host.
fn waits_besides_solves(p: &FuseParams) -> u64 {
    1 + u64::from(p.mode == Mode::Pyramid)
}

fn fuse_batch(g: &mut dyn Engine, pairs: &[(&Plane, &Plane)]) -> Vec<FuseOutput> {
    g.fuse_batch(
        pairs,
        &assets::cartoon(),
        &assets::texture(),
        &quick(),
        &mut || {},
    )
    .unwrap()
}

fn counters(g: &GpuEngine) -> Counters {
    Engine::counters(g).expect("a GPU engine counts")
}

/// PSNR in dB of two [0, 1] images.
fn psnr(a: &[f64], b: &[f64]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (1.0 / mse.max(1e-30)).log10()
}

/// Two different pairs of one size: the phantom and the phantom with its sources flipped.
fn two_pairs(n: usize) -> [(Plane, Plane); 2] {
    let (a, b) = head_pair(n);
    let flip = |p: &Plane| Plane::from_vec(p.h, p.w, p.data.iter().rev().copied().collect());
    let (fa, fb) = (flip(&b), flip(&a));
    [(a, b), (fa, fb)]
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn a_pair_waits_once_per_batched_solve_and_matches_the_cpu() {
    let mut g = engine();
    let (a, b) = head_pair(64);
    for mode in Mode::ALL {
        let p = FuseParams::new(mode);
        let before = counters(&g);
        let out = fuse_pair(&mut g, &a, &b, &assets::cartoon(), &assets::texture(), &p).unwrap();
        let c = counters(&g).since(&before);
        let solves = 2 * p.mca.outer_iters() as u64;
        println!("{mode:?}, one 64x64 pair: {c:?}");
        // Each batched solve reads its statistics once; the end reads the results once (and the
        // pyramid mode its base layers).
        assert_eq!(c.host_waits, solves + waits_besides_solves(&p), "{c:?}");
        // Eight scalars per source per solve, the fused image, two decision maps, timestamps,
        // and in the pyramid mode the two base layers.
        let bases = (waits_besides_solves(&p) - 1) * 2 * 64 * 64 * 4;
        assert!(
            c.bytes_read_back <= solves * 2 * 32 + 3 * 64 * 64 * 4 + 64 + bases,
            "{c:?}"
        );
        let cpu = fuse_pair(
            cpu_engine(Precision::F32).as_mut(),
            &a,
            &b,
            &assets::cartoon(),
            &assets::texture(),
            &p,
        )
        .unwrap();
        let db = psnr(&out.fused.data, &cpu.fused.data);
        println!("{mode:?}: GPU vs CPU: {db:.1} dB");
        assert!(db >= 50.0, "{mode:?}: GPU vs CPU {db:.1} dB");
        for (go, co) in out.objectives.iter().zip(&cpu.objectives) {
            for (x, y) in [(&go.cartoon, &co.cartoon), (&go.texture, &co.texture)] {
                let rel = (x.objective - y.objective).abs() / y.objective.abs();
                assert!(rel < 1e-3, "objective {} vs {}", x.objective, y.objective);
            }
        }
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn a_second_fusion_of_one_size_creates_nothing() {
    let mut g = engine();
    let pairs = two_pairs(48);
    let refs: Vec<(&Plane, &Plane)> = pairs.iter().map(|(a, b)| (a, b)).collect();
    let first = fuse_batch(&mut g, &refs);
    let before = counters(&g);
    let second = fuse_batch(&mut g, &refs);
    let c = counters(&g).since(&before);
    println!("second fusion of a 2-pair batch: {c:?}");
    assert_eq!(c.bind_groups_created, 0, "{c:?}");
    assert_eq!(c.buffers_created, 0, "{c:?}");
    assert!(c.dispatches > 0);
    // The same work gives the same result.
    for (x, y) in first.iter().zip(&second) {
        assert_eq!(x.fused.data, y.fused.data);
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn a_batch_equals_its_pairs_fused_one_at_a_time() {
    let mut g = engine();
    let pairs = two_pairs(48);
    let refs: Vec<(&Plane, &Plane)> = pairs.iter().map(|(a, b)| (a, b)).collect();
    let batch = fuse_batch(&mut g, &refs);
    let before = counters(&g);
    let _ = fuse_batch(&mut g, &refs);
    let per_batch = counters(&g).since(&before);
    for (q, pair) in refs.iter().enumerate() {
        let alone = fuse_batch(&mut g, std::slice::from_ref(pair)).remove(0);
        let db = psnr(&batch[q].fused.data, &alone.fused.data);
        assert!(db >= 80.0, "pair {q}: batch vs alone {db:.1} dB");
        assert_eq!(
            batch[q].cartoon_decision.from_a,
            alone.cartoon_decision.from_a
        );
        for s in 0..2 {
            assert_eq!(
                batch[q].objectives[s].texture.iterations, alone.objectives[s].texture.iterations,
                "items stop on their own"
            );
        }
    }
    // Two pairs cost the dispatches of one: the batch is one grid dimension.
    let before = counters(&g);
    let _ = fuse_batch(&mut g, &refs[..1]);
    let single = counters(&g).since(&before);
    assert_eq!(per_batch.dispatches, single.dispatches);
    assert_eq!(per_batch.host_waits, single.host_waits);
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn iterations_after_every_item_stopped_launch_nothing() {
    use crate::cpu::cbpdn::CbpdnOptions;
    let mut g = engine();
    let (a, _) = head_pair(48);
    let detail = crate::cpu::lowpass::tikhonov_split(&a, 5.0, 16).1;
    let mut opts = CbpdnOptions::new(0.05);
    opts.rel_tol = 0.05;
    opts.max_iter = 60;
    let code = g.sparse_code(&assets::texture(), &detail, &opts).unwrap();
    // The item stopped early, so the solve recorded iterations past its end ...
    assert!(code.stats.iterations < opts.max_iter, "{:?}", code.stats);
    // ... whose dispatches read a grid table that the device zeroed.
    let t = g
        .gpu()
        .skip_tables()
        .expect("lavapipe dispatches indirectly");
    let args: Vec<u32> = g.gpu().download(&t.args, 0, 3 * 64).unwrap();
    let full: Vec<u32> = g.gpu().download(&t.full, 0, 3 * 64).unwrap();
    assert!(full.iter().any(|v| *v > 0), "no grids recorded");
    assert!(
        args.iter().all(|v| *v == 0),
        "live grids after the stop: {args:?}"
    );
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn a_pair_too_large_for_one_binding_stays_on_the_gpu() {
    use crate::gpu::cbpdn::largest_binding;
    let (a, b) = head_pair(48);
    let together = fuse_batch(&mut engine(), &[(&a, &b)]).remove(0);
    // An adapter whose largest binding holds one source's spectra but not a pair's.
    let g = gpu();
    let (dc, dt) = (assets::cartoon(), assets::texture());
    let one = largest_binding(1, dc.m.max(dt.m), 48, 48);
    g.cap_binding(one + one / 2);
    let mut small = GpuEngine::with_gpu(g);
    assert_eq!(Engine::pairs_per_batch(&small, &dc, &dt, 48, 48), 1);
    let before = counters(&small);
    let split = fuse_batch(&mut small, &[(&a, &b)]).remove(0);
    let c = counters(&small).since(&before);
    // Each batched solve runs as two, one per source; the results are read once.
    let solves = 2 * quick().mca.outer_iters() as u64;
    assert_eq!(
        c.host_waits,
        2 * solves + waits_besides_solves(&quick()),
        "{c:?}"
    );
    let db = psnr(&split.fused.data, &together.fused.data);
    println!("one source per binding vs both together: {db:.1} dB, {c:?}");
    assert!(db >= 80.0, "{db:.1} dB");
    assert_eq!(
        split.cartoon_decision.from_a,
        together.cartoon_decision.from_a
    );
    assert_eq!(
        split.texture_decision.from_a,
        together.texture_decision.from_a
    );
    for s in 0..2 {
        let (x, y) = (
            &split.objectives[s].cartoon,
            &together.objectives[s].cartoon,
        );
        assert_eq!(x.iterations, y.iterations);
        assert!((x.objective - y.objective).abs() <= 1e-5 * y.objective.abs());
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn a_volume_runs_many_slice_pairs_per_batch() {
    use crate::jobs::session::{Backend, Session};
    use crate::jobs::{fuse_volumes, JobOptions};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ct, mr) = crate::phantom::phantom_volumes(64, 16);
    let (a, b, out) = (
        d.join("ct.nii.gz"),
        d.join("mr.nii.gz"),
        d.join("fused.nii.gz"),
    );
    crate::formats::nifti::write(&a, &ct, &ct.data, ct.datatype).unwrap();
    crate::formats::nifti::write(&b, &mr, &mr.data, mr.datatype).unwrap();
    let opts = JobOptions::with_params(quick());
    let mut s = Session::open(Backend::Gpu, Precision::F32, false).unwrap();
    let mut set = crate::formats::output::OutputSet::default();
    let r = fuse_volumes(&mut s, &a, &b, &out, &opts, &mut set)
        .unwrap()
        .report;
    set.commit().unwrap();
    let Some(Outcome::Volume(v)) = &r.result else {
        panic!("no volume outcome in the report")
    };
    let sl = &v.slices;
    let per_batch = sl.in_flight;
    let batches = sl.gpu_batches.expect("a GPU run counts its batches");
    let fused = sl.fused;
    println!(
        "volume 64x64x16: {fused} fused slices, up to {per_batch} per batch, {batches} batches"
    );
    assert!(per_batch > 1, "one slice pair per batch");
    assert!(fused > 1);
    assert!(
        batches <= 16usize.div_ceil(per_batch),
        "{batches} batches of {per_batch}"
    );
    let c = r
        .gpu
        .as_ref()
        .expect("a GPU run reports its counters")
        .counters;
    // One wait per batched solve (2 per outer iteration) and one for each batch's results (and
    // its base layers in the pyramid mode).
    let solves = 2 * quick().mca.outer_iters() as u64;
    let per = solves + waits_besides_solves(&quick());
    assert_eq!(c.host_waits, batches as u64 * per, "{c:?}");
    assert!(out.exists());
}

/// Rule variants of one pair come from one decomposition (the solves of one fusion, one read-back
/// of the base layers, one of each variant's results) and equal fusions with each variant's rules,
/// on both engines.
#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn rule_variants_share_one_decomposition_and_equal_single_fusions() {
    let (a, b) = head_pair(48);
    let (dc, dt) = (assets::cartoon(), assets::texture());
    let p = quick();
    let mut other = p.clone();
    (other.base.share, other.vote_radius) = (1.0, 9);
    let mut chosen = p.clone();
    chosen.texture_rule = TextureRule::Choose;
    let rules = [p.rules(), other.rules(), chosen.rules()];
    let solves = 2 * p.mca.outer_iters();
    let max_diff = |x: &[f64], y: &[f64]| {
        x.iter()
            .zip(y)
            .map(|(u, v)| (u - v).abs())
            .fold(0.0, f64::max)
    };
    let mut g = engine();
    let mut cpu = cpu_engine(Precision::F32);
    let before = counters(&g);
    for e in [&mut g as &mut dyn Engine, cpu.as_mut()] {
        let mut calls = 0;
        let outs = e
            .fuse_variants((&a, &b), &dc, &dt, &p, &rules, &mut || calls += 1)
            .unwrap();
        assert_eq!(calls, solves, "{}", e.describe());
        if let Some(c) = e.counters() {
            let c = c.since(&before);
            assert_eq!(c.host_waits, (solves + 1 + rules.len()) as u64, "{c:?}");
        }
        for (o, q) in outs.iter().zip([&p, &other, &chosen]) {
            let alone = fuse_pair(e, &a, &b, &dc, &dt, q).unwrap();
            let d = max_diff(&o.fused.data, &alone.fused.data);
            assert!(d < 1e-6, "{}: {d:e}", e.describe());
        }
        for v in &outs[1..] {
            let d = max_diff(&outs[0].fused.data, &v.fused.data);
            assert!(d > 1e-3, "the variants differ: {d:e}");
        }
    }
}
