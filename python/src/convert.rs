//! NumPy arrays in and out: any numeric dtype and memory order is read through its strides (no
//! contiguous copy is asked of NumPy); results come back as new C-order arrays.

use csfuse::formats::image::{check_raster, split_channels, Raster, SampleFormat};
use csfuse::formats::nifti::{self, NiftiType, Volume};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::Path;

/// A numeric array read as f64 values in C (row-major) order.
pub struct Numeric {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    pub dtype: NiftiType,
}

/// Read `obj`, a NumPy array of a real numeric dtype; `name` says which argument in messages.
pub fn numeric(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Numeric> {
    macro_rules! try_dtype {
        ($($t:ty => $d:expr),*) => {$(
            if let Ok(arr) = obj.cast::<PyArrayDyn<$t>>() {
                let ro = arr.readonly();
                let view = ro.as_array();
                return Ok(Numeric {
                    shape: view.shape().to_vec(),
                    data: view.iter().map(|v| *v as f64).collect(),
                    dtype: $d,
                });
            }
        )*};
    }
    try_dtype!(
        u8 => NiftiType::Uint8, u16 => NiftiType::Uint16, f32 => NiftiType::Float32,
        f64 => NiftiType::Float64, i16 => NiftiType::Int16, i8 => NiftiType::Int8,
        i32 => NiftiType::Int32, u32 => NiftiType::Uint32, i64 => NiftiType::Int64,
        u64 => NiftiType::Uint64
    );
    let what = match obj.cast::<numpy::PyUntypedArray>() {
        Ok(a) => format!("a NumPy array of dtype {}", a.dtype()),
        Err(_) => format!("a {}", obj.get_type().name()?),
    };
    Err(PyValueError::new_err(format!(
        "{name}: expected a NumPy array of integers or floats (uint8, uint16, int16, float32, \
         ...), got {what}"
    )))
}

/// A 2-D image: `(H, W)` grey or `(H, W, 3)` RGB. uint8 and uint16 keep their depth (8-bit is
/// scaled by 255, 16-bit by its own range, as image files are); any other dtype is float.
pub fn raster(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Raster> {
    let n = numeric(obj, name)?;
    let (h, w, channels) = match n.shape.as_slice() {
        [h, w] => (*h, *w, 1),
        [h, w, 3] => (*h, *w, 3),
        [x, y, z] => {
            return Err(PyValueError::new_err(format!(
                "{name}: a 3-D array of shape ({x}, {y}, {z}) is not an image (H, W) or (H, W, 3); \
                 for a volume pass axis= (the axis to slice along, as nibabel orders them)"
            )))
        }
        s => {
            return Err(PyValueError::new_err(format!(
                "{name}: an image is (H, W) or (H, W, 3), this array has shape {s:?}"
            )))
        }
    };
    let format = match n.dtype {
        NiftiType::Uint8 => SampleFormat::U8,
        NiftiType::Uint16 => SampleFormat::U16,
        _ => SampleFormat::F32,
    };
    let r = split_channels(h, w, &n.data, channels, format);
    check_raster(Path::new(name), r).map_err(crate::errors::to_py)
}

/// A volume `(X, Y, Z)` in nibabel's axis order, with an identity affine (arrays carry none; the
/// result is returned as an array, the caller keeps its own affine).
pub fn volume(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Volume> {
    let n = numeric(obj, name)?;
    let [x, y, z] = n.shape[..] else {
        return Err(PyValueError::new_err(format!(
            "{name}: a volume is a 3-D array (X, Y, Z), this one has shape {:?}",
            n.shape
        )));
    };
    if x == 0 || y == 0 || z == 0 || [x, y, z].iter().any(|d| *d > u16::MAX as usize) {
        return Err(PyValueError::new_err(format!(
            "{name}: volume shape ({x}, {y}, {z}) is empty or over 65535 along an axis"
        )));
    }
    // NIfTI order: x fastest.
    let mut data = vec![0f32; x * y * z];
    for i in 0..x {
        for j in 0..y {
            for k in 0..z {
                let v = n.data[(i * y + j) * z + k];
                if !v.is_finite() {
                    return Err(PyValueError::new_err(format!(
                        "{name}: non-finite voxel (NaN or Inf) at ({i}, {j}, {k})"
                    )));
                }
                data[i + x * (j + y * k)] = v as f32;
            }
        }
    }
    let identity = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
    ];
    Ok(Volume {
        dims: [x, y, z],
        ndim: 3,
        data,
        header: nifti::scanner_header([x, y, z], identity, n.dtype, (1.0, 0.0), name),
        datatype: n.dtype,
    })
}

/// A raster as an array of its format's dtype: `(H, W)` or `(H, W, 3)`; integer formats rounded
/// and clamped as an image file stores them.
pub fn raster_array<'py>(py: Python<'py>, r: &Raster) -> PyResult<Bound<'py, PyAny>> {
    let c = r.channels.len();
    let shape: Vec<usize> = if c == 1 {
        vec![r.h, r.w]
    } else {
        vec![r.h, r.w, c]
    };
    let interleaved = (0..r.h * r.w).flat_map(|i| r.channels.iter().map(move |ch| ch[i]));
    let m = r.format.max_value();
    let q = |v: f64| v.round().clamp(0.0, m);
    match r.format {
        SampleFormat::U8 => array(py, &shape, interleaved.map(|v| q(v) as u8).collect()),
        SampleFormat::U16 => array(py, &shape, interleaved.map(|v| q(v) as u16).collect()),
        SampleFormat::F32 => array(py, &shape, interleaved.map(|v| v as f32).collect()),
    }
}

/// Voxels (x fastest) as an `(X, Y, Z)` array of `datatype`, rounded and clamped for integers as
/// a NIfTI file stores them.
pub fn volume_array<'py>(
    py: Python<'py>,
    dims: [usize; 3],
    data: &[f32],
    datatype: NiftiType,
) -> PyResult<Bound<'py, PyAny>> {
    let [x, y, z] = dims;
    // C order (X, Y, Z): z fastest.
    let c_order = (0..x).flat_map(move |i| {
        (0..y).flat_map(move |j| (0..z).map(move |k| data[i + x * (j + y * k)]))
    });
    let shape = [x, y, z];
    let q = |v: f32| nifti::stored_value(v, datatype);
    macro_rules! out {
        ($t:ty) => {
            array(py, &shape, c_order.map(|v| q(v) as $t).collect::<Vec<$t>>())
        };
    }
    use NiftiType::*;
    match datatype {
        Uint8 => out!(u8),
        Int8 => out!(i8),
        Uint16 => out!(u16),
        Int16 => out!(i16),
        Uint32 => out!(u32),
        Int32 => out!(i32),
        Uint64 => out!(u64),
        Int64 => out!(i64),
        Float64 => out!(f64),
        _ => out!(f32),
    }
}

/// A C-order array of `shape` holding `data`.
pub fn array<'py, T: numpy::Element>(
    py: Python<'py>,
    shape: &[usize],
    data: Vec<T>,
) -> PyResult<Bound<'py, PyAny>> {
    let flat = data.into_pyarray(py);
    Ok(flat.reshape(shape)?.into_any())
}
