//! `csfuse bench`: ms per CBPDN iteration and whole-fusion time, printed as a table.

use csfuse::cpu::cbpdn::{Cbpdn, CbpdnOptions};
use csfuse::cpu::lowpass::tikhonov_split;
use csfuse::cpu::CpuEngine;
use csfuse::dictionary::Dictionary;
use csfuse::formats::image::read_gray;
use csfuse::formats::nifti;
use csfuse::gpu::GpuEngine;
use csfuse::jobs::report::Outcome;
use csfuse::jobs::session::{cpu_engine, Backend, Session};
use csfuse::jobs::{fuse_volumes, JobOptions};
use csfuse::phantom::{head_pair, phantom_volumes};
use csfuse::pipeline::fuse::{fuse_pair, FuseParams};
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
    /// iteration of solves of 1, 2 and 8 signals at once (one submission per solve), the memory
    /// bandwidth that achieves against the adapter's peak where known, the speed-up over the CPU
    /// rows, and a warm fusion's time, stage times and device counters.
    #[arg(long)]
    pub gpu: bool,
    /// Instead, time whole-volume fusion of a generated CT-like/MR-like NIfTI phantom pair of this size
    /// (e.g. 256x256x128; slices are square): seconds per fused slice pair and in total, on the CPU
    /// engine (all cores) and with --gpu on the GPU engine. Reading and writing the files is included.
    #[arg(long, value_name = "WxHxD", value_parser = parse_dims)]
    pub volume: Option<[usize; 3]>,
}

fn parse_dims(s: &str) -> std::result::Result<[usize; 3], String> {
    let v: Vec<usize> = s.split('x').filter_map(|t| t.trim().parse().ok()).collect();
    match v[..] {
        [w, h, d] if w == h && w >= 16 && d >= 1 => Ok([w, h, d]),
        _ => Err(format!(
            "`{s}` is not WxHxD with W = H >= 16 (e.g. 256x256x128)"
        )),
    }
}

