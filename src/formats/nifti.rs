//! NIfTI-1 volumes (.nii, .nii.gz) through the `nifti` crate: reading to f32 voxels, the voxel-to-world
//! affine, slicing along an axis, and writing a result with a reference header.

use crate::error::{Error, Result};
use crate::formats::output::OutputSet;
use crate::plane::Plane;
use crate::resample::Grid;
use nifti::writer::WriterOptions;
use nifti::{IntoNdArray, NiftiObject};
// The header and datatype of every volume csfuse reads or writes.
pub use nifti::{NiftiHeader, NiftiType};
use std::path::Path;

/// A scalar volume: voxels in NIfTI order (x fastest), physical values (scl_slope/scl_inter applied).
pub struct Volume {
    /// Size along x, y, z (1 for missing axes of a 2-D file).
    pub dims: [usize; 3],
    /// Number of dimensions in the file (2 or 3).
    pub ndim: usize,
    pub data: Vec<f32>,
    pub header: NiftiHeader,
    pub datatype: NiftiType,
}

impl Volume {
    /// Its shape and voxel-to-world affine.
    pub fn grid(&self) -> Grid {
        Grid {
            dims: self.dims,
            affine: affine(&self.header),
        }
    }

    /// This volume's samples `data` on `onto`'s grid: `onto`'s geometry (shape, affine, units)
    /// with this volume's datatype and scaling, so that a result written with it keeps the
    /// datatype rule of this input.
    pub fn on_grid_of(&self, onto: &Volume, data: Vec<f32>) -> Volume {
        let mut header = onto.header.clone();
        header.datatype = self.header.datatype;
        header.bitpix = self.header.bitpix;
        header.scl_slope = self.header.scl_slope;
        header.scl_inter = self.header.scl_inter;
        Volume {
            dims: onto.dims,
            ndim: onto.ndim,
            data,
            header,
            datatype: self.datatype,
        }
    }
}

/// Whether `path` names a NIfTI file by its extension.
pub fn is_nifti(path: &Path) -> bool {
    let name = path.to_string_lossy().to_ascii_lowercase();
    name.ends_with(".nii") || name.ends_with(".nii.gz")
}

fn bad(path: &Path, msg: impl Into<String>) -> Error {
    Error::BadImage {
        path: path.to_path_buf(),
        msg: msg.into(),
    }
}

/// What a NIfTI header promises, checked before any voxel is read.
#[derive(Clone, Debug)]
pub struct VolumeInfo {
    pub dims: [usize; 3],
    pub ndim: usize,
    pub datatype: NiftiType,
    /// Bytes of voxel data the file holds.
    pub data_bytes: u64,
    pub header: NiftiHeader,
    /// Why the voxels may differ from what was acquired (a DICOM series stored with lossy
    /// compression); `None` for NIfTI.
    pub lossy: Option<String>,
}

impl VolumeInfo {
    /// Its shape and voxel-to-world affine.
    pub fn grid(&self) -> Grid {
        Grid {
            dims: self.dims,
            affine: affine(&self.header),
        }
    }

    pub fn voxels(&self) -> u64 {
        self.dims.iter().map(|d| *d as u64).product()
    }

    /// Peak bytes reading it takes: the raw data twice (decoder and parser), the f64 array the
    /// parser converts to, and the f32 voxels kept.
    pub fn read_bytes(&self) -> u64 {
        2 * self.data_bytes + 12 * self.voxels()
    }
}

/// Largest voxel offset accepted (the header plus extensions; real files have a few KB).
const MAX_VOX_OFFSET: f32 = (64 << 20) as f32;

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Read and check the header of a NIfTI-1 file; nothing else is decoded.
pub fn read_info(path: &Path) -> Result<VolumeInfo> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = Vec::new();
    let mut r = std::io::BufReader::new(file);
    r.by_ref()
        .take(2)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(path, e))?;
    let gz = is_gzip(&head);
    let rest = std::io::Read::chain(std::io::Cursor::new(head), r);
    if gz {
        header_info(path, flate2::read::GzDecoder::new(rest), None)
    } else {
        header_info(path, rest, Some(file_len))
    }
}

