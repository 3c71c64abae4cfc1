//! `csfuse fuse A B -o OUT`: CS-MCA fusion of a co-registered grayscale pair.

use super::{distinct_outputs, write_json};
use csfuse::backend::{self, max_diffs, rel_diff, Backend, Validation};
use csfuse::dictionary::Dictionary;
use csfuse::engine::Engine;
use csfuse::fuse::{fuse_pair, FuseOutput, FuseParams};
use csfuse::io::{check_output, output_format, read_gray, write_gray, GrayImage};
use csfuse::real::Precision;
use csfuse::{assets, Error, Result};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Fuse two co-registered grayscale images (PNG, TIFF, BMP or JPEG; 8- or 16-bit).
///
/// Both sources must have the same size. Values are scaled to [0, 1] (by 255 or 65535), fused, and
/// written in the format the output's extension names, at the larger of the two input bit depths
/// (BMP and JPEG hold 8 bits), rounded and clamped. Without dictionary flags the project's own learned
/// dictionaries are used; pass the reference dictionaries to reproduce the published method exactly.
/// Nothing is written on error, an existing output is kept unless --force, and outputs appear
/// atomically (temporary file, then rename).
#[derive(clap::Args)]
#[command(after_help = "Example:\n  csfuse fuse ct.png mr.png -o fused.png --report fused.json")]
pub struct Args {
    /// First source (e.g. CT).
    pub a: PathBuf,
    /// Second source (e.g. MR); ties of the fusion rule go to this one.
    pub b: PathBuf,
    /// Fused image to write (.png, .tif, .bmp, .jpg).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Cartoon dictionary, .npy of shape (h, w, M), float32/float64 [default: built-in assets/dict_cartoon_8x8x32.npy].
    #[arg(long, value_name = "D.npy")]
    pub cartoon_dict: Option<PathBuf>,
    /// Texture dictionary, .npy of shape (h, w, M) [default: built-in assets/dict_texture_8x8x32.npy].
    #[arg(long, value_name = "D.npy")]
    pub texture_dict: Option<PathBuf>,
    /// Write a JSON report: parameters, per-stage timings, final CBPDN objective values.
    #[arg(long, value_name = "R.json")]
    pub report: Option<PathBuf>,
    /// Floating-point precision of the engine (the GPU engine is f32; f64 runs on the CPU).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Compute engine. `auto`: a GPU adapter if one opens and works, else the CPU with a log line saying
    /// why (also when the device is lost or runs out of memory mid-run); software adapters such as
    /// lavapipe are skipped because the CPU engine is faster. `gpu`: the best adapter, software ones
    /// included, or an error. `cpu`: the reference engine. WGPU_BACKEND (vulkan, metal, dx12, gl) and
    /// WGPU_ADAPTER_NAME (a substring) pick the adapter; `csfuse devices` lists them.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// Fuse on both the GPU and the CPU engine (f32) and compare. Fails (exit 1, no image written) if the
    /// fused images differ by more than 0.01 of the full range at any pixel or a final CBPDN objective
    /// by more than 1e-3 relative. The report gets the numbers; the GPU result is written.
    #[arg(long)]
    pub validate: bool,
    /// Replace existing output files.
    #[arg(short, long)]
    pub force: bool,
}

fn load_dict(path: &Option<PathBuf>, builtin: fn() -> Dictionary) -> Result<Dictionary> {
    match path {
        Some(p) => Dictionary::load(p),
        None => Ok(builtin()),
    }
}

fn describe(path: &Path, img: &GrayImage) -> serde_json::Value {
    json!({"path": path, "width": img.plane.w, "height": img.plane.h, "depth": img.depth})
}

