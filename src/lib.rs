//! csfuse: CS-MCA multimodal medical image fusion.
//!
//! Data flows one way, and the modules follow it:
//! [`io`] (read) -> [`lowpass`] (base/detail split) -> [`decompose`] (CS-MCA, via [`cbpdn`] on [`fft2`])
//! -> [`fusion_rule`] (choose-max) -> synthesis ([`engine`]) -> [`io`] (write). [`fuse`] strings the
//! stages together behind the [`engine::Ops`] seam; [`learn`] trains dictionaries.
//!
//! Fusing a pair with the built-in dictionaries:
//!
//! ```
//! use csfuse::{assets, backend::cpu_engine, fuse::{fuse_pair, FuseParams}, phantom, real::Precision};
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
pub mod backend;
pub mod batch;
pub mod cbpdn;
pub mod colour;
pub mod decompose;
pub mod dictionary;
pub mod engine;
pub mod error;
pub mod fault;
pub mod fft2;
pub mod fuse;
pub mod fusion_rule;
pub mod gpu;
pub mod intensity;
pub mod io;
pub mod job;
pub mod learn;
pub mod lowpass;
pub mod metrics;
pub mod montage;
pub mod npy;
pub mod output;
pub mod phantom;
pub mod plane;
pub mod progress;
pub mod real;
pub mod tv_split;
pub mod volume;

pub use error::{Error, Result};
