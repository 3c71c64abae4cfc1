//! Every GPU kernel against its CPU twin, on odd and non-power-of-two sizes (181 x 217 needs
//! Bluestein along both axes). Runs on lavapipe without a GPU; a missing adapter fails loudly.

use crate::cpu::cbpdn::{power_sum, shrink_plane, x_step, Cbpdn, CbpdnOptions, PassNorms};
use crate::cpu::choose;
use crate::cpu::fft::Fft2;
use crate::cpu::lowpass::tikhonov_split;
use crate::cpu::synth::synth_spectrum;
use crate::cpu::CpuEngine;
use crate::dictionary::Dictionary;
use crate::gpu::kernels::{self, Item};
use crate::gpu::GpuEngine;
use crate::learn::SplitMix;
use crate::pipeline::fuse::Engine;
use crate::pipeline::ops::single;
use crate::plane::{CoefMaps, DecisionMap, Plane};
use rustfft::num_complex::Complex;

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut r = SplitMix(seed);
    (0..n).map(|_| (r.uniform() * 2.0 - 1.0) as f32).collect()
}

fn rand_complex(n: usize, seed: u64) -> Vec<Complex<f32>> {
    let v = rand_vec(2 * n, seed);
    v.chunks(2).map(|c| Complex::new(c[0], c[1])).collect()
}

fn pairs(v: &[Complex<f32>]) -> Vec<[f32; 2]> {
    v.iter().map(|c| [c.re, c.im]).collect()
}

