//! Host wrappers of the WGSL kernels other than the FFT: each records one or two dispatches into an
//! encoder. The CPU twin of every kernel is named in its shader's header comment.

use super::context::{grid, Gpu, Shader, Slot};
use bytemuck::{Pod, Zeroable};
use std::sync::LazyLock;

const ITEM: &str = include_str!("../../shaders/item.wgsl");
// Shaders that use `Item` get its definition prepended once (WGSL has no includes), not per dispatch.
static XSTEP_SRC: LazyLock<String> =
    LazyLock::new(|| with_item(include_str!("../../shaders/xstep.wgsl")));
static SHRINK_SRC: LazyLock<String> =
    LazyLock::new(|| with_item(include_str!("../../shaders/shrink.wgsl")));
static RESCALE_SRC: LazyLock<String> =
    LazyLock::new(|| with_item(include_str!("../../shaders/rescale.wgsl")));
static CONTROL_SRC: LazyLock<String> =
    LazyLock::new(|| with_item(include_str!("../../shaders/control.wgsl")));
static SKIP_SRC: LazyLock<String> =
    LazyLock::new(|| with_item(include_str!("../../shaders/skip.wgsl")));

use Slot::{Read as R, Uniform as U, Write as W};

const fn main_only(
    key: &'static str,
    source: fn() -> &'static str,
    slots: &'static [Slot],
) -> Shader {
    Shader {
        key,
        source,
        entries: &["main"],
        slots,
    }
}

const XSTEP: Shader = main_only("xstep", || &XSTEP_SRC, &[U, W, R, R, R, W, R]);
const SHRINK: Shader = main_only("shrink", || &SHRINK_SRC, &[U, W, W, W, R, R, W]);
const REDUCE: Shader = main_only(
    "reduce",
    || include_str!("../../shaders/reduce.wgsl"),
    &[U, R, W],
);
const CONTROL: Shader = main_only("control", || &CONTROL_SRC, &[U, R, W, W]);
const SKIP: Shader = main_only("skip", || &SKIP_SRC, &[U, R, R, W]);
const FIDELITY: Shader = main_only(
    "fidelity",
    || include_str!("../../shaders/fidelity.wgsl"),
    &[U, R, R, W],
);
const RESCALE: Shader = main_only("rescale", || &RESCALE_SRC, &[U, W, R, W, R]);
const SYNTH: Shader = main_only(
    "synth",
    || include_str!("../../shaders/synth.wgsl"),
    &[U, R, R, W],
);
const CHOOSE: Shader = main_only(
    "choose",
    || include_str!("../../shaders/choose.wgsl"),
    &[U, R, R, R, W, W],
);
const LOWPASS: Shader = Shader {
    key: "lowpass",
    source: || include_str!("../../shaders/lowpass.wgsl"),
    entries: &["pad", "gain", "crop"],
    slots: &[U, R, W, W, W, W],
};
const ACTIVITY: Shader = Shader {
    key: "activity",
    source: || include_str!("../../shaders/activity.wgsl"),
    entries: &["activity", "boxsum", "mark"],
    slots: &[U, R, W, W],
};
const ELEMENTWISE: Shader = Shader {
    key: "elementwise",
    source: || include_str!("../../shaders/elementwise.wgsl"),
    entries: &["sub", "combine"],
    slots: &[U, R, R, R, W],
};

/// Every fixed shader of this module (the FFT's are generated per length, in `fft.rs`).
#[cfg(test)]
pub(crate) const SHADERS: [&Shader; 12] = [
    &XSTEP,
    &SHRINK,
    &REDUCE,
    &CONTROL,
    &SKIP,
    &FIDELITY,
    &RESCALE,
    &SYNTH,
    &CHOOSE,
    &LOWPASS,
    &ACTIVITY,
    &ELEMENTWISE,
];

/// Per-item ADMM parameters, as the shaders' `Item` struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Item {
    pub rho: f32,
    pub lam_over_rho: f32,
    pub alpha: f32,
    /// 0 once the item has converged: its kernels skip it.
    pub live: u32,
    /// Dual rescale factor for [`rescale`] (1 = no change).
    pub u_scale: f32,
    /// 1 before a warm start's first iteration: [`rescale`] writes `Y - U` even at scale 1.
    pub fresh: u32,
    pub _pad: [f32; 2],
}

