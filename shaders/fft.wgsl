// Batched 2-D real FFT, one line per workgroup, in workgroup memory (CPU twin: src/cpu/fft.rs).
//
// The host specialises this text for one line length N by replacing the CONSTS line (L is the inner
// transform length: N, or the Bluestein length M >= 2N-1 when N has a prime factor above 7) and the
// PASSES line (the Stockham passes, radices 2, 3, 4, 5, 7 and 8, whose product is L). Spectra use the
// CPU layout: half spectrum stored transposed, bin (ky, kx) of plane p at (p * wc + kx) * h + ky.
// Forward is unnormalised; the inverse applies `scale` (1 / (h w)) in the row pass.
//
// Entry points: rows_r2c (real rows, two per workgroup -> transposed half spectra), cols (in place, forward or inverse),
// rows_c2r (half spectra -> real rows, Hermitian extension).

//CONSTS

struct Params {
    planes: u32,
    h: u32,
    w: u32,
    // workgroups per grid row: line = id.x + id.y * nwx
    nwx: u32,
    scale: f32,
    inverse: u32,
    // planes per solver item: a plane of a stopped item (items[plane / gate].live == 0) is skipped;
    // 0 = no items (every plane is transformed)
    gate: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> real: array<f32>;
@group(0) @binding(2) var<storage, read_write> spec: array<vec2<f32>>;
// exp(-2 pi i k / L), k < L, computed in f64 on the host
@group(0) @binding(3) var<storage, read> tw: array<vec2<f32>>;
// Bluestein: chirp exp(-pi i n^2 / N) for n < N, then FFT_L of the conjugate chirp / L
@group(0) @binding(4) var<storage, read> blue: array<vec2<f32>>;
// the solver's items (struct Item of shaders/item.wgsl; word 3 is `live`), when gate != 0
@group(0) @binding(5) var<storage, read> items: array<array<u32, 8>>;

var<workgroup> wg_live: u32;

// Is `plane` of a live item? Uniform across the workgroup (the barriers below need that).
fn live(plane: u32, lid: u32) -> bool {
    if (lid == 0u) {
        var l = 1u;
        if (prm.gate != 0u) {
            l = items[plane / prm.gate][3];
        }
        wg_live = l;
    }
    return workgroupUniformLoad(&wg_live) != 0u;
}

// Two halves for Stockham ping-pong.
var<workgroup> buf: array<vec2<f32>, 2u * L>;

// cmul, conj, mul_mi, dft4, butterfly: shaders/fft_butterfly.wgsl (prepended by the host)

// fft_shared(lid, src) -> offset of the result: the forward FFT of length L of buf[src .. src + L],
// one Stockham pass after another, written out by the host for this L (src/gpu/fft.rs,
// `stockham_source`) so that radices, strides and twiddle indices are constants and each pass's
// values stay in registers.
//PASSES

// Forward DFT of length N of buf[0 .. N]; returns the offset of the result.
fn dft_line(lid: u32) -> u32 {
    if (!BLUE) {
        return fft_shared(lid, 0u);
    }
    for (var n = lid; n < L; n += WG) {
        buf[n] = select(vec2<f32>(0.0), cmul(buf[n], blue[n]), n < N);
    }
    workgroupBarrier();
    let r = fft_shared(lid, 0u);
    // convolution with the chirp: multiply spectra, inverse by conj-forward-conj
    for (var k = lid; k < L; k += WG) {
        buf[r + k] = conj(cmul(buf[r + k], blue[N + k]));
    }
    workgroupBarrier();
    let r2 = fft_shared(lid, r);
    for (var k = lid; k < N; k += WG) {
        buf[r2 + k] = cmul(conj(buf[r2 + k]), blue[k]);
    }
    workgroupBarrier();
    return r2;
}

// Rows y0 = 2j and y0 + 1 of a plane, as one line j of planes * ceil(h / 2): the plane, y0, and
// whether y0 + 1 is a row (not when h is odd and y0 is the last).
struct RowPair {
    plane: u32,
    y0: u32,
    two: bool,
}

// How many row pairs the planes hold: the row kernels' lines.
fn row_pairs() -> u32 {
    return prm.planes * ((prm.h + 1u) / 2u);
}

fn row_pair(line: u32) -> RowPair {
    let per = (prm.h + 1u) / 2u;
    let y0 = 2u * (line % per);
    return RowPair(line / per, y0, y0 + 1u < prm.h);
}

// Two real rows at once: z = x0 + i x1 is transformed, and X0[k] = (Z[k] + conj Z[N-k]) / 2,
// X1[k] = -i (Z[k] - conj Z[N-k]) / 2.
@compute @workgroup_size(WG)
fn rows_r2c(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let line = wid.x + wid.y * prm.nwx;
    if (line >= row_pairs()) {
        return;
    }
    let rp = row_pair(line);
    if (!live(rp.plane, lid)) {
        return;
    }
    let base = rp.plane * prm.h * prm.w + rp.y0 * prm.w;
    for (var n = lid; n < N; n += WG) {
        var x1 = 0.0;
        if (rp.two) {
            x1 = real[base + prm.w + n];
        }
        buf[n] = vec2<f32>(real[base + n], x1);
    }
    workgroupBarrier();
    let r = dft_line(lid);
    let wc = prm.w / 2u + 1u;
    for (var k = lid; k < wc; k += WG) {
        let zk = buf[r + k];
        let zm = conj(buf[r + (N - k) % N]);
        let out = (rp.plane * wc + k) * prm.h + rp.y0;
        spec[out] = 0.5 * (zk + zm);
        if (rp.two) {
            spec[out + 1u] = 0.5 * mul_mi(zk - zm);
        }
    }
}

@compute @workgroup_size(WG)
fn cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let wc = prm.w / 2u + 1u;
    let line = wid.x + wid.y * prm.nwx;
    if (line >= prm.planes * wc) {
        return;
    }
    if (!live(line / wc, lid)) {
        return;
    }
    let base = line * prm.h;
    let inv = prm.inverse != 0u;
    for (var n = lid; n < N; n += WG) {
        let v = spec[base + n];
        buf[n] = select(v, conj(v), inv);
    }
    workgroupBarrier();
    let r = dft_line(lid);
    for (var k = lid; k < N; k += WG) {
        let v = buf[r + k];
        spec[base + k] = select(v, conj(v), inv);
    }
}

