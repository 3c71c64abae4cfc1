//! Reading and writing 2-D images: PNG, TIFF, BMP, JPEG; 8- and 16-bit integer, 32-bit float TIFF;
//! grayscale or RGB. A [`Raster`] holds the samples in the file's own units (0..255, 0..65535, or the
//! float values); [`crate::intensity`] maps them to the engine's [0, 1] and back.
//! Every output goes through a temporary file in the same folder and a rename, so a reader never sees
//! a half-written file and a failed run leaves nothing behind.

use crate::error::{Error, Result};
use crate::plane::Plane;
use image::{DynamicImage, ImageFormat};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How samples are stored: the input's kind, and the `--out-depth` choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, clap::ValueEnum)]
pub enum SampleFormat {
    /// 8-bit unsigned integer.
    #[value(name = "8")]
    U8,
    /// 16-bit unsigned integer.
    #[value(name = "16")]
    U16,
    /// 32-bit IEEE float (TIFF only).
    #[value(name = "f32")]
    F32,
}

/// Kept under its old name: the integer depths of grayscale sources.
pub type BitDepth = SampleFormat;

impl SampleFormat {
    /// Largest integer value; 1 for float (whose nominal range is [0, 1]).
    pub fn max_value(self) -> f64 {
        match self {
            SampleFormat::U8 => 255.0,
            SampleFormat::U16 => 65535.0,
            SampleFormat::F32 => 1.0,
        }
    }

    pub fn is_integer(self) -> bool {
        self != SampleFormat::F32
    }
}

/// An image as stored: `channels` holds one (gray) or three (R, G, B) row-major planes of samples in
/// the file's units.
#[derive(Clone, Debug, PartialEq)]
pub struct Raster {
    pub h: usize,
    pub w: usize,
    pub channels: Vec<Vec<f64>>,
    pub format: SampleFormat,
}

impl Raster {
    pub fn is_colour(&self) -> bool {
        self.channels.len() == 3
    }

    /// Every sample of every channel.
    pub fn samples(&self) -> impl Iterator<Item = f64> + '_ {
        self.channels.iter().flatten().copied()
    }
}

/// A grayscale source scaled to [0, 1] and the depth it was stored in.
#[derive(Clone, Debug)]
pub struct GrayImage {
    pub plane: Plane,
    pub depth: SampleFormat,
}

fn decode_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Decode {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

fn bad_image(path: &Path, msg: impl Into<String>) -> Error {
    Error::BadImage {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// Read a grayscale image scaled to [0, 1]: integers by their full scale (MATLAB `im2double`), float
/// TIFF as stored. Colour is refused unless all three channels are equal.
pub fn read_gray(path: &Path) -> Result<GrayImage> {
    let r = read_image(path)?;
    if r.is_colour() {
        return Err(bad_image(
            path,
            "colour image; this command takes grayscale sources (`csfuse fuse` fuses colour)",
        ));
    }
    let scale = r.format.max_value();
    let data = r.channels[0].iter().map(|v| v / scale).collect();
    Ok(GrayImage {
        plane: Plane::from_vec(r.h, r.w, data),
        depth: r.format,
    })
}

/// Read an image as stored. Grayscale saved as RGB (three equal channels) is read as gray; an alpha
/// channel is accepted only when fully opaque; float samples must be finite.
pub fn read_image(path: &Path) -> Result<Raster> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let format = reader.format().ok_or_else(|| {
        decode_err(
            path,
            "unrecognised file format (expected PNG, TIFF, BMP or JPEG)",
        )
    })?;
    let raster = match reader.decode() {
        Ok(img) => from_dynamic(path, img)?,
        // The image crate does not decode grayscale float TIFF; the tiff crate does.
        Err(e) if format == ImageFormat::Tiff => {
            read_float_tiff(path).ok_or(decode_err(path, e))??
        }
        Err(e) => return Err(decode_err(path, e)),
    };
    if raster.h == 0 || raster.w == 0 {
        return Err(bad_image(
            path,
            format!("image is empty ({}x{})", raster.w, raster.h),
        ));
    }
    if let Some(i) = raster.samples().position(|v| !v.is_finite()) {
        let i = i % (raster.h * raster.w);
        return Err(bad_image(
            path,
            format!(
                "non-finite sample (NaN or Inf) at x={}, y={}",
                i % raster.w,
                i / raster.w
            ),
        ));
    }
    Ok(raster)
}

fn from_dynamic(path: &Path, img: DynamicImage) -> Result<Raster> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let alpha_msg = "image has a transparent alpha channel; save it without transparency";
    let (samples, n, format): (Vec<f64>, usize, SampleFormat) = match img {
        DynamicImage::ImageLuma8(b) => (to_f64(b.as_raw()), 1, SampleFormat::U8),
        DynamicImage::ImageLuma16(b) => (to_f64(b.as_raw()), 1, SampleFormat::U16),
        DynamicImage::ImageRgb8(b) => (to_f64(b.as_raw()), 3, SampleFormat::U8),
        DynamicImage::ImageRgb16(b) => (to_f64(b.as_raw()), 3, SampleFormat::U16),
        DynamicImage::ImageRgb32F(b) => (to_f64(b.as_raw()), 3, SampleFormat::F32),
        DynamicImage::ImageLumaA8(b) => (opaque(b.as_raw(), 2, 255.0, path, alpha_msg)?, 1, SampleFormat::U8),
        DynamicImage::ImageLumaA16(b) => (opaque(b.as_raw(), 2, 65535.0, path, alpha_msg)?, 1, SampleFormat::U16),
        DynamicImage::ImageRgba8(b) => (opaque(b.as_raw(), 4, 255.0, path, alpha_msg)?, 3, SampleFormat::U8),
        DynamicImage::ImageRgba16(b) => (opaque(b.as_raw(), 4, 65535.0, path, alpha_msg)?, 3, SampleFormat::U16),
        DynamicImage::ImageRgba32F(b) => (opaque(b.as_raw(), 4, 1.0, path, alpha_msg)?, 3, SampleFormat::F32),
        other => {
            return Err(bad_image(
                path,
                format!(
                    "pixel format {:?} is not supported (need 8/16-bit gray or RGB, or 32-bit float TIFF)",
                    other.color()
                ),
            ))
        }
    };
    Ok(split_channels(h, w, &samples, n, format))
}

fn to_f64<S: Copy + Into<f64>>(v: &[S]) -> Vec<f64> {
    v.iter().map(|s| (*s).into()).collect()
}

/// Drop a fully opaque alpha channel (the last of `n` interleaved ones); refuse a transparent one.
fn opaque<S: Copy + Into<f64>>(
    v: &[S],
    n: usize,
    max: f64,
    path: &Path,
    msg: &str,
) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(v.len() / n * (n - 1));
    for px in v.chunks_exact(n) {
        if px[n - 1].into() != max {
            return Err(bad_image(path, msg));
        }
        out.extend(px[..n - 1].iter().map(|s| (*s).into()));
    }
    Ok(out)
}

