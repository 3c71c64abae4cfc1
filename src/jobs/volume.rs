//! Volume jobs (NIfTI files, DICOM series): fused slice by slice along an axis, many slice pairs
//! per batch, written as NIfTI or as a DICOM series.

use super::image::{lossy_warning, write_montage, Unit};
use super::*;
use crate::formats::dicom::fused;
use crate::formats::volume;
use crate::pages::volume_view::{self, Shown};
use crate::resample::{lowest, overlap, resample, Grid};
use report::{GridRecord, Resampling};

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
fn volume_scaling(v: &nifti::Volume, range: IntensityRange, path: &Path) -> Scaling {
    let samples: Vec<f64> = v.data.iter().map(|x| *x as f64).collect();
    range.scaling(&samples, false, &path_text(path))
}

/// The least share of the fused grid's voxels that must lie inside the resampled volume's field
/// of view: less means the two are not in one patient frame.
const MIN_OVERLAP: f64 = 0.10;

/// How two volumes come onto one grid, decided from their headers before any voxel is read.
pub(crate) struct GridPlan {
    /// The grid they are fused on, and whose it is.
    pub grid: Grid,
    pub on: GridOf,
    /// The other input, when it must be resampled onto `grid` (the grids differ).
    pub moved: Option<GridOf>,
    /// The inputs' own grids.
    pub inputs: [Grid; 2],
}

impl GridPlan {
    /// Fuse on `opts.grid`'s grid, resampling the other input when the grids differ; refuse
    /// affines that place nothing and inputs that hardly overlap. `--ignore-affine` fuses voxel by
    /// voxel whatever the affines say, which needs one shape.
    pub fn new(a: (&Path, Grid), b: (&Path, Grid), opts: &JobOptions) -> Result<GridPlan> {
        let inputs = [a.1, b.1];
        let same = |moved| GridPlan {
            grid: a.1,
            on: GridOf::A,
            moved,
            inputs,
        };
        if a.1.same_as(&b.1) {
            return Ok(same(None));
        }
        if opts.ignore_affine {
            nifti::check_same_shape((a.0, a.1.dims), (b.0, b.1.dims)).map_err(|e| {
                Error::Param(format!(
                    "{e}; --ignore-affine fuses voxel by voxel, which needs one shape: leave it out \
                     to resample one volume onto the other's grid from their affines"
                ))
            })?;
            log::warn!(
                "affines of {} and {} differ; fusing voxel by voxel anyway (--ignore-affine), the \
                 output keeps the first's",
                a.0.display(),
                b.0.display()
            );
            return Ok(same(None));
        }
        a.1.check(a.0)?;
        b.1.check(b.0)?;
        let (on, (fixed, moved)) = match opts.grid {
            GridOf::A => (GridOf::A, (a, b)),
            GridOf::B => (GridOf::B, (b, a)),
        };
        let inside = overlap(&moved.1, &fixed.1).expect("affines checked");
        let share = inside as f64 / fixed.1.voxels().max(1) as f64;
        if share < MIN_OVERLAP {
            return Err(Error::Param(format!(
                "{} and {} hardly overlap in space: {:.1} % of {}'s voxels lie inside {}'s field \
                 of view (at least {:.0} % is needed), so they are not in one patient frame. \
                 Register one onto the other first (docs/volumes-and-batch.md#registration), or \
                 pass --ignore-affine if they share one grid and only the headers disagree",
                a.0.display(),
                b.0.display(),
                100.0 * share,
                fixed.0.display(),
                moved.0.display(),
                100.0 * MIN_OVERLAP
            )));
        }
        log::info!(
            "{} and {} are on different grids ({:?} at {:.3?} mm and {:?} at {:.3?} mm): \
             resampling {} onto {}'s grid ({}); {:.1} % of it lies inside {}'s field of view",
            a.0.display(),
            b.0.display(),
            a.1.dims,
            a.1.spacing(),
            b.1.dims,
            b.1.spacing(),
            moved.0.display(),
            fixed.0.display(),
            opts.interp.name(),
            100.0 * share,
            moved.0.display()
        );
        Ok(GridPlan {
            grid: fixed.1,
            on,
            moved: Some(on.other()),
            inputs,
        })
    }

