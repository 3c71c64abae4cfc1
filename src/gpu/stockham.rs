//! The Stockham passes of the workgroup-memory FFT (shaders/fft.wgsl), written out as WGSL for one
//! inner length. Every radix, stride and twiddle index is a literal and every value of a butterfly
//! is its own `let`: a pass loop over a runtime radix with a dynamically indexed array, as before,
//! spilled those arrays to memory and made the FFT about 80x slower than rustfft on lavapipe.
//! The arithmetic is the generic butterflies' (shaders/fft_butterfly.wgsl) in the same order.

use std::fmt::Write;

/// `fn fft_shared(lid, src) -> u32`: the forward FFT of length `l` of `buf[src .. src + l]`, where
/// the result lands (`0` or `l`), as one function per pass of `radices` (whose product is `l`).
pub(crate) fn stockham_source(l: usize, radices: &[usize]) -> String {
    debug_assert_eq!(radices.iter().product::<usize>(), l);
    let mut s = String::from("fn fft_shared(lid: u32, src0: u32) -> u32 {\n    var src = src0;\n");
    for p in 0..radices.len() {
        let _ = writeln!(s, "    pass{p}(lid, src, L - src);\n    src = L - src;");
    }
    s.push_str("    return src;\n}\n");
    let mut ls = 1;
    for (p, &r) in radices.iter().enumerate() {
        s.push_str(&pass(p, l, r, ls));
        ls *= r;
    }
    s
}

/// One pass: radix `r` on sub-transforms of length `ls` (the twiddles of `l`).
fn pass(p: usize, l: usize, r: usize, ls: usize) -> String {
    let nb = l / r;
    let tstep = l / (ls * r);
    let mut s = format!(
        "\nfn pass{p}(lid: u32, src: u32, dst: u32) {{\n    \
         for (var i = lid; i < {nb}u; i += WG) {{\n        \
         let k = i % {ls}u;\n        let t = k * {tstep}u;\n        let x0 = buf[src + i];\n"
    );
    for q in 1..r {
        let _ = writeln!(
            s,
            "        let x{q} = cmul(buf[src + i + {}u], tw[{q}u * t]);",
            q * nb
        );
    }
    for line in butterfly(r, nb) {
        let _ = writeln!(s, "        {line}");
    }
    let _ = writeln!(s, "        let base = (i - k) * {r}u + k;");
    for q in 0..r {
        let _ = writeln!(s, "        buf[dst + base + {}u] = y{q};", q * ls);
    }
    s.push_str("    }\n    workgroupBarrier();\n}\n");
    s
}

/// `let` statements taking `x0 .. x{r-1}` to their DFT `y0 .. y{r-1}`; `nb = l / r` scales the
/// twiddle index of the odd radices.
fn butterfly(r: usize, nb: usize) -> Vec<String> {
    match r {
        2 => vec!["let y0 = x0 + x1;".into(), "let y1 = x0 - x1;".into()],
        4 => dft4("x", ["0", "1", "2", "3"], "y", ["0", "1", "2", "3"]),
        8 => {
            // even samples then odd samples each through a 4-point DFT, then one radix-2 step
            let mut v = dft4("x", ["0", "2", "4", "6"], "e", ["0", "1", "2", "3"]);
            v.extend(dft4("x", ["1", "3", "5", "7"], "o", ["0", "1", "2", "3"]));
            v.extend([
                "let c = 0.70710678118654752;".to_string(),
                "let w0 = o0;".into(),
                "let w1 = cmul(o1, vec2<f32>(c, -c));".into(),
                "let w2 = mul_mi(o2);".into(),
                "let w3 = cmul(o3, vec2<f32>(-c, -c));".into(),
            ]);
            for k in 0..4 {
                v.push(format!("let y{k} = e{k} + w{k};"));
                v.push(format!("let y{} = e{k} - w{k};", k + 4));
            }
            v
        }
        _ => (0..r)
            .map(|q| {
                let terms: String = (1..r)
                    .map(|j| format!(" + cmul(x{j}, tw[{}u])", (q * j) % r * nb))
                    .collect();
                format!("let y{q} = x0{terms};")
            })
            .collect(),
    }
}

/// The 4-point DFT of `a` (names `{a}{i}`) into `b` (names `{b}{o}`), as `dft4` does it.
fn dft4(a: &str, i: [&str; 4], b: &str, o: [&str; 4]) -> Vec<String> {
    vec![
        format!("let {b}t0 = {a}{} + {a}{};", i[0], i[2]),
        format!("let {b}t1 = {a}{} - {a}{};", i[0], i[2]),
        format!("let {b}t2 = {a}{} + {a}{};", i[1], i[3]),
        format!("let {b}t3 = mul_mi({a}{} - {a}{});", i[1], i[3]),
        format!("let {b}{} = {b}t0 + {b}t2;", o[0]),
        format!("let {b}{} = {b}t1 + {b}t3;", o[1]),
        format!("let {b}{} = {b}t0 - {b}t2;", o[2]),
        format!("let {b}{} = {b}t1 - {b}t3;", o[3]),
    ]
}
