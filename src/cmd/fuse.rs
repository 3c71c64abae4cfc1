//! `csfuse fuse A B -o OUT`: CS-MCA fusion of a co-registered pair of images or NIfTI volumes.

use csfuse::dictionary::Dictionary;
use csfuse::formats::image::SampleFormat;
use csfuse::formats::intensity::IntensityRange;
use csfuse::jobs::session::{Backend, Session};
use csfuse::jobs::{fuse_to_files, GridOf, Interp, JobOptions, VolumeFormat};
use csfuse::pipeline::fuse::{FuseParams, Mode, RuleOptions, TextureRule};
use csfuse::real::Precision;
use csfuse::{assets, Result};
use std::path::{Path, PathBuf};

/// Options shared by `fuse` and `batch`: what to fuse with and how to store the result.
#[derive(clap::Args)]
pub struct FuseOpts {
    /// Fusion rules. `pyramid` (the default): the published decomposition and cartoon rule, both
    /// sources' textures kept, the base layers fused by a Laplacian pyramid that keeps the brighter
    /// structure, and colour kept in gamut so the written luminance is the fused one. `paper`: the
    /// published method exactly (averaged base layers). See docs/method.md#modes.
    #[arg(long, value_enum, default_value_t)]
    pub mode: Mode,
    /// Pyramid mode: the Laplacian-pyramid fusion's share of the fused base layer, the rest being
    /// the average of the two (0: the published average; 1: the pyramid alone). Larger values keep
    /// more of the brighter source's large structures (bone, uptake) at their own brightness
    /// [default: 0.2, chosen by cross-validation: docs/method.md#choosing-the-rules].
    #[arg(long, value_name = "S", value_parser = super::num::fraction)]
    pub base_share: Option<f64>,
    /// Pyramid mode: how far the pyramid's coarsest level moves from the average towards the
    /// brighter source (0 to 1) [default: 0.6].
    #[arg(long, value_name = "T", value_parser = super::num::fraction)]
    pub base_top: Option<f64>,
    /// Pyramid mode: how far the fused base moves towards a brightness-weighted one, which takes
    /// the clearly brighter base whole (CT bone over MR, MR where the CT has nothing) and averages
    /// bases of about equal brightness (0 to 1) [default: 0.25, chosen by cross-validation].
    #[arg(long, value_name = "B", value_parser = super::num::fraction)]
    pub base_bright: Option<f64>,
    /// Pyramid mode: replace each choose-max decision (which source's coefficients a pixel takes)
    /// by the majority of the decisions in the (2R+1)x(2R+1) window around it, so that one
    /// source's region is not cut by specks of the other's (0: no vote, as published) [default: 5,
    /// chosen by cross-validation].
    #[arg(long, value_name = "R")]
    pub vote_radius: Option<usize>,
    /// Pyramid mode: how the texture parts' coefficient maps are fused. `sum`: both sources'
    /// fine texture is kept, added where both have some; `choose`: choose-max, as published (the
    /// more active source's maps at each pixel) [default: sum, chosen by cross-validation].
    #[arg(long, value_enum, value_name = "choose|sum")]
    pub texture_rule: Option<TextureRule>,
    /// Cartoon dictionary, .npy of shape (h, w, M), float32/float64 [default: built-in assets/dict_cartoon_8x8x32.npy].
    #[arg(long, value_name = "D.npy")]
    pub cartoon_dict: Option<PathBuf>,
    /// Texture dictionary, .npy of shape (h, w, M) [default: built-in assets/dict_texture_8x8x32.npy].
    #[arg(long, value_name = "D.npy")]
    pub texture_dict: Option<PathBuf>,
    /// Output sample format of images: 8 or 16-bit integer, or f32 (32-bit float, TIFF only)
    /// [default: the deeper input's, as far as the output format holds it].
    #[arg(long, value_enum, value_name = "8|16|f32")]
    pub out_depth: Option<SampleFormat>,
    /// Volumes: axis to slice along, 0 = x, 1 = y, 2 = z [default: 2, the slowest in the file].
    #[arg(long, value_name = "0|1|2")]
    pub axis: Option<usize>,
    /// Volumes: fuse voxel by voxel even when the two affines (voxel-to-world transforms) differ,
    /// without resampling; needs one shape. The output keeps the first input's affine.
    #[arg(long)]
    pub ignore_affine: bool,
    /// Volumes on different grids: how the resampled volume is interpolated. `linear`
    /// (trilinear), `nearest` (label maps), or `cubic` (cubic B-spline, as SciPy's order 3 and
    /// SimpleITK's sitkBSpline).
    #[arg(long, value_enum, default_value_t, value_name = "nearest|linear|cubic")]
    pub interp: Interp,
    /// Volumes on different grids: whose grid the output has; the other input is resampled onto
    /// it from the two affines.
    #[arg(long, value_enum, default_value_t, value_name = "a|b")]
    pub grid: GridOf,
    /// Memory the job may use, e.g. 8G, 512M [default: 3/4 of the available memory]. The peak is
    /// estimated from the headers before any work (about 4 KB per pixel of an image or slice with
    /// the built-in dictionaries) and a job over the budget is refused. For volumes on the CPU
    /// engine it also sets how many slice pairs run at once (at most one per core); the GPU engine
    /// fuses one slice pair at a time.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub memory_budget: Option<u64>,
    /// How 16-bit, float and NIfTI sources map to [0, 1]: `minmax` (each source's own range; 8-bit
    /// sources by 255, as the published method), `pA-B` (the A-th..B-th percentiles, e.g.
    /// p0.5-99.5, clipping the rest: one hot pixel or metal implant no longer squashes the image),
    /// or `LO:HI` (a fixed range in stored units for both sources, e.g. -1000:3000, clipping).
    /// Percentile and fixed ranges apply to 8-bit sources too.
    #[arg(long, value_name = "RANGE", default_value = "minmax", allow_hyphen_values = true, value_parser = IntensityRange::parse)]
    pub intensity_range: IntensityRange,
    /// Floating-point precision of the engine (the GPU engine is f32; f64 runs on the CPU).
    #[arg(long, value_enum, default_value = "f32")]
    pub precision: Precision,
    /// Compute engine. `auto`: a GPU adapter if one opens and works, else the CPU with a log line saying
    /// why (also when the device is lost or runs out of memory mid-run); software adapters such as
    /// lavapipe are skipped because the CPU engine is faster. `gpu`: the best adapter, software ones
    /// included, or an error. `cpu`: the reference engine. WGPU_BACKEND (vulkan, metal, dx12, gl) and
    /// WGPU_ADAPTER_NAME (a substring) pick the adapter; `csfuse devices` lists them.
    #[arg(long, value_enum, default_value = "auto")]
    pub backend: Backend,
    /// Fuse on both the GPU and the CPU engine (f32) and compare. Fails (exit 1, no output written) if
    /// the fused images differ by more than 0.01 of the full range at any pixel or a final CBPDN
    /// objective by more than 1e-3 relative (for volumes: the worst slice). The report gets the
    /// numbers; the GPU result is written.
    #[arg(long)]
    pub validate: bool,
}