    /// Bytes the job holds whatever the slices in flight: both volumes on the fused grid and the
    /// result as f32, the larger read's transient (which also covers the intensity range's two
    /// f64 copies), the writer's copy; and when resampling, the moved input as read and its spline
    /// coefficients.
    pub fn fixed_bytes(&self, a: &nifti::VolumeInfo, b: &nifti::VolumeInfo) -> u64 {
        let g = self.grid.voxels() as u64;
        let moved = match self.moved {
            Some(GridOf::A) => 8 * a.voxels(),
            Some(GridOf::B) => 8 * b.voxels(),
            None => 0,
        };
        12 * g + a.read_bytes().max(b.read_bytes()) + 8 * g + moved
    }

    /// The two volumes on the fused grid: the moved one resampled, holding its lowest value (its
    /// background) where it has no data.
    fn apply(
        &self,
        va: nifti::Volume,
        vb: nifti::Volume,
        interp: Interp,
    ) -> (nifti::Volume, nifti::Volume, Option<Resampling>) {
        let Some(moved) = self.moved else {
            return (va, vb, None);
        };
        let t0 = Instant::now();
        let (fixed_v, moved_v) = match moved {
            GridOf::A => (&vb, &va),
            GridOf::B => (&va, &vb),
        };
        let fill = lowest(&moved_v.data);
        let r = resample(
            &moved_v.data,
            &moved_v.grid(),
            &fixed_v.grid(),
            interp,
            fill,
        )
        .expect("affines checked");
        let record = Resampling {
            input: moved,
            interp,
            outside_voxels: r.outside,
            outside_fraction: r.outside as f64 / self.grid.voxels().max(1) as f64,
            outside_value: fill as f64,
            ms: ms_since(t0),
        };
        log::info!(
            "resampled {} in {:.0} ms: {} of the grid's voxels ({:.1} %) lie outside its field of \
             view and hold its lowest value, {}",
            moved.name(),
            record.ms,
            r.outside,
            100.0 * record.outside_fraction,
            fill
        );
        let on_grid = moved_v.on_grid_of(fixed_v, r.data);
        match moved {
            GridOf::A => (on_grid, vb, Some(record)),
            GridOf::B => (va, on_grid, Some(record)),
        }
    }
}

/// How a volume pair is sliced and how much memory it may take, checked before any voxel is read.
struct VolumePlan {
    slicer: Slicer,
    budget: u64,
    /// Bytes held whatever the slices in flight, and per slice pair in flight on the CPU.
    fixed: u64,
    per_slice: u64,
}

impl VolumePlan {
    fn new(dims: [usize; 3], fixed: u64, opts: &JobOptions) -> Result<VolumePlan> {
        let slicer = Slicer {
            dims,
            axis: opts.axis.unwrap_or(2),
        };
        let (h, w) = slicer.shape();
        opts.cartoon.check_fits(h, w)?;
        opts.texture.check_fits(h, w)?;
        let per_slice = slice_bytes(h, w, opts);
        let budget = check_memory(
            fixed + per_slice,
            opts,
            &format!("fusing two {dims:?} volumes"),
        )?;
        Ok(VolumePlan {
            slicer,
            budget,
            fixed,
            per_slice,
        })
    }
}

