//! Minimal `.npy` reader/writer for the float arrays csfuse exchanges with NumPy/SPORCO
//! (dictionaries and coefficient maps). Handles format versions 1-3, little/big-endian f4/f8,
//! C and Fortran order. Anything else is refused with a precise message.

use crate::error::{Error, Result};
use std::path::Path;

/// A float array read from `.npy`, converted to f64 and laid out in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

const MAGIC: &[u8] = b"\x93NUMPY";

pub fn read(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes).map_err(|msg| Error::BadNpy {
        path: path.to_path_buf(),
        msg,
    })
}

/// Parse `.npy` bytes; the error is a human-readable reason.
pub fn parse(bytes: &[u8]) -> std::result::Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("missing NUMPY magic (not a .npy file)".into());
    }
    let major = bytes[6];
    let (hlen, hstart) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let header = bytes.get(hstart..hstart + hlen).ok_or("truncated header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let descr = dict_value(header, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran =
        match dict_value(header, "fortran_order").ok_or("header has no 'fortran_order'")? {
            "True" => true,
            "False" => false,
            v => return Err(format!("bad fortran_order {v}")),
        };
    let shape_txt = dict_value(header, "shape").ok_or("header has no 'shape'")?;
    let shape = parse_shape(shape_txt)?;
    let (size, little) = match descr {
        "<f4" | "=f4" | "|f4" => (4, true),
        ">f4" => (4, false),
        "<f8" | "=f8" | "|f8" => (8, true),
        ">f8" => (8, false),
        d => {
            return Err(format!(
                "element type {d} is not supported (need float32 '<f4' or float64 '<f8')"
            ))
        }
    };
    // The shape comes from the file: its product may overflow, so every size is checked.
    let nbytes = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|count| count.checked_mul(size))
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    let body = &bytes[hstart + hlen..];
    if body.len() < nbytes {
        return Err(format!(
            "data is truncated: shape {:?} needs {} bytes, file has {}",
            shape,
            nbytes,
            body.len()
        ));
    }
    let raw: Vec<f64> = body[..nbytes]
        .chunks_exact(size)
        .map(|c| match (size, little) {
            (4, true) => f32::from_le_bytes(c.try_into().unwrap()) as f64,
            (4, false) => f32::from_be_bytes(c.try_into().unwrap()) as f64,
            (_, true) => f64::from_le_bytes(c.try_into().unwrap()),
            (_, false) => f64::from_be_bytes(c.try_into().unwrap()),
        })
        .collect();
    let data = if fortran && shape.len() > 1 {
        fortran_to_c(&raw, &shape)
    } else {
        raw
    };
    Ok(NpyArray { shape, data })
}

/// Value text of `'key': value` in the header's Python dict literal.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

fn parse_shape(txt: &str) -> std::result::Result<Vec<usize>, String> {
    let inner = txt
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape {txt}"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {txt}")))
        .collect()
}

fn fortran_to_c(raw: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = raw.len();
    let mut out = vec![0.0; n];
    let nd = shape.len();
    let mut idx = vec![0usize; nd];
    // Walk in Fortran order (first index fastest) and place each element at its C offset.
    for v in raw.iter() {
        let mut c = 0;
        for d in 0..nd {
            c = c * shape[d] + idx[d];
        }
        out[c] = *v;
        for d in 0..nd {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Element type written to `.npy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDtype {
    F32,
    F64,
}

/// Serialise a C-order array (format version 1.0).
pub fn to_bytes(shape: &[usize], data: &[f64], dtype: NpyDtype) -> Vec<u8> {
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let descr = match dtype {
        NpyDtype::F32 => "<f4",
        NpyDtype::F64 => "<f8",
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad so that magic + len + header + '\n' is a multiple of 64 bytes.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 8);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        match dtype {
            NpyDtype::F32 => out.extend_from_slice(&(*v as f32).to_le_bytes()),
            NpyDtype::F64 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_c_order() {
        let data: Vec<f64> = (0..24).map(|v| v as f64 * 0.5).collect();
        for dt in [NpyDtype::F32, NpyDtype::F64] {
            let b = to_bytes(&[2, 3, 4], &data, dt);
            assert_eq!(
                (b.len() - data.len() * if dt == NpyDtype::F32 { 4 } else { 8 }) % 64,
                0
            );
            let a = parse(&b).unwrap();
            assert_eq!(a.shape, vec![2, 3, 4]);
            assert_eq!(a.data, data);
        }
    }

    #[test]
    fn fortran_order_is_reordered() {
        // shape (2, 3): Fortran data [a00, a10, a01, a11, a02, a12]
        let f = [0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
        let c = fortran_to_c(&f, &[2, 3]);
        assert_eq!(c, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn rejects_integers_and_garbage() {
        let mut b = to_bytes(&[2], &[1.0, 2.0], NpyDtype::F32);
        let pos = b.windows(3).position(|w| w == b"<f4").unwrap();
        b[pos + 1] = b'i';
        assert!(parse(&b).unwrap_err().contains("not supported"));
        assert!(parse(b"hello world").unwrap_err().contains("magic"));
        let b = to_bytes(&[4], &[1.0; 4], NpyDtype::F64);
        assert!(parse(&b[..b.len() - 3]).unwrap_err().contains("truncated"));
    }

    /// Hole 1 of the reliability issue: shapes whose product wraps in release builds.
    #[test]
    fn overflowing_shapes_are_too_large_not_a_panic() {
        for shape in [
            "(2, 1, 9223372036854775808)",
            "(8, 8, 288230376151711744)",
            "(4294967296, 4294967296, 1)",
            "(18446744073709551615,)",
        ] {
            let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            let mut b = MAGIC.to_vec();
            b.extend_from_slice(&[1, 0]);
            b.extend_from_slice(&(header.len() as u16).to_le_bytes());
            b.extend_from_slice(header.as_bytes());
            b.extend_from_slice(&[0u8; 64]);
            let e = parse(&b).unwrap_err();
            assert!(
                e.contains("too large") || e.contains("truncated") || e.contains("bad shape"),
                "{shape}: {e}"
            );
        }
    }
}
