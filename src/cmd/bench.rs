//! `csfuse bench`: ms per CBPDN iteration and whole-fusion time, printed as a table.

use csfuse::cpu::cbpdn::{Cbpdn, CbpdnOptions};
use csfuse::cpu::lowpass::tikhonov_split;
use csfuse::cpu::CpuEngine;
use csfuse::dictionary::Dictionary;
use csfuse::formats::image::read_gray;
use csfuse::formats::image::write_atomic;
use csfuse::formats::nifti;
use csfuse::gpu::GpuEngine;
use csfuse::jobs::report::Outcome;
use csfuse::jobs::session::{cpu_engine, Backend, Session};
use csfuse::jobs::{fuse_volumes, JobOptions};
use csfuse::phantom::{head_pair, phantom_volumes};
use csfuse::pipeline::fuse::{fuse_pair, FuseOutput, FuseParams, Mode};
use csfuse::real::{Precision, Real};
use csfuse::{assets, Error, Result};
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

/// Time the CPU engine (and with --gpu the GPU engine) and print a table.
///
/// Reports ms per CBPDN iteration (phantom detail layers of each size, M filters of the dictionary,
/// set-up excluded; median and minimum of single iterations) for each thread count, then the total
/// time and ADMM iterations of `fuse` on a pair in each mode. `--json` also writes every figure
/// to a file (benches/gpu-check.sh collects them that way).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  csfuse bench\n  \
csfuse bench --gpu --batches 1,8,64 --json gpu.json\n  \
csfuse bench --volume 256x256x128 --modes pyramid")]
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
    /// Fusion modes to time, comma-separated [default: every mode, the default first].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub modes: Option<Vec<Mode>>,
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Also time the GPU engine (the adapter `--backend gpu` takes; see `csfuse devices`): mean ms per
    /// iteration of solves of --batches signals at once (one submission per solve), the memory
    /// bandwidth that achieves against the adapter's peak where known, the speed-up over the CPU
    /// rows, and a warm fusion's time, stage times and device counters in each mode, with its
    /// difference from the CPU engine's result.
    #[arg(long)]
    pub gpu: bool,
    /// Signals per GPU solve for the per-iteration rows (a batch over the adapter's binding limit
    /// is reported as such).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 8, 64])]
    pub batches: Vec<usize>,
    /// Instead, time whole-volume fusion of a generated CT-like/MR-like NIfTI phantom pair of this size
    /// (e.g. 256x256x128; slices are square): seconds per fused slice pair, in total and ADMM
    /// iterations, in each of --modes, on the CPU engine (all cores) and with --gpu on the GPU
    /// engine. Reading and writing the files is included.
    #[arg(long, value_name = "WxHxD", value_parser = parse_dims)]
    pub volume: Option<[usize; 3]>,
    /// With --volume and --gpu: time the GPU engine alone.
    #[arg(long, requires_all = ["volume", "gpu"])]
    pub gpu_only: bool,
    /// Also write every figure as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Every figure of a run, for `--json`.
#[derive(Default, Serialize)]
struct Record {
    csfuse_version: &'static str,
    threads: usize,
    cpu_iterations: Vec<serde_json::Value>,
    gpu: Option<serde_json::Value>,
    gpu_iterations: Vec<serde_json::Value>,
    fusions: Vec<serde_json::Value>,
    volumes: Vec<serde_json::Value>,
    resampling: Vec<serde_json::Value>,
}

impl Record {
    fn write(&self, path: Option<&PathBuf>) -> Result<()> {
        match path {
            Some(p) => write_atomic(p, &csfuse::jobs::report::json_bytes(self)),
            None => Ok(()),
        }
    }
}

