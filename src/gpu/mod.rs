//! The GPU engine: WGSL kernels in `shaders/` driven through wgpu, each with a CPU twin elsewhere in
//! the crate. `context` opens the adapter; `fft` is the 2-D FFT (`stockham` writes
//! its passes out per length); `kernels` the other stages;
//! `cbpdn` the resident batched ADMM solver; [`engine`] the [`crate::pipeline::ops::Ops`] on top.

pub(crate) mod cbpdn;
pub(crate) mod context;
pub mod engine;
pub(crate) mod fft;
pub(crate) mod kernels;
pub(crate) mod stockham;

pub use cbpdn::bytes_per_iteration;
pub use context::{list_adapters, AdapterDesc, Counters};
pub use engine::GpuEngine;

#[cfg(test)]
mod tests;
