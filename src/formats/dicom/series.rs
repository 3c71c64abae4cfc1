//! A folder holding one DICOM series, or a multi-frame file, read as a volume laid out the way
//! dcm2niix writes it, so that a series and its dcm2niix conversion are the same array on the
//! same grid. The frames of a multi-frame file are slices placed by their functional groups (or a
//! Grid Frame Offset Vector), and follow the same rules:
//!
//! - **Slices** are sorted by Image Position (Patient) projected on the slice normal (row × column
//!   of Image Orientation (Patient)), nearest first; the slice spacing is the mean gap between
//!   those projections, not Slice Thickness (which is the slab, not the step).
//! - **Voxel order**: x along a row (DICOM columns), y up the rows (the first DICOM row is the last
//!   y), z along the normal. The affine maps them to RAS+ millimetres (DICOM's LPS with x and y
//!   negated), written as both sform and qform (scanner space).
//! - **Values**: Rescale Slope and Intercept applied. When every slice has the same pair the
//!   header keeps the stored datatype with scl_slope/scl_inter (as dcm2niix does); otherwise the
//!   volume is float32. MONOCHROME1 slices have their stored bits inverted before rescaling, the
//!   same for every slice.
//! - **Refused**, naming the files: two series in the folder, slices of different size, layout,
//!   spacing or orientation, two slices at one position (echoes, phases, time points), irregular
//!   spacing, gantry tilt (positions that move off the normal), missing orientation or position,
//!   colour slices, and anything a single file is refused for (an unsupported transfer syntax, a
//!   file cut short). Files that are not DICOM, hidden files, DICOMDIR and subfolders are skipped.

use super::{bad, float, floats, frame_samples, layout, rescale, text, Layout};
use crate::error::{Error, Result};
use crate::formats::nifti::{self, Volume, VolumeInfo};
use ::nifti::{NiftiHeader, NiftiType};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject, Tag};
use std::path::{Path, PathBuf};

/// Media Storage SOP Class of a DICOMDIR (an index of files, not an image).
const DICOMDIR_CLASS: &str = "1.2.840.10008.1.3.10";

/// How far a gap between slices may stray from the mean gap, and a position from the slice
/// normal, as a fraction of the mean gap: DICOM stores positions as decimal strings, so real
/// series scatter by a few micrometres; a tilted gantry moves them by a tenth of the gap or more.
const GAP_TOLERANCE: f64 = 0.01;

/// What one file says of itself before its pixels are read.
struct Slice {
    path: PathBuf,
    /// The frame of a multi-frame file (0 for a single-frame file).
    frame: usize,
    series: String,
    description: String,
    layout: Layout,
    /// Row and column direction cosines (LPS), normalised.
    row: [f64; 3],
    col: [f64; 3],
    position: [f64; 3],
    /// Pixel Spacing: between rows, between columns (mm).
    spacing: [f64; 2],
    thickness: Option<f64>,
    rescale: (f64, f64),
}

/// A series, checked and sorted, with the grid it is read onto.
pub struct Series {
    slices: Vec<Slice>,
    /// x, y, z sizes.
    pub dims: [usize; 3],
    /// Voxel to RAS+ world, mm.
    pub affine: [[f64; 4]; 3],
    pub datatype: NiftiType,
    /// The one (slope, intercept) of every slice; `None` when they differ (float32 volume).
    pub rescale: Option<(f64, f64)>,
}

impl Slice {
    /// The file's name, and the frame's number in a multi-frame file.
    fn label(&self) -> String {
        if self.layout.frames > 1 {
            format!("{} frame {}", name(&self.path), self.frame + 1)
        } else {
            name(&self.path)
        }
    }
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn norm(a: [f64; 3]) -> f64 {
    dot(a, a).sqrt()
}

fn name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
}

/// An attribute of frame `k` of a multi-frame file, as the enhanced IODs place it: in the
/// frame's item of the Per-Frame Functional Groups, else in the Shared Functional Groups, inside
/// the macro sequence `macro_tag`; else at the top level (single-frame and legacy files).
fn frame_attr<T>(
    obj: &InMemDicomObject,
    k: usize,
    macro_tag: Tag,
    get: impl Fn(&InMemDicomObject) -> Option<T>,
) -> Option<T> {
    let item = |groups: Tag, i: usize| -> Option<T> {
        let group = obj.element_opt(groups).ok().flatten()?.items()?.get(i)?;
        let m = group
            .element_opt(macro_tag)
            .ok()
            .flatten()?
            .items()?
            .first()?;
        get(m)
    };
    item(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, k)
        .or_else(|| item(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, 0))
        .or_else(|| get(obj))
}

