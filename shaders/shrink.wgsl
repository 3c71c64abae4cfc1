// Relaxation + soft threshold + dual update in one pass, with per-workgroup partial sums of the
// residual norms (CPU twin: cpu::cbpdn::shrink_plane). Per element, with v = alpha x + (1 - alpha) y + u:
//   u' = clamp(v, -t, t),  y' = v - u'  (soft threshold of v by t = w_m lam / rho),  x <- y' - u'
// Partials per workgroup: ||x||^2, ||y'||^2, ||x - y'||^2, ||y - y'||^2, ||u'||^2, sum w_m |x|.
// Grid: x (and y) cover one item's elements, z is the item; inactive (converged) items are skipped.

struct Params {
    // elements per item (m h w) and per plane (h w)
    per_item: u32,
    plane: u32,
    nwx: u32,
    // workgroups per item (partials stride)
    groups: u32,
}

// struct Item: shaders/item.wgsl

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> u: array<f32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read> items: array<Item>;
@group(0) @binding(6) var<storage, read_write> partials: array<array<f32, 8>>;

const WG: u32 = 256u;
var<workgroup> red: array<array<f32, 6>, WG>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.z;
    let it = items[b];
    if (it.live == 0u) {
        return;
    }
    let g = wid.x + wid.y * prm.nwx;
    let alpha = it.alpha;
    var acc: array<f32, 6>;
    for (var q = 0u; q < 6u; q++) {
        acc[q] = 0.0;
    }
    let stride = prm.groups * WG;
    let off = b * prm.per_item;
    for (var e = g * WG + lid; e < prm.per_item; e += stride) {
        let i = off + e;
        let wk = weights[e / prm.plane];
        let t = wk * it.lam_over_rho;
        let xi = x[i];
        let yp = y[i];
        let v = alpha * xi + (1.0 - alpha) * yp + u[i];
        let un = clamp(v, -t, t);
        let yn = v - un;
        y[i] = yn;
        u[i] = un;
        x[i] = yn - un;
        let dxy = xi - yn;
        let dyy = yp - yn;
        acc[0] += xi * xi;
        acc[1] += yn * yn;
        acc[2] += dxy * dxy;
        acc[3] += dyy * dyy;
        acc[4] += un * un;
        acc[5] += wk * abs(xi);
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            for (var q = 0u; q < 6u; q++) {
                red[lid][q] += red[lid + s][q];
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u && g < prm.groups) {
        var out: array<f32, 8>;
        for (var q = 0u; q < 6u; q++) {
            out[q] = red[0][q];
        }
        out[6] = 0.0;
        out[7] = 0.0;
        partials[b * prm.groups + g] = out;
    }
}
