// Tikhonov base/detail split (CPU twin: cpu::lowpass::tikhonov_split), three entry points around a 2-D FFT
// of the padded image:
//   pad:   symmetric (edge-including) mirror padding by `pad` pixels per side
//   gain:  S_l = S / (1 + lam (|G_r|^2 + |G_c|^2)) on the transposed half spectrum of the padded image
//   crop:  low = centre of the filtered image, high = source - low

struct Params {
    h: u32,
    w: u32,
    pad: u32,
    hp: u32,
    wp: u32,
    nwx: u32,
    lambda: f32,
    _p: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> padded: array<f32>;
@group(0) @binding(3) var<storage, read_write> spec: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read_write> low: array<f32>;
@group(0) @binding(5) var<storage, read_write> high: array<f32>;

const TAU: f32 = 6.283185307179586;

fn mirror(i: i32, n: u32) -> u32 {
    let p = 2 * i32(n);
    let j = ((i % p) + p) % p;
    return u32(select(p - 1 - j, j, j < i32(n)));
}

fn index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * prm.nwx * 256u;
}

@compute @workgroup_size(256)
fn pad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    let b = gid.z;
    if (i >= prm.hp * prm.wp) {
        return;
    }
    let y = i / prm.wp;
    let x = i % prm.wp;
    let sy = mirror(i32(y) - i32(prm.pad), prm.h);
    let sx = mirror(i32(x) - i32(prm.pad), prm.w);
    padded[b * prm.hp * prm.wp + i] = src[b * prm.h * prm.w + sy * prm.w + sx];
}

@compute @workgroup_size(256)
fn gain(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = index(gid);
    let b = gid.z;
    let nb = (prm.wp / 2u + 1u) * prm.hp;
    if (j >= nb) {
        return;
    }
    let kx = j / prm.hp;
    let ky = j % prm.hp;
    let gr = 2.0 - 2.0 * cos(TAU * f32(kx) / f32(prm.wp));
    let gc = 2.0 - 2.0 * cos(TAU * f32(ky) / f32(prm.hp));
    spec[b * nb + j] /= 1.0 + prm.lambda * (gr + gc);
}

@compute @workgroup_size(256)
fn crop(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = index(gid);
    let b = gid.z;
    if (i >= prm.h * prm.w) {
        return;
    }
    let y = i / prm.w;
    let x = i % prm.w;
    let l = padded[b * prm.hp * prm.wp + (y + prm.pad) * prm.wp + x + prm.pad];
    let o = b * prm.h * prm.w + i;
    low[o] = l;
    high[o] = src[o] - l;
}
