// Element-wise steps of the pipeline (CPU twins: Plane::sub and cpu::synth::combine_planes):
//   sub:     out = a - b                  (CS-MCA targets: detail minus the other component)
//   combine: out = (a[2q] + a[2q + 1]) / 2 + b[q] + c[q] for pair q (grid z) of planes of n pixels
//            (fused = mean of the two bases + cartoon + texture)

struct Params {
    n: u32,
    nwx: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn sub(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * prm.nwx * 256u;
    if (i >= prm.n) {
        return;
    }
    out[i] = a[i] - b[i];
}

@compute @workgroup_size(256)
fn combine(@builtin(global_invocation_id) gid: vec3<u32>) {
    let p = gid.x + gid.y * prm.nwx * 256u;
    let n = prm.n;
    if (p >= n) {
        return;
    }
    let i = gid.z * n + p;
    out[i] = 0.5 * (a[2u * gid.z * n + p] + a[(2u * gid.z + 1u) * n + p]) + b[i] + c[i];
}
