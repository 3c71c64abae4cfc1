//! The CS-MCA fusion recipe, written once on [`Ops`] for both engines: split -> decompose each
//! detail layer -> choose-max on the coefficient maps -> synthesise, for a batch of co-registered
//! grayscale pairs at once. [`Engine`] is what callers hold: any [`Ops`] behind a trait object.

use crate::cpu::cbpdn::{CbpdnOptions, SolveStats};
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::gpu::{AdapterDesc, Counters};
use crate::pipeline::base_rule::{self, BaseRule};
use crate::pipeline::decompose::{decompose, LastSolves, McaParams, Parts, SolveIterations};
use crate::pipeline::ops::{Finished, Ops, Start};
use crate::plane::{CoefMaps, DecisionMap, Plane};
use serde::Serialize;
use std::time::Instant;

/// Which fusion rules run on the decomposed sources (docs/method.md#modes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The published method: averaged base layers, choose-max on the cartoon and texture
    /// coefficients.
    Paper,
    /// The published cartoon rule on a shorter decomposition schedule (3 outer iterations, about
    /// a third of the ADMM iterations), both sources' texture maps added, the base layers fused by
    /// a Laplacian pyramid that keeps the brighter structure, and a colour source's chroma scaled
    /// into the RGB gamut instead of clipped, so that the written image keeps the fused luminance.
    #[default]
    Pyramid,
}

impl Mode {
    /// Every mode, the default first.
    pub const ALL: [Mode; 2] = [Mode::Pyramid, Mode::Paper];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Paper => "paper",
            Mode::Pyramid => "pyramid",
        }
    }

    /// Whether a colour result keeps the fused luminance exactly (chroma scaled into gamut) rather
    /// than clipping each RGB channel, as the published colour practice does.
    pub fn keeps_luminance(self) -> bool {
        self == Mode::Pyramid
    }
}

/// How the two sources' texture coefficient maps become the fused ones (docs/method.md#modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TextureRule {
    /// Choose-max, as published: at each pixel the maps of the source with the larger windowed
    /// activity.
    Choose,
    /// The sum of both sources' maps: each source's fine texture is kept where it is, instead of
    /// a patchwork of the two.
    Sum,
}

impl TextureRule {
    pub const ALL: [TextureRule; 2] = [TextureRule::Choose, TextureRule::Sum];

    /// The rule named `name` (`choose` or `sum`), as the command line spells it.
    pub fn parse(name: &str) -> Option<TextureRule> {
        TextureRule::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            TextureRule::Choose => "choose",
            TextureRule::Sum => "sum",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FuseParams {
    /// The fusion rules.
    pub mode: Mode,
    /// Tikhonov low-pass weight (60).
    pub lowpass_lambda: f64,
    /// Symmetric padding for the low-pass (16 pixels per side).
    pub lowpass_pad: usize,
    pub mca: McaParams,
    /// Activity window radius for cartoon (5) and texture (2) maps.
    pub cartoon_radius: usize,
    pub texture_radius: usize,
    /// Radius of the majority vote over each choose-max decision map (0: none, as published; 5 in
    /// the pyramid mode, chosen by cross-validation).
    pub vote_radius: usize,
    /// How the base layers are fused in the pyramid mode (the paper mode averages them).
    pub base: BaseRule,
    /// How the texture maps are fused (choose-max as published; the sum in the pyramid mode,
    /// chosen by cross-validation).
    pub texture_rule: TextureRule,
}

impl FuseParams {
    /// The parameters of `mode`: its decomposition schedule, the published values otherwise.
    pub fn new(mode: Mode) -> Self {
        FuseParams {
            mode,
            lowpass_lambda: 60.0,
            lowpass_pad: 16,
            mca: match mode {
                Mode::Paper => McaParams::published(),
                Mode::Pyramid => McaParams::short(),
            },
            cartoon_radius: 5,
            texture_radius: 2,
            vote_radius: match mode {
                Mode::Paper => 0,
                Mode::Pyramid => 5,
            },
            base: BaseRule::default(),
            texture_rule: match mode {
                Mode::Paper => TextureRule::Choose,
                Mode::Pyramid => TextureRule::Sum,
            },
        }
    }
}

/// The pyramid mode's rule settings as a user gives them (`None`: the default): the command line's
/// `--base-share`, `--base-top`, `--base-bright`, `--vote-radius` and `--texture-rule`, Python's
/// `base_share`, ...
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RuleOptions {
    pub base_share: Option<f64>,
    pub base_top: Option<f64>,
    pub base_bright: Option<f64>,
    pub vote_radius: Option<usize>,
    pub texture_rule: Option<TextureRule>,
}

impl RuleOptions {
    fn is_empty(&self) -> bool {
        *self == RuleOptions::default()
    }
}

/// The rules a fusion applies after the decomposition: fusions of one pair that differ only in
/// these share its decomposition ([`Engine::fuse_variants`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rules {
    pub base: BaseRule,
    pub vote_radius: usize,
    pub texture_rule: TextureRule,
}

impl FuseParams {
    /// The rules these parameters apply after the decomposition.
    pub fn rules(&self) -> Rules {
        Rules {
            base: self.base,
            vote_radius: self.vote_radius,
            texture_rule: self.texture_rule,
        }
    }