/// A shader that uses `Item`, with its definition.
fn with_item(src: &str) -> String {
    format!("{ITEM}\n{src}")
}

type Enc<'a> = &'a mut wgpu::CommandEncoder;
type Buf = wgpu::Buffer;

fn elems(n: usize) -> (u32, u32) {
    grid(n, 256)
}

/// X step for `batch` items of `m` spectra with `nb` bins each.
#[allow(clippy::too_many_arguments)]
pub fn x_step(
    gpu: &Gpu,
    enc: Enc,
    spec: &Buf,
    df: &Buf,
    dd: &Buf,
    sf: &Buf,
    dx: &Buf,
    items: &Buf,
    nb: usize,
    m: usize,
    batch: usize,
) {
    let k = gpu.shader(&XSTEP, "main");
    let g = elems(nb);
    let u = gpu.uniform(&[nb as u32, m as u32, g.0]);
    gpu.dispatch(
        enc,
        &k,
        &[&u, spec, df, dd, sf, dx, items],
        (g.0, g.1, batch as u32),
    );
}

/// Workgroups per item of the shrink pass (its partial sums per item).
pub fn shrink_groups(per_item: usize) -> usize {
    per_item.div_ceil(256 * 8).clamp(1, 4096)
}

/// Fused shrink pass over `batch` items of `per_item` elements in planes of `plane`.
#[allow(clippy::too_many_arguments)]
pub fn shrink(
    gpu: &Gpu,
    enc: Enc,
    x: &Buf,
    y: &Buf,
    u: &Buf,
    weights: &Buf,
    items: &Buf,
    partials: &Buf,
    per_item: usize,
    plane: usize,
    batch: usize,
) {
    let k = gpu.shader(&SHRINK, "main");
    let groups = shrink_groups(per_item);
    let prm = gpu.uniform(&[per_item as u32, plane as u32, groups as u32, groups as u32]);
    gpu.dispatch(
        enc,
        &k,
        &[&prm, x, y, u, weights, items, partials],
        (groups as u32, 1, batch as u32),
    );
}

/// Sum the partials of [`shrink`] into 8 values per item.
pub fn reduce(gpu: &Gpu, enc: Enc, partials: &Buf, norms: &Buf, per_item: usize, batch: usize) {
    let k = gpu.shader(&REDUCE, "main");
    let prm = gpu.uniform(&[shrink_groups(per_item) as u32]);
    gpu.dispatch(enc, &k, &[&prm, partials, norms], (batch as u32, 1, 1));
}

/// ADMM control words of a solve, as control.wgsl's `Ctrl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct Ctrl {
    pub batch: u32,
    pub auto_rho: u32,
    pub period: u32,
    pub _p0: u32,
    pub lambda: f32,
    pub rel_tol: f32,
    /// `sqrt(coefficients per item) * AbsStopTol`.
    pub abs_tol: f32,
    pub xi: f32,
    pub ratio: f32,
    pub scaling: f32,
    pub _p1: [f32; 2],
}

/// Residuals, stop test and rho update per item from `norms` into `items` and `stats`.
pub fn control(gpu: &Gpu, enc: Enc, ctrl: &Ctrl, norms: &Buf, items: &Buf, stats: &Buf) {
    let k = gpu.shader(&CONTROL, "main");
    let prm = gpu.uniform(bytemuck::cast_slice(std::slice::from_ref(ctrl)));
    let groups = ctrl.batch.div_ceil(64);
    gpu.dispatch(enc, &k, &[&prm, norms, items, stats], (groups, 1, 1));
}

/// The next iteration's indirect grids: `words` u32 of `full` into `args`, or zeros once no item
/// of the `batch` in `items` is live.
pub fn skip(gpu: &Gpu, enc: Enc, items: &Buf, full: &Buf, args: &Buf, batch: usize, words: usize) {
    let k = gpu.shader(&SKIP, "main");
    let prm = gpu.uniform(&[batch as u32, words as u32, 0, 0]);
    gpu.dispatch(enc, &k, &[&prm, items, full, args], (1, 1, 1));
}

/// The data term of each of `batch` items from the model and signal spectra into `stats`.
#[allow(clippy::too_many_arguments)]
pub fn fidelity(
    gpu: &Gpu,
    enc: Enc,
    dx: &Buf,
    sf: &Buf,
    stats: &Buf,
    h: usize,
    w: usize,
    batch: usize,
) {
    let k = gpu.shader(&FIDELITY, "main");
    let nb = (w / 2 + 1) * h;
    let prm = gpu.uniform(&[h as u32, w as u32, nb as u32]);
    gpu.dispatch(enc, &k, &[&prm, dx, sf, stats], (batch as u32, 1, 1));
}

