//! Reading grayscale sources and writing results: PNG, TIFF, BMP, JPEG; 8- and 16-bit.
//! Values are scaled to [0, 1] on read (MATLAB `im2double`) and rounded + clamped on write.
//! Every output goes through a temporary file in the same folder and a rename, so a reader never sees
//! a half-written file and a failed run leaves nothing behind.

use crate::error::{Error, Result};
use crate::plane::Plane;
use image::{DynamicImage, ImageFormat};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bit depth of an integer image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum BitDepth {
    U8,
    U16,
}

impl BitDepth {
    pub fn max_value(self) -> f64 {
        match self {
            BitDepth::U8 => 255.0,
            BitDepth::U16 => 65535.0,
        }
    }
}

/// A grayscale source scaled to [0, 1] and the depth it was stored in.
#[derive(Clone, Debug)]
pub struct GrayImage {
    pub plane: Plane,
    pub depth: BitDepth,
}

fn decode_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Decode {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Read a grayscale image. Colour images are refused unless all three channels are equal
/// (grayscale saved as RGB, common in exports), which is read as gray.
pub fn read_gray(path: &Path) -> Result<GrayImage> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        return Err(decode_err(
            path,
            "unrecognised file format (expected PNG, TIFF, BMP or JPEG)",
        ));
    }
    let img = reader.decode().map_err(|e| decode_err(path, e))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return Err(Error::BadImage {
            path: path.to_path_buf(),
            msg: format!("image is empty ({w}x{h})"),
        });
    }
    let bad = |msg: String| Error::BadImage {
        path: path.to_path_buf(),
        msg,
    };
    let colour_msg = |kind: &str| {
        format!(
            "{kind} colour image; csfuse fuses grayscale sources only for now \
             (convert it to grayscale, e.g. `convert in.png -colorspace Gray out.png`)"
        )
    };
    let (data, depth): (Vec<f64>, BitDepth) = match &img {
        DynamicImage::ImageLuma8(b) => {
            (b.iter().map(|v| *v as f64 / 255.0).collect(), BitDepth::U8)
        }
        DynamicImage::ImageLuma16(b) => (
            b.iter().map(|v| *v as f64 / 65535.0).collect(),
            BitDepth::U16,
        ),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => {
            return Err(bad(
                "grayscale image with an alpha channel; save it without transparency".into(),
            ))
        }
        DynamicImage::ImageRgb8(b) => (
            equal_channels(b.as_raw(), 255.0).ok_or_else(|| bad(colour_msg("RGB")))?,
            BitDepth::U8,
        ),
        DynamicImage::ImageRgb16(b) => (
            equal_channels(b.as_raw(), 65535.0).ok_or_else(|| bad(colour_msg("RGB")))?,
            BitDepth::U16,
        ),
        DynamicImage::ImageRgba8(_) | DynamicImage::ImageRgba16(_) => {
            return Err(bad(colour_msg("RGBA")))
        }
        other => {
            return Err(bad(format!(
                "pixel format {:?} is not supported (need 8- or 16-bit grayscale)",
                other.color()
            )))
        }
    };
    Ok(GrayImage {
        plane: Plane::from_vec(h, w, data),
        depth,
    })
}

/// Gray values of an RGB image whose three channels are equal everywhere (grayscale saved as RGB),
/// scaled by `max`; `None` for a true colour image.
fn equal_channels<S: Copy + PartialEq + Into<f64>>(rgb: &[S], max: f64) -> Option<Vec<f64>> {
    rgb.chunks_exact(3)
        .map(|p| (p[0] == p[1] && p[1] == p[2]).then(|| p[0].into() / max))
        .collect()
}

/// The image format an output path names by its extension, checked before any work is done.
pub fn output_format(path: &Path) -> Result<ImageFormat> {
    let fmt = ImageFormat::from_path(path).map_err(|_| Error::BadOutput {
        path: path.to_path_buf(),
        msg: "unknown output extension (use .png, .tif/.tiff, .bmp or .jpg)".into(),
    })?;
    match fmt {
        ImageFormat::Png | ImageFormat::Tiff | ImageFormat::Bmp | ImageFormat::Jpeg => Ok(fmt),
        f => Err(Error::BadOutput {
            path: path.to_path_buf(),
            msg: format!("output format {f:?} is not supported (use PNG, TIFF, BMP or JPEG)"),
        }),
    }
}

/// Depth actually written: BMP and JPEG hold 8 bits only.
pub fn writable_depth(fmt: ImageFormat, want: BitDepth) -> BitDepth {
    match fmt {
        ImageFormat::Png | ImageFormat::Tiff => want,
        _ => BitDepth::U8,
    }
}

/// Quantise [0, 1] values: round half away from zero (as MATLAB's integer conversion) and clamp.
pub fn quantize(v: f64, depth: BitDepth) -> f64 {
    let m = depth.max_value();
    (v * m).round().clamp(0.0, m)
}

/// Encode a plane as the format `path` names and write it atomically.
pub fn write_gray(path: &Path, plane: &Plane, depth: BitDepth) -> Result<BitDepth> {
    let fmt = output_format(path)?;
    let depth = writable_depth(fmt, depth);
    let (w, h) = (plane.w as u32, plane.h as u32);
    let img = match depth {
        BitDepth::U8 => DynamicImage::ImageLuma8(
            image::GrayImage::from_raw(
                w,
                h,
                plane
                    .data
                    .iter()
                    .map(|v| quantize(*v, depth) as u8)
                    .collect(),
            )
            .expect("buffer size"),
        ),
        BitDepth::U16 => DynamicImage::ImageLuma16(
            image::ImageBuffer::from_raw(
                w,
                h,
                plane
                    .data
                    .iter()
                    .map(|v| quantize(*v, depth) as u16)
                    .collect(),
            )
            .expect("buffer size"),
        ),
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, fmt)
        .map_err(|e| Error::BadOutput {
            path: path.to_path_buf(),
            msg: format!("cannot encode: {e}"),
        })?;
    write_atomic(path, &bytes.into_inner())?;
    Ok(depth)
}

/// Write `bytes` to `path` via a temporary sibling file, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::BadOutput {
        path: path.to_path_buf(),
        msg: "output path has no file name".into(),
    })?;
    let tmp = dir.join(format!(
        ".{}.csfuse-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Refuse an output that is one of the inputs (by canonical path) or that exists, unless `force`.
pub fn check_output(out: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    let canon_out = canonical_target(out);
    for inp in inputs {
        if let (Some(o), Ok(i)) = (&canon_out, inp.canonicalize()) {
            if *o == i {
                return Err(Error::BadOutput {
                    path: out.to_path_buf(),
                    msg: format!(
                        "output is the same file as input {}; refusing to overwrite it",
                        inp.display()
                    ),
                });
            }
        }
    }
    if out.is_dir() {
        return Err(Error::BadOutput {
            path: out.to_path_buf(),
            msg: "output path is a directory".into(),
        });
    }
    if out.exists() && !force {
        return Err(Error::BadOutput {
            path: out.to_path_buf(),
            msg: "file exists; pass --force to replace it".into(),
        });
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            return Err(Error::BadOutput {
                path: out.to_path_buf(),
                msg: format!("folder {} does not exist", dir.display()),
            });
        }
    }
    Ok(())
}

/// Canonical form of a path that may not exist yet (canonical parent + file name).
fn canonical_target(p: &Path) -> Option<PathBuf> {
    if let Ok(c) = p.canonicalize() {
        return Some(c);
    }
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
        _ => std::env::current_dir().ok()?,
    };
    Some(parent.join(p.file_name()?))
}
