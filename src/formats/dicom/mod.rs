//! DICOM files read with dicom-rs (`dicom-object`): grey (MONOCHROME1/2) or colour (RGB, and
//! YBR converted to RGB), 8, 16 or 32 bits, uncompressed or compressed ([`codec`]). A
//! single-frame file is a 2-D source (this module); a multi-frame file, or a folder holding one
//! series, is a volume ([`series`]). [`write`] makes the files of `csfuse phantom --dicom`;
//! [`fused`] writes a fused volume as a series.
//!
//! - **Values.** The Modality LUT's linear form is applied, v·slope + intercept (Rescale Slope
//!   and Intercept, 0028,1053 and 0028,1052), so a CT is read in Hounsfield units. An unsigned
//!   8- or 16-bit image without rescaling keeps its integer depth (8-bit is fused at /255 like a
//!   PNG); anything else (signed, 32-bit, rescaled) is read as float, mapped by the intensity rule
//!   from its own range.
//! - **MONOCHROME1** (low values shown white) is inverted so that bright means high, as for every
//!   other source: about the image's own range for float, about 2^BitsStored − 1 for integers.
//! - **Transfer syntaxes**: the table in [`codec`] (and docs/formats.md): native, deflated, RLE
//!   Lossless ([`rle`]), JPEG (with 12-bit lossy in [`jpeg12`]), JPEG 2000, and JPEG-LS with the
//!   `jpegls` feature. Lossy ones are read with a note ([`lossy`]) that the jobs log and report.
//! - **Refused**, with the reason: other transfer syntaxes (decompress first, e.g. `gdcmconv
//!   --raw in.dcm out.dcm`), palette colour, a high bit other than BitsStored − 1, pixel data
//!   shorter than the header says, a decoded frame of another size than the header's.

mod codec;
pub mod fused;
mod jpeg12;
mod lengths;
mod rle;
pub mod series;
pub mod write;

use super::image::{Raster, SampleFormat};
use crate::error::{Error, Result};
use dicom_core::value::PrimitiveValue;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions, Tag};
use std::path::Path;

/// The offset of the `DICM` magic: after the 128-byte preamble.
const PREAMBLE: usize = 128;

/// What csfuse writes: explicit VR little endian.
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// Whether `bytes` start like a DICOM file (Part 10: preamble, then `DICM`).
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.len() >= PREAMBLE + 4 && &bytes[PREAMBLE..PREAMBLE + 4] == b"DICM"
}

/// Whether the file at `path` is DICOM, from its first bytes.
pub fn is_dicom_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; PREAMBLE + 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| is_dicom(&head))
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::BadImage {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// A parse error with its causes: dicom-rs's top message alone ("could not read data set token")
/// does not say what was wrong.
fn unreadable(path: &Path, e: &dyn std::error::Error) -> Error {
    let mut msg = format!("cannot read this DICOM file (truncated or corrupt): {e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        msg.push_str(&format!(": {c}"));
        cause = c.source();
    }
    bad(path, msg)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<DefaultDicomObject> {
    parse_until(path, bytes, None)
}

/// Parses a Part 10 file held in memory, up to `until` (the whole file for `None`), once every
/// element length is known to fit in the file ([`lengths`]).
fn parse_until(path: &Path, bytes: &[u8], until: Option<Tag>) -> Result<DefaultDicomObject> {
    if !is_dicom(bytes) {
        return Err(bad(
            path,
            "not a DICOM file (no DICM magic after the 128-byte preamble)",
        ));
    }
    lengths::check(bytes, PREAMBLE + 4).map_err(|e| {
        bad(
            path,
            format!("cannot read this DICOM file (truncated or corrupt): {e}"),
        )
    })?;
    let options = OpenFileOptions::new();
    let options = match until {
        Some(tag) => options.read_until(tag),
        None => options,
    };
    options
        .from_reader(&bytes[PREAMBLE..])
        .map_err(|e| unreadable(path, &e))
}

/// Reads and parses the file at `path` (up to `until`), lengths checked as in [`parse_until`].
pub(crate) fn open(path: &Path, until: Option<Tag>) -> Result<DefaultDicomObject> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_until(path, &bytes, until)
}

/// The values of a numeric or text attribute stored with VR UN (some converters write known
/// attributes as UN in explicit VR files; pydicom reads them by the dictionary's VR).
fn un_values(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<String>> {
    let e = obj.element_opt(tag).ok().flatten()?;
    if e.vr() != dicom_core::VR::UN {
        return None;
    }
    let bytes = e.value().to_bytes().ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    Some(
        text.trim_end_matches(['\0', ' '])
            .split('\\')
            .map(|v| v.trim().to_string())
            .collect(),
    )
}

/// Numbers from a UN attribute's text values, when every one parses.
fn parsed<T: std::str::FromStr>(values: &[String]) -> Option<Vec<T>> {
    values.iter().map(|v| v.parse().ok()).collect()
}

/// An integer attribute, `None` when absent.
fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    if let Some(v) = un_values(obj, tag) {
        return parsed(&v)?.first().copied();
    }
    obj.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

fn float(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    Some(*floats(obj, tag)?.first()?)
}

/// All values of a multi-valued numeric attribute (DS, FD, ...), `None` when absent or unreadable.
fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    if let Some(v) = un_values(obj, tag) {
        return parsed(&v);
    }
    obj.element_opt(tag).ok().flatten()?.to_multi_float64().ok()
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    if let Some(v) = un_values(obj, tag) {
        return Some(v.join("\\"));
    }
    let s = obj.element_opt(tag).ok().flatten()?.to_str().ok()?;
    Some(s.trim_end_matches(['\0', ' ']).trim().to_string())
}

/// How the samples of a pixel are to be read as colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Photometric {
    Monochrome1,
    Monochrome2,
    Rgb,
    /// YCbCr, full range (converted to RGB when read).
    YbrFull,
    /// YCbCr with chroma halved along a row (expanded and converted when read).
    YbrFull422,
    /// JPEG 2000's component transforms, undone by the codec: its output is RGB.
    YbrJ2k,
}

