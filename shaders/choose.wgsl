// Choose-max (CPU twins: fusion_rule::decide's comparison and fusion_rule::choose): take every
// coefficient of source A (item 0) where its windowed activity is strictly larger, else of B (item 1).

struct Params {
    n: u32,
    m: u32,
    nwx: u32,
    _p: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> coef: array<f32>;
@group(0) @binding(2) var<storage, read> boxed: array<f32>;
@group(0) @binding(3) var<storage, read_write> fused: array<f32>;
@group(0) @binding(4) var<storage, read_write> decision: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x + gid.y * prm.nwx * 256u;
    let n = prm.n;
    if (p >= n) {
        return;
    }
    let from_a = boxed[p] > boxed[n + p];
    decision[p] = select(0u, 1u, from_a);
    let src = select(prm.m * n, 0u, from_a);
    for (var k = 0u; k < prm.m; k++) {
        fused[k * n + p] = coef[src + k * n + p];
    }
}
