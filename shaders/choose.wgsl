// Choose-max (CPU twins: fusion_rule::decide's comparison and fusion_rule::choose): for pair q (grid
// z), take every coefficient of source A (item 2q) where its windowed activity is strictly larger,
// else of B (item 2q + 1); the fused maps are item q of `fused`, the decision plane q of `decision`.

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
    let q = gid.z;
    let n = prm.n;
    if (p >= n) {
        return;
    }
    let from_a = boxed[2u * q * n + p] > boxed[(2u * q + 1u) * n + p];
    decision[q * n + p] = select(0u, 1u, from_a);
    let src = (2u * q + select(1u, 0u, from_a)) * prm.m * n;
    let dst = q * prm.m * n;
    for (var k = 0u; k < prm.m; k++) {
        fused[dst + k * n + p] = coef[src + k * n + p];
    }
}