/// The file's header (everything before the pixel data) as one slice per frame, or nothing when
/// it is not an image of a series (a DICOMDIR).
fn read_header(path: &Path) -> Result<Vec<Slice>> {
    let obj = super::open(path, Some(tags::PIXEL_DATA))?;
    if obj
        .meta()
        .media_storage_sop_class_uid()
        .trim_end_matches('\0')
        == DICOMDIR_CLASS
    {
        return Ok(Vec::new());
    }
    let l = layout(path, &obj)?;
    if l.samples != 1 && l.frames > 1 {
        return Err(bad(
            path,
            format!(
                "a colour multi-frame file ({} frames): volumes are fused as grey values, and \
                 colour DICOM is read as single-frame 2-D images",
                l.frames
            ),
        ));
    }
    if l.samples != 1 {
        return Err(bad(
            path,
            "a colour (RGB) slice: volumes are fused as grey values; fuse colour images one \
             file at a time",
        ));
    }
    let frames = l.frames;
    // Legacy multi-frame files (RT Dose, NM) step from one position by Grid Frame Offset Vector.
    let offsets = floats(&obj, tags::GRID_FRAME_OFFSET_VECTOR).filter(|v| v.len() == frames);
    let mut slices = Vec::with_capacity(frames);
    for k in 0..frames {
        let three = |v: &[f64]| [v[0], v[1], v[2]];
        let orientation = frame_attr(&obj, k, tags::PLANE_ORIENTATION_SEQUENCE, |o| {
            floats(o, tags::IMAGE_ORIENTATION_PATIENT).filter(|v| v.len() == 6)
        })
        .ok_or_else(|| {
            bad(
                path,
                "no usable Image Orientation (Patient) (0020,0037): the slice cannot be placed \
                 in space, so the series is not read as a volume",
            )
        })?;
        let position = frame_attr(&obj, k, tags::PLANE_POSITION_SEQUENCE, |o| {
            floats(o, tags::IMAGE_POSITION_PATIENT).filter(|v| v.len() == 3)
        })
        .ok_or_else(|| {
            bad(
                path,
                "no usable Image Position (Patient) (0020,0032): the slice cannot be placed in \
                 space, so the series is not read as a volume",
            )
        })?;
        let unit = |v: [f64; 3]| -> Result<[f64; 3]> {
            let n = norm(v);
            if (n - 1.0).abs() > 1e-2 {
                return Err(bad(
                    path,
                    format!("Image Orientation (Patient) {orientation:?} is not two unit vectors"),
                ));
            }
            Ok(v.map(|x| x / n))
        };
        let (row, col) = (
            unit(three(&orientation[..3]))?,
            unit(three(&orientation[3..]))?,
        );
        if dot(row, col).abs() > 1e-3 {
            return Err(bad(
                path,
                format!("Image Orientation (Patient) {orientation:?}: its row and column are not perpendicular"),
            ));
        }
        let mut position = three(&position);
        if let (Some(o), true) = (&offsets, frames > 1) {
            let normal = cross(row, col);
            position = [0, 1, 2].map(|i| position[i] + (o[k] - o[0]) * normal[i]);
        }
        let spacing = frame_attr(&obj, k, tags::PIXEL_MEASURES_SEQUENCE, |o| {
            floats(o, tags::PIXEL_SPACING)
                .filter(|v| v.len() == 2 && v.iter().all(|s| s.is_finite() && *s > 0.0))
        })
        .ok_or_else(|| bad(path, "no usable Pixel Spacing (0028,0030)"))?;
        let thickness = frame_attr(&obj, k, tags::PIXEL_MEASURES_SEQUENCE, |o| {
            float(o, tags::SLICE_THICKNESS).filter(|t| t.is_finite() && *t > 0.0)
        });
        let transform = |o: &InMemDicomObject| {
            let has = |t| o.element_opt(t).ok().flatten().is_some();
            (has(tags::RESCALE_SLOPE) || has(tags::RESCALE_INTERCEPT)).then(|| rescale(path, o))
        };
        let rescaled = frame_attr(
            &obj,
            k,
            tags::PIXEL_VALUE_TRANSFORMATION_SEQUENCE,
            transform,
        )
        .transpose()?
        .unwrap_or((1.0, 0.0));
        slices.push(Slice {
            path: path.to_path_buf(),
            frame: k,
            series: text(&obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
            description: [
                text(&obj, tags::SERIES_NUMBER).map(|n| format!("#{n}")),
                text(&obj, tags::MODALITY),
                text(&obj, tags::SERIES_DESCRIPTION),
            ]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
            layout: l.clone(),
            row,
            col,
            position,
            spacing: [spacing[0], spacing[1]],
            thickness,
            rescale: rescaled,
        });
    }
    Ok(slices)
}

/// The DICOM files directly in `dir`, by name; hidden files and other files skipped.
fn dicom_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let (mut files, mut folders, mut other) = (Vec::new(), Vec::new(), 0usize);
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            folders.push(name(&p));
        } else if super::is_dicom_file(&p) {
            files.push(p);
        } else {
            other += 1;
        }
    }
    if files.is_empty() {
        folders.sort();
        let hint = if folders.is_empty() {
            String::new()
        } else {
            format!(
                "; it has subfolders ({}): give the folder of one series",
                folders.join(", ")
            )
        };
        return Err(bad(
            dir,
            format!("no DICOM files in this folder (a volume folder holds one DICOM series){hint}"),
        ));
    }
    if other > 0 {
        log::info!(
            "{}: skipped {other} file(s) that are not DICOM",
            dir.display()
        );
    }
    files.sort();
    Ok(files)
}

