//! DICOM files read with dicom-rs (`dicom-object`): native (uncompressed) pixel data, grey
//! (MONOCHROME1/2) or RGB, 8, 16 or 32 bits, one frame per file. A single file is a 2-D source
//! (this module); a folder holding one series is a volume ([`series`]). [`write`] makes the files
//! of `csfuse phantom --dicom`; [`fused`] writes a fused volume as a series.
//!
//! - **Values.** The Modality LUT's linear form is applied, v·slope + intercept (Rescale Slope
//!   and Intercept, 0028,1053 and 0028,1052), so a CT is read in Hounsfield units. An unsigned
//!   8- or 16-bit image without rescaling keeps its integer depth (8-bit is fused at /255 like a
//!   PNG); anything else (signed, 32-bit, rescaled) is read as float, mapped by the intensity rule
//!   from its own range.
//! - **MONOCHROME1** (low values shown white) is inverted so that bright means high, as for every
//!   other source: about the image's own range for float, about 2^BitsStored − 1 for integers.
//! - **Transfer syntaxes**: native (implicit and explicit VR little endian, explicit big endian),
//!   deflated explicit VR little endian (dicom-rs), and RLE Lossless ([`rle`], bounds-checked).
//! - **Refused**, with the reason: other compressed transfer syntaxes (decompress first, e.g.
//!   `gdcmconv --raw in.dcm out.dcm`), several frames (a volume), palette and YBR
//!   colour, a high bit other than BitsStored − 1, pixel data shorter than the header says.

pub mod fused;
mod lengths;
mod rle;
pub mod series;
pub mod write;

use super::image::{Raster, SampleFormat};
use crate::error::{Error, Result};
use dicom_core::value::PrimitiveValue;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions, Tag};
use std::path::Path;

/// The offset of the `DICM` magic: after the 128-byte preamble.
const PREAMBLE: usize = 128;

/// Native transfer syntaxes this reader decodes: implicit and explicit VR little endian, and the
/// retired explicit VR big endian (the parser gives its 16- and 32-bit samples as numbers).
const NATIVE: [&str; 3] = [
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
];

/// Transfer syntaxes decoded beyond the native ones: RLE Lossless pixel data ([`rle`]), and the
/// deflated explicit VR little endian data set (inflated by dicom-rs; its pixel data is native).
const DECODED: [&str; 2] = ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.1.99"];

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

/// An integer attribute, `None` when absent.
fn int(obj: &DefaultDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok().flatten()?.to_int::<i64>().ok()
}

fn float(obj: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    obj.element_opt(tag).ok().flatten()?.to_float64().ok()
}

/// All values of a multi-valued numeric attribute (DS, FD, ...), `None` when absent or unreadable.
fn floats(obj: &DefaultDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten()?.to_multi_float64().ok()
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let s = obj.element_opt(tag).ok().flatten()?.to_str().ok()?;
    Some(s.trim_end_matches(['\0', ' ']).trim().to_string())
}

/// The pixel module of a file, checked.
struct Layout {
    rows: usize,
    cols: usize,
    samples: usize,
    bits: usize,
    stored: usize,
    signed: bool,
    planar: bool,
    monochrome1: bool,
}

impl Layout {
    /// The Bits Stored mask.
    fn mask(&self) -> u64 {
        (1u64 << self.stored) - 1
    }
}

fn layout(path: &Path, obj: &DefaultDicomObject) -> Result<Layout> {
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_string();
    if !NATIVE.contains(&ts.as_str()) && !DECODED.contains(&ts.as_str()) {
        use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
        let name = dicom_transfer_syntax_registry::TransferSyntaxRegistry
            .get(&ts)
            .map_or("unknown".to_string(), |t| t.name().to_string());
        return Err(bad(
            path,
            format!(
                "transfer syntax {ts} ({name}) is not supported: csfuse reads uncompressed \
                 (native), deflated and RLE Lossless DICOM; decompress it first (e.g. `gdcmconv \
                 --raw IN.dcm OUT.dcm` or `dcmdjpeg IN.dcm OUT.dcm`)"
            ),
        ));
    }
    let need = |tag: Tag, name: &str| {
        int(obj, tag).ok_or_else(|| bad(path, format!("no {name} attribute; is this an image?")))
    };
    let rows = need(tags::ROWS, "Rows (0028,0010)")?;
    let cols = need(tags::COLUMNS, "Columns (0028,0011)")?;
    let samples = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits = need(tags::BITS_ALLOCATED, "Bits Allocated (0028,0100)")?;
    let stored = int(obj, tags::BITS_STORED).unwrap_or(bits);
    let high = int(obj, tags::HIGH_BIT).unwrap_or(stored - 1);
    let frames = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    if rows <= 0 || cols <= 0 {
        return Err(bad(path, format!("image is empty ({cols}x{rows})")));
    }
    if frames != 1 {
        return Err(bad(
            path,
            format!(
                "a multi-frame DICOM ({frames} frames) holds a volume; csfuse fuses single-frame \
                 files: convert it to NIfTI (e.g. with dcm2niix) and fuse the volumes"
            ),
        ));
    }
    let grey = photometric == "MONOCHROME1" || photometric == "MONOCHROME2";
    match (samples, photometric.as_str()) {
        (1, _) if grey => {}
        (3, "RGB") => {}
        _ => {
            return Err(bad(
                path,
                format!(
                    "photometric interpretation {photometric:?} with {samples} samples per pixel \
                     is not supported (MONOCHROME1, MONOCHROME2 or RGB)"
                ),
            ))
        }
    }
    if ![8, 16, 32].contains(&bits) || stored < 1 || stored > bits || high != stored - 1 {
        return Err(bad(
            path,
            format!(
                "pixel layout not supported: Bits Allocated {bits}, Bits Stored {stored}, High \
                 Bit {high} (csfuse reads 8, 16 or 32 bits allocated, high bit = bits stored − 1)"
            ),
        ));
    }
    Ok(Layout {
        rows: rows as usize,
        cols: cols as usize,
        samples: samples as usize,
        bits: bits as usize,
        stored: stored as usize,
        signed: int(obj, tags::PIXEL_REPRESENTATION) == Some(1),
        // A codec's output is interleaved whatever the file says.
        planar: int(obj, tags::PLANAR_CONFIGURATION) == Some(1) && ts != DECODED[0],
        monochrome1: photometric == "MONOCHROME1",
    })
}

