// Synthesis in the frequency domain (CPU twin: cpu::synth::synth_spectrum): per bin and item,
// out = sum_m Df_m X_m. The inverse FFT of `out` is sum_m d_m (*) x_m.

struct Params {
    nb: u32,
    m: u32,
    nwx: u32,
    _p: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> spec: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> df: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<vec2<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x + gid.y * prm.nwx * 256u;
    let b = gid.z;
    if (j >= prm.nb) {
        return;
    }
    let nb = prm.nb;
    var acc = vec2<f32>(0.0);
    for (var k = 0u; k < prm.m; k++) {
        let f = df[k * nb + j];
        let x = spec[(b * prm.m + k) * nb + j];
        acc += vec2<f32>(f.x * x.x - f.y * x.y, f.x * x.y + f.y * x.x);
    }
    out[b * nb + j] = acc;
}
