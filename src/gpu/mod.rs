//! The GPU engine: WGSL kernels in `shaders/` driven through wgpu, each with a CPU twin elsewhere in
//! the crate. [`context`] opens the adapter; [`fft`] is the 2-D FFT; [`kernels`] the other stages;
//! [`cbpdn`] the resident batched ADMM solver; [`engine`] the [`crate::engine::Ops`] on top.

pub mod context;
pub mod fft;

pub use context::{list_adapters, AdapterDesc, Counters, Gpu};
pub mod cbpdn;
pub mod engine;
pub mod kernels;

pub use engine::GpuEngine;
