//! The seam between the CS-MCA recipe and a compute backend: [`Ops`], batched operations on data the
//! engine holds (host vectors on the CPU, device buffers on the GPU). The recipe (`decompose.rs`,
//! `fuse.rs`) is written once on these operations and drives both engines. [`crate::cpu::CpuEngine`] is the
//! reference implementation; `gpu::GpuEngine` is the other.
//!
//! A batch holds `n` planes of one size. In a fusion batch, items `2q` and `2q + 1` are the two
//! sources of pair `q`.

use crate::cpu::cbpdn::{CbpdnOptions, SolveStats};
use crate::dictionary::Dictionary;
use crate::error::Result;
use crate::gpu::{AdapterDesc, Counters};
use crate::plane::{CoefMaps, DecisionMap, Plane};

/// What a fusion batch reads back at its end.
pub struct Finished {
    /// One fused plane per pair.
    pub fused: Vec<Plane>,
    /// Cartoon and texture decisions, one per pair each.
    pub decisions: [Vec<DecisionMap>; 2],
    /// Milliseconds between the stage marks, when the engine measured them on its own clock.
    pub stage_ms: Option<Vec<f64>>,
}

/// Where a batched solve starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// `Y = U = 0` and the options' initial rho: SPORCO's default, and the published method.
    Zero,
    /// Each item where the code's previous solve left it: its coefficients, its penalty rho and
    /// its scaled dual, the dual multiplied by `lambda / previous lambda`. An item that was never
    /// solved (or whose maps were replaced) starts from zero.
    Warm,
}

/// Batched operations of CS-MCA fusion on engine-held data. Outputs are written into buffers the
/// caller made with [`Ops::planes`] or [`Ops::code`]: an engine may then keep every buffer across
/// calls (the GPU does, by name), so a second fusion of one size allocates nothing.
pub trait Ops {
    /// `n` planes of `h x w`.
    type Planes;
    /// A dictionary prepared for one size, with the coefficient maps of `n` signals.
    type Code;
    /// One decision map per pair.
    type Decisions;

    fn describe(&self) -> String;
    /// The adapter, for engines that run on one.
    fn adapter(&self) -> Option<AdapterDesc> {
        None
    }
    /// Device counters so far, for engines that have a device.
    fn counters(&self) -> Option<Counters> {
        None
    }
    /// How many pairs of `h x w` one batch may hold with dictionaries of `mc` and `mt` filters.
    fn pairs_per_batch(&self, _mc: usize, _mt: usize, _h: usize, _w: usize) -> usize {
        1
    }