/// Height and width from the header, without reading the pixel data.
pub fn dims(path: &Path) -> Result<(usize, usize)> {
    let obj = open(path, Some(tags::PIXEL_DATA))?;
    let l = layout(path, &obj)?;
    Ok((l.rows, l.cols))
}

/// The pixel data's bytes, little endian, whatever value type the parser gave them.
fn pixel_bytes(path: &Path, obj: &DefaultDicomObject, l: &Layout) -> Result<Vec<u8>> {
    let bits = l.bits;
    let elem = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| bad(path, "no Pixel Data (7FE0,0010)"))?;
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0');
    let big_endian = ts == NATIVE[2];
    if ts == DECODED[0] && elem.value().primitive().is_some() {
        return Err(bad(
            path,
            format!(
                "transfer syntax {ts} (RLE Lossless) needs encapsulated pixel data, and this \
                 file's is native: the file is corrupt"
            ),
        ));
    }
    Ok(match elem.value().primitive() {
        Some(PrimitiveValue::U8(v)) => v.to_vec(),
        // 32-bit samples of a big endian file come as 16-bit words (OW), high word first.
        Some(PrimitiveValue::U16(v)) if big_endian && bits == 32 => v
            .chunks(2)
            .flat_map(|w| w.iter().rev().flat_map(|x| x.to_le_bytes()))
            .collect(),
        Some(PrimitiveValue::U16(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Some(PrimitiveValue::I16(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Some(PrimitiveValue::U32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Some(PrimitiveValue::I32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Some(p) => p.to_bytes().into_owned(),
        None => decode_encapsulated(path, obj, l)?,
    })
}

/// Encapsulated pixel data decoded: RLE Lossless, the one compression read so far. Native
/// samples, little endian, colour interleaved (planar configuration 0).
fn decode_encapsulated(path: &Path, obj: &DefaultDicomObject, l: &Layout) -> Result<Vec<u8>> {
    let elem = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| bad(path, "no Pixel Data (7FE0,0010)"))?;
    let fragments = elem
        .value()
        .fragments()
        .ok_or_else(|| bad(path, "the pixel data is neither native nor encapsulated"))?;
    // One frame: its fragments joined.
    let frame: Vec<u8> = fragments.iter().flatten().copied().collect();
    rle::decode(&frame, l.rows * l.cols, l.samples, l.bits / 8).map_err(|e| {
        bad(
            path,
            format!("cannot decode the RLE Lossless pixel data: {e}"),
        )
    })
}

/// The stored samples of a file as numbers (sign-extended from Bits Stored), in file order.
fn stored_samples(path: &Path, obj: &DefaultDicomObject, l: &Layout) -> Result<Vec<f64>> {
    let raw = pixel_bytes(path, obj, l)?;
    let n = l.rows * l.cols * l.samples;
    let width = l.bits / 8;
    if raw.len() < n * width {
        return Err(bad(
            path,
            format!(
                "truncated: {} bytes of pixel data, {}x{}x{} samples of {} bits need {}",
                raw.len(),
                l.cols,
                l.rows,
                l.samples,
                l.bits,
                n * width
            ),
        ));
    }
    let mask = l.mask();
    Ok(raw[..n * width]
        .chunks_exact(width)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..width].copy_from_slice(c);
            let v = u64::from_le_bytes(b) & mask;
            if l.signed && v >> (l.stored - 1) & 1 == 1 {
                v as f64 - (1u64 << l.stored) as f64
            } else {
                v as f64
            }
        })
        .collect())
}

/// The Modality LUT's linear form, (Rescale Slope, Rescale Intercept), (1, 0) when absent.
fn rescale(path: &Path, obj: &DefaultDicomObject) -> Result<(f64, f64)> {
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
    let stored = stored_samples(path, &obj, &l)?;
    let (slope, intercept) = rescale(path, &obj)?;
    let rescaled = slope != 1.0 || intercept != 0.0;
    let format = match (l.bits, l.signed, rescaled) {
        (8, false, false) => SampleFormat::U8,
        (16, false, false) => SampleFormat::U16,
        _ => SampleFormat::F32,
    };
    let px = l.rows * l.cols;
    let mut channels: Vec<Vec<f64>> = (0..l.samples)
        .map(|c| {
            (0..px)
                .map(|p| {
                    let i = if l.planar {
                        c * px + p
                    } else {
                        p * l.samples + c
                    };
                    stored[i] * slope + intercept
                })
                .collect()
        })
        .collect();
    if l.monochrome1 {
        let g = &mut channels[0];
        let pivot = match format {
            SampleFormat::F32 => {
                let (lo, hi) = g
                    .iter()
                    .fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(*v), b.max(*v)));
                lo + hi
            }
            _ => l.mask() as f64,
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