impl FuseOpts {
    pub fn job_options(&self, montage: Option<PathBuf>, progress: bool) -> Result<JobOptions> {
        let load = |p: &Option<PathBuf>, builtin: fn() -> Dictionary| match p {
            Some(p) => Dictionary::load(p),
            None => Ok(builtin()),
        };
        Ok(JobOptions {
            params: self.params(self.mode)?,
            cartoon: load(&self.cartoon_dict, assets::cartoon)?,
            texture: load(&self.texture_dict, assets::texture)?,
            out_depth: self.out_depth,
            axis: self.axis,
            ignore_affine: self.ignore_affine,
            interp: self.interp,
            grid: self.grid,
            out_format: None,
            memory_budget: self.memory_budget,
            intensity: self.intensity_range,
            montage,
            html: None,
            progress,
        })
    }

    /// The parameters of `mode` with the rule settings given on the command line. `evaluate` runs
    /// the paper method beside the pyramid one: the settings go to the pyramid method alone there,
    /// while `fuse --mode paper --base-share ...` is refused.
    pub fn params(&self, mode: Mode) -> Result<FuseParams> {
        let mut p = FuseParams::new(mode);
        if mode == Mode::Pyramid || mode == self.mode {
            p.set_rules(&RuleOptions {
                base_share: self.base_share,
                base_top: self.base_top,
                base_bright: self.base_bright,
                vote_radius: self.vote_radius,
                texture_rule: self.texture_rule,
            })?;
        }
        Ok(p)
    }

    pub fn session(&self) -> Result<Session> {
        Session::open(self.backend, self.precision, self.validate)
    }

    /// The dictionary files given (inputs that no output may replace).
    pub fn dictionary_paths(&self) -> Vec<&Path> {
        [&self.cartoon_dict, &self.texture_dict]
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
            .collect()
    }
}

/// `8G`, `512M`, `64k`, `1.5GiB` or a byte count.
fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("ib").trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    match num.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() && v * (mult as f64) < u64::MAX as f64 => {
            Ok((v * mult as f64) as u64)
        }
        _ => Err(format!("`{s}` is not a size (e.g. 8G, 512M, 1000000)")),
    }
}

