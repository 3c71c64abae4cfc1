//! `csfuse._csfuse`: the compiled half of the Python package. Each function runs the same code
//! as the command line (csfuse's library), with NumPy arrays in and out; `python/csfuse/__init__.py`
//! is the documented API on top (keyword handling, reports as dicts).

mod convert;
mod errors;

use convert::{array, numeric, raster, raster_array, volume, volume_array};
use csfuse::cpu::cbpdn::CbpdnOptions;
use csfuse::dictionary::Dictionary;
use csfuse::formats::image::{gray_of, SampleFormat};
use csfuse::formats::intensity::IntensityRange;
use csfuse::formats::nifti::NiftiType;
use csfuse::jobs::image::{fuse_rasters, ImagePair};
use csfuse::jobs::session::{Backend, Session};
use csfuse::jobs::volume::fuse_volume_data;
use csfuse::jobs::{GridOf, Interp, JobOptions, VolumeFormat};
use csfuse::pipeline::fuse::{FuseParams, Mode, RuleOptions, TextureRule};
use csfuse::real::Precision;
use csfuse::resample::{lowest, resample as resample_volume, Grid};
use errors::{run_released, to_py, GpuError, ValidationError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::path::{Path, PathBuf};

type Engine = (Backend, Precision, bool);

fn engine(backend: &str, precision: &str, validate: bool) -> PyResult<Engine> {
    let b = match backend {
        "auto" => Backend::Auto,
        "gpu" => Backend::Gpu,
        "cpu" => Backend::Cpu,
        other => {
            return Err(PyValueError::new_err(format!(
                "backend={other:?}: use \"auto\", \"gpu\" or \"cpu\""
            )))
        }
    };
    let p = match precision {
        "f32" => Precision::F32,
        "f64" => Precision::F64,
        other => {
            return Err(PyValueError::new_err(format!(
                "precision={other:?}: use \"f32\" or \"f64\""
            )))
        }
    };
    Ok((b, p, validate))
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("JSON of plain data")
}

/// A dictionary argument: `None` for the built-in one, a path to an `.npy`, or an `(h, w, M)`
/// array.
fn dictionary(
    obj: Option<&Bound<'_, PyAny>>,
    builtin: fn() -> Dictionary,
    name: &str,
) -> PyResult<Dictionary> {
    let Some(obj) = obj else {
        return Ok(builtin());
    };
    if let Ok(path) = obj.extract::<PathBuf>() {
        return Dictionary::load(&path).map_err(to_py);
    }
    let n = numeric(obj, name)?;
    Dictionary::from_hwm(&n.shape, &n.data, Path::new(name)).map_err(to_py)
}

/// The options every fusion takes, as a file job and an array job share them.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct FuseArgs<'py> {
    mode: String,
    cartoon_dict: Option<Bound<'py, PyAny>>,
    texture_dict: Option<Bound<'py, PyAny>>,
    intensity_range: String,
    out_dtype: Option<String>,
    axis: Option<usize>,
    memory_budget: Option<u64>,
    base_share: Option<f64>,
    base_top: Option<f64>,
    base_bright: Option<f64>,
    vote_radius: Option<usize>,
    texture_rule: Option<String>,
}

impl FuseArgs<'_> {
    fn job_options(&self) -> PyResult<JobOptions> {
        let mode = Mode::ALL
            .into_iter()
            .find(|m| m.name() == self.mode)
            .ok_or_else(|| {
                let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
                PyValueError::new_err(format!("mode={:?}: use {}", self.mode, names.join(", ")))
            })?;
        let texture_rule = match self.texture_rule.as_deref() {
            None => None,
            Some(name) => Some(TextureRule::parse(name).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "texture_rule={name:?}: use \"sum\" (both sources' texture) or \"choose\" \
                     (choose-max, as published)"
                ))
            })?),
        };
        let mut params = FuseParams::new(mode);
        params
            .set_rules(&RuleOptions {
                base_share: self.base_share,
                base_top: self.base_top,
                base_bright: self.base_bright,
                vote_radius: self.vote_radius,
                texture_rule,
            })
            .map_err(to_py)?;
        let mut o = JobOptions::with_params(params);
        o.cartoon = dictionary(
            self.cartoon_dict.as_ref(),
            csfuse::assets::cartoon,
            "cartoon_dict",
        )?;
        o.texture = dictionary(
            self.texture_dict.as_ref(),
            csfuse::assets::texture,
            "texture_dict",
        )?;
        o.intensity = IntensityRange::parse(&self.intensity_range)
            .map_err(|e| PyValueError::new_err(format!("intensity_range: {e}")))?;
        o.out_depth = match self.out_dtype.as_deref() {
            None => None,
            Some("uint8") => Some(SampleFormat::U8),
            Some("uint16") => Some(SampleFormat::U16),
            Some("float32") => Some(SampleFormat::F32),
            Some(other) => {
                return Err(PyValueError::new_err(format!(
                    "out_dtype={other:?}: use \"uint8\", \"uint16\" or \"float32\""
                )))
            }
        };
        if self.axis.is_some_and(|a| a > 2) {
            return Err(PyValueError::new_err("axis must be 0, 1 or 2"));
        }
        o.axis = self.axis;
        o.memory_budget = self.memory_budget;
        Ok(o)
    }
}

