// Activity of coefficient maps for the choose-max rule (CPU twins: cpu::choose::activity, box_sum,
// majority):
//   activity: A(p) = sum_m |X_m(p)| per item
//   boxsum:   sum of A over the (2r+1)^2 window around p, zero outside the image
//   mark:     for the vote over the decisions, pair q = grid z puts 1 in item 2q of `act` where A's
//             windowed activity (item 2q of `boxed`) is strictly larger than B's, else 0, and the
//             complement in item 2q + 1. A boxsum of radius k over them then leaves A's and B's
//             votes in items 2q and 2q + 1 of `boxed`, which choose.wgsl compares as it compares
//             activities: A wins only with more than half the votes. Whole numbers, exact in f32.

struct Params {
    h: u32,
    w: u32,
    m: u32,
    r: u32,
    nwx: u32,
    // item of act / boxed that coefficient item 0 writes (items in buffers of their own)
    out0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> coef: array<f32>;
@group(0) @binding(2) var<storage, read_write> act: array<f32>;
@group(0) @binding(3) var<storage, read_write> boxed: array<f32>;

@compute @workgroup_size(256)
fn activity(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x + gid.y * prm.nwx * 256u;
    let b = gid.z;
    let n = prm.h * prm.w;
    if (p >= n) {
        return;
    }
    var a = 0.0;
    for (var k = 0u; k < prm.m; k++) {
        a += abs(coef[(b * prm.m + k) * n + p]);
    }
    act[(prm.out0 + b) * n + p] = a;
}

@compute @workgroup_size(256)
fn boxsum(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x + gid.y * prm.nwx * 256u;
    let b = prm.out0 + gid.z;
    let n = prm.h * prm.w;
    if (p >= n) {
        return;
    }
    let y = i32(p / prm.w);
    let x = i32(p % prm.w);
    let r = i32(prm.r);
    let y0 = max(y - r, 0);
    let y1 = min(y + r, i32(prm.h) - 1);
    let x0 = max(x - r, 0);
    let x1 = min(x + r, i32(prm.w) - 1);
    var s = 0.0;
    for (var yy = y0; yy <= y1; yy++) {
        for (var xx = x0; xx <= x1; xx++) {
            s += act[b * n + u32(yy) * prm.w + u32(xx)];
        }
    }
    boxed[b * n + p] = s;
}

@compute @workgroup_size(256)
fn mark(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x + gid.y * prm.nwx * 256u;
    let q = gid.z;
    let n = prm.h * prm.w;
    if (p >= n) {
        return;
    }
    let a = select(0.0, 1.0, boxed[2u * q * n + p] > boxed[(2u * q + 1u) * n + p]);
    act[2u * q * n + p] = a;
    act[(2u * q + 1u) * n + p] = 1.0 - a;
}