/// Fuse two volumes (NIfTI files or DICOM series folders) into `out`, staged in `set`.
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
    let grids = GridPlan::new((a, ia.grid()), (b, ib.grid()), opts)?;
    let plan = VolumePlan::new(grids.grid.dims, grids.fixed_bytes(&ia, &ib), opts)?;
    let (va, vb, resampling) = grids.apply(volume::read(a)?, volume::read(b)?, opts.interp);
    let on_grid = OnGrid {
        inputs: grids.inputs,
        record: GridRecord {
            fused_on: grids.on,
            resampled: resampling,
        },
        lossy: [lossy_warning(a, ia.lossy), lossy_warning(b, ib.lossy)],
    };
    let done = match fuse_loaded((a, &va), (b, &vb), &on_grid, s, &plan, opts, t0)? {
        Ok(done) => done,
        Err(failed) => return Ok(*failed),
    };
    let t_write = Instant::now();
    io::warn_clamped(out, done.clamped);
    let series = match volume_format(out, opts)? {
        VolumeFormat::Nifti => {
            nifti::stage(set, out, &va, &done.data, done.datatype)?;
            None
        }
        VolumeFormat::Dicom => {
            // The first input's patient, study and frame of reference, when it is a series.
            let first = volume::dicom_series(a)?;
            let source = fused::source_attributes(first.as_ref().map(|s| s.first_file()))?;
            let text = fused::SeriesText {
                description: format!(
                    "csfuse {} fusion ({} mode)",
                    env!("CARGO_PKG_VERSION"),
                    opts.params.mode.name()
                ),
                derivation: format!(
                    "CS-MCA fusion by csfuse {} ({} mode) of {} and {}",
                    env!("CARGO_PKG_VERSION"),
                    opts.params.mode.name(),
                    file_name(a),
                    file_name(b)
                ),
            };
            let (files, record) = fused::series_files(&va, &done.data, &source, &text)?;
            set.stage_folder(out, &files)?;
            Some(record)
        }
    };
    if let (Some(m), Some((k, pa, pb, fo))) = (&opts.montage, &done.shown) {
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
            opts.params.texture_rule,
        )?;
    }
    if let Some(h) = &opts.html {
        let grid = va.grid();
        let shown = [
            Shown {
                label: "A",
                name: file_name(a),
                data: &va.data,
            },
            Shown {
                label: "B",
                name: file_name(b),
                data: &vb.data,
            },
            Shown {
                label: "fused",
                name: file_name(out),
                data: &done.data,
            },
        ];
        let title = format!("{} + {} → {}", file_name(a), file_name(b), file_name(out));
        set.stage_bytes(h, volume_view::page_html(&title, &grid, &shown)?.as_bytes())?;
        log::info!("slice view {}", h.display());
    }
    log::info!(
        "wrote {} ({:?}): {} slices fused, {} empty passed through, {:.1} s total ({:.2} s per fused slice pair)",
        out.display(),
        done.datatype,
        done.slices.fused,
        done.slices.empty_passed_through,
        ms_since(t0) / 1e3,
        done.fuse_ms / 1e3 / done.slices.fused.max(1) as f64
    );
    let mut report = done.report(out, ms_since(t_write), opts);
    if let Some(Outcome::Volume(v)) = &mut report.result {
        v.output.dicom_series = series;
    }
    Ok(JobOutput {
        report,
        validation_failure: None,
    })
}

/// A path's last component, for text that should not carry a whole path.
fn file_name(p: &Path) -> String {
    p.file_name()
        .map_or_else(|| path_text(p), |n| n.to_string_lossy().into_owned())
}

/// Fuse two volumes already in memory (arrays from Python): the fused voxels (x fastest, in the
/// first volume's datatype rule, see [`nifti::output_datatype`]), their datatype and the report.
/// `names` stand for the volumes in messages. `Err` on a failed `--validate` too.
pub fn fuse_volume_data(
    s: &mut Session,
    (a, va): (&Path, &nifti::Volume),
    (b, vb): (&Path, &nifti::Volume),
    opts: &JobOptions,
) -> Result<(Vec<f32>, nifti::NiftiType, Report)> {
    let t0 = Instant::now();
    nifti::check_same_shape((a, va.dims), (b, vb.dims))?;
    // The volumes are already held; the job adds the result and the intensity rule's copies.
    let voxels = va.data.len() as u64;
    let plan = VolumePlan::new(va.dims, 4 * voxels + 16 * voxels, opts)?;
    let on_grid = OnGrid {
        inputs: [va.grid(), vb.grid()],
        record: GridRecord {
            fused_on: GridOf::A,
            resampled: None,
        },
        lossy: [None, None],
    };
    match fuse_loaded((a, va), (b, vb), &on_grid, s, &plan, opts, t0)? {
        Ok(done) => {
            let report = done.report(Path::new("(array)"), 0.0, opts);
            Ok((done.data, done.datatype, report))
        }
        Err(failed) => Err(failed
            .validation_failure
            .expect("a failed job carries its validation error")),
    }
}

