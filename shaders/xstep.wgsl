// Per-frequency Sherman-Morrison X step of CBPDN (CPU twin: cpu::cbpdn::x_step).
//   p = sum_m Df_m YU_m,  q = (S - p) / (sum_m |Df_m|^2 + rho),  X_m = YU_m + conj(Df_m) q
// One thread per (bin, item); `spec` holds FFT(Y - U) on entry and X on exit; `dx` gets p + q |Df|^2,
// the model spectrum sum_m Df_m X_m used for the data term of the objective.

struct Params {
    nb: u32,
    m: u32,
    nwx: u32,
    _p: u32,
}

// struct Item: shaders/item.wgsl

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> spec: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read> df: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> dd: array<f32>;
@group(0) @binding(4) var<storage, read> sf: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> dx: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read> items: array<Item>;

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x + gid.y * prm.nwx * 256u;
    let b = gid.z;
    if (j >= prm.nb || items[b].live == 0u) {
        return;
    }
    let nb = prm.nb;
    let base = b * prm.m * nb + j;
    var p = vec2<f32>(0.0);
    for (var k = 0u; k < prm.m; k++) {
        p += cmul(df[k * nb + j], spec[base + k * nb]);
    }
    let d = dd[j];
    let q = (sf[b * nb + j] - p) / (d + items[b].rho);
    dx[b * nb + j] = p + q * d;
    for (var k = 0u; k < prm.m; k++) {
        let f = df[k * nb + j];
        spec[base + k * nb] += cmul(vec2<f32>(f.x, -f.y), q);
    }
}