/// Fuse two arrays; returns the fused array and the report as JSON.
#[pyfunction]
#[pyo3(signature = (a, b, args, backend, precision, validate))]
fn fuse<'py>(
    py: Python<'py>,
    a: &Bound<'py, PyAny>,
    b: &Bound<'py, PyAny>,
    args: FuseArgs<'py>,
    backend: &str,
    precision: &str,
    validate: bool,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let engine = engine(backend, precision, validate)?;
    let opts = args.job_options()?;
    let (na, nb) = (Path::new("a"), Path::new("b"));
    if args.axis.is_some() {
        if opts.out_depth.is_some() {
            return Err(PyValueError::new_err(
                "out_dtype applies to images; a fused volume has the first volume's dtype",
            ));
        }
        let (va, vb) = (volume(a, "a")?, volume(b, "b")?);
        let dims = va.dims;
        let (data, datatype, report) = run_released(py, move || {
            let mut s = Session::open(engine.0, engine.1, engine.2)?;
            fuse_volume_data(&mut s, (na, &va), (nb, &vb), &opts)
        })?;
        return Ok((volume_array(py, dims, &data, datatype)?, json(&report)));
    }
    let pair = ImagePair::from_rasters(raster(a, "a")?, raster(b, "b")?, (na, nb), &opts)
        .map_err(to_py)?;
    let (fused, report) = run_released(py, move || {
        let mut s = Session::open(engine.0, engine.1, engine.2)?;
        fuse_rasters(&mut s, &pair, &opts)
    })?;
    Ok((raster_array(py, &fused)?, json(&report)))
}

/// How volumes on different grids are put on one, and how a fused volume is written.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct VolumeArgs {
    ignore_affine: bool,
    interp: String,
    grid: String,
    out_format: Option<String>,
    /// The volume view page (`fuse --html`).
    html: Option<PathBuf>,
}

fn interp(name: &str) -> PyResult<Interp> {
    match name {
        "nearest" => Ok(Interp::Nearest),
        "linear" => Ok(Interp::Linear),
        "cubic" => Ok(Interp::Cubic),
        other => Err(PyValueError::new_err(format!(
            "interp={other:?}: use \"nearest\", \"linear\" or \"cubic\""
        ))),
    }
}

/// An affine from Python: 16 numbers, row by row, the last row (0, 0, 0, 1).
fn affine(m: &[f64], name: &str) -> PyResult<Grid> {
    let last = &m[12..];
    if m.iter().any(|v| !v.is_finite()) || last != [0.0, 0.0, 0.0, 1.0] {
        return Err(PyValueError::new_err(format!(
            "{name}: a voxel-to-world affine is a finite 4x4 matrix whose last row is (0, 0, 0, \
             1), this one is {m:?}"
        )));
    }
    Ok(Grid {
        dims: [0; 3],
        affine: [0, 1, 2].map(|i| [m[4 * i], m[4 * i + 1], m[4 * i + 2], m[4 * i + 3]]),
    })
}

/// `data` (X, Y, Z) on `source` resampled onto `shape` with `target`; the array and the number
/// of voxels outside the source's field of view.
#[pyfunction]
#[pyo3(signature = (data, source, shape, target, interp_, fill))]
fn resample<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    source: Vec<f64>,
    shape: [usize; 3],
    target: Vec<f64>,
    interp_: &str,
    fill: Option<f64>,
) -> PyResult<(Bound<'py, PyAny>, usize)> {
    let v = volume(data, "data")?;
    let mut from = affine(&source, "affine")?;
    from.dims = v.dims;
    let mut onto = affine(&target, "target_affine")?;
    onto.dims = shape;
    if shape.contains(&0) {
        return Err(PyValueError::new_err(format!(
            "target_shape {shape:?}: every axis needs at least one voxel"
        )));
    }
    for (g, name) in [(&from, "affine"), (&onto, "target_affine")] {
        g.check(Path::new(name)).map_err(to_py)?;
    }
    let how = interp(interp_)?;
    let fill = fill.unwrap_or_else(|| lowest(&v.data) as f64);
    let r = py
        .detach(|| resample_volume(&v.data, &from, &onto, how, fill as f32))
        .expect("affines checked");
    Ok((
        volume_array(py, shape, &r.data, NiftiType::Float32)?,
        r.outside,
    ))
}