/// Read the headers of the series in `dir`, check them against each other, and sort the slices.
pub fn scan(dir: &Path) -> Result<Series> {
    scan_files(dir, dicom_files(dir)?)
}

/// A multi-frame file read as a volume, its frames sorted and checked as a series' slices are.
pub fn scan_file(path: &Path) -> Result<Series> {
    scan_files(path, vec![path.to_path_buf()])
}

/// Read the headers of `files` (the series `dir`), check them and sort the slices.
fn scan_files(dir: &Path, files: Vec<PathBuf>) -> Result<Series> {
    let mut slices = Vec::new();
    for p in files {
        slices.extend(read_header(&p)?);
    }
    if slices.is_empty() {
        return Err(bad(dir, "no DICOM image files in this folder"));
    }
    if slices.len() > u16::MAX as usize {
        return Err(bad(
            dir,
            format!(
                "{} slices: a NIfTI volume holds at most 65535",
                slices.len()
            ),
        ));
    }
    one_series(dir, &slices)?;
    let first = &slices[0];
    for s in &slices[1..] {
        let differ = |what: &str| {
            bad(
                dir,
                format!(
                    "{} and {} differ in {what}; a volume's slices share it",
                    first.label(),
                    s.label()
                ),
            )
        };
        let (a, b) = (&first.layout, &s.layout);
        if (a.rows, a.cols) != (b.rows, b.cols) {
            return Err(differ("size"));
        }
        if (a.bits, a.stored, a.signed, a.monochrome1())
            != (b.bits, b.stored, b.signed, b.monochrome1())
        {
            return Err(differ(
                "pixel layout (bits, sign or photometric interpretation)",
            ));
        }
        let close =
            |x: &[f64], y: &[f64], tol: f64| x.iter().zip(y).all(|(p, q)| (p - q).abs() <= tol);
        if !close(
            &first.spacing,
            &s.spacing,
            1e-4 * first.spacing[0].max(first.spacing[1]),
        ) {
            return Err(differ("Pixel Spacing"));
        }
        if !close(&first.row, &s.row, 1e-4) || !close(&first.col, &s.col, 1e-4) {
            return Err(differ(
                "Image Orientation (Patient) (a localizer or a second stack in the folder?)",
            ));
        }
    }
    let normal = cross(first.row, first.col);
    slices.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    let gap = spacing_along(dir, &slices, normal)?;
    let (l, s0) = (&slices[0].layout, &slices[0]);
    let (rows, cols) = (l.rows, l.cols);
    let [sy, sx] = s0.spacing;
    // DICOM's LPS to NIfTI's RAS: x and y negated.
    let ras = |v: [f64; 3]| [-v[0], -v[1], v[2]];
    let (c0, c1, c2) = (
        ras(s0.row).map(|v| v * sx),
        ras(s0.col).map(|v| -v * sy),
        ras(normal).map(|v| v * gap),
    );
    // Voxel (0, 0, 0) is the first column of the last row of the first slice.
    let last_row = ras((0..3)
        .map(|i| s0.position[i] + (rows - 1) as f64 * sy * s0.col[i])
        .collect::<Vec<_>>()
        .try_into()
        .expect("three coordinates"));
    let affine = [0, 1, 2].map(|i| [c0[i], c1[i], c2[i], last_row[i]]);
    let same_rescale = slices.iter().all(|s| s.rescale == s0.rescale);
    use NiftiType::*;
    let datatype = match (l.bits, l.signed, same_rescale) {
        (_, _, false) => Float32,
        (8, false, _) => Uint8,
        (8, true, _) => Int8,
        (16, false, _) => Uint16,
        (16, true, _) => Int16,
        (32, false, _) => Uint32,
        _ => Int32,
    };
    Ok(Series {
        dims: [cols, rows, slices.len()],
        affine,
        datatype,
        rescale: same_rescale.then_some(s0.rescale),
        slices,
    })
}