/// Fuse a generated phantom volume pair on each engine and print seconds per slice pair and total.
fn bench_volume(dims: [usize; 3], gpu: bool, precision: Precision) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("csfuse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let (a, b, out) = (
        dir.join("ct.nii.gz"),
        dir.join("mr.nii.gz"),
        dir.join("fused.nii.gz"),
    );
    let (ct, mr) = phantom_volumes(dims[0], dims[2]);
    nifti::write(&a, &ct, &ct.data, ct.datatype)?;
    nifti::write(&b, &mr, &mr.data, mr.datatype)?;
    let opts = JobOptions {
        progress: true,
        ..JobOptions::with_params(FuseParams::default())
    };
    println!(
        "volume fusion: generated phantom pair {}x{}x{} (int16 CT-like + float32 MR-like, .nii.gz)",
        dims[0], dims[1], dims[2]
    );
    println!(
        "{:<34} {:>7} {:>6} {:>6} {:>14} {:>9} {:>9}",
        "engine", "slices", "fused", "empty", "s/slice pair*", "slices/s", "total s"
    );
    let mut backends = vec![Backend::Cpu];
    if gpu {
        backends.push(Backend::Gpu);
    }
    for backend in backends {
        let t = Instant::now();
        let mut s = Session::open(backend, precision, false)?;
        let mut set = csfuse::formats::output::OutputSet::default();
        let r = fuse_volumes(&mut s, &a, &b, &out, &opts, &mut set)?.report;
        set.commit()?;
        let total = t.elapsed().as_secs_f64();
        let Some(Outcome::Volume(v)) = &r.result else {
            unreachable!("a volume job that passed reports its volume")
        };
        println!(
            "{:<34} {:>7} {:>6} {:>6} {:>14.3} {:>9.2} {:>9.1}",
            s.describe(),
            v.slices.total,
            v.slices.fused,
            v.slices.empty_passed_through,
            v.timings_ms.per_fused_slice / 1e3,
            dims[2] as f64 / total,
            total
        );
    }
    println!(
        "* fusion wall time / fused slice pairs (slice pairs run concurrently on the CPU engine)"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Mean ms per CBPDN iteration on the GPU engine for `batch` signals solved together, after a
/// warm-up solve (one submission per solve: the mean includes the one read-back at its end).
fn gpu_per_iter(
    gpu: &mut GpuEngine,
    dict: &Dictionary,
    size: usize,
    batch: usize,
    iters: usize,
) -> Result<f64> {
    use csfuse::pipeline::ops::Ops;
    let (ct, _) = head_pair(size);
    let (_, detail) = tikhonov_split(&ct, 60.0, 16);
    let mut opts = CbpdnOptions::new(0.1);
    opts.max_iter = 3;
    opts.rel_tol = 0.0;
    let planes: Vec<&csfuse::plane::Plane> = (0..batch).map(|_| &detail).collect();
    let sig = gpu.upload("bench: signals", &planes)?;
    let mut code = gpu.code("bench", dict, batch, size, size)?;
    gpu.solve(&mut code, &sig, &opts)?;
    opts.max_iter = iters.max(1);
    let t = Instant::now();
    gpu.solve(&mut code, &sig, &opts)?;
    Ok(t.elapsed().as_secs_f64() * 1e3 / opts.max_iter as f64)
}

/// Peak memory bandwidth in GB/s of well-known GPUs, by adapter name (vendor data sheets).
fn peak_gbps(name: &str) -> Option<f64> {
    let n = name.to_lowercase();
    let table: [(&str, f64); 14] = [
        ("h200", 4800.0),
        ("h100 pcie", 2000.0),
        ("h100", 3350.0),
        ("a100-sxm4-80gb", 2039.0),
        ("a100 80gb", 1935.0),
        ("a100", 1555.0),
        ("l40s", 864.0),
        ("l4", 300.0),
        ("a10", 600.0),
        ("v100", 900.0),
        ("rtx 4090", 1008.0),
        ("rtx 3090", 936.0),
        ("mi300x", 5300.0),
        ("mi250", 3277.0),
    ];
    table.iter().find(|(k, _)| n.contains(k)).map(|(_, v)| *v)
}

/// The GPU half of the table: per-iteration time, bandwidth and speed-up over the CPU path.
fn bench_gpu_iterations(
    g: &mut GpuEngine,
    dict: &Dictionary,
    args: &Args,
    cpu_ms: &[(usize, f64)],
) -> Result<()> {
    let desc = g.adapter_desc().clone();
    let peak = peak_gbps(&desc.name);
    println!(
        "\nGPU: {desc}, peak memory bandwidth {}",
        peak.map_or("unknown".into(), |p| format!("{p:.0} GB/s"))
    );
    println!(
        "{:>9} {:>6} {:>12} {:>12} {:>13} {:>10} {:>8}",
        "size", "batch", "ms/iter", "ms/iter/item", "GB/s (lower)", "% of peak", "vs cpu"
    );
    for &size in &args.sizes {
        for batch in [1, 2, 8] {
            let ms = gpu_per_iter(g, dict, size, batch, args.iters)?;
            let bytes = csfuse::gpu::bytes_per_iteration(batch, dict.m, size, size);
            let gbps = bytes as f64 / (ms * 1e-3) / 1e9;
            let cpu = cpu_ms
                .iter()
                .find(|(s, _)| *s == size)
                .map(|(_, c)| c * batch as f64);
            println!(
                "{:>9} {:>6} {:>12.3} {:>12.3} {:>13.1} {:>10} {:>8}",
                format!("{size}x{size}"),
                batch,
                ms,
                ms / batch as f64,
                gbps,
                peak.map_or("-".into(), |p| format!("{:.0}%", 100.0 * gbps / p)),
                cpu.map_or("-".into(), |c| format!("{:.1}x", c / ms)),
            );
        }
    }
    println!(
        "GB/s counts the bytes each kernel of an iteration must read and write once (FFTs, X step, \
         shrink); vs cpu: the CPU path's median ms/iter at the most threads timed, times the batch"
    );
    Ok(())
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
    if let Some(dims) = args.volume {
        return bench_volume(dims, args.gpu, args.precision);
    }
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
    // The CPU's median at the largest thread count, per size (the GPU rows compare with it).
    let mut cpu_ms = Vec::new();
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
            if Some(&th) == args.threads_list.iter().max() {
                cpu_ms.push((size, med));
            }
        }
    }
    let mut gpu = if args.gpu {
        Some(GpuEngine::new()?)
    } else {
        None
    };
    if let Some(g) = gpu.as_mut() {
        bench_gpu_iterations(g, &dict, &args, &cpu_ms)?;
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
        fuse_pair(g, &a, &b, &dc, &dt, &p)?; // warm-up: pipelines compiled, buffers made
        let before = g.device_counters();
        let out = fuse_pair(g, &a, &b, &dc, &dt, &p)?;
        let c = g.device_counters().since(&before);
        let t = &out.times;
        println!("{:>8} {:>12.1}  (warm)", "gpu", t.total_ms);
        println!(
            "  stages ({}): lowpass {:.1}, decompose {:.1}, choose-max {:.1}, synthesis {:.1} ms",
            t.clock, t.lowpass_ms, t.decompose_ms, t.fuse_rule_ms, t.synthesis_ms
        );
        println!(
            "  counters of the warm fusion: {} submits, {} host waits, {} dispatches, {} bind groups \
             created, {} buffers created, {} bytes read back",
            c.submits,
            c.host_waits,
            c.dispatches,
            c.bind_groups_created,
            c.buffers_created,
            c.bytes_read_back
        );
    }
    Ok(())
}