/// De-interleave `n` channels; three equal channels become one gray channel.
fn split_channels(h: usize, w: usize, samples: &[f64], n: usize, format: SampleFormat) -> Raster {
    let gray = n == 1
        || samples
            .chunks_exact(3)
            .all(|p| p[0] == p[1] && p[1] == p[2]);
    let channels = if gray {
        vec![samples.iter().step_by(n).copied().collect()]
    } else {
        (0..3)
            .map(|c| samples.iter().skip(c).step_by(3).copied().collect())
            .collect()
    };
    Raster {
        h,
        w,
        channels,
        format,
    }
}

/// Grayscale or RGB float TIFF through the tiff crate; `None` when it is not one.
fn read_float_tiff(path: &Path) -> Option<Result<Raster>> {
    use tiff::decoder::{Decoder, DecodingResult};
    let file = std::fs::File::open(path).ok()?;
    let mut dec = Decoder::new(std::io::BufReader::new(file)).ok()?;
    let n = match dec.colortype().ok()? {
        tiff::ColorType::Gray(32 | 64) => 1,
        tiff::ColorType::RGB(32 | 64) => 3,
        _ => return None,
    };
    let (w, h) = dec.dimensions().ok()?;
    let samples: Vec<f64> = match dec.read_image() {
        Ok(DecodingResult::F32(v)) => to_f64(&v),
        Ok(DecodingResult::F64(v)) => v,
        Ok(_) => return None,
        Err(e) => return Some(Err(decode_err(path, e))),
    };
    if samples.len() != w as usize * h as usize * n {
        return Some(Err(decode_err(
            path,
            "float TIFF has an unexpected sample count",
        )));
    }
    Some(Ok(split_channels(
        h as usize,
        w as usize,
        &samples,
        n,
        SampleFormat::F32,
    )))
}

/// The image format an output path names by its extension, checked before any work is done.
pub fn output_format(path: &Path) -> Result<ImageFormat> {
    let fmt = ImageFormat::from_path(path).map_err(|_| Error::BadOutput {
        path: path.to_path_buf(),
        msg: "unknown output extension (use .png, .tif/.tiff, .bmp, .jpg, or .nii/.nii.gz for volumes)"
            .into(),
    })?;
    match fmt {
        ImageFormat::Png | ImageFormat::Tiff | ImageFormat::Bmp | ImageFormat::Jpeg => Ok(fmt),
        f => Err(Error::BadOutput {
            path: path.to_path_buf(),
            msg: format!("output format {f:?} is not supported (use PNG, TIFF, BMP or JPEG)"),
        }),
    }
}

/// Check that `path`'s format can hold `want`: PNG 8/16, TIFF 8/16/f32, BMP and JPEG 8 only.
pub fn check_output_depth(path: &Path, want: SampleFormat) -> Result<()> {
    let fmt = output_format(path)?;
    let ok = match fmt {
        ImageFormat::Png => want != SampleFormat::F32,
        ImageFormat::Tiff => true,
        _ => want == SampleFormat::U8,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::BadOutput {
            path: path.to_path_buf(),
            msg: format!(
                "{fmt:?} cannot hold {want:?} samples (PNG: 8/16-bit, TIFF: 8/16-bit and f32, \
                 BMP/JPEG: 8-bit)"
            ),
        })
    }
}