fn decode_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Decode {
        path: path.to_path_buf(),
        msg: format!("not a readable NIfTI-1 file: {e}"),
    }
}

/// Parse and check a header from `src`; `file_len` is the length of an uncompressed file.
fn header_info(path: &Path, src: impl std::io::Read, file_len: Option<u64>) -> Result<VolumeInfo> {
    let header = NiftiHeader::from_reader(src).map_err(|e| decode_err(path, e))?;
    if &header.magic != b"n+1\0" {
        return Err(bad(
            path,
            "not a single-file NIfTI-1 volume (magic is not n+1; .hdr/.img pairs are not read)",
        ));
    }
    let datatype = header
        .data_type()
        .map_err(|e| bad(path, format!("unknown NIfTI datatype: {e}")))?;
    use NiftiType::*;
    if !matches!(
        datatype,
        Uint8 | Int8 | Uint16 | Int16 | Uint32 | Int32 | Uint64 | Int64 | Float32 | Float64
    ) {
        return Err(bad(
            path,
            format!(
                "datatype {datatype:?} is not supported (need a scalar integer or float volume)"
            ),
        ));
    }
    if header.bitpix as i64 != 8 * datatype.size_of() as i64 {
        return Err(bad(
            path,
            format!(
                "bitpix {} does not match datatype {datatype:?}",
                header.bitpix
            ),
        ));
    }
    let ndim = header.dim[0] as usize;
    if !(2..=7).contains(&ndim) {
        return Err(bad(
            path,
            format!("dim[0] = {ndim}; need a 2-D or 3-D volume"),
        ));
    }
    let sizes: Vec<usize> = header.dim[1..=ndim].iter().map(|d| *d as usize).collect();
    if sizes[3.min(ndim)..].iter().any(|d| *d > 1) {
        return Err(bad(
            path,
            format!("volume has shape {sizes:?}; only 3-D volumes (one time point) are fused"),
        ));
    }
    let dims = [sizes[0], sizes[1], *sizes.get(2).unwrap_or(&1)];
    if dims.contains(&0) {
        return Err(bad(path, format!("volume is empty ({dims:?})")));
    }
    let data_bytes = dims
        .iter()
        .try_fold(datatype.size_of() as u64, |acc, d| {
            acc.checked_mul(*d as u64)
        })
        .ok_or_else(|| bad(path, format!("shape {dims:?} is too large")))?;
    let off = header.vox_offset;
    if !(off.is_finite() && (352.0..=MAX_VOX_OFFSET).contains(&off)) {
        return Err(bad(
            path,
            format!("vox_offset {off} is not a valid data offset (352 or more)"),
        ));
    }
    if let Some(len) = file_len {
        let need = off as u64 + data_bytes;
        if len < need {
            return Err(bad(
                path,
                format!(
                    "data is truncated: shape {dims:?} of {datatype:?} needs {need} bytes, the file \
                     has {len}"
                ),
            ));
        }
    }
    Ok(VolumeInfo {
        dims,
        ndim: ndim.min(3),
        datatype,
        data_bytes,
        header,
        lossy: None,
    })
}

/// Read a scalar 2-D or 3-D NIfTI-1 volume (4-D only with one time point).
pub fn read(path: &Path) -> Result<Volume> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(path, &bytes, u64::MAX)
}