/// Fuse two files (images, NIfTI volumes or DICOM series folders) into a third, as `csfuse fuse`;
/// returns the report as JSON.
#[pyfunction]
#[pyo3(signature = (a, b, output, report, montage, force, volume, args, backend, precision, validate))]
#[allow(clippy::too_many_arguments)]
fn fuse_files(
    py: Python<'_>,
    a: PathBuf,
    b: PathBuf,
    output: PathBuf,
    report: Option<PathBuf>,
    montage: Option<PathBuf>,
    force: bool,
    volume: VolumeArgs,
    args: FuseArgs<'_>,
    backend: &str,
    precision: &str,
    validate: bool,
) -> PyResult<String> {
    let engine = engine(backend, precision, validate)?;
    let mut opts = args.job_options()?;
    opts.montage = montage;
    opts.html = volume.html;
    opts.ignore_affine = volume.ignore_affine;
    opts.interp = interp(&volume.interp)?;
    opts.out_format = match volume.out_format.as_deref() {
        None => None,
        Some("nifti") => Some(VolumeFormat::Nifti),
        Some("dicom") => Some(VolumeFormat::Dicom),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "out_format={other:?}: use \"nifti\" or \"dicom\" (a DICOM series in the folder \
                 `output` names)"
            )))
        }
    };
    opts.grid = match volume.grid.as_str() {
        "a" => GridOf::A,
        "b" => GridOf::B,
        other => {
            return Err(PyValueError::new_err(format!(
                "grid={other:?}: use \"a\" (the output on a's grid, b resampled) or \"b\""
            )))
        }
    };
    let dicts: Vec<PathBuf> = [&args.cartoon_dict, &args.texture_dict]
        .into_iter()
        .flatten()
        .filter_map(|d| d.extract::<PathBuf>().ok())
        .collect();
    let done = run_released(py, move || {
        let protected: Vec<&Path> = dicts.iter().map(|p| p.as_path()).collect();
        csfuse::jobs::fuse_to_files(
            (&a, &b, &output),
            report.as_deref(),
            &opts,
            engine,
            &protected,
            force,
        )
    })?;
    Ok(json(&done))
}

/// One CBPDN solve; returns the coefficient maps `(H, W, M)` and the solve's statistics as JSON.
#[pyfunction]
#[pyo3(signature = (image, dictionary_, lmbda, highpass, rho, relax, auto_rho, max_iter, tol, abs_tol, l1_weights, backend, precision, validate, normalize))]
#[allow(clippy::too_many_arguments)]
fn sparse_code<'py>(
    py: Python<'py>,
    image: &Bound<'py, PyAny>,
    dictionary_: &Bound<'py, PyAny>,
    lmbda: f64,
    highpass: Option<f64>,
    rho: Option<f64>,
    relax: f64,
    auto_rho: bool,
    max_iter: usize,
    tol: f64,
    abs_tol: f64,
    l1_weights: Option<Vec<f64>>,
    backend: &str,
    precision: &str,
    validate: bool,
    normalize: bool,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let engine = engine(backend, precision, validate)?;
    let positive = |name: &str, v: f64| {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(PyValueError::new_err(format!(
                "{name} must be a positive number, not {v}"
            )))
        }
    };
    let mut opts = CbpdnOptions::new(positive("lmbda", lmbda)?);
    opts.rho = rho.map(|r| positive("rho", r)).transpose()?;
    if !(relax > 0.0 && relax < 2.0) {
        return Err(PyValueError::new_err(format!(
            "relax must lie in (0, 2), not {relax}"
        )));
    }
    if !(tol >= 0.0 && abs_tol >= 0.0) {
        return Err(PyValueError::new_err("tol and abs_tol must be 0 or more"));
    }
    opts.relax = relax;
    opts.auto_rho.enabled = auto_rho;
    opts.max_iter = max_iter;
    opts.rel_tol = tol;
    opts.abs_tol = abs_tol;
    opts.l1_weights = l1_weights;
    let highpass = highpass.map(|h| positive("highpass", h)).transpose()?;
    let plane = gray_of(raster(image, "image")?, Path::new("image"))
        .map_err(to_py)?
        .plane;
    // As SPORCO codes: the filters as given, unless asked to normalise them.
    let dict = match dictionary_.extract::<PathBuf>() {
        Ok(path) => Dictionary::load_as_given(&path),
        Err(_) => {
            let n = numeric(dictionary_, "dictionary")?;
            Dictionary::from_hwm_as_given(&n.shape, &n.data, Path::new("dictionary"))
        }
    }
    .map_err(to_py)?;
    let dict = if normalize { dict.normalized() } else { dict };
    let run = run_released(py, move || {
        csfuse::jobs::sparse_code::sparse_code(&plane, &dict, highpass, &opts, engine)
    })?;
    let (st, coef) = (&run.result.stats, &run.result.coef);
    let stats = serde_json::json!({
        "iterations": st.iterations, "objective": st.objective, "dfid": st.dfid, "l1": st.l1,
        "r": st.r, "s": st.s, "rho": st.rho, "ms_per_iter": st.ms_per_iter,
        "setup_ms": st.setup_ms, "precision": st.precision, "backend": run.engine,
        "adapter": run.adapter, "validation": run.validation,
    });
    let maps = match engine.1 {
        Precision::F32 => array(
            py,
            &[coef.h, coef.w, coef.m],
            coef.to_hwm().iter().map(|v| *v as f32).collect(),
        )?,
        Precision::F64 => array(py, &[coef.h, coef.w, coef.m], coef.to_hwm())?,
    };
    Ok((maps, stats.to_string()))
}

