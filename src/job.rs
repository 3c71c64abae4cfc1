//! Fusing two files into a third, whatever they hold: grayscale or colour images at any supported
//! depth ([`fuse_images`]), or NIfTI volumes slice by slice ([`fuse_volumes`]). `csfuse fuse` runs
//! one job; `csfuse batch` runs many in one [`Session`].

use crate::backend::cpu_engine;
use crate::backend::{max_diffs, rel_diff, Session, Validation};
use crate::colour;
use crate::dictionary::Dictionary;
use crate::error::{Error, Result};
use crate::fuse::{fuse_pair, FuseOutput, FuseParams};
use crate::intensity::{output_scaling, pair_scalings, IntensityRange, Scaling};
use crate::io::{self, Raster, SampleFormat};
use crate::montage::{self, Panel};
use crate::output::OutputSet;
use crate::plane::Plane;
use crate::progress::Progress;
use crate::volume::{self, Slicer};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    /// Bytes the job's estimated peak may reach (`None`: [`default_memory_budget`]).
    pub memory_budget: Option<u64>,
    /// How 16-bit, float and NIfTI sources map to [0, 1].
    pub intensity: IntensityRange,
    pub montage: Option<PathBuf>,
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
            memory_budget: None,
            intensity: Default::default(),
            montage: None,
            progress: false,
        }
    }
}

/// What a job did: its report, and a failed `--validate` (in which case no output was written).
pub struct JobOutput {
    pub report: Value,
    pub validation_failure: Option<Error>,
}

/// What kind of files a path holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Image,
    Volume,
}