/// Refuse a folder that holds more than one series, naming each.
fn one_series(dir: &Path, slices: &[Slice]) -> Result<()> {
    let mut seen: Vec<(&str, &str, usize, &Path)> = Vec::new();
    for s in slices {
        match seen.iter_mut().find(|x| x.0 == s.series) {
            Some(x) => x.2 += 1,
            None => seen.push((&s.series, &s.description, 1, &s.path)),
        }
    }
    if seen.len() > 1 {
        let list: Vec<String> = seen
            .iter()
            .map(|(uid, desc, n, p)| {
                let uid = if uid.is_empty() { "(no UID)" } else { uid };
                format!("{uid} {desc} ({n} files, e.g. {})", name(p))
            })
            .collect();
        return Err(bad(
            dir,
            format!(
                "holds {} series: {}; put each series in a folder of its own",
                seen.len(),
                list.join("; ")
            ),
        ));
    }
    Ok(())
}

/// The step between sorted slices along `normal`, checked to be one regular step without shear.
fn spacing_along(dir: &Path, slices: &[Slice], normal: [f64; 3]) -> Result<f64> {
    let n = slices.len();
    if n == 1 {
        return Ok(slices[0].thickness.unwrap_or(1.0));
    }
    let d: Vec<f64> = slices.iter().map(|s| dot(s.position, normal)).collect();
    let gap = (d[n - 1] - d[0]) / (n - 1) as f64;
    let tol = GAP_TOLERANCE * gap;
    let round = |x: f64| (x * 1e4).round() / 1e4;
    let steps: Vec<f64> = (1..n).map(|k| d[k] - d[k - 1]).collect();
    for (k, &step) in steps.iter().enumerate() {
        let (a, b) = (&slices[k], &slices[k + 1]);
        if step <= tol {
            return Err(bad(
                dir,
                format!(
                    "{} and {} lie at the same position {:?}: several echoes, phases or time \
                     points are not one volume; split them into folders (e.g. with dcm2niix)",
                    a.label(),
                    b.label(),
                    b.position
                ),
            ));
        }
        let lateral = norm(sub(sub(b.position, a.position), normal.map(|v| v * step)));
        if lateral > tol {
            return Err(bad(
                dir,
                format!(
                    "the slices move off their normal by {} mm per {} mm step ({:.1}° gantry \
                     tilt or a sheared stack, from {} to {}); csfuse fuses orthogonal grids: \
                     resample it first (dcm2niix writes a tilt-corrected copy)",
                    round(lateral),
                    round(step),
                    (lateral / step).atan().to_degrees(),
                    a.label(),
                    b.label()
                ),
            ));
        }
    }
    // The step furthest from the mean names the irregularity.
    let (k, step) = steps
        .iter()
        .copied()
        .enumerate()
        .max_by(|x, y| (x.1 - gap).abs().total_cmp(&(y.1 - gap).abs()))
        .expect("two slices or more");
    if (step - gap).abs() > tol {
        let (lo, hi) = steps
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), s| (l.min(*s), h.max(*s)));
        return Err(bad(
            dir,
            format!(
                "irregular slice spacing: steps from {} to {} mm, {} mm between {} and {} (a \
                 missing slice?); csfuse fuses regular grids: resample the series first",
                round(lo),
                round(hi),
                round(step),
                slices[k].label(),
                slices[k + 1].label()
            ),
        ));
    }
    Ok(gap)
}

