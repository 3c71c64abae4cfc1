// Global-memory FFT for lines longer than workgroup memory holds (CPU twin: src/cpu/fft.rs). Same
// layout and conventions as fft.wgsl, one thread per element or butterfly instead of one
// workgroup per line. The host runs, on `count` lines from `first` at a time:
//   load (gather the lines into `a`, zero-padded to L; Bluestein: times the chirp)
//   Stockham passes a -> b -> a ... (`stockham`, one per radix, the two bindings swapped each pass)
//   Bluestein only: `chirp` (times the chirp's spectrum, conjugated), passes again
//   store (scatter back; Bluestein: conjugate, times the chirp)
// mode: 0 = real rows -> transposed half spectra, 1 = spectrum columns in place,
//       2 = half spectra -> real rows (Hermitian extension).

struct Long {
    planes: u32,
    h: u32,
    w: u32,
    mode: u32,
    first: u32,
    count: u32,
    inverse: u32,
    // line length N, inner length L, Bluestein (0/1)
    n: u32,
    l: u32,
    blue: u32,
    // this pass: radix and the product of the radices before it
    r: u32,
    ls: u32,
    // threads per grid row: t = id.x + id.y * nwx
    nwx: u32,
    scale: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> prm: Long;
@group(0) @binding(1) var<storage, read_write> real: array<f32>;
@group(0) @binding(2) var<storage, read_write> spec: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> tw: array<vec2<f32>>;
@group(0) @binding(4) var<storage, read> blue: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> a: array<vec2<f32>>;
@group(0) @binding(6) var<storage, read_write> b: array<vec2<f32>>;

// cmul, conj, mul_mi, dft4, butterfly: shaders/fft_butterfly.wgsl (prepended by the host)

fn thread(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * prm.nwx;
}

// Element n (< N) of line `line` (absolute) as the transform's input.
fn input(line: u32, n: u32) -> vec2<f32> {
    let wc = prm.w / 2u + 1u;
    if (prm.mode == 0u) {
        let plane = line / prm.h;
        let y = line % prm.h;
        return vec2<f32>(real[plane * prm.h * prm.w + y * prm.w + n], 0.0);
    }
    if (prm.mode == 1u) {
        let v = spec[line * prm.h + n];
        return select(v, conj(v), prm.inverse != 0u);
    }
    // inverse = conj(forward(conj X)); only the real part is kept, so the outer conj is dropped
    let plane = line / prm.h;
    let y = line % prm.h;
    if (n < wc) {
        return conj(spec[(plane * wc + n) * prm.h + y]);
    }
    return spec[(plane * wc + (prm.n - n)) * prm.h + y];
}

@compute @workgroup_size(256)
fn load(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = thread(gid);
    if (t >= prm.count * prm.l) {
        return;
    }
    let j = t / prm.l;
    let n = t % prm.l;
    var v = vec2<f32>(0.0);
    if (n < prm.n) {
        v = input(prm.first + j, n);
        if (prm.blue != 0u) {
            v = cmul(v, blue[n]);
        }
    }
    a[t] = v;
}

@compute @workgroup_size(256)
fn stockham(@builtin(global_invocation_id) gid: vec3<u32>) {
    let nb = prm.l / prm.r;
    let t = thread(gid);
    if (t >= prm.count * nb) {
        return;
    }
    let j = t / nb;
    let i = t % nb;
    let base_line = j * prm.l;
    let ls = prm.ls;
    let k = i % ls;
    let tstep = prm.l / (ls * prm.r);
    var x: array<vec2<f32>, 8>;
    x[0] = a[base_line + i];
    for (var q = 1u; q < prm.r; q++) {
        x[q] = cmul(a[base_line + i + q * nb], tw[q * k * tstep]);
    }
    butterfly(&x, prm.r, nb);
    let base = base_line + (i - k) * prm.r + k;
    for (var q = 0u; q < prm.r; q++) {
        b[base + q * ls] = x[q];
    }
}

@compute @workgroup_size(256)
fn chirp(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = thread(gid);
    if (t >= prm.count * prm.l) {
        return;
    }
    a[t] = conj(cmul(a[t], blue[prm.n + t % prm.l]));
}

@compute @workgroup_size(256)
fn store(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = thread(gid);
    if (t >= prm.count * prm.n) {
        return;
    }
    let j = t / prm.n;
    let k = t % prm.n;
    var v = a[j * prm.l + k];
    if (prm.blue != 0u) {
        v = cmul(conj(v), blue[k]);
    }
    let line = prm.first + j;
    let wc = prm.w / 2u + 1u;
    if (prm.mode == 0u) {
        if (k < wc) {
            let plane = line / prm.h;
            let y = line % prm.h;
            spec[(plane * wc + k) * prm.h + y] = v;
        }
    } else if (prm.mode == 1u) {
        spec[line * prm.h + k] = select(v, conj(v), prm.inverse != 0u);
    } else {
        let plane = line / prm.h;
        let y = line % prm.h;
        real[plane * prm.h * prm.w + y * prm.w + k] = v.x * prm.scale;
    }
}
