//! 12-bit lossy JPEG (ISO 10918-1 process 4: sequential DCT, Huffman coded), grey only: the part
//! of DICOM's JPEG Extended syntax that jpeg-decoder does not decode. Old CT and MR archives hold
//! it. Colour, progressive and arithmetic-coded 12-bit streams are refused.
//!
//! The inverse DCT is the exact (floating point) transform, rounded once; libjpeg's integer one
//! may differ from it by one level, as ISO 10918-2 allows.

use std::f64::consts::PI;

/// Zig-zag order: the k-th coefficient of a scan is `ZIGZAG[k]` in row-major order.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// A Huffman table in the form of ISO 10918-1 F.2.2.3: per code length, the largest code and
/// where its values start.
#[derive(Clone)]
struct Huffman {
    maxcode: [i32; 17],
    valptr: [i32; 17],
    mincode: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    fn new(counts: &[u8; 16], values: Vec<u8>) -> Result<Self, String> {
        let (mut maxcode, mut valptr, mut mincode) = ([-1i32; 17], [0i32; 17], [0i32; 17]);
        let (mut code, mut k) = (0i32, 0i32);
        for len in 1..=16 {
            let n = counts[len - 1] as i32;
            if n > 0 {
                valptr[len] = k;
                mincode[len] = code;
                code += n;
                k += n;
                maxcode[len] = code - 1;
            }
            if code > 1 << len {
                return Err("a Huffman table has more codes than its lengths allow".into());
            }
            code <<= 1;
        }
        if k as usize != values.len() {
            return Err("a Huffman table's counts and values disagree".into());
        }
        Ok(Huffman {
            maxcode,
            valptr,
            mincode,
            values,
        })
    }
}

/// Bits of the entropy-coded data: stuffed zero bytes removed, and zeros once a marker is met.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    count: u32,
    /// The marker that ended the data (RSTn inside a scan, else the end of the scan).
    marker: Option<u8>,
}

impl Bits<'_> {
    fn bit(&mut self) -> u32 {
        if self.count == 0 {
            let mut byte = 0u8;
            if self.marker.is_none() && self.pos < self.data.len() {
                byte = self.data[self.pos];
                if byte == 0xFF {
                    let next = self.data.get(self.pos + 1).copied().unwrap_or(0xD9);
                    if next == 0 {
                        self.pos += 2;
                    } else {
                        self.marker = Some(next);
                        byte = 0;
                    }
                } else {
                    self.pos += 1;
                }
            }
            self.acc = byte as u32;
            self.count = 8;
        }
        self.count -= 1;
        (self.acc >> self.count) & 1
    }

    fn bits(&mut self, n: u32) -> i32 {
        (0..n).fold(0i32, |v, _| (v << 1) | self.bit() as i32)
    }

    fn decode(&mut self, h: &Huffman) -> Result<u8, String> {
        let mut code = self.bit() as i32;
        for len in 1..=16 {
            if code <= h.maxcode[len] {
                let i = h.valptr[len] + code - h.mincode[len];
                return h
                    .values
                    .get(i as usize)
                    .copied()
                    .ok_or_else(|| "a Huffman code points past its table".to_string());
            }
            code = (code << 1) | self.bit() as i32;
        }
        Err("an invalid Huffman code".into())
    }

    /// A coefficient of `s` bits, sign-extended (F.2.2.1 EXTEND).
    fn extended(&mut self, s: u32) -> i32 {
        if s == 0 {
            return 0;
        }
        let v = self.bits(s);
        if v < 1 << (s - 1) {
            v - (1 << s) + 1
        } else {
            v
        }
    }

    /// Skips an RSTn marker at a restart interval's end.
    fn restart(&mut self) -> Result<(), String> {
        self.count = 0;
        match self.marker.take() {
            Some(0xD0..=0xD7) => self.pos += 2,
            _ => {
                // The marker may follow padding bits of the last byte.
                while self.pos + 1 < self.data.len() && self.data[self.pos] != 0xFF {
                    self.pos += 1;
                }
                match self.data.get(self.pos + 1) {
                    Some(0xD0..=0xD7) => self.pos += 2,
                    _ => return Err("a restart marker is missing".into()),
                }
            }
        }
        Ok(())
    }
}

/// The 8×8 inverse DCT's basis, `cos((2x + 1) u π / 16) · C(u) / 2`.
fn basis() -> [[f64; 8]; 8] {
    let mut b = [[0.0; 8]; 8];
    for (x, row) in b.iter_mut().enumerate() {
        for (u, v) in row.iter_mut().enumerate() {
            let c = if u == 0 { 1.0 / 2f64.sqrt() } else { 1.0 };
            *v = c / 2.0 * ((2 * x + 1) as f64 * u as f64 * PI / 16.0).cos();
        }
    }
    b
}