    /// These parameters with the rules `r` instead of their own ([`FuseParams::rules`] back).
    pub fn with_rules(&self, r: Rules) -> FuseParams {
        FuseParams {
            base: r.base,
            vote_radius: r.vote_radius,
            texture_rule: r.texture_rule,
            ..self.clone()
        }
    }
}

/// A vote window wider than this is a whole-image decision, not a smoothing of one.
const MAX_VOTE_RADIUS: usize = 64;

impl FuseParams {
    /// Apply the rule settings given. Only the pyramid mode has them: giving any to the paper mode
    /// is an error, as is a base number outside [0, 1] or a vote radius over 64.
    pub fn set_rules(&mut self, o: &RuleOptions) -> Result<()> {
        if o.is_empty() {
            return Ok(());
        }
        if self.mode != Mode::Pyramid {
            return Err(Error::Param(
                "the rule settings (--base-share, --base-top, --base-bright, --vote-radius, \
                 --texture-rule; Python base_share, base_top, base_bright, vote_radius, \
                 texture_rule) apply to the pyramid mode; the paper mode is the published method \
                 as it stands"
                    .into(),
            ));
        }
        let base = BaseRule {
            share: o.base_share.unwrap_or(self.base.share),
            top: o.base_top.unwrap_or(self.base.top),
            bright: o.base_bright.unwrap_or(self.base.bright),
        };
        base.validate()?;
        let vote = o.vote_radius.unwrap_or(self.vote_radius);
        if vote > MAX_VOTE_RADIUS {
            return Err(Error::Param(format!(
                "the vote radius (--vote-radius, vote_radius) must be at most {MAX_VOTE_RADIUS}, \
                 got {vote}"
            )));
        }
        self.base = base;
        self.vote_radius = vote;
        self.texture_rule = o.texture_rule.unwrap_or(self.texture_rule);
        Ok(())
    }
}

impl Default for FuseParams {
    /// The default mode's parameters.
    fn default() -> Self {
        FuseParams::new(Mode::default())
    }
}

/// Milliseconds per pipeline stage, of the whole batch a pair was fused in.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StageTimes {
    pub lowpass_ms: f64,
    /// CS-MCA decomposition of all sources of the batch.
    pub decompose_ms: f64,
    pub fuse_rule_ms: f64,
    pub synthesis_ms: f64,
    pub total_ms: f64,
    /// `"gpu timestamps"` when the stages were timed on the device's clock, else `"wall"` (host
    /// time; on the GPU it includes waiting for earlier queued work).
    pub clock: &'static str,
    /// Pairs fused together in this batch.
    pub batch_pairs: usize,
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
    /// ADMM iterations of every solve of each source.
    pub iterations: [SolveIterations; 2],
}

/// A sparse code with the statistics of the solve that produced it.
pub struct SparseCode {
    pub coef: CoefMaps,
    pub stats: SolveStats,
}

/// A compute engine as callers hold it (`Box<dyn Engine>`); every [`Ops`] is one.
pub trait Engine {
    /// Human-readable description for logs and reports.
    fn describe(&self) -> String;
    /// The adapter, for engines that run on one.
    fn adapter(&self) -> Option<AdapterDesc>;
    /// Device counters so far, for engines that have a device.
    fn counters(&self) -> Option<Counters>;
    /// How many `h x w` pairs [`Engine::fuse_batch`] takes at once with these dictionaries.
    fn pairs_per_batch(&self, dc: &Dictionary, dt: &Dictionary, h: usize, w: usize) -> usize;
    /// Fuse same-size pairs together; `on_solve` is called after each of the `2 * outer_iters()`
    /// batched sparse-coding solves.
    fn fuse_batch(
        &mut self,
        pairs: &[(&Plane, &Plane)],
        dc: &Dictionary,
        dt: &Dictionary,
        p: &FuseParams,
        on_solve: &mut dyn FnMut(),
    ) -> Result<Vec<FuseOutput>>;
    /// Fuse one pair once per item of `rules` (in its order), all from one base/detail split and
    /// one decomposition: `p`'s own rules are replaced by each item in turn.
    fn fuse_variants(
        &mut self,
        pair: (&Plane, &Plane),
        dc: &Dictionary,
        dt: &Dictionary,
        p: &FuseParams,
        rules: &[Rules],
        on_solve: &mut dyn FnMut(),
    ) -> Result<Vec<FuseOutput>>;
    /// CBPDN of one signal from a zero start.
    fn sparse_code(
        &mut self,
        dict: &Dictionary,
        s: &Plane,
        opts: &CbpdnOptions,
    ) -> Result<SparseCode>;
}