/// Learn a dictionary from images; returns it as a float32 `(size, size, filters)` array.
#[pyfunction]
#[pyo3(signature = (images, kind, filters, size, iters, lmbda, sigma, tile, max_tiles, tv_weight, seed))]
#[allow(clippy::too_many_arguments)]
fn learn<'py>(
    py: Python<'py>,
    images: &Bound<'py, PyList>,
    kind: &str,
    filters: usize,
    size: usize,
    iters: usize,
    lmbda: f64,
    sigma: f64,
    tile: usize,
    max_tiles: usize,
    tv_weight: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    use csfuse::learn::training::{check_shape, training_plane, training_tiles, Component};
    let component = match kind {
        "cartoon" => Component::Cartoon,
        "texture" => Component::Texture,
        other => {
            return Err(PyValueError::new_err(format!(
                "kind={other:?}: use \"cartoon\" or \"texture\""
            )))
        }
    };
    check_shape(filters, size, tile, max_tiles).map_err(to_py)?;
    if images.is_empty() {
        return Err(PyValueError::new_err(
            "images: give at least one training image",
        ));
    }
    let mut planes = Vec::with_capacity(images.len());
    for (i, img) in images.iter().enumerate() {
        let name = format!("images[{i}]");
        planes.push((PathBuf::from(&name), training_plane(&raster(&img, &name)?)));
    }
    let params = csfuse::learn::LearnParams {
        filters,
        size,
        lambda: lmbda,
        iters,
        sigma,
        seed,
    };
    let dict = run_released(py, move || {
        let named: Vec<(&Path, csfuse::plane::Plane)> = planes
            .iter()
            .map(|(p, q)| (p.as_path(), q.clone()))
            .collect();
        let tiles = training_tiles(&named, component, tile, max_tiles, tv_weight)?;
        csfuse::learn::learn(&tiles, &params, |_| {})
    })?;
    let hwm: Vec<f32> = dict.to_hwm().iter().map(|v| *v as f32).collect();
    array(py, &[dict.fh, dict.fw, dict.m], hwm)
}

/// The fusion metrics of each of `fused` against `a` and `b` (8-bit arrays), as a JSON list;
/// `names` name the fused images in errors. What the metrics take from the sources alone is
/// computed once for all of them.
#[pyfunction]
fn metrics(
    py: Python<'_>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
    fused: Vec<Bound<'_, PyAny>>,
    names: Vec<String>,
) -> PyResult<String> {
    use csfuse::error::Error;
    use csfuse::metrics::{Gray, Sources};
    let gray = |obj: &Bound<'_, PyAny>, name: &str| -> PyResult<Gray> {
        Gray::of(&raster(obj, name)?, Path::new(name)).map_err(to_py)
    };
    let (ga, gb) = (gray(a, "a")?, gray(b, "b")?);
    let fused: Vec<(String, Gray)> = fused
        .iter()
        .zip(names)
        .map(|(f, name)| Ok((name.clone(), gray(f, &name)?)))
        .collect::<PyResult<_>>()?;
    let scores = run_released(py, move || {
        let sources = Sources::new(&ga, &gb)?;
        fused
            .iter()
            .map(|(name, f)| {
                sources.score(f).map_err(|e| match e {
                    Error::Param(msg) => Error::Param(format!("{name}: {msg}")),
                    e => e,
                })
            })
            .collect::<csfuse::error::Result<Vec<_>>>()
    })?;
    Ok(json(&scores))
}