/// Relative l2 error of `got` against `want`.
fn rel(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

fn flat(v: &[Complex<f32>]) -> Vec<f32> {
    v.iter().flat_map(|c| [c.re, c.im]).collect()
}

fn item(rho: f32, lam: f32, live: bool) -> Item {
    Item {
        rho,
        lam_over_rho: lam / rho,
        alpha: 1.8,
        live: live as u32,
        u_scale: 1.0,
        fresh: 0,
        _pad: [0.0; 2],
    }
}

fn detail_plane(h: usize, w: usize) -> Plane {
    let (ct, _) = crate::phantom::head_pair(h.max(w));
    let crop = Plane::from_vec(
        h,
        w,
        (0..h * w)
            .map(|i| ct.data[(i / w) * h.max(w) + i % w])
            .collect(),
    );
    tikhonov_split(&crop, 60.0, 16).1
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn x_step_matches_twin() {
    let gpu = crate::test_support::gpu();
    let (nb, m, batch) = (109 * 181, 32, 3);
    let df = rand_complex(m * nb, 1);
    let dd = power_sum(&df, nb);
    let sf = rand_complex(batch * nb, 2);
    let spec = rand_complex(batch * m * nb, 3);
    let rhos = [0.7f32, 31.0, 5.0];
    let b_spec = gpu.upload("spec", &pairs(&spec)).unwrap();
    let b_dx = gpu.storage("dx", (batch * nb * 8) as u64).unwrap();
    let items: Vec<Item> = rhos
        .iter()
        .enumerate()
        .map(|(i, r)| item(*r, 0.1, i != 2))
        .collect();
    let mut enc = gpu.encoder();
    kernels::x_step(
        &gpu,
        &mut enc,
        &b_spec,
        &gpu.upload("df", &pairs(&df)).unwrap(),
        &gpu.upload("dd", &dd).unwrap(),
        &gpu.upload("sf", &pairs(&sf)).unwrap(),
        &b_dx,
        &gpu.upload("items", &items).unwrap(),
        nb,
        m,
        batch,
    );
    gpu.submit(enc).unwrap();
    let got: Vec<[f32; 2]> = gpu.download(&b_spec, 0, batch * m * nb).unwrap();
    let got_dx: Vec<[f32; 2]> = gpu.download(&b_dx, 0, batch * nb).unwrap();
    for b in 0..batch {
        let mut want = spec[b * m * nb..(b + 1) * m * nb].to_vec();
        let mut dx = vec![Complex::default(); nb];
        x_step(
            &mut want,
            &df,
            &dd,
            &sf[b * nb..(b + 1) * nb],
            rhos[b],
            &mut dx,
        );
        let g: Vec<f32> = got[b * m * nb..(b + 1) * m * nb]
            .iter()
            .flatten()
            .copied()
            .collect();
        if b == 2 {
            // a stopped item is left alone
            assert_eq!(g, flat(&spec[b * m * nb..(b + 1) * m * nb]));
            continue;
        }
        let e = rel(&g, &flat(&want));
        let gdx: Vec<f32> = got_dx[b * nb..(b + 1) * nb]
            .iter()
            .flatten()
            .copied()
            .collect();
        let edx = rel(&gdx, &flat(&dx));
        println!("x step item {b}: X rel err {e:.2e}, DX rel err {edx:.2e}");
        assert!(
            e < 1e-5 && edx < 1e-5,
            "x step item {b}: {e:.2e} / {edx:.2e}"
        );
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn shrink_and_reduce_match_twin() {
    let gpu = crate::test_support::gpu();
    let (h, w, m, batch) = (181, 217, 8, 2);
    let np = h * w;
    let per = m * np;
    let x = rand_vec(batch * per, 4);
    let y = rand_vec(batch * per, 5);
    let u: Vec<f32> = rand_vec(batch * per, 6).iter().map(|v| v * 0.05).collect();
    let weights: Vec<f32> = (0..m).map(|k| 0.5 + k as f32 * 0.1).collect();
    let items = [item(3.0, 0.2, true), item(0.5, 0.05, true)];
    let (bx, by, bu) = (
        gpu.upload("x", &x).unwrap(),
        gpu.upload("y", &y).unwrap(),
        gpu.upload("u", &u).unwrap(),
    );
    let groups = kernels::shrink_groups(per);
    let partials = gpu
        .storage("partials", (batch * groups * 32) as u64)
        .unwrap();
    let norms = gpu.storage("norms", (batch * 32) as u64).unwrap();
    let mut enc = gpu.encoder();
    kernels::shrink(
        &gpu,
        &mut enc,
        &bx,
        &by,
        &bu,
        &gpu.upload("w", &weights).unwrap(),
        &gpu.upload("items", &items).unwrap(),
        &partials,
        per,
        np,
        batch,
    );
    kernels::reduce(&gpu, &mut enc, &partials, &norms, per, batch);
    gpu.submit(enc).unwrap();
    let (gx, gy, gu): (Vec<f32>, Vec<f32>, Vec<f32>) = (
        gpu.download(&bx, 0, batch * per).unwrap(),
        gpu.download(&by, 0, batch * per).unwrap(),
        gpu.download(&bu, 0, batch * per).unwrap(),
    );
    let gn: Vec<f32> = gpu.download(&norms, 0, batch * 8).unwrap();
    for b in 0..batch {
        let (mut cx, mut cy, mut cu) = (x.clone(), y.clone(), u.clone());
        let mut acc = PassNorms::default();
        for (k, wk) in weights.iter().enumerate() {
            let r = b * per + k * np..b * per + (k + 1) * np;
            let th = wk * items[b].lam_over_rho;
            let mut n = shrink_plane(&mut cx[r.clone()], &mut cy[r.clone()], &mut cu[r], th, 1.8);
            n.l1 *= *wk as f64;
            acc = PassNorms {
                x2: acc.x2 + n.x2,
                y2: acc.y2 + n.y2,
                xy2: acc.xy2 + n.xy2,
                dy2: acc.dy2 + n.dy2,
                u2: acc.u2 + n.u2,
                l1: acc.l1 + n.l1,
            };
        }
        let r = b * per..(b + 1) * per;
        for (name, g, c) in [("x", &gx, &cx), ("y", &gy, &cy), ("u", &gu, &cu)] {
            let maxd = g[r.clone()]
                .iter()
                .zip(&c[r.clone()])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(maxd < 1e-6, "shrink item {b}: {name} differs by {maxd}");
        }
        let gp = PassNorms::from_slice(&gn[8 * b..8 * b + 8]);
        for (name, g, c) in [
            ("x2", gp.x2, acc.x2),
            ("y2", gp.y2, acc.y2),
            ("xy2", gp.xy2, acc.xy2),
            ("dy2", gp.dy2, acc.dy2),
            ("u2", gp.u2, acc.u2),
            ("l1", gp.l1, acc.l1),
        ] {
            let e = (g - c).abs() / c.abs();
            println!("reduce item {b} {name}: GPU {g:.6e} CPU {c:.6e} rel {e:.1e}");
            assert!(e < 1e-5, "norm {name} of item {b}: relative error {e:.2e}");
        }
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn rescale_matches_twin() {
    let gpu = crate::test_support::gpu();
    let per = 5 * 97 * 101;
    let y = rand_vec(4 * per, 7);
    let u = rand_vec(4 * per, 8);
    // After an auto-rho change (0), no change (1), a warm start for the same lambda (2) and for
    // a smaller one (3).
    let mut items = [item(1.0, 0.1, true); 4];
    items[0].u_scale = 0.25;
    (items[2].fresh, items[3].fresh, items[3].u_scale) = (1, 1, 0.4);
    let (by, bu, byu) = (
        gpu.upload("y", &y).unwrap(),
        gpu.upload("u", &u).unwrap(),
        gpu.upload("yu", &vec![7.0f32; 4 * per]).unwrap(),
    );
    let mut enc = gpu.encoder();
    kernels::rescale(
        &gpu,
        &mut enc,
        &byu,
        &by,
        &bu,
        &gpu.upload("i", &items).unwrap(),
        per,
        4,
    );
    gpu.submit(enc).unwrap();
    let gu: Vec<f32> = gpu.download(&bu, 0, 4 * per).unwrap();
    let gyu: Vec<f32> = gpu.download(&byu, 0, 4 * per).unwrap();
    // The CPU twin: Cbpdn::warm_start (and update_rho, for item 0) on the same state.
    let fft = std::sync::Arc::new(Fft2::<f32>::new(97, 101));
    let dict = Dictionary::from_hwm(&[1, 1, 5], &[1.0; 5], std::path::Path::new("unit")).unwrap();
    for (b, it) in items.iter().enumerate() {
        let r = b * per..(b + 1) * per;
        if it.u_scale == 1.0 && it.fresh == 0 {
            assert_eq!(
                (&gu[r.clone()], &gyu[r.clone()]),
                (&u[r.clone()], &vec![7.0; per][..])
            );
            continue;
        }
        let mut twin = Cbpdn::<f32>::new(
            fft.clone(),
            &dict,
            &vec![0.0; 97 * 101],
            &CbpdnOptions::new(0.1),
        )
        .unwrap();
        twin.warm_start(&y[r.clone()], &u[r.clone()], 1.0, it.u_scale as f64);
        assert_eq!(&gu[r.clone()], twin.dual(), "item {b}: U");
        let yu: Vec<f32> = twin
            .y()
            .iter()
            .zip(twin.dual())
            .map(|(y, u)| y - u)
            .collect();
        assert_eq!(&gyu[r], &yu[..], "item {b}: Y - U");
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn synthesis_matches_twin() {
    let gpu = crate::test_support::gpu();
    let (nb, m, batch) = (65 * 96, 16, 2);
    let df = rand_complex(m * nb, 9);
    let xf = rand_complex(batch * m * nb, 10);
    let out = gpu.storage("out", (batch * nb * 8) as u64).unwrap();
    let mut enc = gpu.encoder();
    kernels::synth(
        &gpu,
        &mut enc,
        &gpu.upload("x", &pairs(&xf)).unwrap(),
        &gpu.upload("df", &pairs(&df)).unwrap(),
        &out,
        nb,
        m,
        batch,
    );
    gpu.submit(enc).unwrap();
    let got: Vec<[f32; 2]> = gpu.download(&out, 0, batch * nb).unwrap();
    for b in 0..batch {
        let want = synth_spectrum(&df, &xf[b * m * nb..(b + 1) * m * nb], nb);
        let g: Vec<f32> = got[b * nb..(b + 1) * nb]
            .iter()
            .flatten()
            .copied()
            .collect();
        let e = rel(&g, &flat(&want));
        assert!(e < 1e-6, "synthesis item {b}: relative error {e:.2e}");
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn elementwise_match_twins() {
    let gpu = crate::test_support::gpu();
    let n = 181 * 217;
    let (a, b, c) = (rand_vec(2 * n, 11), rand_vec(n, 12), rand_vec(n, 13));
    let (ba, bb, bc) = (
        gpu.upload("a", &a).unwrap(),
        gpu.upload("b", &b).unwrap(),
        gpu.upload("c", &c).unwrap(),
    );
    let (d, f) = (
        gpu.storage("d", (n * 4) as u64).unwrap(),
        gpu.storage("f", (n * 4) as u64).unwrap(),
    );
    let mut enc = gpu.encoder();
    kernels::sub(&gpu, &mut enc, &ba, &bb, &d, n);
    kernels::combine(&gpu, &mut enc, &ba, &bb, &bc, &f, n, 1);
    gpu.submit(enc).unwrap();
    let gd: Vec<f32> = gpu.download(&d, 0, n).unwrap();
    let gf: Vec<f32> = gpu.download(&f, 0, n).unwrap();
    let pa = Plane::from_vec(181, 217, a[..n].iter().map(|v| *v as f64).collect());
    let pb = Plane::from_vec(181, 217, b.iter().map(|v| *v as f64).collect());
    let want = pa.sub(&pb);
    for i in 0..n {
        assert!((gd[i] as f64 - want.data[i]).abs() < 1e-6);
        let fused = 0.5 * (a[i] + a[n + i]) + b[i] + c[i];
        assert!((gf[i] - fused).abs() < 1e-6);
    }
}

fn engines() -> (GpuEngine, CpuEngine<f32>) {
    (
        GpuEngine::with_gpu(crate::test_support::gpu()),
        CpuEngine::<f32>::default(),
    )
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn lowpass_matches_twin() {
    let (mut g, _) = engines();
    for (h, w) in [(181, 217), (64, 48)] {
        let s = Plane::from_vec(
            h,
            w,
            rand_vec(h * w, 14)
                .iter()
                .map(|v| *v as f64 * 0.5 + 0.5)
                .collect(),
        );
        let (gl, gh) = single::lowpass(&mut g, &s, 60.0, 16).unwrap();
        let (cl, ch) = tikhonov_split(&s, 60.0, 16);
        let e = |a: &Plane, b: &Plane| {
            a.data
                .iter()
                .zip(&b.data)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max)
        };
        let (el, eh) = (e(&gl, &cl), e(&gh, &ch));
        println!("lowpass {h}x{w}: max abs err low {el:.2e}, high {eh:.2e}");
        assert!(
            el < 2e-6 && eh < 2e-6,
            "lowpass {h}x{w}: {el:.2e} / {eh:.2e}"
        );
    }
}

/// `m` maps of `h x w` random coefficients (f32 values, so that the device holds them exactly).
fn random_maps((m, h, w): (usize, usize, usize), seed: u64) -> CoefMaps {
    CoefMaps {
        m,
        h,
        w,
        data: rand_vec(m * h * w, seed)
            .iter()
            .map(|v| *v as f64)
            .collect(),
    }
}

/// A dictionary of `m` filters: only the filter count matters to choose-max and the sum.
fn dictionary_of(m: usize) -> Dictionary {
    let mut dict = crate::assets::cartoon();
    dict.m = m;
    dict.data.truncate(m * dict.fh * dict.fw);
    dict
}

/// How many decisions of two maps differ.
fn flips(x: &DecisionMap, y: &DecisionMap) -> usize {
    x.from_a
        .iter()
        .zip(&y.from_a)
        .filter(|(p, q)| p != q)
        .count()
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn choose_max_matches_twin() {
    let (mut g, mut c) = engines();
    let (m, h, w) = (8, 181, 217);
    let (a, b) = (random_maps((m, h, w), 15), random_maps((m, h, w), 16));
    let dict = dictionary_of(m);
    for (r, vote) in [(2, 0), (5, 0), (5, 3), (2, 1)] {
        let (gf, gd) = single::fuse_maps(&mut g, &dict, [&a, &b], r, vote, false).unwrap();
        let (cf, cd) = single::fuse_maps(&mut c, &dict, [&a, &b], r, vote, false).unwrap();
        // f32 window sums against f64: a near-tie may flip, nothing else
        let flips = flips(&gd, &cd);
        println!(
            "choose-max r={r} vote={vote}: {flips} of {} decisions differ",
            h * w
        );
        // A flipped near-tie can flip the votes of its window too.
        let allowed = 2 * (2 * vote + 1).pow(2);
        assert!(
            flips <= allowed,
            "choose-max r={r} vote={vote}: {flips} decisions differ"
        );
        let n = h * w;
        for k in 0..m {
            for p in 0..n {
                if gd.from_a[p] == cd.from_a[p] {
                    assert_eq!(gf.data[k * n + p] as f32, cf.data[k * n + p] as f32);
                }
            }
        }
        assert_eq!(cd.from_a, choose::decide(&a, &b, r, vote).from_a);
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn summed_maps_match_twin() {
    let (mut g, mut c) = engines();
    let (m, h, w) = (6, 97, 131);
    let (a, b) = (random_maps((m, h, w), 21), random_maps((m, h, w), 22));
    let dict = dictionary_of(m);
    let (gf, gd) = single::fuse_maps(&mut g, &dict, [&a, &b], 2, 1, true).unwrap();
    let (cf, cd) = single::fuse_maps(&mut c, &dict, [&a, &b], 2, 1, true).unwrap();
    // Every coefficient is A + B (one f32 addition on the device), whatever the decisions say.
    for i in 0..m * h * w {
        let want = (a.data[i] as f32 + b.data[i] as f32) as f64;
        assert_eq!(gf.data[i], want, "coefficient {i}");
        assert!((cf.data[i] - (a.data[i] + b.data[i])).abs() < 1e-12);
    }
    // The decisions are choose-max's all the same (a near-tie may flip, and its window's votes).
    let flips = flips(&gd, &cd);
    assert!(flips <= 2 * 9, "{flips} decisions differ");
    assert_eq!(cd.from_a, choose::decide(&a, &b, 2, 1).from_a);
}

#[test]
#[ignore = "needs a GPU adapter (or Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1) and the published reference data (CSFUSE_REFERENCE_DIR); pass --include-ignored"]
fn sparse_code_and_synthesis_match_cpu_engine() {
    let (mut g, mut c) = engines();
    let dict = Dictionary::load(&crate::test_support::reference("Dc_8_8_32.npy")).unwrap();
    let s = detail_plane(181, 217);
    // Both sides are Bluestein lengths (181 is prime, 217 = 7 x 31), the slowest lines on
    // lavapipe: 12 iterations, each with its rho update (period 1).
    let mut opts = CbpdnOptions::new(0.1);
    opts.max_iter = 12;
    opts.rel_tol = 0.0;
    let gs = g.sparse_code(&dict, &s, &opts).unwrap();
    let cs = c.sparse_code(&dict, &s, &opts).unwrap();
    let rel_obj = (gs.stats.objective - cs.stats.objective).abs() / cs.stats.objective;
    let scale = cs.coef.data.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let maxd = gs
        .coef
        .data
        .iter()
        .zip(&cs.coef.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!(
        "CBPDN 181x217, 12 iterations: objective GPU {:.6e} CPU {:.6e} (rel {rel_obj:.1e}); rho {:.4} / {:.4}; \
         max coef diff {maxd:.2e} of max {scale:.2e}",
        gs.stats.objective, cs.stats.objective, gs.stats.rho, cs.stats.rho
    );
    assert_eq!(gs.stats.iterations, 12);
    assert!(
        rel_obj < 1e-4,
        "objective differs by {rel_obj:.2e} relative"
    );
    assert!(maxd < 1e-3 * scale, "coefficients differ by {maxd:.2e}");

    let gsyn = single::synthesize(&mut g, &dict, &cs.coef).unwrap();
    let csyn = single::synthesize(&mut c, &dict, &cs.coef).unwrap();
    let e = gsyn
        .data
        .iter()
        .zip(&csyn.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    let amp = csyn.data.iter().map(|v| v.abs()).fold(0.0, f64::max);
    println!("synthesis 181x217: max abs err {e:.2e} of max {amp:.2e}");
    assert!(e < 1e-5 * amp.max(1.0), "synthesis differs by {e:.2e}");
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn admm_control_matches_twin() {
    use crate::cpu::cbpdn::rho_factor;
    let gpu = crate::test_support::gpu();
    // More items than one workgroup; residual ratios spread over six decades so that every branch
    // (converge, rho up, rho down, no change) is taken; some items have stopped already.
    let batch = 300;
    let per_item = 8 * 181 * 217;
    let mut opts = CbpdnOptions::new(0.3);
    opts.rel_tol = 1e-3;
    opts.abs_tol = 1e-6;
    let xi = opts.residual_target();
    let mut r = SplitMix(31);
    let mut norms = vec![0f32; 8 * batch];
    let mut items = Vec::new();
    let mut iters0 = Vec::new();
    for b in 0..batch {
        let x2 = 10f64.powf(r.uniform() * 4.0 - 1.0);
        let y2 = x2 * (0.5 + r.uniform());
        let xy2 = x2 * 10f64.powf(-9.0 + 8.0 * r.uniform());
        let dy2 = y2 * 10f64.powf(-9.0 + 8.0 * r.uniform());
        let u2 = 10f64.powf(r.uniform() * 4.0 - 2.0);
        let l1 = 100.0 * r.uniform();
        for (q, v) in [x2, y2, xy2, dy2, u2, l1].iter().enumerate() {
            norms[8 * b + q] = *v as f32;
        }
        let rho = (0.1 + 10.0 * r.uniform()) as f32;
        let mut it = item(rho, opts.lambda as f32, b % 17 != 3);
        // Items after a warm start's first rescale (the control clears the flag).
        it.fresh = (b % 3 == 0) as u32;
        items.push(it);
        iters0.push((b % 5) as f32);
    }
    let mut stats0 = vec![0f32; 8 * batch];
    for b in 0..batch {
        stats0[8 * b] = iters0[b];
    }
    let a = &opts.auto_rho;
    let ctrl = kernels::Ctrl {
        batch: batch as u32,
        auto_rho: 1,
        period: a.period as u32,
        lambda: opts.lambda as f32,
        rel_tol: opts.rel_tol as f32,
        abs_tol: ((per_item as f64).sqrt() * opts.abs_tol) as f32,
        xi: xi as f32,
        ratio: a.ratio as f32,
        scaling: a.scaling as f32,
        ..Default::default()
    };
    let (bn, bi, bs) = (
        gpu.upload("norms", &norms).unwrap(),
        gpu.upload("items", &items).unwrap(),
        gpu.upload("stats", &stats0).unwrap(),
    );
    let mut enc = gpu.encoder();
    kernels::control(&gpu, &mut enc, &ctrl, &bn, &bi, &bs);
    gpu.submit(enc).unwrap();
    let gi: Vec<Item> = gpu.download(&bi, 0, batch).unwrap();
    let gs: Vec<f32> = gpu.download(&bs, 0, 8 * batch).unwrap();
    let (mut stopped, mut up, mut down) = (0, 0, 0);
    let close = |g: f64, c: f64| (g - c).abs() <= 1e-5 * c.abs().max(1e-30);
    for b in 0..batch {
        let (it, g) = (&items[b], &gi[b]);
        if it.live == 0 {
            assert_eq!(
                (g.live, g.rho, g.u_scale, g.fresh),
                (0, it.rho, 1.0, 0),
                "stopped item {b}"
            );
            assert_eq!(gs[8 * b], iters0[b], "stopped item {b} counts no iteration");
            continue;
        }
        let nrm = PassNorms::from_slice(&norms[8 * b..8 * b + 8]);
        let (rr, ss) = nrm.residuals();
        let eps = nrm.stop_thresholds(it.rho as f64, per_item, &opts);
        let iters = iters0[b] as usize + 1;
        let f = rho_factor(&opts, xi, iters, rr, ss);
        // Skip near ties, where f32 and f64 may rightly decide differently (see gpu/cbpdn.rs).
        let tie = |x: f64, t: f64| (x / t - 1.0).abs() < 1e-4;
        if tie(rr, eps.0)
            || tie(ss, eps.1)
            || tie(rr, xi * a.ratio * ss)
            || tie(ss, a.ratio / xi * rr)
        {
            continue;
        }
        let conv = rr <= eps.0 && ss <= eps.1;
        assert_eq!(
            g.live == 0,
            conv,
            "item {b}: stop test (r {rr:.3e}/{:.3e}, s {ss:.3e}/{:.3e})",
            eps.0,
            eps.1
        );
        let want_rho = it.rho as f64 * f.unwrap_or(1.0);
        assert!(
            close(g.rho as f64, want_rho),
            "item {b}: rho {} vs {want_rho}",
            g.rho
        );
        assert!(
            close(g.u_scale as f64, 1.0 / f.unwrap_or(1.0)),
            "item {b}: u_scale"
        );
        assert_eq!(g.fresh, 0, "item {b}: a warm start's first rescale is done");
        assert!(close(g.lam_over_rho as f64, opts.lambda / want_rho));
        assert_eq!(gs[8 * b] as usize, iters);
        assert!(
            close(gs[8 * b + 1] as f64, rr) && close(gs[8 * b + 2] as f64, ss),
            "item {b}: residuals"
        );
        assert_eq!(gs[8 * b + 3], norms[8 * b + 5]);
        stopped += conv as usize;
        up += f.is_some_and(|f| f > 1.0) as usize;
        down += f.is_some_and(|f| f < 1.0) as usize;
    }
    println!("ADMM control on {batch} items: {stopped} stopped, rho up {up}, down {down}");
    assert!(stopped > 0 && up > 0 && down > 0, "every branch taken");
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn data_term_matches_twin() {
    use crate::cpu::cbpdn::data_fidelity;
    let gpu = crate::test_support::gpu();
    for (h, w) in [(181, 217), (64, 48)] {
        let batch = 3;
        let nb = (w / 2 + 1) * h;
        let dx = rand_complex(batch * nb, 41);
        let sf = rand_complex(batch * nb, 42);
        let stats = gpu.storage("stats", (batch * 32) as u64).unwrap();
        let mut enc = gpu.encoder();
        kernels::fidelity(
            &gpu,
            &mut enc,
            &gpu.upload("dx", &pairs(&dx)).unwrap(),
            &gpu.upload("sf", &pairs(&sf)).unwrap(),
            &stats,
            h,
            w,
            batch,
        );
        gpu.submit(enc).unwrap();
        let gs: Vec<f32> = gpu.download(&stats, 0, 8 * batch).unwrap();
        for b in 0..batch {
            let r = b * nb..(b + 1) * nb;
            let want = data_fidelity(h, w, &dx[r.clone()], &sf[r]);
            let e = (gs[8 * b + 5] as f64 - want).abs() / want;
            println!(
                "data term {h}x{w} item {b}: GPU {} CPU {want:.6e} rel {e:.1e}",
                gs[8 * b + 5]
            );
            assert!(
                e < 1e-5,
                "data term {h}x{w} item {b}: relative error {e:.2e}"
            );
        }
    }
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn skip_grids_match_twin() {
    use crate::gpu::cbpdn::skip_grids;
    let gpu = crate::test_support::gpu();
    let t = gpu.skip_tables().expect("lavapipe dispatches indirectly");
    // Odd batch and a table that is not a whole number of workgroups of words.
    let words = 3 * 250;
    let full: Vec<u32> = (0..words as u32).map(|i| 1 + i % 1000).collect();
    gpu.queue
        .write_buffer(&t.full, 0, bytemuck::cast_slice(&full));
    for live in [vec![false; 77], {
        let mut l = vec![false; 77];
        l[76] = true;
        l
    }] {
        let items: Vec<Item> = live.iter().map(|l| item(1.0, 0.1, *l)).collect();
        let bi = gpu.upload("items", &items).unwrap();
        let mut enc = gpu.encoder();
        kernels::skip(&gpu, &mut enc, &bi, &t.full, &t.args, live.len(), words);
        gpu.submit(enc).unwrap();
        let got: Vec<u32> = gpu.download(&t.args, 0, words).unwrap();
        assert_eq!(
            got,
            skip_grids(&live, &full),
            "live {:?}",
            live.iter().any(|l| *l)
        );
    }
}

/// Two solves of one code on each engine: a cold one whose rho changes in its last iteration
/// (every iteration may change it here), then a warm one at a smaller lambda. The GPU applies a
/// rho change's dual rescale lazily; the warm start must still begin from the dual that goes
/// with the rho it reports, as the CPU's does.
#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn a_warm_start_after_a_last_iteration_rho_change_matches_cpu() {
    use crate::pipeline::ops::{Ops, Start};
    /// Each solve's (rho, objective) per item, and the maps after the warm solve.
    fn run<E: Ops>(e: &mut E, dict: &Dictionary, s: [&Plane; 2]) -> (Vec<(f64, f64)>, Vec<f64>) {
        let (h, w) = (s[0].h, s[0].w);
        let mut code = e.code("warm test", dict, 2, h, w).unwrap();
        let planes = e.upload("warm test: signals", &s).unwrap();
        let mut cold = CbpdnOptions::new(0.1);
        (cold.max_iter, cold.rel_tol) = (7, 0.0);
        (cold.auto_rho.period, cold.auto_rho.ratio) = (1, 1.01);
        let mut stats = e.solve(&mut code, &planes, &cold, Start::Zero).unwrap();
        let mut warm = cold.clone();
        warm.lambda = 0.03;
        stats.extend(e.solve(&mut code, &planes, &warm, Start::Warm).unwrap());
        let maps = e.download_code(&code).unwrap();
        (
            stats.iter().map(|st| (st.rho, st.objective)).collect(),
            maps.iter().flat_map(|m| m.data.clone()).collect(),
        )
    }
    let (mut g, mut c) = engines();
    let dict = crate::assets::texture();
    let (s1, s2) = (detail_plane(45, 51), detail_plane(51, 45));
    let s2 = Plane::from_vec(45, 51, s2.data.clone());
    let (gv, gmaps) = run(&mut g, &dict, [&s1, &s2]);
    let (cv, cmaps) = run(&mut c, &dict, [&s1, &s2]);
    for (k, (x, y)) in gv.iter().zip(&cv).enumerate() {
        let (solve, item) = (k / 2, k % 2);
        println!(
            "solve {solve} item {item}: rho GPU {:.5} CPU {:.5}, objective GPU {:.7e} CPU {:.7e}",
            x.0, y.0, x.1, y.1
        );
        let rel = (x.1 - y.1).abs() / y.1.abs();
        assert!(
            rel < 1e-4,
            "solve {solve} item {item}: objective differs by {rel:.1e}"
        );
    }
    let scale = cmaps.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let maxd = gmaps
        .iter()
        .zip(&cmaps)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!("coefficients after the warm solve: max diff {maxd:.2e} of max {scale:.2e}");
    assert!(maxd < 1e-3 * scale, "coefficients differ by {maxd:.2e}");
}