/// Decodes a 12-bit grey JPEG stream of `expect` (width, height), which its frame header must
/// give before anything is allocated: samples 0..4095 in row order.
pub(super) fn decode(data: &[u8], expect: (usize, usize)) -> Result<Vec<u16>, String> {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return Err("no JPEG start of image".into());
    }
    let mut pos = 2;
    let mut quant: [Option<[f64; 64]>; 4] = [None; 4];
    let mut dc: [Option<Huffman>; 4] = [None, None, None, None];
    let mut ac: [Option<Huffman>; 4] = [None, None, None, None];
    let mut frame: Option<(usize, usize, usize)> = None; // width, height, quantisation table
    let mut restart = 0usize;
    loop {
        while data.get(pos) == Some(&0xFF) && data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (data.get(pos), data.get(pos + 1)) else {
            return Err(format!("expected a JPEG marker at byte {pos}"));
        };
        pos += 2;
        if marker == 0xD9 {
            return Err("the stream ends before its scan".into());
        }
        let len = match data.get(pos..pos + 2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]) as usize,
            None => return Err("a JPEG segment is cut short".into()),
        };
        let seg = data
            .get(pos + 2..pos + len)
            .filter(|_| len >= 2)
            .ok_or("a JPEG segment runs past the end of the stream")?;
        pos += len;
        match marker {
            0xC0 | 0xC1 => {
                if seg.len() < 6 {
                    return Err("a short frame header".into());
                }
                let (p, nf) = (seg[0], seg[5]);
                let h = u16::from_be_bytes([seg[1], seg[2]]) as usize;
                let w = u16::from_be_bytes([seg[3], seg[4]]) as usize;
                if p != 12 || nf != 1 || seg.len() < 9 || w == 0 || h == 0 {
                    return Err(format!(
                        "a {p}-bit frame with {nf} components of {w}x{h}: only 12-bit grey is \
                         read here"
                    ));
                }
                if (w, h) != expect {
                    return Err(format!(
                        "the stream is {w}x{h}, the header says {}x{}",
                        expect.0, expect.1
                    ));
                }
                frame = Some((w, h, (seg[8] & 3) as usize));
            }
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                return Err(format!(
                    "JPEG process with marker FF{marker:02X} (progressive, hierarchical or \
                     arithmetic coded) is not read at 12 bits"
                ));
            }
            0xC4 => {
                let mut s = seg;
                while !s.is_empty() {
                    let (class, id) = (s[0] >> 4, (s[0] & 3) as usize);
                    let counts: [u8; 16] = s
                        .get(1..17)
                        .ok_or("a short Huffman table")?
                        .try_into()
                        .unwrap();
                    let n: usize = counts.iter().map(|c| *c as usize).sum();
                    let values = s.get(17..17 + n).ok_or("a short Huffman table")?.to_vec();
                    let table = Some(Huffman::new(&counts, values)?);
                    if class == 0 {
                        dc[id] = table;
                    } else {
                        ac[id] = table;
                    }
                    s = &s[17 + n..];
                }
            }
            0xDB => {
                let mut s = seg;
                while !s.is_empty() {
                    let (wide, id) = (s[0] >> 4 == 1, (s[0] & 3) as usize);
                    let size = if wide { 128 } else { 64 };
                    let v = s.get(1..1 + size).ok_or("a short quantisation table")?;
                    let mut q = [0.0; 64];
                    for (k, z) in ZIGZAG.iter().enumerate() {
                        q[*z] = if wide {
                            u16::from_be_bytes([v[2 * k], v[2 * k + 1]]) as f64
                        } else {
                            v[k] as f64
                        };
                    }
                    quant[id] = Some(q);
                    s = &s[1 + size..];
                }
            }
            0xDD => {
                restart = u16::from_be_bytes([
                    *seg.first().ok_or("a short restart interval")?,
                    *seg.get(1).ok_or("a short restart interval")?,
                ]) as usize;
            }
            0xDA => {
                let (w, h, tq) = frame.ok_or("a scan before the frame header")?;
                if seg.len() < 6 || seg[0] != 1 {
                    return Err("a scan of other than one component".into());
                }
                let (td, ta) = ((seg[2] >> 4 & 3) as usize, (seg[2] & 3) as usize);
                let q = quant[tq].ok_or("a missing quantisation table")?;
                let dc = dc[td].clone().ok_or("a missing DC Huffman table")?;
                let ac = ac[ta].clone().ok_or("a missing AC Huffman table")?;
                return scan(&data[pos..], (w, h), &q, (&dc, &ac), restart);
            }
            _ => {} // APPn, COM and the like
        }
    }
}

