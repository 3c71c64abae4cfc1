//! 2-D jobs: two images, grey or colour at any supported depth, fused into a third, alone or as
//! a batch of same-size pairs.

use super::*;
use crate::pipeline::baselines::{self, Baseline};
use crate::pipeline::fuse::{Rules, TextureRule};
use crate::plane::DecisionMap;

/// The intensity rule of [`crate::formats::intensity`] for an image.
fn image_scaling(r: &Raster, range: IntensityRange, path: &Path) -> Scaling {
    let samples: Vec<f64> = r.samples().collect();
    range.scaling(&samples, r.format == SampleFormat::U8, &path_text(path))
}

/// An image in [0, 1]: its luminance (the gray plane, or Y) and chroma when it is colour.
pub(super) struct Unit {
    pub(super) luma: Plane,
    pub(super) chroma: Option<(Plane, Plane)>,
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
/// source's for one, the saturation-weighted blend for two; kept in gamut when `keep_luma`.
fn recolour(y: &Plane, a: &Unit, b: &Unit, keep_luma: bool) -> Vec<Plane> {
    let chroma = match (&a.chroma, &b.chroma) {
        (None, None) => return vec![y.clone()],
        (Some(c), None) | (None, Some(c)) => (c.0.clone(), c.1.clone()),
        (Some(ca), Some(cb)) => colour::blend_chroma((&ca.0, &ca.1), (&cb.0, &cb.1)),
    };
    match keep_luma {
        true => colour::merge_in_gamut(y, &chroma.0, &chroma.1).into(),
        false => colour::merge(y, &chroma.0, &chroma.1).into(),
    }
}

fn colour_rule(a: &Unit, b: &Unit, keep_luma: bool) -> &'static str {
    match (a.chroma.is_some(), b.chroma.is_some(), keep_luma) {
        (false, false, _) => "grayscale",
        (true, true, false) => "Y fused, Cb/Cr blended by saturation",
        (true, false, false) => "Y fused, Cb/Cr from A",
        (false, true, false) => "Y fused, Cb/Cr from B",
        (true, true, true) => "Y fused, Cb/Cr blended by saturation, scaled into gamut",
        (true, false, true) => "Y fused, Cb/Cr from A, scaled into gamut",
        (false, true, true) => "Y fused, Cb/Cr from B, scaled into gamut",
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

fn describe_raster(path: &Path, r: &Raster, s: &Scaling) -> Input {
    Input::Image {
        path: path_text(path),
        width: r.w,
        height: r.h,
        format: r.format,
        colour: r.is_colour(),
        scaling: *s,
        lossy_compression: lossy_warning(path, crate::formats::dicom::lossy(path)),
    }
}

/// Logs that an input was stored with lossy compression (the report carries the same note).
pub(crate) fn lossy_warning(path: &Path, note: Option<String>) -> Option<String> {
    if let Some(n) = &note {
        log::warn!(
            "{}: {n}; the fusion is of the decompressed samples, which may differ from the \
             acquired ones",
            path.display()
        );
    }
    note
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
    /// Where the result goes; `None` for a fusion in memory ([`fuse_rasters`]).
    out: Option<PathBuf>,
    montage: Option<PathBuf>,
    out_depth: Option<SampleFormat>,
    /// The report's description of the inputs.
    inputs: [Input; 2],
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

/// Refuse sources of different sizes, or too small or too large to fuse with `opts`.
fn check_sizes(
    a: (&Path, (usize, usize)),
    b: (&Path, (usize, usize)),
    opts: &JobOptions,
) -> Result<()> {
    let ((ah, aw), (bh, bw)) = (a.1, b.1);
    if (ah, aw) != (bh, bw) {
        return Err(Error::SizeMismatch {
            a: a.0.to_path_buf(),
            aw,
            ah,
            b: b.0.to_path_buf(),
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
    Ok(())
}

impl ImagePair {
    /// Read `a` and `b` for fusing into `out` with `opts` (its output depth and montage are the
    /// pair's own). Sizes and memory come from the headers first: nothing is decoded for a pair
    /// that cannot run.
    pub fn read(a: &Path, b: &Path, out: &Path, opts: &JobOptions) -> Result<ImagePair> {
        let t0 = Instant::now();
        let (da, db) = (io::image_dims(a)?, io::image_dims(b)?);
        check_sizes((a, da), (b, db), opts)?;
        let ra = io::read_image(a)?;
        let rb = io::read_image(b)?;
        if (ra.h, ra.w) != da || (rb.h, rb.w) != db {
            return Err(Error::Param(format!(
                "{} or {} changed while being read",
                a.display(),
                b.display()
            )));
        }
        let mut pair = ImagePair::new(ra, rb, (a, b), opts, t0);
        pair.out = Some(out.to_path_buf());
        pair.montage = opts.montage.clone();
        Ok(pair)
    }

    /// Two decoded images to fuse in memory; `names` stand for them in messages and the report.
    pub fn from_rasters(
        ra: Raster,
        rb: Raster,
        names: (&Path, &Path),
        opts: &JobOptions,
    ) -> Result<ImagePair> {
        let t0 = Instant::now();
        check_sizes((names.0, (ra.h, ra.w)), (names.1, (rb.h, rb.w)), opts)?;
        Ok(ImagePair::new(ra, rb, names, opts, t0))
    }

    fn new(ra: Raster, rb: Raster, (a, b): (&Path, &Path), opts: &JobOptions, t0: Instant) -> Self {
        let (sa, sb) = pair_scalings(
            image_scaling(&ra, opts.intensity, a),
            image_scaling(&rb, opts.intensity, b),
        );
        ImagePair {
            a: a.to_path_buf(),
            b: b.to_path_buf(),
            out: None,
            montage: None,
            out_depth: opts.out_depth,
            inputs: [describe_raster(a, &ra, &sa), describe_raster(b, &rb, &sb)],
            h: ra.h,
            w: ra.w,
            format: ra.format.max(rb.format),
            ua: to_unit(&ra, &sa),
            ub: to_unit(&rb, &sb),
            scalings: [sa, sb],
            t0,
            read_ms: ms_since(t0),
        }
    }

    /// Height and width.
    pub fn size(&self) -> (usize, usize) {
        (self.h, self.w)
    }

    /// `which` baseline on the luminance, with the colour rule, range and depth a fusion of this
    /// pair gets.
    pub fn baseline(&self, which: Baseline) -> Result<Raster> {
        let y = baselines::fuse(which, &self.ua.luma, &self.ub.luma);
        Ok(self.fused_raster(&y, false)?.0)
    }

    /// The two sources as montage panels labelled `A` and `B` (in colour where they are).
    pub fn source_panels(&self) -> [Panel; 2] {
        [show("A", &self.ua), show("B", &self.ub)]
    }

    /// The fused image (its luminance `y`) as samples: the output's depth (`--out-depth`, or the
    /// deeper source's format as far as the output file holds it), in the sources' range.
    fn fused_raster(&self, y: &Plane, keep_luma: bool) -> Result<(Raster, Vec<Plane>)> {
        let fused = recolour(y, &self.ua, &self.ub, keep_luma);
        let format = match (self.out_depth, &self.out) {
            (Some(d), _) => d,
            (None, Some(out)) => io::writable_depth(io::output_format(out)?, self.format),
            (None, None) => self.format,
        };
        let repr = format.is_integer().then(|| (0.0, format.max_value()));
        let so = output_scaling(&self.scalings, repr);
        let raster = Raster {
            h: self.h,
            w: self.w,
            channels: from_unit(&fused, &so, format),
            format,
        };
        Ok((raster, fused))
    }

    /// The fused raster and its report; with `set`, the image (and montage) staged in it too.
    fn finish(
        &self,
        s: &Session,
        fo: &FuseOutput,
        validation: Option<Validation>,
        opts: &JobOptions,
        set: Option<&mut OutputSet>,
    ) -> Result<(JobOutput, Option<Raster>)> {
        let mut report = match report_head(self.inputs.clone(), s, validation) {
            Ok(r) => r,
            Err(failed) => return Ok((*failed, None)),
        };
        let (ua, ub) = (&self.ua, &self.ub);
        let t_write = Instant::now();
        let keep_luma = opts.params.mode.keeps_luminance();
        let (raster, fused) = self.fused_raster(&fo.fused, keep_luma)?;
        let format = raster.format;
        if let (Some(set), Some(out)) = (set, &self.out) {
            set.stage_bytes(out, &io::encode_image(out, &raster)?)?;
            if let Some(m) = &self.montage {
                write_montage(set, m, ua, ub, &fused, fo, opts.params.texture_rule)?;
            }
        }
        let write_ms = ms_since(t_write);
        let shown = self.out.as_deref().unwrap_or(Path::new("(array)"));
        log::info!(
            "{} {} ({format:?}{}) in {:.0} ms total (fusion {:.0} ms{})",
            if self.out.is_some() { "wrote" } else { "fused" },
            shown.display(),
            if raster.is_colour() { ", RGB" } else { "" },
            ms_since(self.t0),
            fo.times.total_ms,
            match fo.times.batch_pairs {
                1 => String::new(),
                n => format!(" for a batch of {n} pairs"),
            }
        );
        let (timings_ms, objectives, decision_fraction_from_a) =
            ImageOutcome::fusion(fo, self.read_ms, write_ms);
        let repr = format.is_integer().then(|| (0.0, format.max_value()));
        report.result = Some(Outcome::Image(Box::new(ImageOutcome {
            output: ImageOutput {
                path: path_text(shown),
                format,
                colour: raster.is_colour(),
                scaling: output_scaling(&self.scalings, repr),
            },
            intensity_range: opts.intensity,
            colour_rule: colour_rule(ua, ub, keep_luma),
            dictionaries: Dictionaries::of(&opts.cartoon, &opts.texture),
            params: opts.params.clone(),
            batch_pairs: fo.times.batch_pairs,
            timings_ms,
            admm_iterations: AdmmIterations::of(fo),
            objectives,
            decision_fraction_from_a,
        })));
        Ok((
            JobOutput {
                report,
                validation_failure: None,
            },
            Some(raster),
        ))
    }
}

/// Fuse the luminance of `jobs` as one batch: one result per pair, and `--validate`'s numbers.
type BatchResult = (Vec<FuseOutput>, Option<Vec<Validation>>);

fn fuse_luma(s: &mut Session, jobs: &[&ImagePair], opts: &JobOptions) -> Result<BatchResult> {
    for j in jobs {
        log::info!(
            "fusing {} + {} ({}x{}, {})",
            j.a.display(),
            j.b.display(),
            j.w,
            j.h,
            colour_rule(&j.ua, &j.ub, opts.params.mode.keeps_luminance())
        );
    }
    let pairs: Vec<(&Plane, &Plane)> = jobs.iter().map(|j| (&j.ua.luma, &j.ub.luma)).collect();
    with_solve_bar(opts, |bar| {
        s.run(
            |e| e.fuse_batch(&pairs, &opts.cartoon, &opts.texture, &opts.params, bar),
            |g, c| compare_each(g, c),
        )
    })
}

/// `fuse` with a bar over the sparse-coding solves on a terminal (the log is unchanged).
fn with_solve_bar<T>(opts: &JobOptions, fuse: impl FnOnce(&mut dyn FnMut()) -> T) -> T {
    let solves = 2 * opts.params.mca.outer_iters() as u64;
    let mut bar = Progress::bar_only(solves, "sparse-coding solves", opts.progress);
    let done = fuse(&mut || bar.inc(1));
    bar.finish();
    done
}

/// Fuse a pair in memory ([`ImagePair::from_rasters`]): the fused image in the intensity rule of
/// a file job (the sources' range, at `opts.out_depth` or the deeper source's format) and its
/// report. `Err` on a failed `--validate` too.
pub fn fuse_rasters(
    s: &mut Session,
    pair: &ImagePair,
    opts: &JobOptions,
) -> Result<(Raster, Report)> {
    fuse_rasters_with_decisions(s, pair, opts).map(|(r, report, _)| (r, report))
}

/// [`fuse_rasters`], with the cartoon and texture decision maps (true where A was taken).
pub fn fuse_rasters_with_decisions(
    s: &mut Session,
    pair: &ImagePair,
    opts: &JobOptions,
) -> Result<(Raster, Report, [DecisionMap; 2])> {
    let (mut fos, validations) = fuse_luma(s, &[pair], opts)?;
    let v = validations.map(|mut v| v.remove(0));
    with_decisions(s, pair, fos.swap_remove(0), v, opts)
}

/// A pair's fused raster, report and decision maps; `Err` on a failed `--validate`.
fn with_decisions(
    s: &Session,
    pair: &ImagePair,
    fo: FuseOutput,
    validation: Option<Validation>,
    opts: &JobOptions,
) -> Result<(Raster, Report, [DecisionMap; 2])> {
    let (done, raster) = pair.finish(s, &fo, validation, opts, None)?;
    match (done.validation_failure, raster) {
        (Some(e), _) => Err(e),
        (None, Some(r)) => Ok((r, done.report, [fo.cartoon_decision, fo.texture_decision])),
        (None, None) => unreachable!("a job without a validation failure has a result"),
    }
}

/// [`fuse_rasters_with_decisions`] once per item of `rules` (each replacing `opts`' own), from one
/// decomposition of the pair: what comparing rule settings costs is then one fusion and the rules.
pub fn fuse_rasters_variants(
    s: &mut Session,
    pair: &ImagePair,
    opts: &JobOptions,
    rules: &[Rules],
) -> Result<Vec<(Raster, Report, [DecisionMap; 2])>> {
    log::info!(
        "fusing {} + {} ({}x{}) with {} rule settings from one decomposition",
        pair.a.display(),
        pair.b.display(),
        pair.w,
        pair.h,
        rules.len()
    );
    let luma = (&pair.ua.luma, &pair.ub.luma);
    let (fos, validations) = with_solve_bar(opts, |bar| {
        s.run(
            |e| e.fuse_variants(luma, &opts.cartoon, &opts.texture, &opts.params, rules, bar),
            |g, c| compare_each(g, c),
        )
    })?;
    fos.into_iter()
        .zip(rules)
        .enumerate()
        .map(|(i, (fo, r))| {
            let mut o = opts.clone();
            o.params = opts.params.with_rules(*r);
            let v = validations.as_ref().map(|v| v[i].clone());
            with_decisions(s, pair, fo, v, &o)
        })
        .collect()
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
    let (fos, validations) = fuse_luma(s, jobs, opts)?;
    Ok(jobs
        .iter()
        .zip(sets.iter_mut())
        .enumerate()
        .map(|(i, (j, set))| {
            let v = validations.as_ref().map(|v| v[i].clone());
            j.finish(s, &fos[i], v, opts, Some(set))
                .map(|(done, _)| done)
        })
        .collect())
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

/// A source as a montage panel.
fn show(label: &str, u: &Unit) -> Panel {
    match &u.chroma {
        Some(c) => Panel {
            label: label.into(),
            channels: colour::merge(&u.luma, &c.0, &c.1).into(),
        },
        None => Panel::gray(label, u.luma.clone()),
    }
}

pub(super) fn write_montage(
    set: &mut OutputSet,
    path: &Path,
    a: &Unit,
    b: &Unit,
    fused: &[Plane],
    fo: &FuseOutput,
    texture: TextureRule,
) -> Result<()> {
    // With the sum rule both textures are kept; the map shows the more active one.
    let texture_label = match texture {
        TextureRule::Choose => "TEXTURE: WHITE=A",
        TextureRule::Sum => "TEXTURE A+B: A MORE",
    };
    let panels = [
        show("A", a),
        show("B", b),
        Panel {
            label: "FUSED".into(),
            channels: fused.to_vec(),
        },
        Panel::decision("CARTOON: WHITE=A", &fo.cartoon_decision),
        Panel::decision(texture_label, &fo.texture_decision),
    ];
    set.stage_bytes(path, &montage::encode(path, &panels)?)?;
    log::info!("montage {}", path.display());
    Ok(())
}
