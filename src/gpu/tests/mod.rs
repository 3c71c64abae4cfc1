//! Every GPU kernel and the GPU engine against their CPU twins. They need an adapter (a real GPU
//! or Mesa's lavapipe) and are `#[ignore]`d without one; `bindings` needs none (naga alone).

mod bindings;
mod engine;
mod fft;
mod kernels;