fn scan(
    data: &[u8],
    (w, h): (usize, usize),
    q: &[f64; 64],
    (dc, ac): (&Huffman, &Huffman),
    restart: usize,
) -> Result<Vec<u16>, String> {
    let (bw, bh) = (w.div_ceil(8), h.div_ceil(8));
    let mut out = vec![0u16; w * h];
    let mut bits = Bits {
        data,
        pos: 0,
        acc: 0,
        count: 0,
        marker: None,
    };
    let b = basis();
    let mut pred = 0i32;
    for n in 0..bw * bh {
        if restart > 0 && n > 0 && n % restart == 0 {
            bits.restart()?;
            pred = 0;
        }
        let mut coef = [0.0f64; 64];
        let t = bits.decode(dc)? as u32;
        if t > 16 {
            return Err(format!("a DC difference of {t} bits"));
        }
        // Wrapping: a corrupt stream may add up differences past i32 (the samples are clamped).
        pred = pred.wrapping_add(bits.extended(t));
        coef[0] = pred as f64 * q[0];
        let mut k = 1;
        while k < 64 {
            let rs = bits.decode(ac)?;
            let (r, s) = ((rs >> 4) as usize, (rs & 15) as u32);
            if s == 0 {
                if r != 15 {
                    break;
                }
                k += 16;
                continue;
            }
            k += r;
            if k > 63 {
                return Err("an AC run past the end of a block".into());
            }
            coef[ZIGZAG[k]] = bits.extended(s) as f64 * q[ZIGZAG[k]];
            k += 1;
        }
        // Rows, then columns, of the separable inverse transform.
        let mut tmp = [0.0f64; 64];
        for v in 0..8 {
            for x in 0..8 {
                tmp[v * 8 + x] = (0..8).map(|u| b[x][u] * coef[v * 8 + u]).sum();
            }
        }
        let (bx, by) = (n % bw, n / bw);
        for (y, by_row) in b.iter().enumerate().take(h.saturating_sub(by * 8).min(8)) {
            let row = &mut out[(by * 8 + y) * w..(by * 8 + y + 1) * w];
            for (x, px) in row.iter_mut().skip(bx * 8).take(8).enumerate() {
                let v: f64 = (0..8).map(|v| by_row[v] * tmp[v * 8 + x]).sum::<f64>() + 2048.0;
                *px = v.round().clamp(0.0, 4095.0) as u16;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inverse_dct_of_a_dc_term_is_flat() {
        // A DC coefficient of 8·v gives v everywhere (the transform's scaling).
        let b = basis();
        let v: f64 = (0..8)
            .map(|u| b[3][u] * if u == 0 { 8.0 } else { 0.0 })
            .sum();
        let flat: f64 = (0..8).map(|u| b[5][u] * if u == 0 { v } else { 0.0 }).sum();
        assert!((flat - 1.0).abs() < 1e-12, "{flat}");
    }

    #[test]
    fn huffman_tables_decode_their_canonical_codes() {
        // Two codes of length 2 (00, 01) and one of length 3 (100).
        let mut counts = [0u8; 16];
        counts[1] = 2;
        counts[2] = 1;
        let h = Huffman::new(&counts, vec![7, 9, 11]).unwrap();
        let data = [0b0001_1000u8, 0];
        let mut bits = Bits {
            data: &data,
            pos: 0,
            acc: 0,
            count: 0,
            marker: None,
        };
        assert_eq!(bits.decode(&h).unwrap(), 7);
        assert_eq!(bits.decode(&h).unwrap(), 9);
        assert_eq!(bits.decode(&h).unwrap(), 11);
        counts[0] = 3;
        assert!(Huffman::new(&counts, vec![1, 2, 3, 4, 5, 6]).is_err());
    }

    #[test]
    fn corrupt_streams_are_errors() {
        assert!(decode(b"not a jpeg", (8, 8)).is_err());
        assert!(decode(&[0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00], (8, 8)).is_err());
        assert!(decode(&[0xFF, 0xD8, 0xFF, 0xD9], (8, 8)).is_err());
        // A 12-bit grey frame header of 65535 × 65535: refused before anything is allocated.
        let sof = [
            0xFF, 0xD8, 0xFF, 0xC1, 0, 11, 12, 0xFF, 0xFF, 0xFF, 0xFF, 1, 1, 0x11, 0,
        ];
        let e = decode(&sof, (8, 8)).unwrap_err();
        assert!(e.contains("65535x65535"), "{e}");
    }
}