/// Decode a NIfTI-1 file's bytes (gzip-compressed or not; `path` names them in messages), refusing
/// a header whose read would take more than `max_read_bytes` (see [`VolumeInfo::read_bytes`]).
pub fn parse(path: &Path, bytes: &[u8], max_read_bytes: u64) -> Result<Volume> {
    use std::io::Read;
    let gz = is_gzip(bytes);
    let info = if gz {
        header_info(path, flate2::read::GzDecoder::new(bytes), None)?
    } else {
        header_info(path, bytes, Some(bytes.len() as u64))?
    };
    if info.read_bytes() > max_read_bytes {
        return Err(Error::Memory(format!(
            "{}: reading its {:?} voxels takes about {} MiB, over the limit of {} MiB",
            path.display(),
            info.dims,
            info.read_bytes() >> 20,
            max_read_bytes >> 20
        )));
    }
    // Decompress no more than the header promises (a gzip bomb stops there).
    let need = info.header.vox_offset as u64 + info.data_bytes;
    let mut raw = Vec::new();
    let plain: &[u8] = if gz {
        flate2::read::GzDecoder::new(bytes)
            .take(need)
            .read_to_end(&mut raw)
            .map_err(|e| decode_err(path, e))?;
        &raw
    } else {
        bytes
    };
    if (plain.len() as u64) < need {
        return Err(bad(
            path,
            format!(
                "data is truncated: shape {:?} needs {need} bytes, the file holds {}",
                info.dims,
                plain.len()
            ),
        ));
    }
    let obj = nifti::InMemNiftiObject::from_reader(plain).map_err(|e| decode_err(path, e))?;
    let arr = obj
        .into_volume()
        .into_ndarray::<f64>()
        .map_err(|e| bad(path, format!("cannot read voxels: {e}")))?;
    let dims = info.dims;
    // The transpose iterates x fastest whatever the memory order.
    let data: Vec<f32> = arr.t().iter().map(|v| *v as f32).collect();
    if data.len() as u64 != info.voxels() {
        return Err(bad(path, "voxel count does not match the header"));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        let (x, y, z) = (i % dims[0], i / dims[0] % dims[1], i / (dims[0] * dims[1]));
        return Err(bad(
            path,
            format!("non-finite voxel (NaN or Inf) at ({x}, {y}, {z})"),
        ));
    }
    Ok(Volume {
        dims,
        ndim: info.ndim,
        data,
        header: info.header,
        datatype: info.datatype,
    })
}

/// The voxel-to-world affine of a header as the NIfTI-1 standard defines it: the sform when
/// sform_code > 0, else the qform (quaternion) when qform_code > 0, else the pixel spacing.
pub fn affine(h: &NiftiHeader) -> [[f64; 4]; 3] {
    let f = |r: [f32; 4]| r.map(|v| v as f64);
    if h.sform_code > 0 {
        return [f(h.srow_x), f(h.srow_y), f(h.srow_z)];
    }
    let p = h.pixdim.map(|v| v as f64);
    if h.qform_code > 0 {
        let (b, c, d) = (h.quatern_b as f64, h.quatern_c as f64, h.quatern_d as f64);
        let a = (1.0 - b * b - c * c - d * d).max(0.0).sqrt();
        let qfac = if p[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [
                a * a + b * b - c * c - d * d,
                2.0 * (b * c - a * d),
                2.0 * (b * d + a * c),
            ],
            [
                2.0 * (b * c + a * d),
                a * a + c * c - b * b - d * d,
                2.0 * (c * d - a * b),
            ],
            [
                2.0 * (b * d - a * c),
                2.0 * (c * d + a * b),
                a * a + d * d - c * c - b * b,
            ],
        ];
        let s = [p[1], p[2], qfac * p[3]];
        let o = [h.quatern_x as f64, h.quatern_y as f64, h.quatern_z as f64];
        return [0, 1, 2].map(|i| [r[i][0] * s[0], r[i][1] * s[1], r[i][2] * s[2], o[i]]);
    }
    [
        [p[1], 0.0, 0.0, 0.0],
        [0.0, p[2], 0.0, 0.0],
        [0.0, 0.0, p[3], 0.0],
    ]
}