/// `U *= u_scale; YU = Y - U` for items whose `u_scale` is not 1.
#[allow(clippy::too_many_arguments)]
pub fn rescale(
    gpu: &Gpu,
    enc: Enc,
    yu: &Buf,
    y: &Buf,
    u: &Buf,
    items: &Buf,
    per_item: usize,
    batch: usize,
) {
    let k = gpu.shader(&RESCALE, "main");
    let g = elems(per_item);
    let prm = gpu.uniform(&[per_item as u32, g.0]);
    gpu.dispatch(enc, &k, &[&prm, yu, y, u, items], (g.0, g.1, batch as u32));
}

/// `out[b] = sum_m Df_m X[b]_m` per bin.
#[allow(clippy::too_many_arguments)]
pub fn synth(
    gpu: &Gpu,
    enc: Enc,
    spec: &Buf,
    df: &Buf,
    out: &Buf,
    nb: usize,
    m: usize,
    batch: usize,
) {
    let k = gpu.shader(&SYNTH, "main");
    let g = elems(nb);
    let prm = gpu.uniform(&[nb as u32, m as u32, g.0]);
    gpu.dispatch(enc, &k, &[&prm, spec, df, out], (g.0, g.1, batch as u32));
}

/// Geometry of the Tikhonov split: image `h x w` padded by `pad`.
#[derive(Clone, Copy, Debug)]
pub struct LowpassGeom {
    pub h: usize,
    pub w: usize,
    pub pad: usize,
    pub lambda: f32,
    pub batch: usize,
}

impl LowpassGeom {
    pub fn hp(&self) -> usize {
        self.h + 2 * self.pad
    }
    pub fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }

    fn run(&self, gpu: &Gpu, enc: Enc, entry: &str, n: usize, bufs: [&Buf; 5]) {
        let k = gpu.shader(&LOWPASS, entry);
        let g = elems(n);
        let prm = gpu.uniform(&[
            self.h as u32,
            self.w as u32,
            self.pad as u32,
            self.hp() as u32,
            self.wp() as u32,
            g.0,
            self.lambda.to_bits(),
        ]);
        let [a, b, c, d, e] = bufs;
        gpu.dispatch(
            enc,
            &k,
            &[&prm, a, b, c, d, e],
            (g.0, g.1, self.batch as u32),
        );
    }

    /// `src` -> mirror-padded `padded`.
    pub fn pad(&self, gpu: &Gpu, enc: Enc, src: &Buf, padded: &Buf) {
        let d = |i| gpu.dummy(i);
        self.run(
            gpu,
            enc,
            "pad",
            self.hp() * self.wp(),
            [src, padded, d(0), d(1), d(2)],
        );
    }

    /// Low-pass gain on the padded spectra.
    pub fn gain(&self, gpu: &Gpu, enc: Enc, spec: &Buf) {
        let d = |i| gpu.dummy(i);
        let nb = (self.wp() / 2 + 1) * self.hp();
        self.run(gpu, enc, "gain", nb, [d(0), d(1), spec, d(2), d(3)]);
    }

    /// Filtered `padded` -> `low`, and `high = src - low`.
    pub fn crop(&self, gpu: &Gpu, enc: Enc, src: &Buf, padded: &Buf, low: &Buf, high: &Buf) {
        self.run(
            gpu,
            enc,
            "crop",
            self.h * self.w,
            [src, padded, gpu.dummy(0), low, high],
        );
    }
}

/// Activity and its (2r+1)^2 box sum for `batch` items of `m` maps of `h x w`, written to items
/// `out0..out0 + batch` of `act` and `boxed`.
#[allow(clippy::too_many_arguments)]
pub fn activity(
    gpu: &Gpu,
    enc: Enc,
    coef: &Buf,
    act: &Buf,
    boxed: &Buf,
    (h, w, m): (usize, usize, usize),
    r: usize,
    (out0, batch): (usize, usize),
) {
    let g = elems(h * w);
    let prm = gpu.uniform(&[h as u32, w as u32, m as u32, r as u32, g.0, out0 as u32]);
    for entry in ["activity", "boxsum"] {
        let k = gpu.shader(&ACTIVITY, entry);
        gpu.dispatch(enc, &k, &[&prm, coef, act, boxed], (g.0, g.1, batch as u32));
    }
}