/// The pixel module of a file, checked.
#[derive(Clone)]
pub(crate) struct Layout {
    rows: usize,
    cols: usize,
    samples: usize,
    bits: usize,
    stored: usize,
    signed: bool,
    /// Colour planes one after the other (native data only; codecs give interleaved samples).
    planar: bool,
    photometric: Photometric,
    frames: usize,
    coding: codec::Coding,
    /// Why the samples may differ from what was acquired, when they may: a lossy transfer
    /// syntax, or Lossy Image Compression (0028,2110) "01" from an earlier step.
    lossy: Option<String>,
}

impl Layout {
    /// Low values shown white (inverted when read).
    fn monochrome1(&self) -> bool {
        self.photometric == Photometric::Monochrome1
    }
}

/// The transfer syntax of `obj`, refused by name when csfuse does not decode it.
fn transfer_syntax(path: &Path, obj: &DefaultDicomObject) -> Result<&'static codec::Syntax> {
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
    let refuse = |name: &str, why: &str| {
        bad(
            path,
            format!(
                "transfer syntax {ts} ({name}) is not supported{why}; decompress it first (e.g. \
                 `gdcmconv --raw IN.dcm OUT.dcm` or `dcmdjpeg IN.dcm OUT.dcm`); docs/formats.md \
                 lists what csfuse reads"
            ),
        )
    };
    match codec::syntax(ts) {
        Some(s) if codec::decodes(s.coding) => Ok(s),
        Some(s) if s.coding == codec::Coding::JpegLs => Err(refuse(
            s.name,
            " by this build: JPEG-LS needs csfuse built with `--features jpegls` (CharLS, which \
             needs cmake and a C++ compiler)",
        )),
        Some(s) => Err(refuse(s.name, "")),
        None => {
            use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
            let name = dicom_transfer_syntax_registry::TransferSyntaxRegistry
                .get(ts)
                .map_or("unknown".to_string(), |t| t.name().to_string());
            Err(refuse(&name, ""))
        }
    }
}