/// Refuse volumes of different shapes (from their headers, before the voxels are read).
pub fn check_same_shape(a: (&Path, [usize; 3]), b: (&Path, [usize; 3])) -> Result<()> {
    if a.1 != b.1 {
        return Err(Error::Param(format!(
            "volumes differ in shape: {} is {:?}, {} is {:?}",
            a.0.display(),
            a.1,
            b.0.display(),
            b.1
        )));
    }
    Ok(())
}

/// Slicing a volume along one axis: slice `k` is a plane whose rows run along the higher of the two
/// remaining axes and columns along the lower (axis 2 gives y rows, x columns).
#[derive(Clone, Copy, Debug)]
pub struct Slicer {
    pub dims: [usize; 3],
    pub axis: usize,
}

impl Slicer {
    pub fn count(&self) -> usize {
        self.dims[self.axis]
    }

    /// `(h, w)` of a slice.
    pub fn shape(&self) -> (usize, usize) {
        let (p, q) = self.others();
        (self.dims[q], self.dims[p])
    }

    fn others(&self) -> (usize, usize) {
        match self.axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        }
    }

    /// Flat voxel index of pixel (r, c) of slice k.
    fn index(&self, k: usize, r: usize, c: usize) -> usize {
        let (p, q) = self.others();
        let mut ijk = [0; 3];
        ijk[self.axis] = k;
        ijk[p] = c;
        ijk[q] = r;
        ijk[0] + self.dims[0] * (ijk[1] + self.dims[1] * ijk[2])
    }

    /// Slice `k` of `data`, each voxel through `f`.
    pub fn get(&self, data: &[f32], k: usize, f: impl Fn(f64) -> f64) -> Plane {
        let (h, w) = self.shape();
        let mut out = Plane::zeros(h, w);
        for r in 0..h {
            for c in 0..w {
                out.data[r * w + c] = f(data[self.index(k, r, c)] as f64);
            }
        }
        out
    }

    /// Store `plane` as slice `k` of `data`.
    pub fn put(&self, data: &mut [f32], k: usize, plane: &Plane) {
        let w = plane.w;
        for r in 0..plane.h {
            for c in 0..w {
                data[self.index(k, r, c)] = plane.data[r * w + c] as f32;
            }
        }
    }
}

/// Representable range of an integer datatype; `None` for float.
pub fn repr_range(t: NiftiType) -> Option<(f64, f64)> {
    use NiftiType::*;
    Some(match t {
        Uint8 => (0.0, u8::MAX as f64),
        Int8 => (i8::MIN as f64, i8::MAX as f64),
        Uint16 => (0.0, u16::MAX as f64),
        Int16 => (i16::MIN as f64, i16::MAX as f64),
        Uint32 => (0.0, u32::MAX as f64),
        Int32 => (i32::MIN as f64, i32::MAX as f64),
        Uint64 => (0.0, u64::MAX as f64),
        Int64 => (i64::MIN as f64, i64::MAX as f64),
        _ => return None,
    })
}

/// The datatype a result is written in: the reference's, except float32 for an integer volume that
/// stored scaled values (scl_slope/scl_inter), whose fused values rarely land on the integer grid.
pub fn output_datatype(reference: &Volume) -> NiftiType {
    let h = &reference.header;
    let scaled = h.scl_slope != 0.0 && (h.scl_slope != 1.0 || h.scl_inter != 0.0);
    if scaled && repr_range(reference.datatype).is_some() {
        log::info!(
            "the first input stores scaled integers (scl_slope {}, scl_inter {}); writing float32",
            h.scl_slope,
            h.scl_inter
        );
        NiftiType::Float32
    } else {
        reference.datatype
    }
}

/// A voxel value as `datatype` stores it: rounded and clamped to an integer type's range, as is
/// for float types.
pub fn stored_value(v: f32, datatype: NiftiType) -> f64 {
    match repr_range(datatype) {
        Some((lo, hi)) => (v as f64).round().clamp(lo, hi),
        None => v as f64,
    }
}