/// The inputs' own grids, and how they came onto the fused one.
struct OnGrid {
    inputs: [Grid; 2],
    record: GridRecord,
    /// Each input's lossy-compression note, for the report.
    lossy: [Option<String>; 2],
}

/// A volume pair fused, before it is written.
struct FusedVolume {
    data: Vec<f32>,
    datatype: nifti::NiftiType,
    /// Output samples beyond float32's range, clamped.
    clamped: usize,
    /// The slice a montage shows: the non-empty one nearest the middle.
    shown: Option<(usize, Plane, Plane, FuseOutput)>,
    head: Report,
    grid: GridRecord,
    axis: usize,
    output_scaling: Scaling,
    slices: Slices,
    read_ms: f64,
    fuse_ms: f64,
    /// ADMM iterations of all fused slices.
    iterations: usize,
}

impl FusedVolume {
    /// The finished report, the result written to `out` in `write_ms`.
    fn report(&self, out: &Path, write_ms: f64, opts: &JobOptions) -> Report {
        let mut report = self.head.clone();
        report.result = Some(Outcome::Volume(Box::new(VolumeOutcome {
            output: VolumeOutput {
                path: path_text(out),
                datatype: format!("{:?}", self.datatype),
                scaling: self.output_scaling,
                dicom_series: None,
            },
            intensity_range: opts.intensity,
            grid: self.grid.clone(),
            axis: self.axis,
            slices: self.slices.clone(),
            montage_slice: opts.montage.as_ref().and(self.shown.as_ref()).map(|s| s.0),
            dictionaries: Dictionaries::of(&opts.cartoon, &opts.texture),
            params: opts.params.clone(),
            timings_ms: VolumeTimings {
                read: self.read_ms,
                fusion_total: self.fuse_ms,
                per_fused_slice: self.fuse_ms / self.slices.fused.max(1) as f64,
                write: write_ms,
            },
            admm_iterations: VolumeIterations {
                total: self.iterations,
                per_fused_slice: self.iterations as f64 / self.slices.fused.max(1) as f64,
            },
        })));
        report
    }
}

/// Fuse `va` and `vb` slice by slice as `plan` says; `Err(job)` inside when `--validate` failed.
fn fuse_loaded(
    (a, va): (&Path, &nifti::Volume),
    (b, vb): (&Path, &nifti::Volume),
    on_grid: &OnGrid,
    s: &mut Session,
    plan: &VolumePlan,
    opts: &JobOptions,
    t0: Instant,
) -> Result<std::result::Result<FusedVolume, Box<JobOutput>>> {
    let (slicer, budget, fixed, per_slice) = (plan.slicer, plan.budget, plan.fixed, plan.per_slice);
    let (h, w) = slicer.shape();
    let (sa, sb) = pair_scalings(
        volume_scaling(va, opts.intensity, a),
        volume_scaling(vb, opts.intensity, b),
    );
    let datatype = nifti::output_datatype(va);
    let repr = nifti::repr_range(datatype);
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
    let mut iterations = 0usize;
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
            iterations += fo.iterations.iter().map(|i| i.total()).sum::<usize>();
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
    let describe = |p: &Path, v: &nifti::Volume, k: usize, scaling: Scaling| {
        let grid = &on_grid.inputs[k];
        Input::Volume {
            path: path_text(p),
            dims: grid.dims,
            affine: grid.affine,
            voxel_size_mm: grid.spacing(),
            datatype: format!("{:?}", v.datatype),
            scaling,
            lossy_compression: on_grid.lossy[k].clone(),
        }
    };
    let inputs = [describe(a, va, 0, sa), describe(b, vb, 1, sb)];
    let head = match report_head(inputs, s, validation) {
        Ok(r) => r,
        Err(failed) => return Ok(Err(failed)),
    };
    Ok(Ok(FusedVolume {
        data: fused_data,
        datatype,
        clamped,
        shown,
        head,
        grid: on_grid.record.clone(),
        axis: slicer.axis,
        output_scaling: so,
        slices: Slices {
            total: n,
            fused: n_fused,
            empty_passed_through: n_empty,
            in_flight,
            memory_budget_bytes: budget,
            gpu_batches: cpu.is_none().then_some(batches),
        },
        read_ms,
        fuse_ms,
        iterations,
    }))
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
