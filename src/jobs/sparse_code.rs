//! One convolutional sparse coding solve of an image, as `csfuse sparse-code` and the Python
//! package run it: the optional high-pass, the solve on the session's engine (validated against
//! the CPU on request), and the checks that nothing non-finite comes back.

use super::session::{self, max_diffs, rel_diff, Backend, Outcome, Validation};
use crate::cpu::cbpdn::CbpdnOptions;
use crate::cpu::lowpass::tikhonov_split;
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::pipeline::fuse::{Engine, SparseCode};
use crate::plane::Plane;
use crate::real::Precision;

/// Code `image` ([0, 1]) against `dict`; with `highpass`, its detail layer (the image less a
/// Tikhonov low-pass of that lambda, 60 in CS-MCA). `Err` when `validate` finds the engines apart.
pub fn sparse_code(
    image: &Plane,
    dict: &Dictionary,
    highpass: Option<f64>,
    opts: &CbpdnOptions,
    (backend, precision, validate): (Backend, Precision, bool),
) -> Result<Outcome<SparseCode>> {
    dict.check_fits(image.h, image.w)?;
    let split;
    let signal = match highpass {
        Some(lam) => {
            split = tikhonov_split(image, lam, 16).1;
            &split
        }
        None => image,
    };
    let code = |e: &mut dyn Engine| {
        log::info!("engine: {}", e.describe());
        e.sparse_code(dict, signal, opts)
    };
    let compare = |g: &SparseCode, c: &SparseCode| {
        Validation::new(
            max_diffs(&g.coef.data, &c.coef.data),
            rel_diff(g.stats.objective, c.stats.objective),
        )
    };
    let run = session::run_job(backend, precision, validate, code, compare)?;
    if let Some(v) = &run.validation {
        v.check()?;
    }
    run.result.stats.check_finite("sparse coding")?;
    if run.result.coef.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::Numerical(
            "the coefficient maps hold NaN or Inf; nothing written".into(),
        ));
    }
    Ok(run)
}
