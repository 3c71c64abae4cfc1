//! The floating-point type the numeric kernels run in: f32 by default (as on the GPU), f64 for checks.

use rustfft::num_traits::Float;
use rustfft::FftNum;

/// A real scalar the CPU kernels are generic over (implemented for `f32` and `f64`).
pub trait Real: FftNum + Float + Default + Send + Sync + std::fmt::Debug + 'static {
    /// Name used in reports ("f32" / "f64").
    const NAME: &'static str;
    fn lit(v: f64) -> Self;
    fn as_f64(self) -> f64;
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn lit(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn lit(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
}

/// Precision of the CPU engine, chosen on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F64,
}

impl Precision {
    /// Name used in reports, the same as [`Real::NAME`] of the matching type.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => f32::NAME,
            Precision::F64 => f64::NAME,
        }
    }
}
