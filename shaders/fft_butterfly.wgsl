// Complex helpers and the radix-2..8 butterflies shared by the FFT kernels (fft.wgsl in workgroup
// memory, fft_long.wgsl in global memory); both declare the twiddle table `tw` they read.

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn conj(a: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x, -a.y);
}

// Multiply by -i (forward-direction quarter turn).
fn mul_mi(a: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.y, -a.x);
}

fn dft4(x: ptr<function, array<vec2<f32>, 8>>, o: u32, s: u32) {
    let a0 = (*x)[o];
    let a1 = (*x)[o + s];
    let a2 = (*x)[o + 2u * s];
    let a3 = (*x)[o + 3u * s];
    let t0 = a0 + a2;
    let t1 = a0 - a2;
    let t2 = a1 + a3;
    let t3 = mul_mi(a1 - a3);
    (*x)[o] = t0 + t2;
    (*x)[o + s] = t1 + t3;
    (*x)[o + 2u * s] = t0 - t2;
    (*x)[o + 3u * s] = t1 - t3;
}

// In-place DFT of x[0..r]. Radix 2, 4 and 8 are written out; 3, 5 and 7 use the twiddle table with
// the exponent stepped incrementally (no integer division: it is scalarised on SIMD CPUs).
fn butterfly(x: ptr<function, array<vec2<f32>, 8>>, r: u32, nb: u32) {
    if (r == 2u) {
        let a0 = (*x)[0];
        let a1 = (*x)[1];
        (*x)[0] = a0 + a1;
        (*x)[1] = a0 - a1;
    } else if (r == 4u) {
        dft4(x, 0u, 1u);
    } else if (r == 8u) {
        // even samples at 0,2,4,6 and odd at 1,3,5,7 each get a 4-point DFT in place
        dft4(x, 0u, 2u);
        dft4(x, 1u, 2u);
        let c = 0.70710678118654752;
        var y: array<vec2<f32>, 8>;
        let w1 = vec2<f32>(c, -c);
        let w3 = vec2<f32>(-c, -c);
        let o0 = (*x)[1];
        let o1 = cmul((*x)[3], w1);
        let o2 = mul_mi((*x)[5]);
        let o3 = cmul((*x)[7], w3);
        y[0] = (*x)[0] + o0;
        y[4] = (*x)[0] - o0;
        y[1] = (*x)[2] + o1;
        y[5] = (*x)[2] - o1;
        y[2] = (*x)[4] + o2;
        y[6] = (*x)[4] - o2;
        y[3] = (*x)[6] + o3;
        y[7] = (*x)[6] - o3;
        *x = y;
    } else {
        var y: array<vec2<f32>, 8>;
        for (var q = 0u; q < r; q++) {
            var acc = (*x)[0];
            var e = q;
            for (var j = 1u; j < r; j++) {
                acc += cmul((*x)[j], tw[e * nb]);
                e += q;
                if (e >= r) {
                    e -= r;
                }
            }
            y[q] = acc;
        }
        *x = y;
    }
}