/// Fuse two co-registered images, or two NIfTI volumes slice by slice.
///
/// Images: PNG, TIFF, BMP or JPEG; 8- or 16-bit gray or RGB, 32-bit float TIFF; single-frame
/// uncompressed DICOM (rescale slope/intercept applied, MONOCHROME1 inverted). 8-bit samples are
/// scaled by 255 (as the published method); 16-bit and float images are mapped from their own
/// [min, max] to [0, 1] and the result back to the inputs' range. The output has the deeper input's
/// format unless --out-depth says otherwise.
///
/// Colour (PET/SPECT with a colour map): when one source is RGB, its luminance Y (ITU-R BT.601
/// YCbCr) is fused with the grayscale source and its chroma Cb/Cr is put back, giving an RGB result
/// with the functional colours. Two RGB sources: Y is fused and each pixel's chroma is the blend of
/// the two weighted by saturation (|Cb-0.5| + |Cr-0.5|), so the more colourful source dominates.
///
/// Volumes (.nii, .nii.gz NIfTI-1 files, or a folder holding one DICOM series): when the two are
/// on different grids (shape or affine), the second is resampled onto the first's grid in world
/// space from their affines (--interp, --grid b for the other way round); voxels outside its field
/// of view get its lowest value, and inputs that hardly overlap (under 10 % of the grid) are
/// refused. Each volume is mapped from its own [min, max] to [0, 1]; slices along --axis are fused
/// in parallel within --memory-budget, slices that are constant in both (background) are passed
/// through as their mean, and the result is written on the fused grid (its input's header and
/// affine) in the first input's datatype (float32 if the first stores scaled integers), rounded
/// and clamped for integer types.
///
/// Without dictionary flags the project's own learned dictionaries are used; pass the reference
/// dictionaries to reproduce the published method exactly. Nothing is written on error, an existing
/// output is kept unless --force, and outputs appear atomically (temporary file, then rename).
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  csfuse fuse ct.png mr.png -o fused.png --report fused.json\n  \
csfuse fuse mr.png pet_rgb.png -o fused_rgb.png --montage check.png\n  \
csfuse fuse ct16.tif mr16.tif -o fused.tif --out-depth f32 --intensity-range p0.5-99.5\n  \
csfuse fuse ct.nii.gz mr.nii.gz -o fused.nii.gz --axis 2 --memory-budget 8G\n  \
csfuse fuse ct_series/ mr_1mm.nii.gz -o fused.nii.gz --interp cubic    # MR resampled onto the CT\n  \
csfuse fuse ct_series/ mr_1mm.nii.gz -o fused_series/                   # a DICOM series out\n  \
csfuse fuse ct.nii.gz mr.nii.gz -o fused.nii.gz --html view.html        # slice views in a browser"
)]
pub struct Args {
    /// First source (e.g. CT, or MR for MR + PET).
    pub a: PathBuf,
    /// Second source; ties of the fusion rule go to this one.
    pub b: PathBuf,
    /// Fused result to write (.png, .tif, .bmp, .jpg; for volumes .nii or .nii.gz, or a folder
    /// name ending in / for a DICOM series).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Volumes: `nifti`, or `dicom`: a DICOM series in the folder -o names, one file per slice,
    /// a derived image in a new series with the first input's patient, study and frame of
    /// reference when it is a DICOM series (an anonymous placeholder patient otherwise), 16-bit
    /// with Rescale Slope/Intercept [default: by the name: a folder name ending in / is dicom].
    #[arg(long, value_enum, value_name = "nifti|dicom")]
    pub out_format: Option<VolumeFormat>,
    /// Write a JSON report: inputs and their intensity mapping, parameters, per-stage timings, final
    /// CBPDN objective values (images), slice counts (volumes).
    #[arg(long, value_name = "R.json")]
    pub report: Option<PathBuf>,
    /// Write a picture: A | B | fused | cartoon decision map | texture decision map, labelled
    /// (decision maps white where A was taken; with the texture sum, the default, both textures are
    /// kept and the texture map is white where A's is the more active). Volumes show the non-empty
    /// slice nearest the middle.
    #[arg(long, value_name = "M.png")]
    pub montage: Option<PathBuf>,
    /// Volumes: write a page to open in a browser, with A, B and the result in axial, coronal and
    /// sagittal views that follow one cursor, a slice slider, window/level, and an overlay of a
    /// source in colour over the result. It holds the voxels (4096 levels of each volume's range,
    /// compressed), so it works alone, offline.
    #[arg(long, value_name = "VIEW.html")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub opts: FuseOpts,
    /// Replace existing output files.
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let o = &args.opts;
    let mut jo = o.job_options(args.montage.clone(), true)?;
    jo.out_format = args.out_format;
    jo.html = args.html.clone();
    fuse_to_files(
        (&args.a, &args.b, &args.output),
        args.report.as_deref(),
        &jo,
        (o.backend, o.precision, o.validate),
        &o.dictionary_paths(),
        args.force,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse() {
        assert_eq!(super::parse_size("8G"), Ok(8 << 30));
        assert_eq!(super::parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(super::parse_size("1.5g"), Ok(3 << 29));
        assert_eq!(super::parse_size("1000"), Ok(1000));
        assert!(super::parse_size("lots").is_err());
        assert!(super::parse_size("-1G").is_err());
    }
}