pub fn run(args: Args) -> Result<()> {
    let t0 = Instant::now();
    // Every check that can fail runs before any work, so a bad call writes nothing.
    output_format(&args.output)?;
    let inputs = [args.a.as_path(), args.b.as_path()];
    check_output(&args.output, &inputs, args.force)?;
    if let Some(r) = &args.report {
        check_output(r, &inputs, args.force)?;
        distinct_outputs(&[&args.output, r])?;
    }
    let a = read_gray(&args.a)?;
    let b = read_gray(&args.b)?;
    if (a.plane.h, a.plane.w) != (b.plane.h, b.plane.w) {
        return Err(Error::SizeMismatch {
            a: args.a.clone(),
            aw: a.plane.w,
            ah: a.plane.h,
            b: args.b.clone(),
            bw: b.plane.w,
            bh: b.plane.h,
        });
    }
    let dc = load_dict(&args.cartoon_dict, assets::cartoon)?;
    let dt = load_dict(&args.texture_dict, assets::texture)?;
    dc.check_fits(a.plane.h, a.plane.w)?;
    dt.check_fits(a.plane.h, a.plane.w)?;
    let read_ms = t0.elapsed().as_secs_f64() * 1e3;

    let params = FuseParams::default();
    log::info!(
        "fusing {} + {} ({}x{})",
        args.a.display(),
        args.b.display(),
        a.plane.w,
        a.plane.h,
    );
    let fuse = |e: &mut dyn Engine| {
        log::info!("engine: {}", e.describe());
        fuse_pair(e, &a.plane, &b.plane, &dc, &dt, &params)
    };
    let run = backend::run_job(args.backend, args.precision, args.validate, fuse, validate)?;
    let (out, engine_desc, adapter, validation) =
        (run.result, run.engine, run.adapter, run.validation);
    if let Some(v) = &validation {
        if let Err(e) = v.check() {
            if let Some(r) = &args.report {
                write_json(r, &json!({"validation": v, "inputs": [&args.a, &args.b]}))?;
            }
            return Err(e);
        }
    }
    let t_write = Instant::now();
    let depth = write_gray(&args.output, &out.fused, a.depth.max(b.depth))?;
    let write_ms = t_write.elapsed().as_secs_f64() * 1e3;
    log::info!(
        "wrote {} ({:?}) in {:.0} ms total (fusion {:.0} ms)",
        args.output.display(),
        depth,
        t0.elapsed().as_secs_f64() * 1e3,
        out.times.total_ms
    );
    if let Some(r) = &args.report {
        let report = json!({
            "csfuse_version": env!("CARGO_PKG_VERSION"),
            "inputs": [describe(&args.a, &a), describe(&args.b, &b)],
            "output": {"path": args.output, "depth": depth},
            "backend": engine_desc,
            "adapter": adapter,
            "validation": validation,
            "dictionaries": {
                "cartoon": {"source": dc.source, "shape": [dc.fh, dc.fw, dc.m]},
                "texture": {"source": dt.source, "shape": [dt.fh, dt.fw, dt.m]},
            },
            "params": params,
            "timings_ms": {
                "read": read_ms,
                "lowpass": out.times.lowpass_ms,
                "decompose": out.times.decompose_ms,
                "fuse_rule": out.times.fuse_rule_ms,
                "synthesis": out.times.synthesis_ms,
                "fusion_total": out.times.total_ms,
                "write": write_ms,
            },
            "objectives": {"a": out.objectives[0], "b": out.objectives[1]},
            "decision_fraction_from_a": {
                "cartoon": out.cartoon_decision.fraction_a(),
                "texture": out.texture_decision.fraction_a(),
            },
        });
        write_json(r, &report)?;
    }
    Ok(())
}

/// `--validate`'s numbers for a GPU and a CPU fusion of the same pair.
fn validate(g: &FuseOutput, c: &FuseOutput) -> Validation {
    let obj = g
        .objectives
        .iter()
        .zip(&c.objectives)
        .flat_map(|(x, y)| {
            [
                rel_diff(x.cartoon.objective, y.cartoon.objective),
                rel_diff(x.texture.objective, y.texture.objective),
            ]
        })
        .fold(0.0, f64::max);
    Validation::new(max_diffs(&g.fused.data, &c.fused.data), obj)
}