pub(crate) fn layout(path: &Path, obj: &DefaultDicomObject) -> Result<Layout> {
    let syntax = transfer_syntax(path, obj)?;
    let coding = syntax.coding;
    let native = matches!(coding, codec::Coding::Native { .. });
    let need = |tag: Tag, name: &str| {
        int(obj, tag).ok_or_else(|| bad(path, format!("no {name} attribute; is this an image?")))
    };
    let rows = need(tags::ROWS, "Rows (0028,0010)")?;
    let cols = need(tags::COLUMNS, "Columns (0028,0011)")?;
    let samples = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits = need(tags::BITS_ALLOCATED, "Bits Allocated (0028,0100)")?;
    let stored = int(obj, tags::BITS_STORED).unwrap_or(bits);
    let high = int(obj, tags::HIGH_BIT).unwrap_or(stored - 1);
    let frames = match obj.element_opt(tags::NUMBER_OF_FRAMES).ok().flatten() {
        None => 1,
        Some(e) => int(obj, tags::NUMBER_OF_FRAMES).ok_or_else(|| {
            bad(
                path,
                format!(
                    "Number of Frames (0028,0008) {:?} is not a number",
                    e.to_str().unwrap_or_default()
                ),
            )
        })?,
    };
    let text_photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    if rows <= 0 || cols <= 0 {
        return Err(bad(path, format!("image is empty ({cols}x{rows})")));
    }
    if !(1..=u16::MAX as i64).contains(&frames) {
        return Err(bad(
            path,
            format!("Number of Frames {frames} is not usable"),
        ));
    }
    use Photometric::*;
    let photometric = match (samples, text_photometric.as_str()) {
        (1, "MONOCHROME1") => Monochrome1,
        (1, "MONOCHROME2") => Monochrome2,
        (3, "RGB") => Rgb,
        (3, "YBR_FULL") => YbrFull,
        (3, "YBR_FULL_422") => YbrFull422,
        (3, "YBR_ICT" | "YBR_RCT") if coding == codec::Coding::Jpeg2000 => YbrJ2k,
        (_, p) => {
            let hint = if p == "PALETTE COLOR" {
                " (palette colour is not read: convert it to RGB first)"
            } else {
                ""
            };
            return Err(bad(
                path,
                format!(
                    "photometric interpretation {p:?} with {samples} samples per pixel is not \
                     supported (MONOCHROME1, MONOCHROME2, RGB, YBR_FULL or YBR_FULL_422, and \
                     YBR_ICT/YBR_RCT in JPEG 2000){hint}"
                ),
            ));
        }
    };
    if ![8, 16, 32].contains(&bits) || stored < 1 || stored > bits || high != stored - 1 {
        return Err(bad(
            path,
            format!(
                "pixel layout not supported: Bits Allocated {bits}, Bits Stored {stored}, High \
                 Bit {high} (csfuse reads 8, 16 or 32 bits allocated, high bit = bits stored − 1)"
            ),
        ));
    }
    if matches!(photometric, YbrFull | YbrFull422) && bits != 8 {
        return Err(bad(
            path,
            format!("{text_photometric} with {bits} bits allocated is not read (8 bits only)"),
        ));
    }
    let planar = int(obj, tags::PLANAR_CONFIGURATION) == Some(1) && native;
    if photometric == YbrFull422 && planar {
        return Err(bad(
            path,
            "YBR_FULL_422 with Planar Configuration 1 breaks the standard (PS3.3 C.7.6.3.1.3)",
        ));
    }
    let earlier = text(obj, tags::LOSSY_IMAGE_COMPRESSION).is_some_and(|v| v == "01");
    let lossy = if syntax.lossy {
        Some(format!("stored with lossy compression ({})", syntax.name))
    } else if earlier {
        Some(
            "Lossy Image Compression (0028,2110) is 01: lossy compression was applied to it \
              before"
                .to_string(),
        )
    } else {
        None
    };
    Ok(Layout {
        rows: rows as usize,
        cols: cols as usize,
        samples: samples as usize,
        bits: bits as usize,
        stored: stored as usize,
        signed: int(obj, tags::PIXEL_REPRESENTATION) == Some(1),
        planar,
        photometric,
        frames: frames as usize,
        coding,
        lossy,
    })
}

/// Height and width from the header, without reading the pixel data.
pub fn dims(path: &Path) -> Result<(usize, usize)> {
    let obj = open(path, Some(tags::PIXEL_DATA))?;
    let l = layout(path, &obj)?;
    single_frame(path, &l)?;
    Ok((l.rows, l.cols))
}

/// Whether `path` is a DICOM file of several frames (a volume), from its header.
pub fn is_multiframe(path: &Path) -> bool {
    is_dicom_file(path)
        && open(path, Some(tags::PIXEL_DATA))
            .ok()
            .and_then(|o| int(&o, tags::NUMBER_OF_FRAMES))
            .is_some_and(|n| n > 1)
}

/// Why the samples of the DICOM file at `path` may differ from what was acquired (lossy
/// compression), when they may; `None` for other files.
pub fn lossy(path: &Path) -> Option<String> {
    if !is_dicom_file(path) {
        return None;
    }
    let obj = open(path, Some(tags::PIXEL_DATA)).ok()?;
    layout(path, &obj).ok()?.lossy
}

/// Refuses a multi-frame file where a 2-D image is wanted.
fn single_frame(path: &Path, l: &Layout) -> Result<()> {
    if l.frames != 1 {
        return Err(bad(
            path,
            format!(
                "a multi-frame DICOM ({} frames) is a volume, not a 2-D image: fuse it with \
                 another volume (a NIfTI file or a DICOM series), or read it with \
                 csfuse.load_volume",
                l.frames
            ),
        ));
    }
    Ok(())
}