/// Depth actually written when none was asked for: BMP and JPEG hold 8 bits, only TIFF holds float.
pub fn writable_depth(fmt: ImageFormat, want: SampleFormat) -> SampleFormat {
    match (fmt, want) {
        (ImageFormat::Tiff, w) => w,
        (ImageFormat::Png, SampleFormat::F32) => SampleFormat::U16,
        (ImageFormat::Png, w) => w,
        _ => SampleFormat::U8,
    }
}

/// Quantise [0, 1] values: round half away from zero (as MATLAB's integer conversion) and clamp.
pub fn quantize(v: f64, depth: SampleFormat) -> f64 {
    let m = depth.max_value();
    (v * m).round().clamp(0.0, m)
}

/// Write [0, 1] gray values at the depth `path`'s format can hold (integers rounded and clamped).
pub fn write_gray(path: &Path, plane: &Plane, depth: SampleFormat) -> Result<SampleFormat> {
    let depth = writable_depth(output_format(path)?, depth);
    let m = depth.max_value();
    let raster = Raster {
        h: plane.h,
        w: plane.w,
        channels: vec![plane.data.iter().map(|v| v * m).collect()],
        format: depth,
    };
    write_image(path, &raster)?;
    Ok(depth)
}

/// Encode a raster (samples in its format's units; integers are rounded and clamped) as the format
/// `path` names and write it atomically.
pub fn write_image(path: &Path, r: &Raster) -> Result<()> {
    let fmt = output_format(path)?;
    check_output_depth(path, r.format)?;
    let n = r.channels.len();
    let interleaved: Vec<f64> = (0..r.h * r.w)
        .flat_map(|i| r.channels.iter().map(move |c| c[i]))
        .collect();
    let (w, h) = (r.w as u32, r.h as u32);
    let enc_err = |e: &dyn std::fmt::Display| Error::BadOutput {
        path: path.to_path_buf(),
        msg: format!("cannot encode: {e}"),
    };
    let mut bytes = std::io::Cursor::new(Vec::new());
    if r.format == SampleFormat::F32 {
        use tiff::encoder::{colortype, TiffEncoder};
        let data: Vec<f32> = interleaved.iter().map(|v| *v as f32).collect();
        let mut enc = TiffEncoder::new(&mut bytes).map_err(|e| enc_err(&e))?;
        let res = if n == 1 {
            enc.write_image::<colortype::Gray32Float>(w, h, &data)
        } else {
            enc.write_image::<colortype::RGB32Float>(w, h, &data)
        };
        res.map_err(|e| enc_err(&e))?;
    } else {
        let m = r.format.max_value();
        let q = |v: &f64| v.round().clamp(0.0, m);
        let img = match (r.format, n) {
            (SampleFormat::U8, 1) => DynamicImage::ImageLuma8(
                image::ImageBuffer::from_raw(
                    w,
                    h,
                    interleaved.iter().map(|v| q(v) as u8).collect(),
                )
                .expect("buffer size"),
            ),
            (SampleFormat::U8, _) => DynamicImage::ImageRgb8(
                image::ImageBuffer::from_raw(
                    w,
                    h,
                    interleaved.iter().map(|v| q(v) as u8).collect(),
                )
                .expect("buffer size"),
            ),
            (_, 1) => DynamicImage::ImageLuma16(
                image::ImageBuffer::from_raw(
                    w,
                    h,
                    interleaved.iter().map(|v| q(v) as u16).collect(),
                )
                .expect("buffer size"),
            ),
            _ => DynamicImage::ImageRgb16(
                image::ImageBuffer::from_raw(
                    w,
                    h,
                    interleaved.iter().map(|v| q(v) as u16).collect(),
                )
                .expect("buffer size"),
            ),
        };
        img.write_to(&mut bytes, fmt).map_err(|e| enc_err(&e))?;
    }
    write_atomic(path, &bytes.into_inner())
}

/// The temporary sibling (file or folder) an atomic write of `path` goes through; `tag` is appended.
pub fn temp_sibling(path: &Path, tag: &str) -> Result<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::BadOutput {
        path: path.to_path_buf(),
        msg: "output path has no file name".into(),
    })?;
    Ok(dir.join(format!(
        ".{}{TEMP_MARK}{}{tag}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Marks temporary files, so a re-run can find those a killed run left behind.
pub const TEMP_MARK: &str = ".csfuse-tmp-";

/// fsync `tmp` and rename it onto `path`; remove it on failure.
pub fn commit_temp(tmp: &Path, path: &Path) -> Result<()> {
    let result = std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .and_then(|_| std::fs::rename(tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Write `bytes` to `path` via a temporary sibling file, fsync and rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_sibling(path, "")?;
    let result = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    commit_temp(&tmp, path)
}

/// Remove temporary files a killed run left for `path` (any process id).
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}{TEMP_MARK}", name.to_string_lossy());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                log::info!("removing {} left by an interrupted run", e.path().display());
                let p = e.path();
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
    }
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