impl Series {
    fn voxels(&self) -> u64 {
        self.dims.iter().map(|d| *d as u64).product()
    }

    /// The NIfTI header the volume is described by (and a fused result written with).
    fn header(&self, dir: &Path, datatype: NiftiType) -> NiftiHeader {
        let (slope, inter) = self.rescale.unwrap_or((1.0, 0.0));
        nifti::scanner_header(
            self.dims,
            self.affine,
            datatype,
            (slope, inter),
            &format!("csfuse: DICOM series {}", name(dir)),
        )
    }

    /// The file of the first slice, whose patient, study and frame of reference a fused series
    /// copies.
    pub fn first_file(&self) -> &Path {
        &self.slices[0].path
    }

    /// What reading the volume takes, from the headers alone.
    pub fn info(&self, dir: &Path) -> VolumeInfo {
        let l = &self.slices[0].layout;
        VolumeInfo {
            dims: self.dims,
            ndim: 3,
            datatype: self.datatype,
            data_bytes: self.voxels() * (l.bits / 8) as u64,
            header: self.header(dir, self.datatype),
            lossy: self.lossy(),
        }
    }

    /// Read every slice's pixels into the volume.
    pub fn read(&self, dir: &Path) -> Result<Volume> {
        let [x, y, _] = self.dims;
        let mut data = vec![0f32; self.voxels() as usize];
        // The file last opened: the frames of a multi-frame file are parsed once.
        let mut open: Option<(&Path, DefaultDicomObject, Layout)> = None;
        // A JPEG 2000 codestream may hold signed samples under a header that says unsigned: the
        // volume is then float32, so that a fused result cannot clip its negative values.
        let mut datatype = self.datatype;
        for (k, s) in self.slices.iter().enumerate() {
            if open.as_ref().is_none_or(|o| o.0 != s.path) {
                let obj = super::open(&s.path, None)?;
                let l = layout(&s.path, &obj)?;
                if (l.rows, l.cols, l.bits, l.frames)
                    != (s.layout.rows, s.layout.cols, s.layout.bits, s.layout.frames)
                {
                    return Err(bad(&s.path, "changed while the series was read"));
                }
                open = Some((&s.path, obj, l));
            }
            let (_, obj, l) = open.as_ref().expect("opened above");
            let (stored, signed) = frame_samples(&s.path, obj, l, s.frame)?;
            if signed && !l.signed {
                datatype = NiftiType::Float32;
            }
            let (slope, inter) = s.rescale;
            let mask = ((1u64 << l.stored) - 1) as f64;
            let plane = &mut data[k * x * y..(k + 1) * x * y];
            for r in 0..y {
                // NIfTI's y runs up the DICOM rows.
                let dst = &mut plane[(y - 1 - r) * x..(y - r) * x];
                for (c, v) in dst.iter_mut().enumerate() {
                    let mut q = stored[r * x + c];
                    if l.monochrome1() {
                        // The stored bits inverted: mask − v unsigned, −1 − v signed.
                        q = if signed { -1.0 - q } else { mask - q };
                    }
                    *v = (q * slope + inter) as f32;
                }
            }
        }
        Ok(Volume {
            dims: self.dims,
            ndim: 3,
            data,
            header: self.header(dir, datatype),
            datatype,
        })
    }

    /// Why the voxels may differ from what was acquired (lossy compression), when they may.
    pub fn lossy(&self) -> Option<String> {
        self.slices.iter().find_map(|s| s.layout.lossy.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_product_is_right_handed() {
        assert_eq!(cross([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]), [0.0, 0.0, 1.0]);
        assert_eq!(cross([0.0, 1.0, 0.0], [0.0, 0.0, -1.0]), [-1.0, 0.0, 0.0]);
    }
}