fn modes(args: &Args) -> Vec<Mode> {
    args.modes.clone().unwrap_or_else(|| Mode::ALL.to_vec())
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

/// Time resampling `v` onto a grid of its shape turned 5° about z (what `fuse` does first when
/// the inputs' grids differ): the best of three runs of each interpolation, all threads.
fn bench_resample(v: &nifti::Volume, rec: &mut Record) {
    use csfuse::resample::{resample, Grid, Interp};
    let source = v.grid();
    let (s, c) = 5f64.to_radians().sin_cos();
    let mut affine = source.affine;
    for row in affine.iter_mut() {
        let (x, y) = (row[0], row[1]);
        (row[0], row[1]) = (c * x - s * y, s * x + c * y);
    }
    let target = Grid { affine, ..source };
    println!(
        "resampling: the {}x{}x{} MR-like volume onto its grid turned 5 degrees",
        v.dims[0], v.dims[1], v.dims[2]
    );
    for interp in [Interp::Nearest, Interp::Linear, Interp::Cubic] {
        let best = (0..3)
            .map(|_| {
                let t = Instant::now();
                let r = resample(&v.data, &source, &target, interp, 0.0);
                assert!(r.is_some(), "the phantom's affine is invertible");
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        println!("  {:<8} {:>8.3} s", interp.name(), best);
        rec.resampling.push(json!({
            "dims": v.dims, "interp": interp, "seconds": best,
            "threads": rayon::current_num_threads(),
        }));
    }
}

/// Fuse a generated phantom volume pair on each engine in each mode and print seconds per slice
/// pair, in total, and the ADMM iterations.
fn bench_volume(dims: [usize; 3], args: &Args, rec: &mut Record) -> Result<()> {
    let dir = std::env::temp_dir().join(format!("csfuse-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let (a, b, out) = (
        dir.join("ct.nii.gz"),
        dir.join("mr.nii.gz"),
        dir.join("fused.nii.gz"),
    );
    let (ct, mr) = phantom_volumes(dims[0], dims[2]);
    bench_resample(&mr, rec);
    nifti::write(&a, &ct, &ct.data, ct.datatype)?;
    nifti::write(&b, &mr, &mr.data, mr.datatype)?;
    println!(
        "volume fusion: generated phantom pair {}x{}x{} (int16 CT-like + float32 MR-like, .nii.gz)",
        dims[0], dims[1], dims[2]
    );
    println!(
        "{:<34} {:>8} {:>7} {:>6} {:>6} {:>14} {:>9} {:>9} {:>10}",
        "engine",
        "mode",
        "slices",
        "fused",
        "empty",
        "s/slice pair*",
        "slices/s",
        "total s",
        "ADMM iter"
    );
    let mut backends = Vec::new();
    if !args.gpu_only {
        backends.push(Backend::Cpu);
    }
    if args.gpu {
        backends.push(Backend::Gpu);
    }
    for backend in backends {
        for mode in modes(args) {
            let opts = JobOptions {
                progress: true,
                ..JobOptions::with_params(FuseParams::new(mode))
            };
            let t = Instant::now();
            let mut s = Session::open(backend, args.precision, false)?;
            let mut set = csfuse::formats::output::OutputSet::default();
            let r = fuse_volumes(&mut s, &a, &b, &out, &opts, &mut set)?.report;
            set.commit()?;
            std::fs::remove_file(&out).map_err(|e| Error::io(&out, e))?;
            let total = t.elapsed().as_secs_f64();
            let Some(Outcome::Volume(v)) = &r.result else {
                unreachable!("a volume job that passed reports its volume")
            };
            println!(
                "{:<34} {:>8} {:>7} {:>6} {:>6} {:>14.3} {:>9.2} {:>9.1} {:>10}",
                s.describe(),
                mode.name(),
                v.slices.total,
                v.slices.fused,
                v.slices.empty_passed_through,
                v.timings_ms.per_fused_slice / 1e3,
                dims[2] as f64 / total,
                total,
                v.admm_iterations.total
            );
            rec.volumes.push(json!({
                "engine": s.describe(), "mode": mode, "dims": dims, "slices": v.slices,
                "seconds_per_fused_slice": v.timings_ms.per_fused_slice / 1e3,
                "total_seconds": total, "admm_iterations": v.admm_iterations,
                "gpu_counters": r.gpu.as_ref().map(|g| g.counters),
            }));
            rec.write(args.json.as_ref())?;
        }
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
    use csfuse::pipeline::ops::{Ops, Start};
    let (ct, _) = head_pair(size);
    let (_, detail) = tikhonov_split(&ct, 60.0, 16);
    let mut opts = CbpdnOptions::new(0.1);
    opts.max_iter = 3;
    opts.rel_tol = 0.0;
    let planes: Vec<&csfuse::plane::Plane> = (0..batch).map(|_| &detail).collect();
    let sig = gpu.upload("bench: signals", &planes)?;
    let mut code = gpu.code("bench", dict, batch, size, size)?;
    gpu.solve(&mut code, &sig, &opts, Start::Zero)?;
    opts.max_iter = iters.max(1);
    let t = Instant::now();
    gpu.solve(&mut code, &sig, &opts, Start::Zero)?;
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
    rec: &mut Record,
) -> Result<()> {
    let desc = g.adapter_desc().clone();
    let peak = peak_gbps(&desc.name);
    println!(
        "\nGPU: {desc}, peak memory bandwidth {}",
        peak.map_or("unknown".into(), |p| format!("{p:.0} GB/s"))
    );
    rec.gpu = Some(json!({ "adapter": desc, "peak_gbps": peak }));
    println!(
        "{:>9} {:>6} {:>12} {:>12} {:>13} {:>10} {:>8}",
        "size", "batch", "ms/iter", "ms/iter/item", "GB/s (lower)", "% of peak", "vs cpu"
    );
    for &size in &args.sizes {
        for &batch in &args.batches {
            let ms = match gpu_per_iter(g, dict, size, batch, args.iters) {
                Ok(ms) => ms,
                // A batch too large for one binding of this adapter: say so, go on.
                Err(Error::Gpu(e)) if e.contains("binding") => {
                    println!("{:>9} {batch:>6}  n/a: {e}", format!("{size}x{size}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let bytes = csfuse::gpu::bytes_per_iteration(batch, dict.m, size, size);
            let gbps = bytes as f64 / (ms * 1e-3) / 1e9;
            let cpu = cpu_ms
                .iter()
                .find(|(s, _)| *s == size)
                .map(|(_, c)| c * batch as f64);
            let pct = peak.map(|p| 100.0 * gbps / p);
            println!(
                "{:>9} {:>6} {:>12.3} {:>12.3} {:>13.1} {:>10} {:>8}",
                format!("{size}x{size}"),
                batch,
                ms,
                ms / batch as f64,
                gbps,
                pct.map_or("-".into(), |p| format!("{p:.0}%")),
                cpu.map_or("-".into(), |c| format!("{:.1}x", c / ms)),
            );
            rec.gpu_iterations.push(json!({
                "size": size, "batch": batch, "ms_per_iter": ms, "ms_per_iter_per_item": ms / batch as f64,
                "gbps_lower_bound": gbps, "percent_of_peak": pct, "speedup_vs_cpu": cpu.map(|c| c / ms),
            }));
        }
    }
    println!(
        "GB/s counts the bytes each kernel of an iteration must read and write once (FFTs, X step, \
         shrink); vs cpu: the CPU path's median ms/iter at the most threads timed, times the batch"
    );
    Ok(())
}

/// A fusion's figures for `--json`.
fn fusion_json(
    engine: &str,
    mode: Mode,
    threads: Option<usize>,
    out: &FuseOutput,
) -> serde_json::Value {
    json!({
        "engine": engine, "mode": mode, "threads": threads, "total_ms": out.times.total_ms,
        "stages_ms": out.times,
        "admm_iterations": out.iterations.iter().map(|i| i.total()).sum::<usize>(),
    })
}

/// Largest difference in grey levels (of 255) and PSNR in dB of two [0, 1] images.
fn compare(a: &[f64], b: &[f64]) -> (f64, f64) {
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let mse = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    (255.0 * max, 10.0 * (1.0 / mse.max(1e-30)).log10())
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
    let mut rec = Record {
        csfuse_version: env!("CARGO_PKG_VERSION"),
        threads: rayon::current_num_threads(),
        ..Record::default()
    };
    if let Some(dims) = args.volume {
        return bench_volume(dims, &args, &mut rec);
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
            rec.cpu_iterations.push(json!({
                "size": size, "threads": th, "median_ms": med, "min_ms": min,
            }));
            if Some(&th) == args.threads_list.iter().max() {
                cpu_ms.push((size, med));
            }
        }
    }
    rec.write(args.json.as_ref())?;
    let mut gpu = if args.gpu {
        Some(GpuEngine::new()?)
    } else {
        None
    };
    if let Some(g) = gpu.as_mut() {
        bench_gpu_iterations(g, &dict, &args, &cpu_ms, &mut rec)?;
        rec.write(args.json.as_ref())?;
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
    println!(
        "{:>8} {:>8} {:>12} {:>10}",
        "mode", "threads", "ms", "ADMM iter"
    );
    // The CPU result at the most threads, per mode (the GPU's is compared with it).
    let mut cpu_out = Vec::new();
    for mode in modes(&args) {
        let p = FuseParams::new(mode);
        for &th in &args.threads_list {
            let out = pool(th)?
                .install(|| fuse_pair(cpu_engine(args.precision).as_mut(), &a, &b, &dc, &dt, &p))?;
            let iters: usize = out.iterations.iter().map(|i| i.total()).sum();
            println!(
                "{:>8} {th:>8} {:>12.1} {iters:>10}",
                mode.name(),
                out.times.total_ms
            );
            rec.fusions.push(fusion_json("cpu", mode, Some(th), &out));
            if Some(&th) == args.threads_list.iter().max() {
                cpu_out.push(out);
            }
        }
    }
    rec.write(args.json.as_ref())?;
    if let Some(g) = gpu.as_mut() {
        for (mode, cpu) in modes(&args).into_iter().zip(&cpu_out) {
            let p = FuseParams::new(mode);
            fuse_pair(g, &a, &b, &dc, &dt, &p)?; // warm-up: pipelines compiled, buffers made
            let before = g.device_counters();
            let out = fuse_pair(g, &a, &b, &dc, &dt, &p)?;
            let c = g.device_counters().since(&before);
            let t = &out.times;
            let iters: usize = out.iterations.iter().map(|i| i.total()).sum();
            let (max_levels, psnr) = compare(&out.fused.data, &cpu.fused.data);
            println!(
                "{:>8} {:>8} {:>12.1} {iters:>10}  (warm)",
                mode.name(),
                "gpu",
                t.total_ms
            );
            println!(
                "  stages ({}): lowpass {:.1}, decompose {:.1}, choose-max {:.1}, synthesis {:.1} ms",
                t.clock, t.lowpass_ms, t.decompose_ms, t.fuse_rule_ms, t.synthesis_ms
            );
            println!(
                "  counters of the warm fusion: {} submits, {} host waits, {} dispatches, {} bind \
                 groups created, {} buffers created, {} bytes read back",
                c.submits,
                c.host_waits,
                c.dispatches,
                c.bind_groups_created,
                c.buffers_created,
                c.bytes_read_back
            );
            println!(
                "  against the CPU engine ({}): max difference {max_levels:.3} grey levels of 255, \
                 PSNR {psnr:.1} dB",
                args.precision.name()
            );
            let mut j = fusion_json("gpu", mode, None, &out);
            j["counters"] = json!(c);
            j["versus_cpu"] = json!({ "max_diff_grey_levels": max_levels, "psnr_db": psnr });
            rec.fusions.push(j);
        }
        rec.write(args.json.as_ref())?;
    }
    Ok(())
}
