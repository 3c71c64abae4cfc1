//! Reading and writing 2-D images: PNG, TIFF, BMP, JPEG; 8- and 16-bit integer, 32-bit float TIFF;
//! grayscale or RGB. A [`Raster`] holds the samples in the file's own units (0..255, 0..65535, or the
//! float values); [`crate::formats::intensity`] maps them to the engine's [0, 1] and back.
//! Every output goes through [`crate::formats::output`]: a temporary file in the same folder and a rename, so a
//! reader never sees a half-written file and a failed run leaves nothing behind.

use crate::error::{Error, Result};
pub use crate::formats::output::write_atomic;
use crate::plane::Plane;
use image::{DynamicImage, ImageFormat};
use std::path::Path;

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
    gray_of(read_image(path)?, path)
}

/// [`read_gray`]'s rule on a decoded raster (`path` names it in messages).
pub fn gray_of(r: Raster, path: &Path) -> Result<GrayImage> {
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
/// channel is accepted only when fully opaque; float samples must be finite; a multi-page TIFF is
/// refused (a stack belongs in a NIfTI volume).
pub fn read_image(path: &Path) -> Result<Raster> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(path, &bytes)
}

/// Width and height from an image file's header, without decoding its pixels.
pub fn image_dims(path: &Path) -> Result<(usize, usize)> {
    if super::dicom::is_dicom_file(path) {
        return super::dicom::dims(path);
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let Some(format) = reader.format() else {
        return Err(unrecognised(path));
    };
    let (w, h) = match reader.into_dimensions() {
        Ok(d) => d,
        // The image crate does not read grayscale float TIFF; the tiff crate does.
        Err(e) if format == ImageFormat::Tiff => std::fs::File::open(path)
            .ok()
            .and_then(|f| tiff::decoder::Decoder::new(std::io::BufReader::new(f)).ok())
            .and_then(|mut d| d.dimensions().ok())
            .ok_or_else(|| decode_err(path, e))?,
        Err(e) => return Err(decode_err(path, e)),
    };
    Ok((h as usize, w as usize))
}

fn unrecognised(path: &Path) -> Error {
    decode_err(
        path,
        "unrecognised file format (expected PNG, TIFF, BMP, JPEG or DICOM)",
    )
}

/// Decode image bytes (`path` names them in messages). Sizes come from the file, so the image
/// crate's allocation limits stay on, and every size computed here is checked.
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<Raster> {
    let raster = if super::dicom::is_dicom(bytes) {
        super::dicom::decode(path, bytes)?
    } else {
        decode_picture(path, bytes)?
    };
    check_raster(path, raster)
}

/// PNG, TIFF, BMP or JPEG bytes through the image crate (grey float TIFF through the tiff crate).
fn decode_picture(path: &Path, bytes: &[u8]) -> Result<Raster> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    let format = reader.format().ok_or_else(|| unrecognised(path))?;
    if format == ImageFormat::Tiff {
        check_single_page(path, bytes)?;
    }
    let raster = match reader.decode() {
        Ok(img) => from_dynamic(path, img)?,
        // The image crate does not decode grayscale float TIFF; the tiff crate does.
        Err(e) if format == ImageFormat::Tiff => {
            read_float_tiff(path, bytes).ok_or(decode_err(path, e))??
        }
        Err(e) => return Err(decode_err(path, e)),
    };
    Ok(raster)
}

/// What every decoded image must be: non-empty, every sample finite.
pub fn check_raster(path: &Path, raster: Raster) -> Result<Raster> {
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

/// Refuse a TIFF with more than one page instead of silently fusing its first.
fn check_single_page(path: &Path, bytes: &[u8]) -> Result<()> {
    let Ok(mut dec) = tiff::decoder::Decoder::new(std::io::Cursor::new(bytes)) else {
        return Ok(()); // the decoder proper reports what is wrong
    };
    let mut pages = 1usize;
    while dec.more_images() && pages <= 4096 {
        if dec.next_image().is_err() {
            break;
        }
        pages += 1;
    }
    if pages > 1 {
        return Err(bad_image(
            path,
            format!(
                "TIFF has {}{pages} pages; csfuse fuses single images: save one page per file, or \
                 convert the stack to a NIfTI volume",
                if pages > 4096 { "over " } else { "" }
            ),
        ));
    }
    Ok(())
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

/// De-interleave `n` (1 or 3) channels; three equal channels become one gray channel, as every
/// reader of csfuse takes them.
pub fn split_channels(
    h: usize,
    w: usize,
    samples: &[f64],
    n: usize,
    format: SampleFormat,
) -> Raster {
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
fn read_float_tiff(path: &Path, bytes: &[u8]) -> Option<Result<Raster>> {
    use tiff::decoder::{Decoder, DecodingResult};
    let mut dec = Decoder::new(std::io::Cursor::new(bytes)).ok()?;
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
    if Some(samples.len())
        != (w as usize)
            .checked_mul(h as usize)
            .and_then(|p| p.checked_mul(n))
    {
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
    write_atomic(path, &encode_image(path, r)?)
}

/// A sample as float32: NaN is an error (it would be written as data), and values beyond float32's
/// range are clamped to its largest finite value (counted in `clamped`) instead of becoming Inf.
pub fn to_f32(v: f64, clamped: &mut usize) -> Result<f32> {
    if v.is_nan() {
        return Err(Error::Numerical("a fused sample is NaN".into()));
    }
    let m = f32::MAX as f64;
    if v.abs() > m {
        *clamped += 1;
    }
    Ok(v.clamp(-m, m) as f32)
}

/// Warn once per output about samples [`to_f32`] clamped.
pub fn warn_clamped(path: &Path, clamped: usize) {
    if clamped > 0 {
        log::warn!(
            "{}: {clamped} fused sample(s) lie beyond float32's range and were clamped to +-{:e}",
            path.display(),
            f32::MAX
        );
    }
}

/// The bytes of `r` encoded as the format `path` names.
pub fn encode_image(path: &Path, r: &Raster) -> Result<Vec<u8>> {
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
        let mut clamped = 0;
        let data = interleaved
            .iter()
            .map(|v| to_f32(*v, &mut clamped))
            .collect::<Result<Vec<f32>>>()?;
        warn_clamped(path, clamped);
        let mut enc = TiffEncoder::new(&mut bytes).map_err(|e| enc_err(&e))?;
        let res = if n == 1 {
            enc.write_image::<colortype::Gray32Float>(w, h, &data)
        } else {
            enc.write_image::<colortype::RGB32Float>(w, h, &data)
        };
        res.map_err(|e| enc_err(&e))?;
    } else {
        if interleaved.iter().any(|v| v.is_nan()) {
            return Err(Error::Numerical(format!(
                "{}: a fused sample is NaN",
                path.display()
            )));
        }
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
    Ok(bytes.into_inner())
}

/// Refuse an output that is one of the inputs or that exists (unless `force`), and one whose folder
/// is missing or read-only. See [`crate::formats::output::check_outputs`] for several outputs at once.
pub fn check_output(out: &Path, inputs: &[&Path], force: bool) -> Result<()> {
    crate::formats::output::check_outputs(&[out], inputs, force)
}
