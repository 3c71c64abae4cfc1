//! `csfuse sparse-code IMAGE --dict D.npy --lambda L --out-coef X.npy`: one CBPDN solve.

use super::num;
use csfuse::cpu::cbpdn::CbpdnOptions;
use csfuse::dictionary::Dictionary;
use csfuse::formats::image::{check_output, read_gray, write_atomic};
use csfuse::formats::npy::{self, NpyDtype};
use csfuse::jobs::session::Backend;
use csfuse::jobs::sparse_code::sparse_code;
use csfuse::real::Precision;
use csfuse::Result;
use serde_json::json;
use std::path::PathBuf;

/// Convolutional sparse coding (CBPDN, SPORCO-compatible ADMM) of one image.
///
/// Solves min_X 1/2 ||sum_m d_m * x_m - s||^2 + lambda sum_m ||x_m||_1 with circular boundaries,
/// starting from zero, against the filters as given (as SPORCO's ConvBPDN does; `fuse` and `learn`
/// instead normalise near-unit filters, as CS-MCA assumes). Writes the coefficient maps as .npy of
/// shape (H, W, M) and prints one JSON line with iterations, objective, dfid, l1, r, s, rho and
/// ms_per_iter (set-up excluded); objective terms are SPORCO's defaults, from the primal X of the
/// last iteration.
#[derive(clap::Args)]
#[command(
    after_help = "Example (benchmark-style, fixed 50 iterations):\n  csfuse sparse-code img.png --dict D.npy --lambda 0.1 --highpass 60 --iters 50 --tol 0 --out-coef X.npy"
)]
pub struct Args {
    /// Grayscale image to code (scaled to [0, 1]).
    pub image: PathBuf,
    /// Dictionary .npy of shape (h, w, M), used as given.
    #[arg(long, value_name = "D.npy")]
    pub dict: PathBuf,
    /// Scale every filter to unit l2 norm before coding.
    #[arg(long)]
    pub normalize: bool,
    /// l1 weight lambda.
    #[arg(long = "lambda", value_name = "L", value_parser = num::positive)]
    pub lambda: f64,
    /// Initial ADMM penalty [default: 50 lambda + 1].
    #[arg(long, value_name = "R", value_parser = num::positive)]
    pub rho: Option<f64>,
    /// Over-relaxation parameter alpha, in (0, 2).
    #[arg(long, value_name = "A", default_value_t = 1.8, value_parser = num::relax)]
    pub relax: f64,
    /// Keep rho fixed (no residual balancing).
    #[arg(long)]
    pub no_auto_rho: bool,
    /// Iteration cap.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = |s: &str| num::count(s, 1_000_000))]
    pub iters: usize,
    /// Relative stop tolerance on both residuals (0 runs exactly --iters iterations).
    #[arg(long, value_name = "T", default_value_t = 1e-3, value_parser = num::non_negative)]
    pub tol: f64,
    /// Absolute stop tolerance.
    #[arg(long, value_name = "T", default_value_t = 0.0, value_parser = num::non_negative)]
    pub abs_tol: f64,
    /// Per-filter l1 weights, comma-separated (one per filter).
    #[arg(long, value_name = "W,...", value_delimiter = ',')]
    pub l1_weights: Option<Vec<f64>>,
    /// Code the high-pass part: subtract a Tikhonov low-pass with this lambda (60 in CS-MCA).
    #[arg(long, value_name = "LAM", value_parser = num::positive)]
    pub highpass: Option<f64>,
    /// Where to write the coefficient maps, .npy (H, W, M).
    #[arg(long, value_name = "X.npy")]
    pub out_coef: PathBuf,
    /// Floating-point precision (also the .npy element type); the GPU engine is f32.
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Compute engine: auto (a hardware GPU if one works, else the CPU), gpu (any adapter, software
    /// ones included, or an error), cpu. See `csfuse fuse --help`.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// Solve on both the GPU and the CPU engine; fail if the coefficient maps differ by more than 0.01
    /// anywhere or the objectives by more than 1e-3 relative. The JSON line gets the numbers.
    #[arg(long)]
    pub validate: bool,
    /// Replace an existing output file.
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(args: Args) -> Result<()> {
    check_output(
        &args.out_coef,
        &[args.image.as_path(), args.dict.as_path()],
        args.force,
    )?;
    let img = read_gray(&args.image)?;
    let dict = match args.normalize {
        true => Dictionary::load_as_given(&args.dict)?.normalized(),
        false => Dictionary::load_as_given(&args.dict)?,
    };
    let mut opts = CbpdnOptions::new(args.lambda);
    opts.rho = args.rho;
    opts.relax = args.relax;
    opts.auto_rho.enabled = !args.no_auto_rho;
    opts.max_iter = args.iters;
    opts.rel_tol = args.tol;
    opts.abs_tol = args.abs_tol;
    opts.l1_weights = args.l1_weights.clone();
    let run = sparse_code(
        &img.plane,
        &dict,
        args.highpass,
        &opts,
        (args.backend, args.precision, args.validate),
    )?;
    let (sc, desc, adapter, validation) = (run.result, run.engine, run.adapter, run.validation);
    let (st, coef) = (sc.stats, sc.coef);
    let dtype = match args.precision {
        Precision::F32 => NpyDtype::F32,
        Precision::F64 => NpyDtype::F64,
    };
    write_atomic(
        &args.out_coef,
        &npy::to_bytes(&[coef.h, coef.w, coef.m], &coef.to_hwm(), dtype),
    )?;
    let line = json!({
        "iterations": st.iterations, "objective": st.objective, "dfid": st.dfid, "l1": st.l1,
        "r": st.r, "s": st.s, "rho": st.rho, "ms_per_iter": st.ms_per_iter, "setup_ms": st.setup_ms,
        "precision": st.precision, "threads": rayon::current_num_threads(),
        "height": coef.h, "width": coef.w, "filters": coef.m, "normalized": args.normalize,
        "backend": desc, "adapter": adapter, "validation": validation,
    });
    println!("{line}");
    Ok(())
}
