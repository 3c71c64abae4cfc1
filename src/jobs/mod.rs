//! Fusing two files into a third, whatever they hold: grayscale or colour images at any supported
//! depth ([`fuse_images`]), or NIfTI volumes slice by slice ([`fuse_volumes`]). `csfuse fuse` runs
//! one job; `csfuse batch` runs many in one [`Session`].

pub mod allocation;
pub mod batch;
pub mod image;
pub mod plan;
pub mod report;
pub mod session;
pub mod sparse_code;
pub mod volume;

pub use self::volume::fuse_volumes;
pub use image::{fuse_image_pairs, fuse_images, image_pairs_per_batch, ImagePair};

use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::formats::colour;
use crate::formats::image::{self as io, Raster, SampleFormat};
use crate::formats::intensity::{output_scaling, pair_scalings, IntensityRange, Scaling};
use crate::formats::montage::{self, Panel};
use crate::formats::nifti::{self as nifti, Slicer};
use crate::formats::output::OutputSet;
use crate::jobs::session::cpu_engine;
use crate::jobs::session::{max_diffs, rel_diff, Session, Validation};
use crate::pipeline::fuse::{fuse_pair, FuseOutput, FuseParams};
use crate::plane::Plane;
use crate::progress::Progress;
pub use crate::resample::Interp;
pub use allocation::default_memory_budget;
use rayon::prelude::*;
use report::{
    AdmmIterations, Dictionaries, ImageOutcome, ImageOutput, Input, Outcome, Report, Slices,
    VolumeIterations, VolumeOutcome, VolumeOutput, VolumeTimings,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Which input's grid two volumes on different grids are fused on; the other is resampled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GridOf {
    #[default]
    A,
    B,
}

impl GridOf {
    pub fn name(self) -> &'static str {
        match self {
            GridOf::A => "a",
            GridOf::B => "b",
        }
    }

    pub fn other(self) -> GridOf {
        match self {
            GridOf::A => GridOf::B,
            GridOf::B => GridOf::A,
        }
    }
}

/// How a fused volume is written: a NIfTI file, or a DICOM series (a folder, one file a slice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VolumeFormat {
    Nifti,
    Dicom,
}

/// The format `out` is written in: `opts.out_format`, else a DICOM series for a folder name
/// ending in `/` (or an existing folder) and NIfTI for `.nii`/`.nii.gz`.
pub fn volume_format(out: &Path, opts: &JobOptions) -> Result<VolumeFormat> {
    let text = out.to_string_lossy();
    let folder = text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) || out.is_dir();
    match opts.out_format {
        Some(VolumeFormat::Nifti) | None if nifti::is_nifti(out) => Ok(VolumeFormat::Nifti),
        Some(VolumeFormat::Dicom) => Ok(VolumeFormat::Dicom),
        None if folder => Ok(VolumeFormat::Dicom),
        _ => Err(Error::BadOutput {
            path: out.to_path_buf(),
            msg: "volumes are written as NIfTI (use .nii or .nii.gz) or as a DICOM series (a \
                  folder name ending in /, or --out-format dicom)"
                .into(),
        }),
    }
}

/// Everything about a job except its files.
#[derive(Clone)]
pub struct JobOptions {
    pub params: FuseParams,
    pub cartoon: Dictionary,
    pub texture: Dictionary,
    /// Output sample format of images (`None`: the inputs' deepest that the format holds).
    pub out_depth: Option<SampleFormat>,
    /// Volume axis to slice along (`None`: the slowest, z).
    pub axis: Option<usize>,
    pub ignore_affine: bool,
    /// Volumes on different grids: how the resampled one is interpolated, and whose grid they
    /// are fused on.
    pub interp: Interp,
    pub grid: GridOf,
    /// How a fused volume is written (`None`: by the output's name, see [`volume_format`]).
    pub out_format: Option<VolumeFormat>,
    /// Bytes the job's estimated peak may reach (`None`: [`default_memory_budget`]).
    pub memory_budget: Option<u64>,
    /// How 16-bit, float and NIfTI sources map to [0, 1].
    pub intensity: IntensityRange,
    pub montage: Option<PathBuf>,
    /// Volumes: a page that shows the sources and the result in synchronised slice views
    /// ([`crate::pages::volume_view`]).
    pub html: Option<PathBuf>,
    /// Show progress (bar or log lines) for volumes.
    pub progress: bool,
}

impl JobOptions {
    /// `params` with the bundled dictionaries and every other option at its default: outputs at
    /// the inputs' depth, volumes sliced along z, the default memory budget, no montage, no
    /// progress bar.
    pub fn with_params(params: FuseParams) -> Self {
        JobOptions {
            params,
            cartoon: crate::assets::cartoon(),
            texture: crate::assets::texture(),
            out_depth: None,
            axis: None,
            ignore_affine: false,
            interp: Interp::Linear,
            grid: GridOf::A,
            out_format: None,
            memory_budget: None,
            intensity: Default::default(),
            montage: None,
            html: None,
            progress: false,
        }
    }
}