/// Write `data` (x fastest, physical values) with `reference`'s header (geometry, affine, units,
/// description) as `datatype`, atomically. Integer types are rounded and clamped to their range.
pub fn write(path: &Path, reference: &Volume, data: &[f32], datatype: NiftiType) -> Result<()> {
    let mut set = OutputSet::default();
    stage(&mut set, path, reference, data, datatype)?;
    set.commit()
}

/// [`write()`] into an output set, to be committed with the job's other outputs.
pub fn stage(
    set: &mut OutputSet,
    path: &Path,
    reference: &Volume,
    data: &[f32],
    datatype: NiftiType,
) -> Result<()> {
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Numerical(format!(
            "{}: fused voxel {i} is {}; nothing written",
            path.display(),
            data[i]
        )));
    }
    // The writer picks compression by extension and rewrites extensions it does not know, so it
    // writes into a temporary sibling folder, from which the file is renamed into place.
    let lower = path.to_string_lossy().to_ascii_lowercase();
    let name = if lower.ends_with(".gz") {
        "v.nii.gz"
    } else {
        "v.nii"
    };
    set.stage_with(path, name, |tmp| {
        write_file(tmp, path, reference, data, datatype)
    })
}

fn write_file(
    tmp: &Path,
    path: &Path,
    reference: &Volume,
    data: &[f32],
    datatype: NiftiType,
) -> Result<()> {
    use ndarray::{ArrayD, IxDyn, ShapeBuilder};
    let shape = IxDyn(&reference.dims[..reference.ndim]).f();
    let opts = WriterOptions::new(tmp).reference_header(&reference.header);
    let q = |v: &f32| stored_value(*v, datatype);
    macro_rules! put {
        ($t:ty, $conv:expr) => {{
            let v: Vec<$t> = data.iter().map($conv).collect();
            let arr = ArrayD::from_shape_vec(shape, v).expect("shape matches data");
            opts.write_nifti(&arr)
        }};
    }
    use NiftiType::*;
    let res = match datatype {
        Uint8 => put!(u8, |v| q(v) as u8),
        Int8 => put!(i8, |v| q(v) as i8),
        Uint16 => put!(u16, |v| q(v) as u16),
        Int16 => put!(i16, |v| q(v) as i16),
        Uint32 => put!(u32, |v| q(v) as u32),
        Int32 => put!(i32, |v| q(v) as i32),
        Uint64 => put!(u64, |v| q(v) as u64),
        Int64 => put!(i64, |v| q(v) as i64),
        Float64 => put!(f64, |v| *v as f64),
        _ => put!(f32, |v| *v),
    };
    res.map_err(|e| Error::BadOutput {
        path: path.to_path_buf(),
        msg: format!("cannot write NIfTI: {e}"),
    })
}