impl<E: Ops> Engine for E {
    fn describe(&self) -> String {
        Ops::describe(self)
    }

    fn adapter(&self) -> Option<AdapterDesc> {
        Ops::adapter(self)
    }

    fn counters(&self) -> Option<Counters> {
        Ops::counters(self)
    }

    fn pairs_per_batch(&self, dc: &Dictionary, dt: &Dictionary, h: usize, w: usize) -> usize {
        Ops::pairs_per_batch(self, dc.m, dt.m, h, w).max(1)
    }

    fn fuse_batch(
        &mut self,
        pairs: &[(&Plane, &Plane)],
        dc: &Dictionary,
        dt: &Dictionary,
        p: &FuseParams,
        on_solve: &mut dyn FnMut(),
    ) -> Result<Vec<FuseOutput>> {
        let outs = fuse_batch_on(self, pairs, [dc, dt], p, &[p.rules()], on_solve)?.remove(0);
        outs.iter().try_for_each(check_finite)?;
        Ok(outs)
    }

    fn fuse_variants(
        &mut self,
        pair: (&Plane, &Plane),
        dc: &Dictionary,
        dt: &Dictionary,
        p: &FuseParams,
        rules: &[Rules],
        on_solve: &mut dyn FnMut(),
    ) -> Result<Vec<FuseOutput>> {
        let outs: Vec<FuseOutput> = fuse_batch_on(self, &[pair], [dc, dt], p, rules, on_solve)?
            .into_iter()
            .flatten()
            .collect();
        outs.iter().try_for_each(check_finite)?;
        Ok(outs)
    }

