//! ms per CBPDN iteration (256x256 and 512x512, 32 filters of 8x8, 1 and 2 threads) and the total
//! `fuse` time for the reference pair. Run: `cargo bench --bench cbpdn`.
//! The same numbers as a quick table: `csfuse bench` (see README).

use criterion::{criterion_group, criterion_main, Criterion};
use csfuse::cpu::cbpdn::{Cbpdn, CbpdnOptions};
use csfuse::cpu::lowpass::tikhonov_split;
use csfuse::cpu::CpuEngine;
use csfuse::dictionary::Dictionary;
use csfuse::formats::image::read_gray;
use csfuse::jobs::session::cpu_engine;
use csfuse::phantom::head_pair;
use csfuse::pipeline::fuse::{fuse_pair, FuseParams};
use csfuse::real::Precision;
use std::path::PathBuf;
use std::time::Duration;

fn reference(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/csmca_reference")
        .join(name)
}

/// The reference cartoon dictionary when shared/ is present, else the project's own (same shape).
fn dictionary() -> Dictionary {
    Dictionary::load(&reference("Dc_8_8_32.npy")).unwrap_or_else(|_| csfuse::assets::cartoon())
}

fn per_iteration(c: &mut Criterion) {
    let dict = dictionary();
    let mut g = c.benchmark_group("cbpdn_iteration");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    for size in [256usize, 512] {
        let (ct, _) = head_pair(size);
        let detail = tikhonov_split(&ct, 60.0, 16).1;
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut opts = CbpdnOptions::new(0.1);
            opts.rel_tol = 0.0;
            let fft = CpuEngine::<f32>::default().plan(size, size);
            let mut solver = Cbpdn::<f32>::new(fft, &dict, &detail.data, &opts).unwrap();
            g.bench_function(format!("{size}x{size}/{threads}t"), |b| {
                b.iter(|| pool.install(|| solver.step()))
            });
        }
    }
    g.finish();
}

fn fuse_reference_pair(c: &mut Criterion) {
    let (Ok(a), Ok(b)) = (
        read_gray(&reference("source1.tif")),
        read_gray(&reference("source2.tif")),
    ) else {
        eprintln!("fuse benchmark skipped: ../shared/data/csmca_reference not found");
        return;
    };
    let dc = Dictionary::load(&reference("Dc_8_8_32.npy")).unwrap();
    let dt = Dictionary::load(&reference("Dt_8_8_32.npy")).unwrap();
    let mut g = c.benchmark_group("fuse");
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    g.bench_function("reference_pair_256", |bch| {
        bch.iter(|| {
            let mut eng = cpu_engine(Precision::F32);
            fuse_pair(
                eng.as_mut(),
                &a.plane,
                &b.plane,
                &dc,
                &dt,
                &FuseParams::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, per_iteration, fuse_reference_pair);
criterion_main!(benches);