/// A header for a volume in scanner space: `affine` (voxel to RAS+ mm) as both sform and qform
/// (the qform's quaternion and qfac from its rotation), mm units, `scl` as (scl_slope, scl_inter).
pub fn scanner_header(
    dims: [usize; 3],
    affine: [[f64; 4]; 3],
    datatype: NiftiType,
    scl: (f64, f64),
    description: &str,
) -> NiftiHeader {
    let column = |j: usize| [affine[0][j], affine[1][j], affine[2][j]];
    let spacing = [0, 1, 2].map(|j| column(j).iter().map(|v| v * v).sum::<f64>().sqrt());
    let mut r = [0, 1, 2].map(|j| column(j).map(|v| v / spacing[j]));
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
        - r[1][0] * (r[0][1] * r[2][2] - r[0][2] * r[2][1])
        + r[2][0] * (r[0][1] * r[1][2] - r[0][2] * r[1][1]);
    // A left-handed grid is a rotation with its third axis negated (qfac = -1).
    let qfac = if det < 0.0 { -1.0 } else { 1.0 };
    r[2] = r[2].map(|v| v * qfac);
    let [b, c, d] = quaternion(r);
    let f = |row: [f64; 4]| row.map(|v| v as f32);
    let mut h = NiftiHeader {
        dim: [
            3,
            dims[0] as u16,
            dims[1] as u16,
            dims[2] as u16,
            1,
            1,
            1,
            1,
        ],
        datatype: datatype as i16,
        bitpix: (datatype.size_of() * 8) as i16,
        scl_slope: scl.0 as f32,
        scl_inter: scl.1 as f32,
        xyzt_units: 2, // millimetres
        qform_code: 1,
        sform_code: 1,
        quatern_b: b as f32,
        quatern_c: c as f32,
        quatern_d: d as f32,
        quatern_x: affine[0][3] as f32,
        quatern_y: affine[1][3] as f32,
        quatern_z: affine[2][3] as f32,
        srow_x: f(affine[0]),
        srow_y: f(affine[1]),
        srow_z: f(affine[2]),
        ..Default::default()
    };
    h.pixdim[0] = qfac as f32;
    for (j, s) in spacing.iter().enumerate() {
        h.pixdim[j + 1] = *s as f32;
    }
    let _ = h.set_description_str(description);
    h
}

/// (b, c, d) of the unit quaternion of rotation `r` (given by its columns), with a >= 0, as the
/// NIfTI-1 reference code (nifti_mat44_to_quatern) computes it.
fn quaternion(r: [[f64; 3]; 3]) -> [f64; 3] {
    // m[i][j]: row i, column j.
    let m = |i: usize, j: usize| r[j][i];
    let trace = m(0, 0) + m(1, 1) + m(2, 2) + 1.0;
    let (a, b, c, d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (m(2, 1) - m(1, 2)) / a;
        c = 0.25 * (m(0, 2) - m(2, 0)) / a;
        d = 0.25 * (m(1, 0) - m(0, 1)) / a;
    } else {
        let xd = 1.0 + m(0, 0) - (m(1, 1) + m(2, 2));
        let yd = 1.0 + m(1, 1) - (m(0, 0) + m(2, 2));
        let zd = 1.0 + m(2, 2) - (m(0, 0) + m(1, 1));
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (m(0, 1) + m(1, 0)) / b;
            d = 0.25 * (m(0, 2) + m(2, 0)) / b;
            a = 0.25 * (m(2, 1) - m(1, 2)) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (m(0, 1) + m(1, 0)) / c;
            d = 0.25 * (m(1, 2) + m(2, 1)) / c;
            a = 0.25 * (m(0, 2) - m(2, 0)) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (m(0, 2) + m(2, 0)) / d;
            c = 0.25 * (m(1, 2) + m(2, 1)) / d;
            a = 0.25 * (m(1, 0) - m(0, 1)) / d;
        }
    }
    if a < 0.0 {
        [-b, -c, -d]
    } else {
        [b, c, d]
    }
}

/// A fresh volume with a scanner-space header: voxel `spacing` in mm along x, y, z, world
/// position `origin` of voxel (0, 0, 0); x runs right to left (negative), as dcm2niix writes
/// axial series, so that a DICOM series of the same volume reads back on the same grid.
pub fn new_volume(
    dims: [usize; 3],
    spacing: [f32; 3],
    origin: [f32; 3],
    datatype: NiftiType,
    data: Vec<f32>,
) -> Volume {
    let (s, o) = (spacing.map(f64::from), origin.map(f64::from));
    let affine = [
        [-s[0], 0.0, 0.0, o[0]],
        [0.0, s[1], 0.0, o[1]],
        [0.0, 0.0, s[2], o[2]],
    ];
    Volume {
        dims,
        ndim: 3,
        data,
        header: scanner_header(dims, affine, datatype, (1.0, 0.0), "csfuse phantom"),
        datatype,
    }
}