    fn sparse_code(
        &mut self,
        dict: &Dictionary,
        s: &Plane,
        opts: &CbpdnOptions,
    ) -> Result<SparseCode> {
        let sig = self.upload("signal", &[s])?;
        let mut code = self.code("single", dict, 1, s.h, s.w)?;
        let stats = self.solve(&mut code, &sig, opts, Start::Zero)?.remove(0);
        let coef = self.download_code(&code)?.remove(0);
        Ok(SparseCode { coef, stats })
    }
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Fuse one pair.
pub fn fuse_pair(
    engine: &mut dyn Engine,
    a: &Plane,
    b: &Plane,
    dc: &Dictionary,
    dt: &Dictionary,
    p: &FuseParams,
) -> Result<FuseOutput> {
    let mut out = engine.fuse_batch(&[(a, b)], dc, dt, p, &mut || {})?;
    Ok(out.remove(0))
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

/// The pyramid mode's fused base of each pair (computed on the host from the read-back `bases`),
/// given as both items of the pair so that `combine`'s average, `(x + x) / 2`, is exactly it.
fn fused_bases<E: Ops>(e: &mut E, bases: &[Plane], rule: &BaseRule) -> Result<E::Planes> {
    let fused: Vec<Plane> = bases
        .chunks(2)
        .map(|ab| base_rule::fuse_bases(&ab[0], &ab[1], rule))
        .collect();
    let twice: Vec<&Plane> = fused.iter().flat_map(|f| [f, f]).collect();
    e.upload("fused base layers", &twice)
}

/// The recipe on one batch of pairs, once per item of `rules`: the results of each rule set, one
/// per pair.
fn fuse_batch_on<E: Ops>(
    e: &mut E,
    pairs: &[(&Plane, &Plane)],
    [dc, dt]: [&Dictionary; 2],
    p: &FuseParams,
    rules: &[Rules],
    on_solve: &mut dyn FnMut(),
) -> Result<Vec<Vec<FuseOutput>>> {
    let Some(&(first, _)) = pairs.first() else {
        return Ok(rules.iter().map(|_| Vec::new()).collect());
    };
    let (h, w) = (first.h, first.w);
    for (a, b) in pairs {
        if (a.h, a.w) != (h, w) || (b.h, b.w) != (h, w) {
            return Err(Error::Param(format!(
                "sources differ in size: {}x{} and {}x{}",
                a.w, a.h, b.w, b.h
            )));
        }
    }
    let (np, n) = (pairs.len(), 2 * pairs.len());
    let t_all = Instant::now();
    let mut wall = [0.0; 4];

    // Every buffer of the batch is made before any work is recorded (the GPU sizes its shared
    // work buffers once per job this way).
    let mut parts = Parts::new(e, dc, dt, n, (h, w))?;
    let mut fc = e.code("fused cartoon", dc, np, h, w)?;
    let mut ft = e.code("fused texture", dt, np, h, w)?;
    let mut low = e.planes("base layers", n, h, w)?;
    let mut high = e.planes("detail layers", n, h, w)?;
    let mut cart = e.planes("fused cartoon layers", np, h, w)?;
    let mut tex = e.planes("fused texture layers", np, h, w)?;
    let mut fused = e.planes("fused images", np, h, w)?;

    let t = Instant::now();
    e.mark(0);
    let sources: Vec<&Plane> = pairs.iter().flat_map(|(a, b)| [*a, *b]).collect();
    let src = e.upload("sources", &sources)?;
    e.lowpass(&src, p.lowpass_lambda, p.lowpass_pad, &mut low, &mut high)?;
    // The pyramid mode fuses the base layers on the host: one read-back, whatever the rules.
    let bases = match p.mode {
        Mode::Pyramid => Some(e.download(&low)?),
        Mode::Paper => None,
    };
    e.mark(1);
    wall[0] = ms_since(t);

    log::debug!(
        "CS-MCA decomposition of {n} sources ({} outer iterations)",
        p.mca.outer_iters()
    );
    let t = Instant::now();
    let last = decompose(e, &high, &mut parts, &p.mca, on_solve)?;
    e.mark(2);
    wall[1] = ms_since(t);

    let mut all = Vec::with_capacity(rules.len());
    for r in rules {
        let t = Instant::now();
        let fused_low = match &bases {
            Some(b) => Some(fused_bases(e, b, &r.base)?),
            None => None,
        };
        let dcart = e.choose(
            &parts.cartoon_code,
            p.cartoon_radius,
            r.vote_radius,
            false,
            &mut fc,
        )?;
        let dtex = e.choose(
            &parts.texture_code,
            p.texture_radius,
            r.vote_radius,
            r.texture_rule == TextureRule::Sum,
            &mut ft,
        )?;
        e.mark(3);
        wall[2] = ms_since(t);

        let t = Instant::now();
        e.synthesize(&fc, &mut cart)?;
        e.synthesize(&ft, &mut tex)?;
        e.combine(fused_low.as_ref().unwrap_or(&low), &cart, &tex, &mut fused)?;
        e.mark(4);
        let done = e.finish(&fused, [&dcart, &dtex], 5)?;
        wall[3] = ms_since(t);
        all.push(outputs(done, &last, &wall, (t_all, np)));
    }
    Ok(all)
}

/// A finished batch's results, one per pair, with its stage times (the device's when it measured
/// them, else `wall`) and each source's solve statistics.
fn outputs(
    done: Finished,
    last: &LastSolves,
    wall: &[f64; 4],
    (t_all, np): (Instant, usize),
) -> Vec<FuseOutput> {
    let times = match &done.stage_ms {
        Some(ms) if ms.len() == 4 => StageTimes {
            lowpass_ms: ms[0],
            decompose_ms: ms[1],
            fuse_rule_ms: ms[2],
            synthesis_ms: ms[3],
            total_ms: ms_since(t_all),
            clock: "gpu timestamps",
            batch_pairs: np,
        },
        _ => StageTimes {
            lowpass_ms: wall[0],
            decompose_ms: wall[1],
            fuse_rule_ms: wall[2],
            synthesis_ms: wall[3],
            total_ms: ms_since(t_all),
            clock: "wall",
            batch_pairs: np,
        },
    };
    let [dcs, dts] = done.decisions;
    done.fused
        .into_iter()
        .zip(dcs.into_iter().zip(dts))
        .enumerate()
        .map(|(q, (fused, (cd, td)))| FuseOutput {
            fused,
            cartoon_decision: cd,
            texture_decision: td,
            times: times.clone(),
            objectives: [2 * q, 2 * q + 1].map(|i| SourceObjectives {
                cartoon: last.cartoon[i].clone(),
                texture: last.texture[i].clone(),
            }),
            iterations: [2 * q, 2 * q + 1].map(|i| last.iterations[i].clone()),
        })
        .collect()
}