/// Frame `k`'s samples as bytes: little endian, interleaved, colour as RGB.
fn frame_bytes(path: &Path, obj: &DefaultDicomObject, l: &Layout, k: usize) -> Result<Decoded> {
    let elem = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| bad(path, "no Pixel Data (7FE0,0010)"))?;
    let width = l.bits / 8;
    let px = l.rows * l.cols;
    let mut out = match (l.coding, elem.value().primitive()) {
        (codec::Coding::Native { big_endian }, Some(p)) => {
            // YBR_FULL_422 stores two samples for every pixel.
            let frame_len = match l.photometric {
                Photometric::YbrFull422 => l.rows * 2 * l.cols.div_ceil(2) * 2,
                _ => px * l.samples * width,
            };
            let len = native_len(p);
            let need = frame_len * l.frames;
            if len < need {
                return Err(bad(
                    path,
                    format!(
                        "truncated: {len} bytes of pixel data, {} frame(s) of {}x{}x{} samples of \
                         {} bits need {need}",
                        l.frames, l.cols, l.rows, l.samples, l.bits,
                    ),
                ));
            }
            let mut bytes = native_bytes(
                p,
                big_endian && l.bits == 32,
                k * frame_len..(k + 1) * frame_len,
            )
            .expect("the length was checked above");
            if l.photometric == Photometric::YbrFull422 {
                bytes = codec::expand_422(&bytes, l.rows, l.cols).map_err(|e| bad(path, e))?;
            }
            if l.planar && l.samples > 1 {
                bytes = (0..px * l.samples)
                    .flat_map(|i| {
                        let (p, c) = (i / l.samples, i % l.samples);
                        let at = (c * px + p) * width;
                        bytes[at..at + width].to_vec()
                    })
                    .collect();
            }
            Decoded {
                bytes,
                signed: false,
            }
        }
        (codec::Coding::Native { .. }, None) => {
            return Err(bad(
                path,
                "the pixel data is encapsulated (compressed) but the transfer syntax says it is \
                 not: the file is corrupt",
            ))
        }
        (coding, None) => {
            let v = elem.value();
            let fragments = v
                .fragments()
                .ok_or_else(|| bad(path, "the pixel data is neither native nor encapsulated"))?;
            let offsets = v.offset_table().unwrap_or(&[]);
            let name = obj.meta().transfer_syntax().trim_end_matches('\0');
            let name = codec::syntax(name).map_or(name, |s| s.name);
            let fail = |e: String| {
                bad(
                    path,
                    format!(
                        "cannot decode the {name} pixel data of frame {}: {e}",
                        k + 1
                    ),
                )
            };
            let data = codec::frame_bytes(fragments, offsets, l.frames, k, coding).map_err(fail)?;
            let target = codec::Target {
                rows: l.rows,
                cols: l.cols,
                samples: l.samples,
                width,
                ycbcr: matches!(
                    l.photometric,
                    Photometric::YbrFull | Photometric::YbrFull422
                ),
            };
            codec::decode(coding, &data, &target).map_err(fail)?
        }
        (_, Some(_)) => {
            let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
            return Err(bad(
                path,
                format!(
                    "transfer syntax {ts} needs encapsulated pixel data, and this file's is \
                     native: the file is corrupt"
                ),
            ));
        }
    };
    // JPEG's decoder undoes the colour transform itself; other codings store YCbCr as it is.
    let converted = l.coding == codec::Coding::Jpeg;
    if matches!(
        l.photometric,
        Photometric::YbrFull | Photometric::YbrFull422
    ) && !converted
    {
        codec::ybr_full_to_rgb(&mut out.bytes);
    }
    Ok(out)
}

use codec::Decoded;

