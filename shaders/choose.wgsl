// Choose-max (CPU twins: cpu::choose::decide's comparison, cpu::choose::choose and, with `sum`,
// cpu::choose::sum): for pair q = q0 + z (grid z), take every coefficient of source A where its
// windowed activity (item 2q of `boxed`) is strictly larger, else of B (item 2q + 1), or with
// `sum` != 0 the sum of both; the fused maps go to item o0 + z of `fused`, the decision (A the more
// active) to plane q of `decision`. A and B are items a0 + step * z of `coef_a` and
// b0 + step * z of `coef_b`: one buffer holding the batch (a0 = 0, b0 = 1, step = 2, both bindings
// the same buffer) or, for codes too large for one binding, one buffer per item (step = 0).

struct Params {
    n: u32,
    m: u32,
    nwx: u32,
    q0: u32,
    a0: u32,
    b0: u32,
    step: u32,
    o0: u32,
    sum: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> coef_a: array<f32>;
@group(0) @binding(2) var<storage, read> coef_b: array<f32>;
@group(0) @binding(3) var<storage, read> boxed: array<f32>;
@group(0) @binding(4) var<storage, read_write> fused: array<f32>;
@group(0) @binding(5) var<storage, read_write> decision: array<u32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x + gid.y * prm.nwx * 256u;
    let z = gid.z;
    let q = prm.q0 + z;
    let n = prm.n;
    if (p >= n) {
        return;
    }
    let from_a = boxed[2u * q * n + p] > boxed[(2u * q + 1u) * n + p];
    decision[q * n + p] = select(0u, 1u, from_a);
    let dst = (prm.o0 + z) * prm.m * n;
    let sa = (prm.a0 + prm.step * z) * prm.m * n;
    let sb = (prm.b0 + prm.step * z) * prm.m * n;
    if (prm.sum != 0u) {
        for (var k = 0u; k < prm.m; k++) {
            fused[dst + k * n + p] = coef_a[sa + k * n + p] + coef_b[sb + k * n + p];
        }
    } else if (from_a) {
        for (var k = 0u; k < prm.m; k++) {
            fused[dst + k * n + p] = coef_a[sa + k * n + p];
        }
    } else {
        for (var k = 0u; k < prm.m; k++) {
            fused[dst + k * n + p] = coef_b[sb + k * n + p];
        }
    }
}
