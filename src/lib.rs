//! csfuse: CS-MCA multimodal medical image fusion.
//!
//! Data flows one way, and the modules follow it:
//! [`io`] (read) -> [`lowpass`] (base/detail split) -> [`decompose`] (CS-MCA, via [`cbpdn`] on [`fft2`])
//! -> [`fusion_rule`] (choose-max) -> synthesis ([`engine`]) -> [`io`] (write). [`fuse`] strings the
//! stages together behind the [`engine::Engine`] seam; [`learn`] trains dictionaries.

pub mod assets;
pub mod cbpdn;
pub mod decompose;
pub mod dictionary;
pub mod engine;
pub mod error;
pub mod fft2;
pub mod fuse;
pub mod fusion_rule;
pub mod io;
pub mod learn;
pub mod lowpass;
pub mod npy;
pub mod phantom;
pub mod plane;
pub mod real;
pub mod tv_split;

pub use error::{Error, Result};
