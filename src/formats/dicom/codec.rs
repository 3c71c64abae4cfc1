//! Transfer syntaxes and the decoding of compressed (encapsulated) pixel data, one frame at a
//! time. The frames are cut out of the fragments here, every length is checked here, and each
//! frame goes to a codec: csfuse's own RLE decoder ([`super::rle`]), jpeg-decoder (JPEG baseline,
//! 8-bit extended and lossless; pure Rust) with csfuse's own 12-bit decoder
//! ([`super::jpeg12`]) for what it leaves out, jpeg2k over openjp2 (JPEG 2000; OpenJPEG ported to
//! Rust) and, with the `jpegls` feature, CharLS (JPEG-LS; C++). A codec's output is
//! checked against the header's size before it is used, and a codec that panics on a corrupt
//! stream is turned into an error naming the file (the fuzz tests feed them mutated files).

use std::panic::{catch_unwind, AssertUnwindSafe};

/// How a transfer syntax's pixel data is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Coding {
    /// Uncompressed samples (little endian unless `big_endian`).
    Native { big_endian: bool },
    /// RLE Lossless, PS3.5 annex G.
    Rle,
    /// ISO 10918-1: baseline, extended (8 bits, and 12 bits for grey) and lossless.
    Jpeg,
    /// ISO 15444-1 codestreams (or JP2 files).
    Jpeg2000,
    /// ISO 14495-1 (needs the `jpegls` feature).
    JpegLs,
    /// Known to DICOM, not decoded by csfuse.
    Unsupported,
}

/// A transfer syntax as csfuse treats it. docs/formats.md has a table of the same rows, which a
/// test keeps equal to [`SYNTAXES`].
pub(crate) struct Syntax {
    pub uid: &'static str,
    pub name: &'static str,
    pub coding: Coding,
    /// Whether the syntax may discard information (the log and the report say so).
    pub lossy: bool,
}

const fn row(uid: &'static str, name: &'static str, coding: Coding, lossy: bool) -> Syntax {
    Syntax {
        uid,
        name,
        coding,
        lossy,
    }
}

const LE: Coding = Coding::Native { big_endian: false };

/// Every transfer syntax csfuse names, read or refused.
pub(crate) const SYNTAXES: &[Syntax] = &[
    row("1.2.840.10008.1.2", "Implicit VR Little Endian", LE, false),
    row(
        "1.2.840.10008.1.2.1",
        "Explicit VR Little Endian",
        LE,
        false,
    ),
    row(
        "1.2.840.10008.1.2.1.99",
        "Deflated Explicit VR Little Endian",
        LE,
        false,
    ),
    row(
        "1.2.840.10008.1.2.2",
        "Explicit VR Big Endian",
        Coding::Native { big_endian: true },
        false,
    ),
    row("1.2.840.10008.1.2.5", "RLE Lossless", Coding::Rle, false),
    row(
        "1.2.840.10008.1.2.4.50",
        "JPEG Baseline (Process 1)",
        Coding::Jpeg,
        true,
    ),
    row(
        "1.2.840.10008.1.2.4.51",
        "JPEG Extended (Process 2 & 4)",
        Coding::Jpeg,
        true,
    ),
    row(
        "1.2.840.10008.1.2.4.57",
        "JPEG Lossless, Non-Hierarchical (Process 14)",
        Coding::Jpeg,
        false,
    ),
    row(
        "1.2.840.10008.1.2.4.70",
        "JPEG Lossless, First-Order Prediction (Process 14, SV1)",
        Coding::Jpeg,
        false,
    ),
    row(
        "1.2.840.10008.1.2.4.80",
        "JPEG-LS Lossless",
        Coding::JpegLs,
        false,
    ),
    row(
        "1.2.840.10008.1.2.4.81",
        "JPEG-LS Near-Lossless",
        Coding::JpegLs,
        true,
    ),
    row(
        "1.2.840.10008.1.2.4.90",
        "JPEG 2000 (Lossless Only)",
        Coding::Jpeg2000,
        false,
    ),
    row(
        "1.2.840.10008.1.2.4.91",
        "JPEG 2000",
        Coding::Jpeg2000,
        true,
    ),
    row(
        "1.2.840.10008.1.2.4.201",
        "HTJ2K (Lossless Only)",
        Coding::Unsupported,
        false,
    ),
    row(
        "1.2.840.10008.1.2.4.202",
        "HTJ2K with RPCL Options (Lossless Only)",
        Coding::Unsupported,
        false,
    ),
    row(
        "1.2.840.10008.1.2.4.203",
        "HTJ2K",
        Coding::Unsupported,
        true,
    ),
    row(
        "1.2.840.10008.1.2.4.110",
        "JPEG XL Lossless",
        Coding::Unsupported,
        false,
    ),
    row(
        "1.2.840.10008.1.2.4.112",
        "JPEG XL",
        Coding::Unsupported,
        true,
    ),
    row(
        "1.2.840.10008.1.2.4.100",
        "MPEG-2 Main Profile",
        Coding::Unsupported,
        true,
    ),
    row(
        "1.2.840.10008.1.2.4.102",
        "MPEG-4 AVC/H.264 High Profile",
        Coding::Unsupported,
        true,
    ),
    row(
        "1.2.840.10008.1.2.4.107",
        "HEVC/H.265 Main Profile",
        Coding::Unsupported,
        true,
    ),
];