    /// The planes `name`, holding `data`.
    fn upload(&mut self, name: &str, data: &[&Plane]) -> Result<Self::Planes>;
    /// The planes `name`: `n` zero planes of `h x w`.
    fn planes(&mut self, name: &str, n: usize, h: usize, w: usize) -> Result<Self::Planes>;
    fn download(&mut self, p: &Self::Planes) -> Result<Vec<Plane>>;
    /// Tikhonov base/detail split of every plane of `src`.
    fn lowpass(
        &mut self,
        src: &Self::Planes,
        lambda: f64,
        pad: usize,
        low: &mut Self::Planes,
        high: &mut Self::Planes,
    ) -> Result<()>;
    /// `out = a - b`.
    fn sub(&mut self, a: &Self::Planes, b: &Self::Planes, out: &mut Self::Planes) -> Result<()>;
    /// Per pair `q`: `out[q] = (low[2q] + low[2q + 1]) / 2 + cart[q] + tex[q]`.
    fn combine(
        &mut self,
        low: &Self::Planes,
        cart: &Self::Planes,
        tex: &Self::Planes,
        out: &mut Self::Planes,
    ) -> Result<()>;
    /// Coefficient maps `name` of `n` signals of `h x w` against `dict`.
    fn code(
        &mut self,
        name: &str,
        dict: &Dictionary,
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<Self::Code>;
    /// CBPDN of every plane of `s` into `code`, starting as `start` says; statistics per item.
    fn solve(
        &mut self,
        code: &mut Self::Code,
        s: &Self::Planes,
        opts: &CbpdnOptions,
        start: Start,
    ) -> Result<Vec<SolveStats>>;
    /// `out[i] = sum_m d_m (*) x_{i,m}` (circular convolution).
    fn synthesize(&mut self, code: &Self::Code, out: &mut Self::Planes) -> Result<()>;
    /// Choose-max with activity window radius `r` and, when `vote` > 0, a majority vote of the
    /// decisions over the (2 vote + 1)^2 window: pair `q`'s maps (items `2q`, `2q + 1` of `code`)
    /// into item `q` of `fused`. With `sum` the fused maps are A + B instead; the decisions are
    /// made all the same (they say which source is the more active).
    fn choose(
        &mut self,
        code: &Self::Code,
        r: usize,
        vote: usize,
        sum: bool,
        fused: &mut Self::Code,
    ) -> Result<Self::Decisions>;
    fn download_code(&mut self, code: &Self::Code) -> Result<Vec<CoefMaps>>;
    /// Replace the maps of `code` (one per item) by `maps`.
    fn upload_code(&mut self, code: &mut Self::Code, maps: &[&CoefMaps]) -> Result<()>;
    fn download_decisions(&mut self, d: &Self::Decisions) -> Result<Vec<DecisionMap>>;
    /// Mark the boundary `i` of a recipe stage (engines with a device clock time them).
    fn mark(&mut self, _i: u32) {}
    /// Read back a fusion batch's results (and the stage times of marks `0..marks`).
    fn finish(
        &mut self,
        fused: &Self::Planes,
        decisions: [&Self::Decisions; 2],
        marks: u32,
    ) -> Result<Finished>;
}

/// Single operations on host data (for tools and the kernel tests): upload, run one operation of
/// an engine, read back.
#[cfg(test)]
pub(crate) mod single {
    use super::Ops;
    use crate::dictionary::Dictionary;
    use crate::error::Result;
    use crate::plane::{CoefMaps, DecisionMap, Plane};

    /// Tikhonov split of one plane: `(low, high)`.
    pub fn lowpass<E: Ops>(
        e: &mut E,
        s: &Plane,
        lambda: f64,
        pad: usize,
    ) -> Result<(Plane, Plane)> {
        let src = e.upload("single: source", &[s])?;
        let mut low = e.planes("single: low", 1, s.h, s.w)?;
        let mut high = e.planes("single: high", 1, s.h, s.w)?;
        e.lowpass(&src, lambda, pad, &mut low, &mut high)?;
        Ok((e.download(&low)?.remove(0), e.download(&high)?.remove(0)))
    }

    /// `sum_m d_m (*) x_m` of one set of maps.
    pub fn synthesize<E: Ops>(e: &mut E, dict: &Dictionary, coef: &CoefMaps) -> Result<Plane> {
        let mut code = e.code("single", dict, 1, coef.h, coef.w)?;
        e.upload_code(&mut code, &[coef])?;
        let mut out = e.planes("single: synthesis", 1, coef.h, coef.w)?;
        e.synthesize(&code, &mut out)?;
        Ok(e.download(&out)?.remove(0))
    }

    /// Choose-max (or with `sum`, the sum) of two sets of maps of `dict`'s size with window
    /// radius `r` and vote radius `vote`.
    pub fn fuse_maps<E: Ops>(
        e: &mut E,
        dict: &Dictionary,
        [a, b]: [&CoefMaps; 2],
        r: usize,
        vote: usize,
        sum: bool,
    ) -> Result<(CoefMaps, DecisionMap)> {
        let mut code = e.code("single pair", dict, 2, a.h, a.w)?;
        e.upload_code(&mut code, &[a, b])?;
        let mut fused = e.code("single fused", dict, 1, a.h, a.w)?;
        let d = e.choose(&code, r, vote, sum, &mut fused)?;
        Ok((
            e.download_code(&fused)?.remove(0),
            e.download_decisions(&d)?.remove(0),
        ))
    }
}
