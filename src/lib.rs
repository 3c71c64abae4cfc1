//! csfuse: CS-MCA multimodal medical image fusion.
//!
//! The folders follow the data flow:
//! [`formats`] (read images, NIfTI volumes, npy) -> [`pipeline`] (the recipe: base/detail split,
//! CS-MCA decomposition, choose-max fusion, synthesis, written once against the [`pipeline::ops::Ops`]
//! seam) -> [`cpu`] or [`gpu`] (the engines that run each stage) -> [`formats`] (write).
//! [`jobs`] runs whole jobs (one pair, one volume, a batch) and writes their reports; [`learn`] trains
//! dictionaries; [`metrics`] scores fused images.
//!
//! Fusing a pair with the built-in dictionaries:
//!
//! ```
//! use csfuse::jobs::session::cpu_engine;
//! use csfuse::pipeline::fuse::{fuse_pair, FuseParams};
//! use csfuse::{assets, phantom, real::Precision};
//!
//! let (ct, mr) = phantom::head_pair(48);
//! let mut engine = cpu_engine(Precision::F32);
//! let out = fuse_pair(engine.as_mut(), &ct, &mr, &assets::cartoon(), &assets::texture(),
//!                     &FuseParams::default())?;
//! assert_eq!((out.fused.h, out.fused.w), (48, 48));
//! // The bright CT bone survives in the fused image where the MR shows it dark.
//! let bone: Vec<usize> = (0..48 * 48).filter(|&i| ct.data[i] > 0.8).collect();
//! let mean = |v: &[f64]| bone.iter().map(|&i| v[i]).sum::<f64>() / bone.len() as f64;
//! assert!(mean(&out.fused.data) > mean(&mr.data) + 0.2);
//! # Ok::<(), csfuse::Error>(())
//! ```

pub mod assets;
pub mod cancel;
pub mod cpu;
pub mod dictionary;
pub mod error;
pub mod evaluate;
pub(crate) mod fault;
pub mod formats;
pub mod gpu;
pub mod jobs;
pub mod learn;
pub mod metrics;
pub mod pages;
pub mod phantom;
pub mod pipeline;
pub mod plane;
pub mod progress;
pub mod real;
pub mod resample;

pub use error::{Error, Result};

#[cfg(test)]
mod test_support;