/// The row of `uid`, `None` when csfuse does not know it.
pub(crate) fn syntax(uid: &str) -> Option<&'static Syntax> {
    SYNTAXES.iter().find(|s| s.uid == uid)
}

/// Whether this build decodes `coding` (JPEG-LS only with the `jpegls` feature).
pub(crate) fn decodes(coding: Coding) -> bool {
    coding != Coding::Unsupported && (coding != Coding::JpegLs || cfg!(feature = "jpegls"))
}

/// The compressed bytes of frame `k` of `frames`, from the fragments of an encapsulated pixel
/// data element and its Basic Offset Table (PS3.5 A.4). Without an offset table a frame is one
/// fragment when there are as many fragments as frames; otherwise a new frame starts at each
/// fragment that opens a JPEG, JPEG-LS or JPEG 2000 stream.
pub(crate) fn frame_bytes(
    fragments: &[Vec<u8>],
    offsets: &[u32],
    frames: usize,
    k: usize,
    coding: Coding,
) -> Result<Vec<u8>, String> {
    if fragments.is_empty() {
        return Err("the encapsulated pixel data holds no fragment".into());
    }
    let join = |range: std::ops::Range<usize>| -> Vec<u8> {
        fragments[range].iter().flatten().copied().collect()
    };
    if frames == 1 {
        return Ok(join(0..fragments.len()));
    }
    if !offsets.is_empty() {
        if offsets.len() != frames {
            return Err(format!(
                "the Basic Offset Table has {} entries for {frames} frames",
                offsets.len()
            ));
        }
        // Each offset counts bytes from the first fragment's item tag; an item header is 8 bytes.
        let mut starts = Vec::with_capacity(fragments.len());
        let mut at = 0u64;
        for f in fragments {
            starts.push(at);
            at += f.len() as u64 + 8;
        }
        let first = |off: u32| starts.iter().position(|s| *s == off as u64);
        let a = first(offsets[k]).ok_or_else(|| {
            format!(
                "the Basic Offset Table puts frame {} at byte {}, which starts no fragment",
                k + 1,
                offsets[k]
            )
        })?;
        let b = match offsets.get(k + 1) {
            Some(&o) => first(o).ok_or_else(|| {
                format!(
                    "the Basic Offset Table puts frame {} at byte {o}, which starts no fragment",
                    k + 2
                )
            })?,
            None => fragments.len(),
        };
        if b <= a {
            return Err(format!(
                "the Basic Offset Table's entries for frames {} and {} are out of order",
                k + 1,
                k + 2
            ));
        }
        return Ok(join(a..b));
    }
    if fragments.len() == frames {
        return Ok(fragments[k].clone());
    }
    let opens = |f: &Vec<u8>| match coding {
        Coding::Jpeg | Coding::JpegLs => f.starts_with(&[0xFF, 0xD8]),
        Coding::Jpeg2000 => {
            f.starts_with(&[0xFF, 0x4F, 0xFF, 0x51]) || f.starts_with(b"\0\0\0\x0cjP  ")
        }
        _ => false,
    };
    let starts: Vec<usize> = (0..fragments.len())
        .filter(|&i| opens(&fragments[i]))
        .collect();
    if starts.len() != frames || starts[0] != 0 {
        return Err(format!(
            "{} fragments without a Basic Offset Table, and they cannot be split into {frames} \
             frames ({} of them open a stream)",
            fragments.len(),
            starts.len()
        ));
    }
    let end = starts.get(k + 1).copied().unwrap_or(fragments.len());
    Ok(join(starts[k]..end))
}

