//! The report of a job (`--report`, and each batch sidecar's `report`): what was read, how it was
//! fused, what was written, and where the time went. Typed, so a field cannot drift between jobs.

use super::session::{Session, Validation};
use super::GridOf;
use crate::dictionary::Dictionary;
use crate::formats::dicom::fused::SeriesRecord;
use crate::formats::image::SampleFormat;
use crate::formats::intensity::{IntensityRange, Scaling};
use crate::gpu::{AdapterDesc, Counters};
use crate::pipeline::decompose::SolveIterations;
use crate::pipeline::fuse::{FuseOutput, FuseParams, SourceObjectives};
use crate::resample::Interp;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub csfuse_version: &'static str,
    pub inputs: [Input; 2],
    /// The engine, in words (`cpu (f64, 2 threads)`, or the adapter on the GPU).
    pub backend: String,
    pub adapter: Option<AdapterDesc>,
    pub gpu: Option<GpuReport>,
    /// What `--validate` measured, when asked.
    pub validation: Option<Validation>,
    /// What was fused and written; absent when `--validate` failed and nothing was written.
    #[serde(flatten)]
    pub result: Option<Outcome>,
}

/// A value as the JSON csfuse writes: pretty, with a final newline.
pub fn json_bytes(value: &impl Serialize) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON of plain data");
    text.push('\n');
    text.into_bytes()
}