pub fn kind(path: &Path) -> Kind {
    if volume::is_nifti(path) {
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
            "{} and {} are not both images or both NIfTI volumes",
            a.display(),
            b.display()
        )));
    }
    match k {
        Kind::Volume => {
            if kind(out) != Kind::Volume {
                return Err(Error::BadOutput {
                    path: out.to_path_buf(),
                    msg: "volumes are written as NIfTI: use .nii or .nii.gz".into(),
                });
            }
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
            io::output_format(out)?;
            if let Some(d) = opts.out_depth {
                io::check_output_depth(out, d)?;
            }
        }
    }
    if let Some(m) = &opts.montage {
        io::check_output_depth(m, SampleFormat::U8)?;
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

/// A path as report text (lossy where it is not UTF-8; JSON cannot hold raw bytes).
pub fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Refuse a job whose estimated peak memory is over the budget, before any work.
fn check_memory(need: u64, opts: &JobOptions, what: &str) -> Result<u64> {
    let budget = opts.memory_budget.unwrap_or_else(default_memory_budget);
    if need > budget {
        let source = if opts.memory_budget.is_some() {
            "--memory-budget"
        } else {
            "the default budget, 3/4 of the available memory"
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

/// The intensity rule of [`crate::intensity`] for an image.
fn image_scaling(r: &Raster, range: IntensityRange, path: &Path) -> Scaling {
    let samples: Vec<f64> = r.samples().collect();
    range.scaling(&samples, r.format == SampleFormat::U8, &path_text(path))
}

/// An image in [0, 1]: its luminance (the gray plane, or Y) and chroma when it is colour.
struct Unit {
    luma: Plane,
    chroma: Option<(Plane, Plane)>,
}

fn to_unit(r: &Raster, s: &Scaling) -> Unit {
    let planes: Vec<Plane> = r
        .channels
        .iter()
        .map(|c| Plane::from_vec(r.h, r.w, c.iter().map(|v| s.to_unit(*v)).collect()))
        .collect();
    match <[Plane; 3]>::try_from(planes) {
        Ok(rgb) => {
            let [y, cb, cr] = colour::split(&rgb);
            Unit {
                luma: y,
                chroma: Some((cb, cr)),
            }
        }
        Err(mut gray) => Unit {
            luma: gray.remove(0),
            chroma: None,
        },
    }
}

/// The fused luminance with the chroma rule of [`colour`]: none for two gray sources, the colour
/// source's for one, the saturation-weighted blend for two.
fn recolour(y: &Plane, a: &Unit, b: &Unit) -> Vec<Plane> {
    let chroma = match (&a.chroma, &b.chroma) {
        (None, None) => return vec![y.clone()],
        (Some(c), None) | (None, Some(c)) => (c.0.clone(), c.1.clone()),
        (Some(ca), Some(cb)) => colour::blend_chroma((&ca.0, &ca.1), (&cb.0, &cb.1)),
    };
    colour::merge(y, &chroma.0, &chroma.1).into()
}

fn colour_rule(a: &Unit, b: &Unit) -> &'static str {
    match (a.chroma.is_some(), b.chroma.is_some()) {
        (false, false) => "grayscale",
        (true, true) => "Y fused, Cb/Cr blended by saturation",
        (true, false) => "Y fused, Cb/Cr from A",
        (false, true) => "Y fused, Cb/Cr from B",
    }
}

/// Map [0, 1] planes to stored samples.
fn from_unit(planes: &[Plane], s: &Scaling, format: SampleFormat) -> Vec<Vec<f64>> {
    let integer = format.is_integer();
    planes
        .iter()
        .map(|p| p.data.iter().map(|u| s.stored(*u, integer)).collect())
        .collect()
}

fn describe_raster(path: &Path, r: &Raster, s: &Scaling) -> Value {
    json!({"path": path_text(path), "width": r.w, "height": r.h, "format": r.format,
           "colour": r.is_colour(), "scaling": s})
}

/// Fuse two images into `out` (a one-pair [`fuse_image_pairs`]).
pub fn fuse_images(
    s: &mut Session,
    a: &Path,
    b: &Path,
    out: &Path,
    opts: &JobOptions,
    set: &mut OutputSet,
) -> Result<JobOutput> {
    let job = ImagePair::read(a, b, out, opts)?;
    let mut done = fuse_image_pairs(s, &[&job], opts, std::slice::from_mut(set))?;
    done.pop().expect("one pair in, one result out")
}

/// A 2-D job between reading and writing: both sources decoded and mapped to [0, 1].
pub struct ImagePair {
    a: PathBuf,
    b: PathBuf,
    out: PathBuf,
    montage: Option<PathBuf>,
    out_depth: Option<SampleFormat>,
    /// The report's description of the inputs.
    inputs: Value,
    h: usize,
    w: usize,
    /// The deeper of the two sources' sample formats.
    format: SampleFormat,
    scalings: [Scaling; 2],
    ua: Unit,
    ub: Unit,
    t0: Instant,
    read_ms: f64,
}

impl ImagePair {
    /// Read `a` and `b` for fusing into `out` with `opts` (its output depth and montage are the
    /// pair's own). Sizes and memory come from the headers first: nothing is decoded for a pair
    /// that cannot run.
    pub fn read(a: &Path, b: &Path, out: &Path, opts: &JobOptions) -> Result<ImagePair> {
        let t0 = Instant::now();
        let ((ah, aw), (bh, bw)) = (io::image_dims(a)?, io::image_dims(b)?);
        if (ah, aw) != (bh, bw) {
            return Err(Error::SizeMismatch {
                a: a.to_path_buf(),
                aw,
                ah,
                b: b.to_path_buf(),
                bw,
                bh,
            });
        }
        opts.cartoon.check_fits(ah, aw)?;
        opts.texture.check_fits(ah, aw)?;
        check_memory(
            image_bytes(ah, aw, opts),
            opts,
            &format!("fusing two {aw}x{ah} images"),
        )?;
        let ra = io::read_image(a)?;
        let rb = io::read_image(b)?;
        if (ra.h, ra.w) != (ah, aw) || (rb.h, rb.w) != (bh, bw) {
            return Err(Error::Param(format!(
                "{} or {} changed while being read",
                a.display(),
                b.display()
            )));
        }
        let (sa, sb) = pair_scalings(
            image_scaling(&ra, opts.intensity, a),
            image_scaling(&rb, opts.intensity, b),
        );
        Ok(ImagePair {
            a: a.to_path_buf(),
            b: b.to_path_buf(),
            out: out.to_path_buf(),
            montage: opts.montage.clone(),
            out_depth: opts.out_depth,
            inputs: json!([describe_raster(a, &ra, &sa), describe_raster(b, &rb, &sb)]),
            h: ah,
            w: aw,
            format: ra.format.max(rb.format),
            ua: to_unit(&ra, &sa),
            ub: to_unit(&rb, &sb),
            scalings: [sa, sb],
            t0,
            read_ms: ms_since(t0),
        })
    }

    /// Height and width.
    pub fn size(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// Stage the fused image (and montage) in `set`, and report.
    fn finish(
        &self,
        s: &Session,
        fo: &FuseOutput,
        validation: Option<Validation>,
        opts: &JobOptions,
        set: &mut OutputSet,
    ) -> Result<JobOutput> {
        let mut report = match report_head(self.inputs.clone(), s, validation) {
            Ok(r) => r,
            Err(failed) => return Ok(failed),
        };
        let (out, ua, ub) = (&self.out, &self.ua, &self.ub);
        let t_write = Instant::now();
        let fused = recolour(&fo.fused, ua, ub);
        let format = match self.out_depth {
            Some(d) => d,
            None => io::writable_depth(io::output_format(out)?, self.format),
        };
        let repr = format.is_integer().then(|| (0.0, format.max_value()));
        let so = output_scaling(&self.scalings, repr);
        let raster = Raster {
            h: self.h,
            w: self.w,
            channels: from_unit(&fused, &so, format),
            format,
        };
        set.stage_bytes(out, &io::encode_image(out, &raster)?)?;
        if let Some(m) = &self.montage {
            write_montage(set, m, ua, ub, &fused, fo)?;
        }
        let write_ms = ms_since(t_write);
        log::info!(
            "wrote {} ({format:?}{}) in {:.0} ms total (fusion {:.0} ms{})",
            out.display(),
            if raster.is_colour() { ", RGB" } else { "" },
            ms_since(self.t0),
            fo.times.total_ms,
            match fo.times.batch_pairs {
                1 => String::new(),
                n => format!(" for a batch of {n} pairs"),
            }
        );
        let extra = json!({
            "output": {"path": path_text(out), "format": format, "colour": raster.is_colour(), "scaling": so},
            "intensity_range": opts.intensity,
            "colour_rule": colour_rule(ua, ub),
            "dictionaries": dict_json(opts),
            "params": opts.params,
            "batch_pairs": fo.times.batch_pairs,
            "timings_ms": {
                "read": self.read_ms,
                "lowpass": fo.times.lowpass_ms,
                "decompose": fo.times.decompose_ms,
                "fuse_rule": fo.times.fuse_rule_ms,
                "synthesis": fo.times.synthesis_ms,
                "fusion_total": fo.times.total_ms,
                "write": write_ms,
                "stage_clock": fo.times.clock,
            },
            "objectives": {"a": fo.objectives[0], "b": fo.objectives[1]},
            "decision_fraction_from_a": {
                "cartoon": fo.cartoon_decision.fraction_a(),
                "texture": fo.texture_decision.fraction_a(),
            },
        });
        merge(&mut report, extra);
        Ok(JobOutput {
            report,
            validation_failure: None,
        })
    }
}

/// Fuse same-size image pairs as one batch (one set of dispatches on a GPU) and stage each
/// result in its own set (`sets[i]` for `jobs[i]`). `Err` when the fusion failed; otherwise one
/// result per pair, since staging one pair's files can fail alone.
pub fn fuse_image_pairs(
    s: &mut Session,
    jobs: &[&ImagePair],
    opts: &JobOptions,
    sets: &mut [OutputSet],
) -> Result<Vec<Result<JobOutput>>> {
    assert_eq!(jobs.len(), sets.len(), "one output set per pair");
    for j in jobs {
        log::info!(
            "fusing {} + {} ({}x{}, {})",
            j.a.display(),
            j.b.display(),
            j.w,
            j.h,
            colour_rule(&j.ua, &j.ub)
        );
    }
    let pairs: Vec<(&Plane, &Plane)> = jobs.iter().map(|j| (&j.ua.luma, &j.ub.luma)).collect();
    // A bar over the batch's sparse-coding solves on a terminal; the log is unchanged.
    let solves = 2 * opts.params.mca.outer_iters as u64;
    let mut bar = Progress::bar_only(solves, "sparse-coding solves", opts.progress);
    let (fos, validations) = s.run(
        |e| {
            e.fuse_batch(
                &pairs,
                &opts.cartoon,
                &opts.texture,
                &opts.params,
                &mut || bar.inc(1),
            )
        },
        |g, c| compare_each(g, c),
    )?;
    bar.finish();
    Ok(jobs
        .iter()
        .zip(sets.iter_mut())
        .enumerate()
        .map(|(i, (j, set))| {
            let v = validations.as_ref().map(|v| v[i].clone());
            j.finish(s, &fos[i], v, opts, set)
        })
        .collect())
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

/// Image pairs of `h x w` that `batch` fuses together on this session: 1 on CPU sessions (there
/// pairs are fused one after another, each with all cores), more on a GPU, within the memory
/// budget for the decoded sources held until their batch runs.
pub fn image_pairs_per_batch(
    s: &mut Session,
    h: usize,
    w: usize,
    opts: &JobOptions,
) -> Result<usize> {
    if s.parallel_cpu()?.is_some() {
        return Ok(1);
    }
    let budget = opts.memory_budget.unwrap_or_else(default_memory_budget);
    let np = (h as u64).saturating_mul(w as u64);
    let host = (144 + 64u64).saturating_mul(np);
    pairs_in_batch(s, h, w, opts, budget, (host, image_bytes(h, w, opts)))
}

/// The start of a report; `Err` with the finished job when `--validate` failed (nothing is written).
fn report_head(
    inputs: Value,
    s: &Session,
    validation: Option<Validation>,
) -> std::result::Result<Value, JobOutput> {
    let report = json!({
        "csfuse_version": env!("CARGO_PKG_VERSION"),
        "inputs": inputs,
        "backend": s.describe(),
        "adapter": s.adapter(),
        "gpu": s.counters().map(|c| json!({"counters": c})),
        "validation": validation,
    });
    match validation.map(|v| v.check()) {
        Some(Err(e)) => Err(JobOutput {
            report,
            validation_failure: Some(e),
        }),
        _ => Ok(report),
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

fn dict_json(opts: &JobOptions) -> Value {
    let (dc, dt) = (&opts.cartoon, &opts.texture);
    json!({
        "cartoon": {"source": path_text(&dc.source), "shape": [dc.fh, dc.fw, dc.m]},
        "texture": {"source": path_text(&dt.source), "shape": [dt.fh, dt.fw, dt.m]},
    })
}

fn write_montage(
    set: &mut OutputSet,
    path: &Path,
    a: &Unit,
    b: &Unit,
    fused: &[Plane],
    fo: &FuseOutput,
) -> Result<()> {
    let show = |label: &str, u: &Unit| match &u.chroma {
        Some(c) => Panel {
            label: label.into(),
            channels: colour::merge(&u.luma, &c.0, &c.1).into(),
        },
        None => Panel::gray(label, u.luma.clone()),
    };
    let panels = [
        show("A", a),
        show("B", b),
        Panel {
            label: "FUSED".into(),
            channels: fused.to_vec(),
        },
        Panel::decision("CARTOON: WHITE=A", &fo.cartoon_decision),
        Panel::decision("TEXTURE: WHITE=A", &fo.texture_decision),
    ];
    set.stage_bytes(path, &montage::encode(path, &panels)?)?;
    log::info!("montage {}", path.display());
    Ok(())
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

/// Three quarters of the memory the kernel reports as available (MemAvailable), or 4 GiB if
/// unknown.
pub fn default_memory_budget() -> u64 {
    let avail = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    });
    avail.map_or(4 << 30, |kib| kib * 1024 / 4 * 3)
}

/// A slice that is constant in both sources (background) needs no decomposition: its fusion is
/// the mean of the two, which is what the pipeline would produce (zero detail layers).
fn is_empty(a: &Plane, b: &Plane) -> bool {
    let flat = |p: &Plane| {
        let r = Scaling::min_max(p.data.iter().copied());
        r.hi - r.lo <= 1e-6
    };
    flat(a) && flat(b)
}

/// The intensity rule for a volume.
fn volume_scaling(v: &volume::Volume, range: IntensityRange, path: &Path) -> Scaling {
    let samples: Vec<f64> = v.data.iter().map(|x| *x as f64).collect();
    range.scaling(&samples, false, &path_text(path))
}

pub fn fuse_volumes(
    s: &mut Session,
    a: &Path,
    b: &Path,
    out: &Path,
    opts: &JobOptions,
    set: &mut OutputSet,
) -> Result<JobOutput> {
    let t0 = Instant::now();
    // The headers are checked against each other and the memory budget before any voxel is read.
    let (ia, ib) = (volume::read_info(a)?, volume::read_info(b)?);
    volume::check_same_shape((a, ia.dims), (b, ib.dims))?;
    let slicer = Slicer {
        dims: ia.dims,
        axis: opts.axis.unwrap_or(2),
    };
    let (h, w) = slicer.shape();
    opts.cartoon.check_fits(h, w)?;
    opts.texture.check_fits(h, w)?;
    // Both volumes and the result as f32, the larger read's transient (which also covers the
    // intensity range's two f64 copies), the writer's copy.
    let fixed = 12 * ia.voxels() + ia.read_bytes().max(ib.read_bytes()) + 8 * ia.voxels();
    let per_slice = slice_bytes(h, w, opts);
    let budget = check_memory(
        fixed + per_slice,
        opts,
        &format!("fusing two {:?} volumes", ia.dims),
    )?;
    let va = volume::read(a)?;
    let vb = volume::read(b)?;
    volume::check_same_grid((a, &va), (b, &vb), opts.ignore_affine)?;
    let (sa, sb) = pair_scalings(
        volume_scaling(&va, opts.intensity, a),
        volume_scaling(&vb, opts.intensity, b),
    );
    let datatype = volume::output_datatype(&va);
    let repr = volume::repr_range(datatype);
    let so = output_scaling(&[sa, sb], repr);
    let read_ms = ms_since(t0);

    let cpu = s.parallel_cpu()?;
    // The CPU fuses slice pairs side by side, one engine each; the GPU fuses a batch of pairs
    // in every dispatch, as many as its limits allow (the host then holds only planes).
    let in_flight = match cpu {
        Some(_) => (((budget - fixed) / per_slice) as usize).clamp(1, rayon::current_num_threads()),
        // A GPU batch leaves the host its planes.
        None => pairs_in_batch(
            s,
            h,
            w,
            opts,
            budget - fixed,
            (64 * (h * w) as u64, per_slice),
        )?,
    };
    let n = slicer.count();
    log::info!(
        "fusing volumes {} + {} ({:?}, {} slices of {}x{} along axis {}), {} {} on {}",
        a.display(),
        b.display(),
        va.dims,
        n,
        w,
        h,
        slicer.axis,
        in_flight,
        if cpu.is_some() {
            "in flight"
        } else {
            "slice pairs per batch"
        },
        s.describe()
    );

    let mut fused_data = vec![0f32; va.data.len()];
    let mut clamped = 0usize;
    let mut progress = Progress::new(n as u64, "slices", opts.progress);
    let (mut n_fused, mut n_empty) = (0usize, 0usize);
    let mut worst = Validation::new(0.0, 0.0);
    let mut validated = false;
    let mut batches = 0usize;
    // The slice shown in --montage: the non-empty one nearest the middle.
    let mut shown: Option<(usize, Plane, Plane, FuseOutput)> = None;
    let t_fuse = Instant::now();
    let indices: Vec<usize> = (0..n).collect();
    for chunk in indices.chunks(in_flight) {
        let planes: Vec<(usize, Plane, Plane)> = chunk
            .iter()
            .map(|&k| {
                (
                    k,
                    slicer.get(&va.data, k, |v| sa.to_unit(v)),
                    slicer.get(&vb.data, k, |v| sb.to_unit(v)),
                )
            })
            .collect();
        let (empty, work): (Vec<_>, Vec<_>) =
            planes.into_iter().partition(|(_, pa, pb)| is_empty(pa, pb));
        let results: Vec<(usize, Plane, Plane, FuseOutput)> = match cpu {
            Some(prec) => work
                .into_par_iter()
                .map_init(
                    || cpu_engine(prec),
                    |e, (k, pa, pb)| {
                        let fo = fuse_pair(
                            e.as_mut(),
                            &pa,
                            &pb,
                            &opts.cartoon,
                            &opts.texture,
                            &opts.params,
                        )?;
                        Ok((k, pa, pb, fo))
                    },
                )
                .collect::<Result<_>>()?,
            None if work.is_empty() => Vec::new(),
            None => {
                let pairs: Vec<(&Plane, &Plane)> = work.iter().map(|(_, a, b)| (a, b)).collect();
                let (fos, v) = s.run(
                    |e| {
                        e.fuse_batch(
                            &pairs,
                            &opts.cartoon,
                            &opts.texture,
                            &opts.params,
                            &mut || {},
                        )
                    },
                    compare_all,
                )?;
                batches += 1;
                if let Some(v) = v {
                    validated = true;
                    worst = worst.worst(&v);
                }
                work.into_iter()
                    .zip(fos)
                    .map(|((k, pa, pb), fo)| (k, pa, pb, fo))
                    .collect()
            }
        };
        for (k, pa, pb) in &empty {
            let mean = Plane::from_vec(
                h,
                w,
                pa.data
                    .iter()
                    .zip(&pb.data)
                    .map(|(x, y)| 0.5 * (x + y))
                    .collect(),
            );
            store(
                &slicer,
                &mut fused_data,
                *k,
                &mean,
                &so,
                repr.is_some(),
                &mut clamped,
            )?;
        }
        n_empty += empty.len();
        n_fused += results.len();
        for (k, pa, pb, fo) in results {
            store(
                &slicer,
                &mut fused_data,
                k,
                &fo.fused,
                &so,
                repr.is_some(),
                &mut clamped,
            )?;
            let better = shown
                .as_ref()
                .is_none_or(|(j, ..)| k.abs_diff(n / 2) < j.abs_diff(n / 2));
            if opts.montage.is_some() && better {
                shown = Some((k, pa, pb, fo));
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    let fuse_ms = ms_since(t_fuse);
    let validation = validated.then_some(worst);
    let inputs = json!([
        {"path": path_text(a), "dims": va.dims, "datatype": format!("{:?}", va.datatype), "scaling": sa},
        {"path": path_text(b), "dims": vb.dims, "datatype": format!("{:?}", vb.datatype), "scaling": sb},
    ]);
    let mut report = match report_head(inputs, s, validation) {
        Ok(r) => r,
        Err(failed) => return Ok(failed),
    };
    let t_write = Instant::now();
    io::warn_clamped(out, clamped);
    volume::stage(set, out, &va, &fused_data, datatype)?;
    if let (Some(m), Some((k, pa, pb, fo))) = (&opts.montage, &shown) {
        let unit = |p: &Plane| Unit {
            luma: p.clone(),
            chroma: None,
        };
        log::info!("montage shows slice {k}");
        write_montage(
            set,
            m,
            &unit(pa),
            &unit(pb),
            std::slice::from_ref(&fo.fused),
            fo,
        )?;
    }
    let write_ms = ms_since(t_write);
    log::info!(
        "wrote {} ({datatype:?}): {n_fused} slices fused, {n_empty} empty passed through, {:.1} s total ({:.2} s per fused slice pair)",
        out.display(),
        ms_since(t0) / 1e3,
        fuse_ms / 1e3 / n_fused.max(1) as f64
    );
    merge(
        &mut report,
        json!({
            "output": {"path": path_text(out), "datatype": format!("{datatype:?}"), "scaling": so},
            "intensity_range": opts.intensity,
            "axis": slicer.axis,
            "slices": {"total": n, "fused": n_fused, "empty_passed_through": n_empty,
                       "in_flight": in_flight, "memory_budget_bytes": budget,
                       "gpu_batches": (cpu.is_none()).then_some(batches)},
            "montage_slice": shown.as_ref().map(|s| s.0),
            "dictionaries": dict_json(opts),
            "params": opts.params,
            "timings_ms": {
                "read": read_ms,
                "fusion_total": fuse_ms,
                "per_fused_slice": fuse_ms / n_fused.max(1) as f64,
                "write": write_ms,
            },
        }),
    );
    Ok(JobOutput {
        report,
        validation_failure: None,
    })
}

/// Store a fused [0, 1] slice as output values (float32, clamped to its range; NaN refused).
fn store(
    slicer: &Slicer,
    data: &mut [f32],
    k: usize,
    p: &Plane,
    so: &Scaling,
    integer: bool,
    clamped: &mut usize,
) -> Result<()> {
    let mapped = p
        .data
        .iter()
        .map(|u| io::to_f32(so.stored(*u, integer), clamped).map(f64::from))
        .collect::<Result<Vec<f64>>>()?;
    slicer.put(data, k, &Plane::from_vec(p.h, p.w, mapped));
    Ok(())
}
