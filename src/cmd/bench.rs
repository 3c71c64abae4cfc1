//! `csfuse bench`: ms per CBPDN iteration and whole-fusion time, printed as a table.

use csfuse::cbpdn::{Cbpdn, CbpdnOptions};
use csfuse::dictionary::Dictionary;
use csfuse::engine::{cpu_engine, CpuEngine, Engine};
use csfuse::fuse::{fuse_pair, FuseParams};
use csfuse::gpu::GpuEngine;
use csfuse::io::read_gray;
use csfuse::lowpass::tikhonov_split;
use csfuse::phantom::head_pair;
use csfuse::real::{Precision, Real};
use csfuse::{assets, Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Time the CPU engine (and with --gpu the GPU engine) and print a table.
///
/// Reports ms per CBPDN iteration (phantom detail layers of each size, M filters of the dictionary,
/// set-up excluded; median and minimum of single iterations) for each thread count, then the total
/// time of `fuse` on a pair.
#[derive(clap::Args)]
pub struct Args {
    /// Image sizes (square) for the per-iteration benchmark.
    #[arg(long, value_delimiter = ',', default_values_t = vec![256, 512])]
    pub sizes: Vec<usize>,
    /// Thread counts to try.
    #[arg(long = "threads-list", value_delimiter = ',', default_values_t = vec![1, 2])]
    pub threads_list: Vec<usize>,
    /// Iterations timed per case (after 3 warm-up iterations).
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Dictionary [default: built-in cartoon dictionary, 32 filters of 8x8].
    #[arg(long, value_name = "D.npy")]
    pub dict: Option<PathBuf>,
    /// Pair to time `fuse` on [default: the generated phantom pair, 256x256].
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub pair: Option<Vec<PathBuf>>,
    /// Dictionaries for the fuse timing (cartoon, texture) [default: built-in].
    #[arg(long, num_args = 2, value_names = ["DC", "DT"])]
    pub fuse_dicts: Option<Vec<PathBuf>>,
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Also time the GPU engine (the adapter `--backend gpu` takes; see `csfuse devices`): mean ms per
    /// iteration over the timed iterations (each includes the residual read-back), and fuse time after
    /// one warm-up fusion (pipelines compiled, buffers allocated).
    #[arg(long)]
    pub gpu: bool,
}

/// Mean ms per CBPDN iteration on the GPU engine, after a warm-up solve.
fn gpu_per_iter(gpu: &mut GpuEngine, dict: &Dictionary, size: usize, iters: usize) -> Result<f64> {
    let (ct, _) = head_pair(size);
    let (_, detail) = tikhonov_split(&ct, 60.0, 16);
    let mut opts = CbpdnOptions::new(0.1);
    opts.max_iter = 3;
    opts.rel_tol = 0.0;
    gpu.sparse_code(dict, &detail, &opts)?;
    opts.max_iter = iters.max(1);
    Ok(gpu.sparse_code(dict, &detail, &opts)?.stats.ms_per_iter)
}

/// Median and minimum ms of single iterations (robust to other load on a shared machine).
fn per_iter<T: Real>(dict: &Dictionary, size: usize, iters: usize) -> Result<(f64, f64)> {
    let (ct, _) = head_pair(size);
    let (_, detail) = tikhonov_split(&ct, 60.0, 16);
    let mut opts = CbpdnOptions::new(0.1);
    opts.max_iter = 3;
    opts.rel_tol = 0.0;
    let fft = CpuEngine::<T>::default().plan(size, size);
    let mut s = Cbpdn::<T>::new(fft, dict, &detail.data, &opts)?;
    s.solve(); // warm-up: page in buffers, settle rho
    let mut ms: Vec<f64> = (0..iters.max(1))
        .map(|_| {
            let t = Instant::now();
            s.step();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[0]))
}

fn pool(n: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .map_err(|e| Error::Param(format!("cannot start {n} threads: {e}")))
}

pub fn run(args: Args) -> Result<()> {
    let dict = match &args.dict {
        Some(p) => Dictionary::load(p)?,
        None => assets::cartoon(),
    };
    println!(
        "CBPDN per iteration ({}, {} filters of {}x{}, {} timed iterations)",
        args.precision.name(),
        dict.m,
        dict.fh,
        dict.fw,
        args.iters
    );
    println!(
        "{:>9} {:>8} {:>15} {:>12}",
        "size", "threads", "median ms/iter", "min ms/iter"
    );
    for &size in &args.sizes {
        for &th in &args.threads_list {
            let (med, min) = pool(th)?.install(|| match args.precision {
                Precision::F32 => per_iter::<f32>(&dict, size, args.iters),
                Precision::F64 => per_iter::<f64>(&dict, size, args.iters),
            })?;
            println!(
                "{:>9} {:>8} {:>15.2} {:>12.2}",
                format!("{size}x{size}"),
                th,
                med,
                min
            );
        }
    }
    let mut gpu = if args.gpu {
        let g = GpuEngine::new()?;
        println!("GPU: {}", g.describe());
        Some(g)
    } else {
        None
    };
    if let Some(g) = gpu.as_mut() {
        for &size in &args.sizes {
            let ms = gpu_per_iter(g, &dict, size, args.iters)?;
            println!(
                "{:>9} {:>8} {:>15.3} {:>12}",
                format!("{size}x{size}"),
                "gpu",
                ms,
                "(mean)"
            );
        }
    }
    let (a, b, label) = match &args.pair {
        Some(p) => (
            read_gray(&p[0])?.plane,
            read_gray(&p[1])?.plane,
            format!("{} + {}", p[0].display(), p[1].display()),
        ),
        None => {
            let (a, b) = head_pair(256);
            (a, b, "phantom pair 256x256".to_string())
        }
    };
    let (dc, dt) = match &args.fuse_dicts {
        Some(d) => (Dictionary::load(&d[0])?, Dictionary::load(&d[1])?),
        None => (assets::cartoon(), assets::texture()),
    };
    println!("\nfuse total ({label})");
    println!("{:>8} {:>12}", "threads", "ms");
    for &th in &args.threads_list {
        let ms = pool(th)?.install(|| -> Result<f64> {
            let mut eng = cpu_engine(args.precision);
            let out = fuse_pair(eng.as_mut(), &a, &b, &dc, &dt, &FuseParams::default())?;
            Ok(out.times.total_ms)
        })?;
        println!("{th:>8} {ms:>12.1}");
    }
    if let Some(g) = gpu.as_mut() {
        let p = FuseParams::default();
        fuse_pair(g, &a, &b, &dc, &dt, &p)?; // warm-up
        let out = fuse_pair(g, &a, &b, &dc, &dt, &p)?;
        println!("{:>8} {:>12.1}", "gpu", out.times.total_ms);
    }
    Ok(())
}