/// What a frame is to decode into.
pub(crate) struct Target {
    pub rows: usize,
    pub cols: usize,
    pub samples: usize,
    /// Bytes per sample of the output: 1, 2 or 4 (Bits Allocated / 8).
    pub width: usize,
    /// The photometric interpretation says YCbCr (JPEG's colour transform is undone).
    pub ycbcr: bool,
}

impl Target {
    fn len(&self) -> usize {
        self.rows * self.cols * self.samples * self.width
    }
}

/// A decoded frame: native little-endian samples, interleaved, `Target::width` bytes each.
pub(crate) struct Decoded {
    pub bytes: Vec<u8>,
    /// A JPEG 2000 codestream that says its samples are signed.
    pub signed: bool,
}

/// Decode one compressed frame.
pub(crate) fn decode(coding: Coding, data: &[u8], t: &Target) -> Result<Decoded, String> {
    let run = || -> Result<Decoded, String> {
        let plain = |bytes| Decoded {
            bytes,
            signed: false,
        };
        match coding {
            Coding::Rle => super::rle::decode(data, t.rows * t.cols, t.samples, t.width).map(plain),
            Coding::Jpeg => jpeg(data, t).map(plain),
            Coding::Jpeg2000 => jpeg2000(data, t),
            Coding::JpegLs => jpeg_ls(data, t).map(plain),
            Coding::Native { .. } | Coding::Unsupported => {
                Err("this transfer syntax has no codec".into())
            }
        }
    };
    let out = catch_unwind(AssertUnwindSafe(run))
        .map_err(|_| "the decoder failed on this stream (corrupt data)".to_string())??;
    if out.bytes.len() != t.len() {
        return Err(format!(
            "the decoded frame has {} bytes where {} rows × {} columns × {} samples of {} bytes \
             need {}",
            out.bytes.len(),
            t.rows,
            t.cols,
            t.samples,
            t.width,
            t.len()
        ));
    }
    Ok(out)
}

/// Checks a codec's frame size against the header's.
fn same_size(what: &str, got: (usize, usize, usize), t: &Target) -> Result<(), String> {
    if got != (t.cols, t.rows, t.samples) {
        return Err(format!(
            "the {what} stream is {}x{} with {} components, the header says {}x{} with {}",
            got.0, got.1, got.2, t.cols, t.rows, t.samples
        ));
    }
    Ok(())
}

/// Samples of `from` bytes (native endian) widened or kept to `t.width` bytes, little endian.
fn widen(v: &[u8], from: usize, t: &Target) -> Result<Vec<u8>, String> {
    match (from, t.width) {
        (1, 1) => Ok(v.to_vec()),
        (2, 2) => Ok(v
            .chunks_exact(2)
            .flat_map(|c| u16::from_ne_bytes([c[0], c[1]]).to_le_bytes())
            .collect()),
        (1, 2) => Ok(v.iter().flat_map(|x| (*x as u16).to_le_bytes()).collect()),
        _ => Err(format!(
            "{}-bit decoded samples do not fit {} bits allocated",
            8 * from,
            8 * t.width
        )),
    }
}