/// What a job did: its report, and a failed `--validate` (in which case no output was written).
pub struct JobOutput {
    pub report: Report,
    pub validation_failure: Option<Error>,
}

/// What kind of files a path holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Image,
    Volume,
}

/// A NIfTI file or a DICOM series folder is a volume; any other path an image.
pub fn kind(path: &Path) -> Kind {
    if crate::formats::volume::is_volume(path) {
        Kind::Volume
    } else {
        Kind::Image
    }
}

/// Checks that need no reading: inputs of one kind, an output of the same kind that can hold the
/// requested depth.
pub fn check_job(a: &Path, b: &Path, out: &Path, opts: &JobOptions) -> Result<Kind> {
    let k = kind(a);
    if kind(b) != k {
        return Err(Error::Param(format!(
            "{} and {} are not both images or both volumes (NIfTI files, DICOM series folders \
             or multi-frame DICOM files)",
            a.display(),
            b.display()
        )));
    }
    match k {
        Kind::Volume => {
            volume_format(out, opts)?;
            if opts.out_depth.is_some() {
                return Err(Error::Param(
                    "--out-depth applies to images; a fused volume keeps the first input's datatype"
                        .into(),
                ));
            }
            if opts.axis.is_some_and(|ax| ax > 2) {
                return Err(Error::Param("--axis must be 0, 1 or 2".into()));
            }
        }
        Kind::Image => {
            if opts.out_format.is_some() {
                return Err(Error::Param(
                    "--out-format applies to volumes; an image's format is its extension".into(),
                ));
            }
            io::output_format(out)?;
            if let Some(d) = opts.out_depth {
                io::check_output_depth(out, d)?;
            }
        }
    }
    if let Some(m) = &opts.montage {
        io::check_output_depth(m, SampleFormat::U8)?;
    }
    if let Some(h) = &opts.html {
        if k == Kind::Image {
            return Err(Error::Param(format!(
                "--html {}: the slice view is for volumes; for an image, --montage shows the                  sources, the result and the decision maps, and `csfuse evaluate` writes a                  report.html",
                h.display()
            )));
        }
        let ext = h.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !ext.eq_ignore_ascii_case("html") && !ext.eq_ignore_ascii_case("htm") {
            return Err(Error::Param(format!(
                "--html {}: name the page with .html",
                h.display()
            )));
        }
    }
    Ok(k)
}

/// Fuse `a` and `b` into `out` (checked with [`check_job`] first). The result (and the montage)
/// are staged in `set`; the caller commits them with its own outputs (report, sidecar).
pub fn fuse_files(
    s: &mut Session,
    a: &Path,
    b: &Path,
    out: &Path,
    opts: &JobOptions,
    set: &mut OutputSet,
) -> Result<JobOutput> {
    match check_job(a, b, out, opts)? {
        Kind::Image => fuse_images(s, a, b, out, opts, set),
        Kind::Volume => fuse_volumes(s, a, b, out, opts, set),
    }
}

/// What `csfuse fuse` does: every check that can fail first (inputs, outputs, nothing replaced
/// without `force`, no output equal to an input or to one of `protected`), then `a` and `b` fused
/// into `out` on a session of `engine` (backend, precision, validate), with the report at
/// `report`; the result, montage and report are committed together, so a failure leaves none of
/// them. A failed `--validate` writes the report alone and returns its error.
pub fn fuse_to_files(
    (a, b, out): (&Path, &Path, &Path),
    report: Option<&Path>,
    opts: &JobOptions,
    (backend, precision, validate): (session::Backend, crate::real::Precision, bool),
    protected: &[&Path],
    force: bool,
) -> Result<Report> {
    use crate::formats::output::{check_folder_output, check_outputs, remove_stale_temps};
    let kind = check_job(a, b, out, opts)?;
    let mut inputs = vec![a, b];
    inputs.extend(protected);
    let series = kind == Kind::Volume && volume_format(out, opts)? == VolumeFormat::Dicom;
    let mut outs = vec![out];
    outs.extend(report);
    outs.extend(opts.montage.as_deref());
    outs.extend(opts.html.as_deref());
    for o in &outs {
        remove_stale_temps(o);
    }
    if series {
        check_folder_output(out, &inputs, force)?;
        check_outputs(&outs[1..], &inputs, force)?;
    } else {
        check_outputs(&outs, &inputs, force)?;
    }
    let mut session = Session::open(backend, precision, validate)?;
    let mut set = OutputSet::default();
    let done = fuse_files(&mut session, a, b, out, opts, &mut set)?;
    if let Some(r) = report {
        set.stage_bytes(r, &report::json_bytes(&done.report))?;
    }
    set.commit()?;
    match done.validation_failure {
        Some(e) => Err(e),
        None => Ok(done.report),
    }
}

