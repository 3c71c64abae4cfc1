//! The whole CS-MCA fusion of a co-registered grayscale pair:
//! split -> decompose each detail layer -> choose-max on the coefficient maps -> synthesise.

use crate::cbpdn::SolveStats;
use crate::decompose::{decompose, McaParams};
use crate::dictionary::Dictionary;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::plane::{DecisionMap, Plane};
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct FuseParams {
    /// Tikhonov low-pass weight (60).
    pub lowpass_lambda: f64,
    /// Symmetric padding for the low-pass (16 pixels per side).
    pub lowpass_pad: usize,
    pub mca: McaParams,
    /// Activity window radius for cartoon (5) and texture (2) maps.
    pub cartoon_radius: usize,
    pub texture_radius: usize,
}

impl Default for FuseParams {
    fn default() -> Self {
        FuseParams {
            lowpass_lambda: 60.0,
            lowpass_pad: 16,
            mca: McaParams::default(),
            cartoon_radius: 5,
            texture_radius: 2,
        }
    }
}

/// Wall-clock milliseconds per pipeline stage.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageTimes {
    pub lowpass_ms: f64,
    /// CS-MCA decomposition of both sources (in one batch on the GPU).
    pub decompose_ms: f64,
    pub fuse_rule_ms: f64,
    pub synthesis_ms: f64,
    pub total_ms: f64,
}

/// Final CBPDN statistics of one source.
#[derive(Clone, Debug, Serialize)]
pub struct SourceObjectives {
    pub cartoon: SolveStats,
    pub texture: SolveStats,
}

pub struct FuseOutput {
    /// Fused image, nominally in [0, 1] (not clamped).
    pub fused: Plane,
    pub cartoon_decision: DecisionMap,
    pub texture_decision: DecisionMap,
    pub times: StageTimes,
    pub objectives: [SourceObjectives; 2],
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

pub fn fuse_pair(
    engine: &mut dyn Engine,
    a: &Plane,
    b: &Plane,
    dc: &Dictionary,
    dt: &Dictionary,
    p: &FuseParams,
) -> Result<FuseOutput> {
    fuse_pair_observed(engine, a, b, dc, dt, p, &mut || {})
}

/// [`fuse_pair`], calling `on_solve` after each of the `4 * outer_iters` sparse-coding solves of
/// the generic pipeline (for a progress bar; an engine that fuses on its own device reports none).
pub fn fuse_pair_observed(
    engine: &mut dyn Engine,
    a: &Plane,
    b: &Plane,
    dc: &Dictionary,
    dt: &Dictionary,
    p: &FuseParams,
    on_solve: &mut dyn FnMut(),
) -> Result<FuseOutput> {
    if (a.h, a.w) != (b.h, b.w) {
        return Err(Error::Param(format!(
            "sources differ in size: {}x{} and {}x{}",
            a.w, a.h, b.w, b.h
        )));
    }
    let out = match engine.fuse_resident(a, b, dc, dt, p) {
        Some(out) => out?,
        None => fuse_by_operations(engine, [a, b], [dc, dt], p, on_solve)?,
    };
    check_finite(&out)?;
    Ok(out)
}

/// A NaN or Inf anywhere (a diverged solve, an overflow) is an error, never a written result.
fn check_finite(out: &FuseOutput) -> Result<()> {
    for (src, o) in ["A", "B"].iter().zip(&out.objectives) {
        for (part, st) in [("cartoon", &o.cartoon), ("texture", &o.texture)] {
            st.check_finite(&format!("source {src}, {part} part"))?;
        }
    }
    if let Some(i) = out.fused.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Numerical(format!(
            "the fused image is {} at x={}, y={}",
            out.fused.data[i],
            i % out.fused.w,
            i / out.fused.w
        )));
    }
    Ok(())
}

/// The generic pipeline of single engine operations.
fn fuse_by_operations(
    engine: &mut dyn Engine,
    [a, b]: [&Plane; 2],
    [dc, dt]: [&Dictionary; 2],
    p: &FuseParams,
    on_solve: &mut dyn FnMut(),
) -> Result<FuseOutput> {
    let t_all = Instant::now();
    let mut times = StageTimes::default();

    let t = Instant::now();
    let (low_a, high_a) = engine.lowpass(a, p.lowpass_lambda, p.lowpass_pad)?;
    let (low_b, high_b) = engine.lowpass(b, p.lowpass_lambda, p.lowpass_pad)?;
    times.lowpass_ms = ms_since(t);

    log::debug!(
        "source A: CS-MCA decomposition ({} outer iterations)",
        p.mca.outer_iters
    );
    let t = Instant::now();
    let ca = decompose(engine, &high_a, dc, dt, &p.mca, on_solve)?;
    log::debug!(
        "source B: CS-MCA decomposition ({:.1} s for A)",
        ms_since(t) / 1e3
    );
    let cb = decompose(engine, &high_b, dc, dt, &p.mca, on_solve)?;
    times.decompose_ms = ms_since(t);

    let t = Instant::now();
    let (xc, dcart) = engine.fuse_maps(&ca.cartoon_coef, &cb.cartoon_coef, p.cartoon_radius)?;
    let (xt, dtex) = engine.fuse_maps(&ca.texture_coef, &cb.texture_coef, p.texture_radius)?;
    times.fuse_rule_ms = ms_since(t);

    let t = Instant::now();
    let cart = engine.synthesize(dc, &xc)?;
    let tex = engine.synthesize(dt, &xt)?;
    let data = (0..a.h * a.w)
        .map(|i| 0.5 * (low_a.data[i] + low_b.data[i]) + cart.data[i] + tex.data[i])
        .collect();
    times.synthesis_ms = ms_since(t);
    times.total_ms = ms_since(t_all);

    Ok(FuseOutput {
        fused: Plane::from_vec(a.h, a.w, data),
        cartoon_decision: dcart,
        texture_decision: dtex,
        times,
        objectives: [
            SourceObjectives {
                cartoon: ca.cartoon_stats,
                texture: ca.texture_stats,
            },
            SourceObjectives {
                cartoon: cb.cartoon_stats,
                texture: cb.texture_stats,
            },
        ],
    })
}
