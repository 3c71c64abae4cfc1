// Final parallel reduction of the shrink pass's per-workgroup partials: one workgroup per item sums
// `groups` rows of 8 values (CPU twin: the f64 sum in cpu::cbpdn::shrink_plane). The host reads only these
// few scalars per ADMM iteration.

struct Params {
    groups: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> partials: array<array<f32, 8>>;
@group(0) @binding(2) var<storage, read_write> norms: array<array<f32, 8>>;

const WG: u32 = 256u;
var<workgroup> red: array<array<f32, 8>, WG>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = wid.x;
    var acc: array<f32, 8>;
    for (var q = 0u; q < 8u; q++) {
        acc[q] = 0.0;
    }
    for (var g = lid; g < prm.groups; g += WG) {
        let p = partials[b * prm.groups + g];
        for (var q = 0u; q < 8u; q++) {
            acc[q] += p[q];
        }
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            for (var q = 0u; q < 8u; q++) {
                red[lid][q] += red[lid + s][q];
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        norms[b] = red[0];
    }
}
