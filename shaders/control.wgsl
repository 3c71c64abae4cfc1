// ADMM control of a batched CBPDN solve, on the device (CPU twins: cpu::cbpdn::PassNorms::residuals,
// PassNorms::stop_thresholds and cbpdn::rho_factor, in f64). One thread per item, after the
// reduction of an iteration: from the item's norms it computes the normalised residuals, the stop
// test and the residual-balancing rho update, and writes them where the next iteration's kernels
// read them (`items`). A converged item gets live = 0 and every kernel skips it from then on.
// `stats` keeps, per item: iterations, r, s, l1, rho (slots 0-4; slot 5 is the data term, written
// by fidelity.wgsl at the end of the solve).

// struct Item: shaders/item.wgsl

struct Ctrl {
    batch: u32,
    // auto-rho: enabled (0/1) and period
    auto_rho: u32,
    period: u32,
    _p0: u32,
    lambda: f32,
    rel_tol: f32,
    // sqrt(coefficients per item) * AbsStopTol
    abs_tol: f32,
    // residual target xi, RsdlRatio mu, RhoScaling tau
    xi: f32,
    ratio: f32,
    scaling: f32,
    _p1: f32,
    _p2: f32,
}

@group(0) @binding(0) var<uniform> ctl: Ctrl;
@group(0) @binding(1) var<storage, read> norms: array<array<f32, 8>>;
@group(0) @binding(2) var<storage, read_write> items: array<Item>;
@group(0) @binding(3) var<storage, read_write> stats: array<array<f32, 8>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= ctl.batch) {
        return;
    }
    var it = items[b];
    it.u_scale = 1.0;
    it.fresh = 0u;
    if (it.live == 0u) {
        items[b] = it;
        return;
    }
    let nrm = norms[b];
    // nrm: ||x||^2, ||Y||^2, ||x - Y||^2, ||Y_prev - Y||^2, ||U||^2, sum w |x|
    let rn = max(sqrt(nrm[0]), sqrt(nrm[1]));
    let un = sqrt(nrm[4]);
    let r = sqrt(nrm[2]) / select(rn, 1.0, rn == 0.0);
    let s = sqrt(nrm[3]) / select(un, 1.0, nrm[4] == 0.0);
    // Stop thresholds use rho before this iteration's change, as on the CPU.
    let rhou = it.rho * un;
    let epri = select(0.0, ctl.abs_tol / rn, rn > 0.0) + ctl.rel_tol;
    let edua = select(0.0, ctl.abs_tol / rhou, rhou > 0.0) + ctl.rel_tol;
    let iters = u32(stats[b][0]) + 1u;
    // SPORCO's 0-based index k = iters - 1: never after the first iteration, then every period.
    let k = iters - 1u;
    if (ctl.auto_rho != 0u && k != 0u && (k + 1u) % ctl.period == 0u) {
        var mult = ctl.scaling;
        if (r != 0.0 && s != 0.0) {
            let m = sqrt(r / (s * ctl.xi));
            mult = min(select(m, 1.0 / m, m < 1.0), ctl.scaling);
        }
        var f = 1.0;
        if (r > ctl.xi * ctl.ratio * s) {
            f = mult;
        } else if (s > (ctl.ratio / ctl.xi) * r) {
            f = 1.0 / mult;
        }
        if (f != 1.0) {
            it.rho = it.rho * f;
            it.lam_over_rho = ctl.lambda / it.rho;
            it.u_scale = 1.0 / f;
        }
    }
    if (r <= epri && s <= edua) {
        it.live = 0u;
    }
    items[b] = it;
    stats[b][0] = f32(iters);
    stats[b][1] = r;
    stats[b][2] = s;
    stats[b][3] = nrm[5];
    stats[b][4] = it.rho;
}
