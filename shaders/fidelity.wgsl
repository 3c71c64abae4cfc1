// Data term 1/2 ||D x - s||^2 of each item by Parseval on the half spectrum (CPU twin:
// cbpdn::data_fidelity): interior columns count twice. One workgroup per item; the result goes to
// slot 5 of the item's statistics (see control.wgsl).

struct Params {
    h: u32,
    w: u32,
    nb: u32,
    _p: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> dx: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> sf: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> stats: array<array<f32, 8>>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    let wc = prm.w / 2u + 1u;
    let even = (prm.w % 2u) == 0u;
    var acc = 0.0;
    for (var j = lid; j < prm.nb; j += WG) {
        // transposed layout: bin j = kx * h + ky
        let kx = j / prm.h;
        let mirrored = kx != 0u && !(even && kx == wc - 1u);
        let e = dx[b * prm.nb + j] - sf[b * prm.nb + j];
        acc += select(1.0, 2.0, mirrored) * dot(e, e);
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            red[lid] += red[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        stats[b][5] = 0.5 * red[0] / f32(prm.h * prm.w);
    }
}