/// The GPU adapters wgpu sees, best first, as JSON.
#[pyfunction]
fn devices(py: Python<'_>) -> String {
    json(&py.detach(csfuse::gpu::list_adapters))
}

/// An image file (PNG, TIFF, BMP, JPEG, single-frame DICOM) as csfuse reads it.
#[pyfunction]
fn imread<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let r = py
        .detach(|| csfuse::formats::image::read_image(&path))
        .map_err(to_py)?;
    raster_array(py, &r)
}

/// Write an array as an image file (PNG, TIFF, BMP, JPEG by the extension): uint8 or uint16,
/// float32 as TIFF; atomically, and an existing file only with `force`.
#[pyfunction]
fn imwrite(py: Python<'_>, path: PathBuf, image: &Bound<'_, PyAny>, force: bool) -> PyResult<()> {
    use csfuse::formats::image::{check_output, encode_image};
    use csfuse::formats::output::write_atomic;
    let r = raster(image, "image")?;
    py.detach(|| {
        check_output(&path, &[], force)?;
        write_atomic(&path, &encode_image(&path, &r)?)
    })
    .map_err(to_py)
}

/// A volume (NIfTI file or DICOM series folder) as float32 `(X, Y, Z)` values and its 4x4
/// voxel-to-world (RAS+ mm) affine.
#[pyfunction]
fn load_volume<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let v = py
        .detach(|| csfuse::formats::volume::read(&path))
        .map_err(to_py)?;
    let data = volume_array(
        py,
        v.dims,
        &v.data,
        csfuse::formats::nifti::NiftiType::Float32,
    )?;
    let a = csfuse::formats::nifti::affine(&v.header);
    let mut m: Vec<f64> = a.iter().flatten().copied().collect();
    m.extend([0.0, 0.0, 0.0, 1.0]);
    Ok((data, array(py, &[4, 4], m)?))
}

/// Ask every running job to stop at its next solver iteration (from any thread).
#[pyfunction]
fn cancel() {
    csfuse::cancel::request();
}

/// Units done and in all of the latest job that reports progress (volumes: slices).
#[pyfunction]
fn progress() -> (u64, u64) {
    csfuse::progress::current()
}

#[pymodule]
fn _csfuse(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // csfuse logs through `log`; warnings (a GPU fallback, clamped samples) go to stderr unless
    // CSFUSE_LOG says otherwise (e.g. CSFUSE_LOG=info, CSFUSE_LOG=off).
    let _ = env_logger::Builder::from_env(env_logger::Env::new().filter_or(
        "CSFUSE_LOG",
        "warn,wgpu_core=error,wgpu_hal=error,naga=error,jpeg2k=off",
    ))
    .format_timestamp(None)
    .format_target(false)
    .try_init();
    m.add("GpuError", m.py().get_type::<GpuError>())?;
    m.add("ValidationError", m.py().get_type::<ValidationError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Optional parts this build has: "jpegls" (JPEG-LS DICOM through CharLS).
    let features: Vec<&str> = [("jpegls", cfg!(feature = "jpegls"))]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
    m.add("features", features)?;
    m.add_function(wrap_pyfunction!(fuse, m)?)?;
    m.add_function(wrap_pyfunction!(fuse_files, m)?)?;
    m.add_function(wrap_pyfunction!(sparse_code, m)?)?;
    m.add_function(wrap_pyfunction!(learn, m)?)?;
    m.add_function(wrap_pyfunction!(metrics, m)?)?;
    m.add_function(wrap_pyfunction!(devices, m)?)?;
    m.add_function(wrap_pyfunction!(imread, m)?)?;
    m.add_function(wrap_pyfunction!(imwrite, m)?)?;
    m.add_function(wrap_pyfunction!(load_volume, m)?)?;
    m.add_function(wrap_pyfunction!(resample, m)?)?;
    m.add_function(wrap_pyfunction!(cancel, m)?)?;
    m.add_function(wrap_pyfunction!(progress, m)?)?;
    Ok(())
}