/// Bytes `range` of native pixel data, little endian, whatever value type the parser gave it;
/// only the words that cover the range are converted (a multi-frame file is read frame by
/// frame). `None` when the data is shorter.
fn native_bytes(
    p: &PrimitiveValue,
    big_endian_32: bool,
    range: std::ops::Range<usize>,
) -> Option<Vec<u8>> {
    use PrimitiveValue::*;
    // Bytes per value, and per unit converted together (a big endian 32-bit sample's two words).
    let (size, unit) = match p {
        U8(_) => (1, 1),
        U16(_) if big_endian_32 => (2, 4),
        U16(_) | I16(_) => (2, 2),
        U32(_) | I32(_) => (4, 4),
        p => return p.to_bytes().get(range).map(<[u8]>::to_vec),
    };
    let (a, b) = (range.start / unit * unit, range.end.div_ceil(unit) * unit);
    let words = a / size..b / size;
    let covered: Vec<u8> = match p {
        U8(v) => v.get(words)?.to_vec(),
        // 32-bit samples of a big endian file come as 16-bit words (OW), high word first.
        U16(v) if big_endian_32 => v
            .get(words)?
            .chunks(2)
            .flat_map(|w| w.iter().rev().flat_map(|x| x.to_le_bytes()))
            .collect(),
        U16(v) => v.get(words)?.iter().flat_map(|x| x.to_le_bytes()).collect(),
        I16(v) => v.get(words)?.iter().flat_map(|x| x.to_le_bytes()).collect(),
        U32(v) => v.get(words)?.iter().flat_map(|x| x.to_le_bytes()).collect(),
        I32(v) => v.get(words)?.iter().flat_map(|x| x.to_le_bytes()).collect(),
        _ => unreachable!("other value types returned above"),
    };
    Some(covered[range.start - a..range.end - a].to_vec())
}

/// The length of native pixel data in bytes.
fn native_len(p: &PrimitiveValue) -> usize {
    use PrimitiveValue::*;
    match p {
        U8(v) => v.len(),
        U16(v) => 2 * v.len(),
        I16(v) => 2 * v.len(),
        U32(v) => 4 * v.len(),
        I32(v) => 4 * v.len(),
        p => p.to_bytes().len(),
    }
}

/// The stored samples of frame `k` as numbers (sign-extended from Bits Stored), interleaved, and
/// whether they were read as signed (a JPEG 2000 codestream may say so where the header does not).
fn frame_samples(
    path: &Path,
    obj: &DefaultDicomObject,
    l: &Layout,
    k: usize,
) -> Result<(Vec<f64>, bool)> {
    let d = frame_bytes(path, obj, l, k)?;
    // A JPEG 2000 codestream's own sign wins only where the header says unsigned (pydicom's
    // rule for files whose Pixel Representation and codestream disagree).
    let signed = l.signed || d.signed;
    let (stored, width) = (l.stored, l.bits / 8);
    // frame_bytes gives exactly one frame: the native slice and every codec's output are checked.
    debug_assert_eq!(d.bytes.len(), l.rows * l.cols * l.samples * width);
    let mask = (1u64 << stored) - 1;
    let v = d
        .bytes
        .chunks_exact(width)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(c);
            let v = u64::from_le_bytes(b) & mask;
            if signed && v >> (stored - 1) & 1 == 1 {
                v as f64 - (1u64 << stored) as f64
            } else {
                v as f64
            }
        })
        .collect();
    Ok((v, signed))
}

/// The Modality LUT's linear form, (Rescale Slope, Rescale Intercept), (1, 0) when absent.
fn rescale(path: &Path, obj: &InMemDicomObject) -> Result<(f64, f64)> {
    let slope = float(obj, tags::RESCALE_SLOPE).unwrap_or(1.0);
    let intercept = float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    if !slope.is_finite() || !intercept.is_finite() || slope == 0.0 {
        return Err(bad(
            path,
            format!("Rescale Slope {slope} and Intercept {intercept} are not usable"),
        ));
    }
    Ok((slope, intercept))
}

/// Decode a DICOM file's bytes into a raster (see the module's rules).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Raster> {
    let obj = parse(path, bytes)?;
    let l = layout(path, &obj)?;
    single_frame(path, &l)?;
    let (stored, signed) = frame_samples(path, &obj, &l, 0)?;
    let (slope, intercept) = rescale(path, &obj)?;
    let rescaled = slope != 1.0 || intercept != 0.0;
    let format = match (l.bits, signed, rescaled) {
        (8, false, false) => SampleFormat::U8,
        (16, false, false) => SampleFormat::U16,
        _ => SampleFormat::F32,
    };
    let px = l.rows * l.cols;
    let mut channels: Vec<Vec<f64>> = (0..l.samples)
        .map(|c| {
            (0..px)
                .map(|p| stored[p * l.samples + c] * slope + intercept)
                .collect()
        })
        .collect();
    if l.monochrome1() {
        let g = &mut channels[0];
        let pivot = match format {
            SampleFormat::F32 => {
                let (lo, hi) = g
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
                lo + hi
            }
            _ => ((1u64 << l.stored) - 1) as f64,
        };
        g.iter_mut().for_each(|v| *v = pivot - *v);
    }
    Ok(Raster {
        h: l.rows,
        w: l.cols,
        channels,
        format,
    })
}