fn jpeg(data: &[u8], t: &Target) -> Result<Vec<u8>, String> {
    use jpeg_decoder::{ColorTransform, Decoder, PixelFormat, UnsupportedFeature};
    let mut d = Decoder::new(data);
    match d.read_info() {
        Err(jpeg_decoder::Error::Unsupported(UnsupportedFeature::SamplePrecision(12))) => {
            return jpeg12(data, t)
        }
        Err(e) => return Err(jpeg_error(e)),
        Ok(()) => {}
    }
    let info = d.info().ok_or("JPEG: no frame header")?;
    let components = match info.pixel_format {
        PixelFormat::L8 | PixelFormat::L16 => 1,
        PixelFormat::RGB24 => 3,
        PixelFormat::CMYK32 => 4,
    };
    same_size(
        "JPEG",
        (info.width as usize, info.height as usize, components),
        t,
    )?;
    if components == 3 {
        // The header's photometric interpretation says whether the components are YCbCr.
        d.set_color_transform(if t.ycbcr {
            ColorTransform::YCbCr
        } else {
            ColorTransform::RGB
        });
    }
    let px = d.decode().map_err(jpeg_error)?;
    let from = if info.pixel_format == PixelFormat::L16 {
        2
    } else {
        1
    };
    widen(&px, from, t)
}

fn jpeg_error(e: jpeg_decoder::Error) -> String {
    format!("JPEG: {e}")
}

/// 12-bit lossy JPEG, which jpeg-decoder leaves out: csfuse's own decoder ([`super::jpeg12`]).
fn jpeg12(data: &[u8], t: &Target) -> Result<Vec<u8>, String> {
    if t.samples != 1 || t.width != 2 {
        return Err(format!(
            "12-bit JPEG is read as grey samples in 16 bits allocated, not {} samples of {} bits",
            t.samples,
            8 * t.width
        ));
    }
    let v =
        super::jpeg12::decode(data, (t.cols, t.rows)).map_err(|e| format!("12-bit JPEG: {e}"))?;
    Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
}

/// Width, height and components from a JPEG 2000 codestream's SIZ segment (ISO 15444-1 A.5.1),
/// read before OpenJPEG allocates what the stream claims.
fn j2k_size(data: &[u8]) -> Result<(usize, usize, usize), String> {
    let at = data
        .windows(4)
        .position(|w| w == [0xFF, 0x4F, 0xFF, 0x51])
        .ok_or("JPEG 2000: no codestream (SOC and SIZ markers) in the frame")?;
    let siz = data
        .get(at + 4..at + 42)
        .ok_or("JPEG 2000: the SIZ segment is cut short")?;
    let u32_at = |i: usize| u32::from_be_bytes(siz[i..i + 4].try_into().unwrap()) as usize;
    let (x, y, x0, y0) = (u32_at(4), u32_at(8), u32_at(12), u32_at(16));
    let components = u16::from_be_bytes([siz[36], siz[37]]) as usize;
    if x0 > x || y0 > y {
        return Err(format!(
            "JPEG 2000: image offset {x0},{y0} beyond its size {x},{y}"
        ));
    }
    Ok((x - x0, y - y0, components))
}

fn jpeg2000(data: &[u8], t: &Target) -> Result<Decoded, String> {
    same_size("JPEG 2000", j2k_size(data)?, t)?;
    let image = jpeg2k::Image::from_bytes(data).map_err(|e| format!("JPEG 2000: {e}"))?;
    let comps = image.components();
    same_size(
        "JPEG 2000",
        (image.width() as usize, image.height() as usize, comps.len()),
        t,
    )?;
    let px = t.rows * t.cols;
    let signed = comps[0].is_signed();
    let bits = comps[0].precision() as usize;
    if bits == 0 || bits > 8 * t.width {
        return Err(format!(
            "JPEG 2000: {bits}-bit samples do not fit {} bits allocated",
            8 * t.width
        ));
    }
    let mut out = vec![0u8; px * t.samples * t.width];
    for (c, comp) in comps.iter().enumerate() {
        let v = comp.data();
        if (comp.width() as usize, comp.height() as usize) != (t.cols, t.rows) || v.len() != px {
            return Err(format!(
                "JPEG 2000: component {} is {}x{} (subsampled components are not read)",
                c + 1,
                comp.width(),
                comp.height()
            ));
        }
        for (p, s) in v.iter().enumerate() {
            let o = (p * t.samples + c) * t.width;
            out[o..o + t.width].copy_from_slice(&s.to_le_bytes()[..t.width]);
        }
    }
    Ok(Decoded { bytes: out, signed })
}