// Two rows at once: conj Z = conj X0 - i conj X1 with each X extended as a Hermitian spectrum
// (the imaginary parts of the bins that must be real are dropped, as a real inverse drops them),
// and the forward transform of it is N (x0 - i x1).
@compute @workgroup_size(WG)
fn rows_c2r(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let line = wid.x + wid.y * prm.nwx;
    if (line >= row_pairs()) {
        return;
    }
    let rp = row_pair(line);
    if (!live(rp.plane, lid)) {
        return;
    }
    let wc = prm.w / 2u + 1u;
    for (var n = lid; n < N; n += WG) {
        var k = n;
        if (n >= wc) {
            k = N - n;
        }
        let at = (rp.plane * wc + k) * prm.h + rp.y0;
        var c0 = spec[at];
        var c1 = vec2<f32>(0.0);
        if (rp.two) {
            c1 = spec[at + 1u];
        }
        // bin 0, and bin N/2 when N is even, belong to real lines
        if (n == 0u || 2u * n == N) {
            c0.y = 0.0;
            c1.y = 0.0;
        }
        if (n < wc) {
            c0 = conj(c0);
            c1 = conj(c1);
        }
        buf[n] = c0 + mul_mi(c1);
    }
    workgroupBarrier();
    let r = dft_line(lid);
    let base = rp.plane * prm.h * prm.w + rp.y0 * prm.w;
    for (var n = lid; n < N; n += WG) {
        let v = buf[r + n];
        real[base + n] = v.x * prm.scale;
        if (rp.two) {
            real[base + prm.w + n] = -v.y * prm.scale;
        }
    }
}