impl Report {
    /// The part every job has, before anything is written.
    pub(crate) fn head(inputs: [Input; 2], s: &Session, validation: Option<Validation>) -> Self {
        Report {
            csfuse_version: env!("CARGO_PKG_VERSION"),
            inputs,
            backend: s.describe(),
            adapter: s.adapter(),
            gpu: s.counters().map(|counters| GpuReport { counters }),
            validation,
            result: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct GpuReport {
    pub counters: Counters,
}

/// One source as it was read.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Input {
    Image {
        path: String,
        width: usize,
        height: usize,
        format: SampleFormat,
        colour: bool,
        scaling: Scaling,
        /// Why the samples may differ from what was acquired (a DICOM file stored with lossy
        /// compression); null otherwise.
        lossy_compression: Option<String>,
    },
    Volume {
        path: String,
        /// Its own grid, as read (before any resampling): shape, voxel-to-world affine (RAS+ mm,
        /// three rows of four) and voxel size.
        dims: [usize; 3],
        affine: [[f64; 4]; 3],
        voxel_size_mm: [f64; 3],
        /// The NIfTI datatype (`Int16`, `Float32`, ...).
        datatype: String,
        scaling: Scaling,
        /// As for an image: a lossy-compressed DICOM series or file; null otherwise.
        lossy_compression: Option<String>,
    },
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    Image(Box<ImageOutcome>),
    Volume(Box<VolumeOutcome>),
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageOutcome {
    pub output: ImageOutput,
    pub intensity_range: IntensityRange,
    /// How colour was handled (`grayscale`, or which channels were fused and which blended).
    pub colour_rule: &'static str,
    pub dictionaries: Dictionaries,
    pub params: FuseParams,
    /// Pairs fused together in one batch with this one.
    pub batch_pairs: usize,
    pub timings_ms: ImageTimings,
    pub admm_iterations: AdmmIterations,
    pub objectives: Objectives,
    /// Share of pixels whose coefficients came from source A.
    pub decision_fraction_from_a: Fractions,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageOutput {
    pub path: String,
    pub format: SampleFormat,
    pub colour: bool,
    pub scaling: Scaling,
}

#[derive(Clone, Debug, Serialize)]
pub struct ImageTimings {
    pub read: f64,
    pub lowpass: f64,
    pub decompose: f64,
    pub fuse_rule: f64,
    pub synthesis: f64,
    pub fusion_total: f64,
    pub write: f64,
    pub stage_clock: &'static str,
}

/// The ADMM iterations of every sparse-coding solve of each source (one number per outer
/// iteration and part), and their sum over both sources.
#[derive(Clone, Debug, Serialize)]
pub struct AdmmIterations {
    pub a: SolveIterations,
    pub b: SolveIterations,
    pub total: usize,
}

impl AdmmIterations {
    pub fn of(fo: &FuseOutput) -> Self {
        let [a, b] = fo.iterations.clone();
        let total = a.total() + b.total();
        AdmmIterations { a, b, total }
    }
}

/// Final CBPDN statistics of each source.
#[derive(Clone, Debug, Serialize)]
pub struct Objectives {
    pub a: SourceObjectives,
    pub b: SourceObjectives,
}

#[derive(Clone, Debug, Serialize)]
pub struct Fractions {
    pub cartoon: f64,
    pub texture: f64,
}

impl ImageOutcome {
    /// The fusion's part: objectives, decisions and stage times (`read` and `write` from the job).
    pub(crate) fn fusion(
        fo: &FuseOutput,
        read: f64,
        write: f64,
    ) -> (ImageTimings, Objectives, Fractions) {
        let t = &fo.times;
        (
            ImageTimings {
                read,
                lowpass: t.lowpass_ms,
                decompose: t.decompose_ms,
                fuse_rule: t.fuse_rule_ms,
                synthesis: t.synthesis_ms,
                fusion_total: t.total_ms,
                write,
                stage_clock: t.clock,
            },
            Objectives {
                a: fo.objectives[0].clone(),
                b: fo.objectives[1].clone(),
            },
            Fractions {
                cartoon: fo.cartoon_decision.fraction_a(),
                texture: fo.texture_decision.fraction_a(),
            },
        )
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeOutcome {
    pub output: VolumeOutput,
    pub intensity_range: IntensityRange,
    /// The grid the volumes were fused on, and how the other came onto it.
    pub grid: GridRecord,
    /// The slicing axis (0, 1 or 2).
    pub axis: usize,
    pub slices: Slices,
    /// The slice the montage shows, when one was written.
    pub montage_slice: Option<usize>,
    pub dictionaries: Dictionaries,
    pub params: FuseParams,
    pub timings_ms: VolumeTimings,
    pub admm_iterations: VolumeIterations,
}

#[derive(Clone, Debug, Serialize)]
pub struct GridRecord {
    /// The input whose grid the output has (`a` or `b`).
    pub fused_on: GridOf,
    /// The input resampled onto it; null when both were on one grid (or `--ignore-affine`).
    pub resampled: Option<Resampling>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Resampling {
    pub input: GridOf,
    pub interp: Interp,
    /// Voxels of the fused grid outside the resampled input's field of view, their share, and
    /// the value they hold: that input's lowest (its background).
    pub outside_voxels: usize,
    pub outside_fraction: f64,
    pub outside_value: f64,
    pub ms: f64,
}

/// ADMM iterations of a volume's fused slices (empty slices take none).
#[derive(Clone, Debug, Default, Serialize)]
pub struct VolumeIterations {
    pub total: usize,
    pub per_fused_slice: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeOutput {
    pub path: String,
    /// The NIfTI datatype the values are in (a DICOM series stores them as `dicom_series` says).
    pub datatype: String,
    pub scaling: Scaling,
    /// The series written, when the output is a DICOM series; null for NIfTI.
    pub dicom_series: Option<SeriesRecord>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Slices {
    pub total: usize,
    pub fused: usize,
    pub empty_passed_through: usize,
    /// Slice pairs fused at once under the memory budget.
    pub in_flight: usize,
    pub memory_budget_bytes: u64,
    /// Batched GPU submissions (none on the CPU engine).
    pub gpu_batches: Option<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VolumeTimings {
    pub read: f64,
    pub fusion_total: f64,
    pub per_fused_slice: f64,
    pub write: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Dictionaries {
    pub cartoon: DictionaryRecord,
    pub texture: DictionaryRecord,
}

#[derive(Clone, Debug, Serialize)]
pub struct DictionaryRecord {
    /// The file it was read from, or `built-in ...`.
    pub source: String,
    /// Filter height, width and count.
    pub shape: [usize; 3],
}

impl Dictionaries {
    pub(crate) fn of(cartoon: &Dictionary, texture: &Dictionary) -> Self {
        let rec = |d: &Dictionary| DictionaryRecord {
            source: super::path_text(&d.source),
            shape: [d.fh, d.fw, d.m],
        };
        Dictionaries {
            cartoon: rec(cartoon),
            texture: rec(texture),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(result: Option<Outcome>) -> serde_json::Value {
        let input = |path: &str| Input::Volume {
            path: path.into(),
            dims: [4, 5, 6],
            affine: [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 2.0, 0.0],
            ],
            voxel_size_mm: [1.0, 1.0, 2.0],
            datatype: "Int16".into(),
            scaling: Scaling::full(255.0),
            lossy_compression: None,
        };
        let report = Report {
            csfuse_version: "0",
            inputs: [input("a.nii"), input("b.nii")],
            backend: "cpu".into(),
            adapter: None,
            gpu: None,
            validation: None,
            result,
        };
        serde_json::to_value(report).unwrap()
    }

    #[test]
    fn a_head_alone_has_no_outcome_and_null_optional_fields() {
        let v = head(None);
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys.len(),
            6,
            "csfuse_version inputs backend adapter gpu validation: {keys:?}"
        );
        assert!(v["adapter"].is_null() && v["validation"].is_null());
        assert_eq!(v["inputs"][1]["dims"], serde_json::json!([4, 5, 6]));
        assert!(v.get("output").is_none());
    }

    #[test]
    fn an_outcome_sits_at_the_top_level() {
        let d = crate::assets::cartoon();
        let outcome = VolumeOutcome {
            output: VolumeOutput {
                path: "f.nii".into(),
                datatype: "Float32".into(),
                scaling: Scaling::full(1.0),
                dicom_series: None,
            },
            intensity_range: IntensityRange::default(),
            grid: GridRecord {
                fused_on: GridOf::A,
                resampled: None,
            },
            axis: 2,
            slices: Slices {
                total: 6,
                fused: 4,
                empty_passed_through: 2,
                in_flight: 2,
                memory_budget_bytes: 1 << 30,
                gpu_batches: None,
            },
            montage_slice: None,
            dictionaries: Dictionaries::of(&d, &d),
            params: FuseParams::default(),
            timings_ms: VolumeTimings {
                read: 1.0,
                fusion_total: 2.0,
                per_fused_slice: 0.5,
                write: 1.0,
            },
            admm_iterations: VolumeIterations {
                total: 400,
                per_fused_slice: 100.0,
            },
        };
        let v = head(Some(Outcome::Volume(Box::new(outcome))));
        assert_eq!(v["slices"]["empty_passed_through"], 2);
        assert_eq!(v["output"]["path"], "f.nii");
        assert_eq!(v["dictionaries"]["cartoon"]["shape"][2], d.m);
        assert_eq!(v["admm_iterations"]["total"], 400);
        assert_eq!(v["grid"]["fused_on"], "a");
        assert!(v["grid"]["resampled"].is_null());
        assert!(v.get("result").is_none(), "flattened, not nested");
    }
}