#[cfg(feature = "jpegls")]
fn jpeg_ls(data: &[u8], t: &Target) -> Result<Vec<u8>, String> {
    // A CharLS decoder reads one header: a second instance decodes.
    let info = charls::CharLS::default()
        .get_frame_info(data)
        .map_err(|e| format!("JPEG-LS: {e}"))?;
    same_size(
        "JPEG-LS",
        (
            info.width as usize,
            info.height as usize,
            info.component_count.max(0) as usize,
        ),
        t,
    )?;
    let from = if info.bits_per_sample > 8 { 2 } else { 1 };
    let px = charls::CharLS::default()
        .decode(data)
        .map_err(|e| format!("JPEG-LS: {e}"))?;
    if px.len() != t.rows * t.cols * t.samples * from {
        return Err(format!(
            "JPEG-LS: {} decoded bytes for {}x{}x{}",
            px.len(),
            t.cols,
            t.rows,
            t.samples
        ));
    }
    let px = if t.samples > 1 && planar_scans(data) {
        interleave(&px, t.rows * t.cols, t.samples, from)
    } else {
        px
    };
    widen(&px, from, t)
}

#[cfg(not(feature = "jpegls"))]
fn jpeg_ls(_: &[u8], _: &Target) -> Result<Vec<u8>, String> {
    Err(
        "JPEG-LS needs csfuse built with `--features jpegls` (CharLS: cmake and a C++ \
         compiler)"
            .into(),
    )
}

/// Whether a JPEG-LS stream codes its components in separate scans (interleave mode 0): CharLS
/// then returns them plane by plane.
#[cfg(feature = "jpegls")]
fn planar_scans(data: &[u8]) -> bool {
    // The first SOS marker (FFDA): length (2), Ns (1), Ns × (id, table), NEAR, ILV.
    let Some(at) = data.windows(2).position(|w| w == [0xFF, 0xDA]) else {
        return false;
    };
    let ns = data.get(at + 4).copied().unwrap_or(0) as usize;
    data.get(at + 5 + 2 * ns + 1) == Some(&0)
}

#[cfg(feature = "jpegls")]
fn interleave(v: &[u8], px: usize, samples: usize, width: usize) -> Vec<u8> {
    let mut out = vec![0u8; v.len()];
    for c in 0..samples {
        for p in 0..px {
            let (i, o) = ((c * px + p) * width, (p * samples + c) * width);
            out[o..o + width].copy_from_slice(&v[i..i + width]);
        }
    }
    out
}

/// YCbCr (YBR_FULL, 8-bit) to RGB as PS3.3 C.7.6.3.1.2 defines it, rounded and clipped to
/// 0..255 (pydicom's `convert_color_space`).
pub(crate) fn ybr_full_to_rgb(v: &mut [u8]) {
    for p in v.chunks_exact_mut(3) {
        let (y, cb, cr) = (p[0] as f64, p[1] as f64 - 128.0, p[2] as f64 - 128.0);
        let rgb = [
            y + 1.402 * cr,
            y - 0.114 * 1.772 / 0.587 * cb - 0.299 * 1.402 / 0.587 * cr,
            y + 1.772 * cb,
        ];
        for (d, s) in p.iter_mut().zip(rgb) {
            *d = (s + 0.5).floor().clamp(0.0, 255.0) as u8;
        }
    }
}