/// A path as report text (lossy where it is not UTF-8; JSON cannot hold raw bytes).
pub fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Refuse a job whose estimated peak memory is over the budget, before any work.
fn check_memory(need: u64, opts: &JobOptions, what: &str) -> Result<u64> {
    let budget = opts.memory_budget.unwrap_or_else(default_memory_budget);
    if need > budget {
        let source = match (opts.memory_budget, allocation::memory_limit()) {
            (Some(_), _) => "--memory-budget".to_string(),
            (None, Some((_, from))) => {
                format!("the default budget, 3/4 of the available memory or of {from}")
            }
            (None, None) => "the default budget, 3/4 of the available memory".to_string(),
        };
        return Err(Error::Memory(format!(
            "{what} needs about {} MiB (estimated peak), over {source} of {} MiB; pass \
             --memory-budget SIZE (e.g. --memory-budget 64G) if the machine has more, or fuse a \
             smaller image",
            need.div_ceil(1 << 20),
            budget >> 20
        )));
    }
    Ok(budget)
}

/// `--validate`'s numbers for GPU and CPU fusions of the same batch of pairs: the worst pair.
// `Session::run` passes its job result (a Vec) by reference.
#[allow(clippy::ptr_arg)]
fn compare_all(g: &Vec<FuseOutput>, c: &Vec<FuseOutput>) -> Validation {
    compare_each(g, c)
        .iter()
        .fold(Validation::new(0.0, 0.0), |w, v| w.worst(v))
}

/// [`compare`] pair by pair.
fn compare_each(g: &[FuseOutput], c: &[FuseOutput]) -> Vec<Validation> {
    g.iter().zip(c).map(|(x, y)| compare(x, y)).collect()
}

/// `--validate`'s numbers for a GPU and a CPU fusion of the same pair.
pub fn compare(g: &FuseOutput, c: &FuseOutput) -> Validation {
    let obj = g
        .objectives
        .iter()
        .zip(&c.objectives)
        .flat_map(|(x, y)| {
            [
                rel_diff(x.cartoon.objective, y.cartoon.objective),
                rel_diff(x.texture.objective, y.texture.objective),
            ]
        })
        .fold(0.0, f64::max);
    Validation::new(max_diffs(&g.fused.data, &c.fused.data), obj)
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// Pairs of `h x w` to fuse in one batch on this session: as many as its engine takes at once
/// and `free` host bytes hold, at `host` bytes per pair, or `cpu` where the batch may also run on
/// the CPU engine (`--validate`, or `auto` after a GPU failure).
fn pairs_in_batch(
    s: &mut Session,
    h: usize,
    w: usize,
    opts: &JobOptions,
    free: u64,
    (host, cpu): (u64, u64),
) -> Result<usize> {
    let per_pair = if s.may_run_on_cpu() { cpu } else { host };
    Ok(s.pairs_per_batch(&opts.cartoon, &opts.texture, h, w)?
        .min((free / per_pair.max(1)) as usize)
        .max(1))
}

/// The start of a report; `Err` with the finished job when `--validate` failed (nothing is written).
fn report_head(
    inputs: [Input; 2],
    s: &Session,
    validation: Option<Validation>,
) -> std::result::Result<Report, Box<JobOutput>> {
    let check = validation.as_ref().map(|v| v.check());
    let report = Report::head(inputs, s, validation);
    match check {
        Some(Err(e)) => Err(Box::new(JobOutput {
            report,
            validation_failure: Some(e),
        })),
        _ => Ok(report),
    }
}

/// Bytes one slice pair in flight takes on the CPU engine: both sources' cartoon and texture
/// coefficient maps plus the CBPDN work arrays, about 8 f64 copies of the maps (measured peak
/// is below this).
pub fn slice_bytes(h: usize, w: usize, opts: &JobOptions) -> u64 {
    // Sizes come from file headers: saturate rather than wrap (the budget check then refuses).
    let per_pixel = 64 * (opts.cartoon.m + opts.texture.m) as u64 + 64;
    per_pixel.saturating_mul((h as u64).saturating_mul(w as u64))
}

/// Estimated peak bytes of a 2-D fusion: [`slice_bytes`] plus the decoded sources and the result
/// (up to three channels each, in f64, twice over for the conversions).
pub fn image_bytes(h: usize, w: usize, opts: &JobOptions) -> u64 {
    slice_bytes(h, w, opts)
        .saturating_add(144u64.saturating_mul((h as u64).saturating_mul(w as u64)))
}
