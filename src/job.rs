//! Fusing two files into a third, whatever they hold: grayscale or colour images at any supported
//! depth ([`fuse_images`]), or NIfTI volumes slice by slice ([`fuse_volumes`]). `csfuse fuse` runs
//! one job; `csfuse batch` runs many in one [`Session`].

use crate::backend::{max_diffs, rel_diff, Session, Validation};
use crate::colour;
use crate::dictionary::Dictionary;
use crate::engine::cpu_engine;
use crate::error::{Error, Result};
use crate::fuse::{fuse_pair, FuseOutput, FuseParams};
use crate::intensity::{output_scaling, Scaling};
use crate::io::{self, Raster, SampleFormat};
use crate::montage::{self, Panel};
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
    /// Bytes the slices in flight may use (`None`: half the available memory).
    pub memory_budget: Option<u64>,
    pub montage: Option<PathBuf>,
    /// Show progress (bar or log lines) for volumes.
    pub progress: bool,
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

/// Fuse `a` and `b` into `out` (checked with [`check_job`] first).
pub fn fuse_files(
    s: &mut Session,
    a: &Path,
    b: &Path,
    out: &Path,
    opts: &JobOptions,
) -> Result<JobOutput> {
    match check_job(a, b, out, opts)? {
        Kind::Image => fuse_images(s, a, b, out, opts),
        Kind::Volume => fuse_volumes(s, a, b, out, opts),
    }
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
fn image_scaling(r: &Raster) -> Scaling {
    match r.format {
        SampleFormat::U8 => Scaling::full(255.0),
        _ => Scaling::min_max(r.samples()),
    }
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
    json!({"path": path, "width": r.w, "height": r.h, "format": r.format,
           "colour": r.is_colour(), "scaling": s})
}

pub fn fuse_images(
    s: &mut Session,
    a: &Path,
    b: &Path,
    out: &Path,
    opts: &JobOptions,
) -> Result<JobOutput> {
    let t0 = Instant::now();
    let ra = io::read_image(a)?;
    let rb = io::read_image(b)?;
    if (ra.h, ra.w) != (rb.h, rb.w) {
        return Err(Error::SizeMismatch {
            a: a.to_path_buf(),
            aw: ra.w,
            ah: ra.h,
            b: b.to_path_buf(),
            bw: rb.w,
            bh: rb.h,
        });
    }
    opts.cartoon.check_fits(ra.h, ra.w)?;
    opts.texture.check_fits(ra.h, ra.w)?;
    let (sa, sb) = (image_scaling(&ra), image_scaling(&rb));
    let (ua, ub) = (to_unit(&ra, &sa), to_unit(&rb, &sb));
    let read_ms = ms_since(t0);
    log::info!(
        "fusing {} + {} ({}x{}, {})",
        a.display(),
        b.display(),
        ra.w,
        ra.h,
        colour_rule(&ua, &ub)
    );
    let (fo, validation) = s.run(
        |e| {
            fuse_pair(
                e,
                &ua.luma,
                &ub.luma,
                &opts.cartoon,
                &opts.texture,
                &opts.params,
            )
        },
        compare,
    )?;
    let inputs = json!([describe_raster(a, &ra, &sa), describe_raster(b, &rb, &sb)]);
    let mut report = match report_head(inputs, s, validation) {
        Ok(r) => r,
        Err(failed) => return Ok(failed),
    };
    let t_write = Instant::now();
    let fused = recolour(&fo.fused, &ua, &ub);
    let format = match opts.out_depth {
        Some(d) => d,
        None => io::writable_depth(io::output_format(out)?, ra.format.max(rb.format)),
    };
    let repr = format.is_integer().then(|| (0.0, format.max_value()));
    let so = output_scaling(&[sa, sb], repr);
    let raster = Raster {
        h: ra.h,
        w: ra.w,
        channels: from_unit(&fused, &so, format),
        format,
    };
    io::write_image(out, &raster)?;
    if let Some(m) = &opts.montage {
        write_montage(m, &ua, &ub, &fused, &fo)?;
    }
    let write_ms = ms_since(t_write);
    log::info!(
        "wrote {} ({format:?}{}) in {:.0} ms total (fusion {:.0} ms)",
        out.display(),
        if raster.is_colour() { ", RGB" } else { "" },
        ms_since(t0),
        fo.times.total_ms
    );
    let extra = json!({
        "output": {"path": out, "format": format, "colour": raster.is_colour(), "scaling": so},
        "colour_rule": colour_rule(&ua, &ub),
        "dictionaries": dict_json(opts),
        "params": opts.params,
        "timings_ms": {
            "read": read_ms,
            "lowpass": fo.times.lowpass_ms,
            "decompose": fo.times.decompose_ms,
            "fuse_rule": fo.times.fuse_rule_ms,
            "synthesis": fo.times.synthesis_ms,
            "fusion_total": fo.times.total_ms,
            "write": write_ms,
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
        "cartoon": {"source": dc.source, "shape": [dc.fh, dc.fw, dc.m]},
        "texture": {"source": dt.source, "shape": [dt.fh, dt.fw, dt.m]},
    })
}

fn write_montage(path: &Path, a: &Unit, b: &Unit, fused: &[Plane], fo: &FuseOutput) -> Result<()> {
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
    montage::write(path, &panels)?;
    log::info!("wrote montage {}", path.display());
    Ok(())
}

/// Bytes one slice pair in flight takes on the CPU engine: both sources' cartoon and texture
/// coefficient maps plus the CBPDN work arrays, about 8 f64 copies of the maps (measured peak
/// is below this).
pub fn slice_bytes(h: usize, w: usize, opts: &JobOptions) -> u64 {
    (8 * (opts.cartoon.m + opts.texture.m) * h * w * 8 + 64 * h * w) as u64
}

/// Half of the memory the kernel reports as available (MemAvailable), or 4 GiB if unknown.
pub fn default_memory_budget() -> u64 {
    let avail = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
    });
    avail.map_or(4 << 30, |kib| kib * 1024 / 2)
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

pub fn fuse_volumes(
    s: &mut Session,
    a: &Path,
    b: &Path,
    out: &Path,
    opts: &JobOptions,
) -> Result<JobOutput> {
    let t0 = Instant::now();
    let va = volume::read(a)?;
    let vb = volume::read(b)?;
    volume::check_same_grid((a, &va), (b, &vb), opts.ignore_affine)?;
    let slicer = Slicer {
        dims: va.dims,
        axis: opts.axis.unwrap_or(2),
    };
    let (h, w) = slicer.shape();
    opts.cartoon.check_fits(h, w)?;
    opts.texture.check_fits(h, w)?;
    let sa = Scaling::min_max(va.data.iter().map(|v| *v as f64));
    let sb = Scaling::min_max(vb.data.iter().map(|v| *v as f64));
    let datatype = volume::output_datatype(&va);
    let repr = volume::repr_range(datatype);
    let so = output_scaling(&[sa, sb], repr);
    let read_ms = ms_since(t0);

    let budget = opts.memory_budget.unwrap_or_else(default_memory_budget);
    let per_slice = slice_bytes(h, w, opts);
    let cpu = s.parallel_cpu();
    let in_flight = match cpu {
        Some(_) => ((budget / per_slice) as usize).clamp(1, rayon::current_num_threads()),
        None => 1,
    };
    if budget < per_slice {
        log::warn!(
            "--memory-budget {} MiB is below one slice pair's need (~{} MiB); fusing one at a time",
            budget >> 20,
            per_slice >> 20
        );
    }
    let n = slicer.count();
    log::info!(
        "fusing volumes {} + {} ({:?}, {} slices of {}x{} along axis {}), {} in flight on {}",
        a.display(),
        b.display(),
        va.dims,
        n,
        w,
        h,
        slicer.axis,
        in_flight,
        s.describe()
    );

    let mut fused_data = vec![0f32; va.data.len()];
    let mut progress = Progress::new(n as u64, "slices", opts.progress);
    let (mut n_fused, mut n_empty) = (0usize, 0usize);
    let mut worst = Validation::new(0.0, 0.0);
    let mut validated = false;
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
            None => {
                let mut r = Vec::new();
                for (k, pa, pb) in work {
                    let (fo, v) = s.run(
                        |e| fuse_pair(e, &pa, &pb, &opts.cartoon, &opts.texture, &opts.params),
                        compare,
                    )?;
                    if let Some(v) = v {
                        validated = true;
                        worst = Validation::new(
                            worst.max_abs_diff.max(v.max_abs_diff),
                            worst.objective_rel_diff.max(v.objective_rel_diff),
                        );
                    }
                    r.push((k, pa, pb, fo));
                }
                r
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
            store(&slicer, &mut fused_data, *k, &mean, &so, repr.is_some());
        }
        n_empty += empty.len();
        n_fused += results.len();
        for (k, pa, pb, fo) in results {
            store(&slicer, &mut fused_data, k, &fo.fused, &so, repr.is_some());
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
        {"path": a, "dims": va.dims, "datatype": format!("{:?}", va.datatype), "scaling": sa},
        {"path": b, "dims": vb.dims, "datatype": format!("{:?}", vb.datatype), "scaling": sb},
    ]);
    let mut report = match report_head(inputs, s, validation) {
        Ok(r) => r,
        Err(failed) => return Ok(failed),
    };
    let t_write = Instant::now();
    volume::write(out, &va, &fused_data, datatype)?;
    if let (Some(m), Some((k, pa, pb, fo))) = (&opts.montage, &shown) {
        let unit = |p: &Plane| Unit {
            luma: p.clone(),
            chroma: None,
        };
        log::info!("montage shows slice {k}");
        write_montage(m, &unit(pa), &unit(pb), std::slice::from_ref(&fo.fused), fo)?;
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
            "output": {"path": out, "datatype": format!("{datatype:?}"), "scaling": so},
            "axis": slicer.axis,
            "slices": {"total": n, "fused": n_fused, "empty_passed_through": n_empty,
                       "in_flight": in_flight, "memory_budget_bytes": budget},
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

/// Store a fused [0, 1] slice as output values.
fn store(slicer: &Slicer, data: &mut [f32], k: usize, p: &Plane, so: &Scaling, integer: bool) {
    let mapped = p.data.iter().map(|u| so.stored(*u, integer)).collect();
    slicer.put(data, k, &Plane::from_vec(p.h, p.w, mapped));
}