/// Native YBR_FULL_422 (two pixels of a row share one Cb and Cr: Y Y Cb Cr) expanded to one
/// Y Cb Cr triple per pixel.
pub(crate) fn expand_422(v: &[u8], rows: usize, cols: usize) -> Result<Vec<u8>, String> {
    let row_bytes = 2 * cols.div_ceil(2) * 2;
    if v.len() < rows * row_bytes {
        return Err(format!(
            "{} bytes of YBR_FULL_422 pixel data, {cols}x{rows} need {}",
            v.len(),
            rows * row_bytes
        ));
    }
    let mut out = Vec::with_capacity(rows * cols * 3);
    for r in 0..rows {
        let line = &v[r * row_bytes..(r + 1) * row_bytes];
        for c in 0..cols {
            let g = &line[(c / 2) * 4..(c / 2) * 4 + 4];
            out.extend_from_slice(&[g[c % 2], g[2], g[3]]);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_follow_the_offset_table_or_the_stream_markers() {
        let f = |b: &[u8]| b.to_vec();
        let frags = vec![
            f(&[0xFF, 0xD8, 1]),
            f(&[2, 3]),
            f(&[0xFF, 0xD8, 4, 5]),
            f(&[6]),
        ];
        // Offsets count item headers: 8 + 3, then 8 + 2.
        let by_table = frame_bytes(&frags, &[0, 21], 2, 1, Coding::Jpeg).unwrap();
        assert_eq!(by_table, [0xFF, 0xD8, 4, 5, 6]);
        let by_marker = frame_bytes(&frags, &[], 2, 0, Coding::Jpeg).unwrap();
        assert_eq!(by_marker, [0xFF, 0xD8, 1, 2, 3]);
        let e = frame_bytes(&frags, &[0, 20], 2, 1, Coding::Jpeg).unwrap_err();
        assert!(e.contains("starts no fragment"), "{e}");
        let e = frame_bytes(&frags, &[], 3, 0, Coding::Jpeg).unwrap_err();
        assert!(e.contains("cannot be split"), "{e}");
        let one_each = frame_bytes(&frags[..2], &[], 2, 1, Coding::Rle).unwrap();
        assert_eq!(one_each, [2, 3]);
    }

    #[test]
    fn ybr_422_expands_and_converts_grey_to_grey() {
        // Two rows of three pixels: a row holds two groups (the last half used).
        let v = [
            10, 20, 128, 128, 30, 0, 128, 128, 40, 50, 128, 128, 60, 0, 128, 128,
        ];
        let mut full = expand_422(&v, 2, 3).unwrap();
        assert_eq!(&full[..9], &[10, 128, 128, 20, 128, 128, 30, 128, 128]);
        ybr_full_to_rgb(&mut full);
        assert_eq!(&full[9..12], &[40, 40, 40]);
        let mut red = [76, 85, 255];
        ybr_full_to_rgb(&mut red);
        assert!(red[0] >= 253 && red[1] <= 1 && red[2] <= 1, "{red:?}");
    }

    /// docs/formats.md's table has one row per syntax, in this order, with the same name and
    /// what csfuse does with it.
    #[test]
    fn formats_doc_lists_every_transfer_syntax() {
        let doc = include_str!("../../../docs/formats.md");
        let rows: Vec<Vec<&str>> = doc
            .lines()
            .filter(|l| l.starts_with("| 1.2.840.10008."))
            .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), SYNTAXES.len(), "one row per syntax");
        for (row, s) in rows.iter().zip(SYNTAXES) {
            assert_eq!((row[0], row[1]), (s.uid, s.name));
            let said = row[2];
            let expect_read = s.coding != Coding::Unsupported;
            assert_eq!(said.starts_with("read"), expect_read, "{}: {said}", s.name);
            assert_eq!(
                said.contains("lossy warning"),
                s.lossy && expect_read,
                "{}",
                s.name
            );
            assert_eq!(
                said.contains("--features jpegls"),
                s.coding == Coding::JpegLs
            );
        }
    }

    #[test]
    fn every_lossy_syntax_is_marked() {
        for s in SYNTAXES {
            let says_lossy = !s.name.contains("Lossless") || s.name.contains("Near-Lossless");
            if matches!(s.coding, Coding::Native { .. }) {
                assert!(!s.lossy);
            } else {
                assert_eq!(s.lossy, says_lossy, "{}", s.name);
            }
        }
    }
}