/// Majority vote of radius `k` over the choose-max decisions of `pairs` pairs of `h x w`: items 2q
/// and 2q + 1 of `boxed` (windowed activities) become pair q's A and B vote counts, with `act` (all
/// `2 * pairs` items) as scratch. `coef` is any coefficient buffer: the layout binds one, unread.
#[allow(clippy::too_many_arguments)]
pub fn vote(
    gpu: &Gpu,
    enc: Enc,
    coef: &Buf,
    act: &Buf,
    boxed: &Buf,
    (h, w): (usize, usize),
    k: usize,
    pairs: usize,
) {
    let g = elems(h * w);
    let prm = gpu.uniform(&[h as u32, w as u32, 0, k as u32, g.0, 0]);
    let mark = gpu.shader(&ACTIVITY, "mark");
    gpu.dispatch(
        enc,
        &mark,
        &[&prm, coef, act, boxed],
        (g.0, g.1, pairs as u32),
    );
    let sum = gpu.shader(&ACTIVITY, "boxsum");
    let items = 2 * pairs as u32;
    gpu.dispatch(enc, &sum, &[&prm, coef, act, boxed], (g.0, g.1, items));
}

/// Where choose-max finds the maps of its pairs.
pub enum PairMaps<'a> {
    /// `pairs` pairs in one buffer: items 2q (A) and 2q + 1 (B), fused into item q.
    Batch { coef: &'a Buf, pairs: usize },
    /// Pair `q` alone: A and B in buffers of their own, fused into item `out` of `fused`.
    Alone {
        a: &'a Buf,
        b: &'a Buf,
        q: usize,
        out: usize,
    },
}

/// Choose-max by `boxed` activity (items 2q and 2q + 1) into `fused` and plane q of `decision`;
/// with `sum`, `fused` gets A + B and `decision` the same comparison.
#[allow(clippy::too_many_arguments)]
pub fn choose(
    gpu: &Gpu,
    enc: Enc,
    maps: PairMaps,
    boxed: &Buf,
    fused: &Buf,
    decision: &Buf,
    (n, m): (usize, usize),
    sum: bool,
) {
    let k = gpu.shader(&CHOOSE, "main");
    let g = elems(n);
    // q0, a0, b0, step, o0 and the grid depth.
    let (a, b, place, z) = match maps {
        PairMaps::Batch { coef, pairs } => (coef, coef, [0, 0, 1, 2, 0], pairs),
        PairMaps::Alone { a, b, q, out } => (a, b, [q as u32, 0, 0, 0, out as u32], 1),
    };
    let mut words = vec![n as u32, m as u32, g.0];
    words.extend_from_slice(&place);
    words.push(sum as u32);
    let prm = gpu.uniform(&words);
    gpu.dispatch(
        enc,
        &k,
        &[&prm, a, b, boxed, fused, decision],
        (g.0, g.1, z as u32),
    );
}

fn elementwise(gpu: &Gpu, enc: Enc, entry: &str, bufs: [&Buf; 4], n: usize, z: usize) {
    let k = gpu.shader(&ELEMENTWISE, entry);
    let g = elems(n);
    let prm = gpu.uniform(&[n as u32, g.0]);
    let [a, b, c, out] = bufs;
    gpu.dispatch(enc, &k, &[&prm, a, b, c, out], (g.0, g.1, z as u32));
}

/// `out = a - b` over `n` elements.
pub fn sub(gpu: &Gpu, enc: Enc, a: &Buf, b: &Buf, out: &Buf, n: usize) {
    elementwise(gpu, enc, "sub", [a, b, gpu.dummy(0), out], n, 1);
}

/// `out[q] = (low[2q] + low[2q + 1]) / 2 + cart[q] + tex[q]` for `pairs` planes of `n` pixels.
#[allow(clippy::too_many_arguments)]
pub fn combine(
    gpu: &Gpu,
    enc: Enc,
    low: &Buf,
    cart: &Buf,
    tex: &Buf,
    out: &Buf,
    n: usize,
    pairs: usize,
) {
    elementwise(gpu, enc, "combine", [low, cart, tex, out], n, pairs);
}
