//! Choosing the engine behind `--backend`, with the CPU fallback of `auto`, and `--validate`'s
//! comparison of the two engines.

use crate::cpu::CpuEngine;
use crate::error::{Error, Result};
use crate::gpu::GpuEngine;
use crate::pipeline::fuse::Engine;
use crate::real::Precision;

/// A boxed CPU engine of the requested precision.
pub fn cpu_engine(p: Precision) -> Box<dyn Engine> {
    match p {
        Precision::F32 => Box::new(CpuEngine::<f32>::default()),
        Precision::F64 => Box::new(CpuEngine::<f64>::default()),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A GPU adapter if one works, else the CPU (with a log line saying why).
    Auto,
    /// The GPU engine only; fail if no adapter works.
    Gpu,
    /// The CPU engine (the reference; f32 or f64).
    Cpu,
}

/// Tolerances of `--validate` (documented in `--help` and `docs/gpu.md`). The GPU is f32 with different
/// summation orders, so iterates drift by ~1e-6 relative; choose-max decisions at near-ties may flip,
/// which moves single pixels by a fraction of a grey level.
pub const VALIDATE_MAX_ABS: f64 = 0.01;
pub const VALIDATE_OBJECTIVE_REL: f64 = 1e-3;

/// Open the engine `backend` asks for.
pub fn open(backend: Backend, precision: Precision) -> Result<Box<dyn Engine>> {
    match backend {
        Backend::Cpu => Ok(cpu_engine(precision)),
        Backend::Gpu => {
            if precision == Precision::F64 {
                return Err(Error::Param(
                    "the GPU engine computes in f32; use --backend cpu for --precision f64".into(),
                ));
            }
            Ok(Box::new(GpuEngine::new()?))
        }
        Backend::Auto => {
            if precision == Precision::F64 {
                log::info!("--precision f64 runs on the CPU engine (the GPU engine is f32)");
                return Ok(cpu_engine(precision));
            }
            match GpuEngine::new() {
                // A software rasteriser (lavapipe, llvmpipe) is far slower than the CPU engine; auto
                // takes it only when WGPU_ADAPTER_NAME asks for it.
                Ok(g)
                    if g.gpu().desc.device_type == "Cpu"
                        && std::env::var_os("WGPU_ADAPTER_NAME").is_none() =>
                {
                    log::info!(
                        "only a software adapter found ({}); the CPU engine is faster, using it \
                         (--backend gpu selects the adapter anyway)",
                        g.gpu().desc
                    );
                    Ok(cpu_engine(precision))
                }
                Ok(g) => Ok(Box::new(g)),
                Err(e) => {
                    log::warn!("{e}; falling back to the CPU engine");
                    Ok(cpu_engine(precision))
                }
            }
        }
    }
}

/// What a command ran on: the result, the engine's description, its adapter, and `--validate`'s
/// numbers when asked for.
pub struct Outcome<T> {
    pub result: T,
    pub engine: String,
    pub adapter: Option<crate::gpu::AdapterDesc>,
    pub validation: Option<Validation>,
}

/// An engine opened once for many jobs (the slices of a volume, the items of a batch), as
/// `--backend` and `--validate` say. The engine opens on first use, so every input is checked
/// before an adapter is probed. With `auto`, a GPU failure during a job (device lost, out of
/// memory, a size beyond the adapter's limits) is logged, the session switches to the CPU for good
/// and the job reruns there.
pub struct Session {
    backend: Backend,
    precision: Precision,
    validate: bool,
    engine: Option<Box<dyn Engine>>,
    /// The CPU (f32) engine `--validate` compares with.
    reference: Option<Box<dyn Engine>>,
}

impl Session {
    /// Check the options (nothing is opened yet).
    pub fn open(backend: Backend, precision: Precision, validate: bool) -> Result<Session> {
        if validate && (backend == Backend::Cpu || precision == Precision::F64) {
            return Err(Error::Param(
                "--validate compares the GPU engine with the CPU engine in f32; drop --backend \
                 cpu and --precision f64"
                    .into(),
            ));
        }
        if backend == Backend::Gpu && precision == Precision::F64 {
            return Err(Error::Param(
                "the GPU engine computes in f32; use --backend cpu for --precision f64".into(),
            ));
        }
        Ok(Session {
            backend,
            precision,
            validate,
            engine: None,
            reference: validate.then(|| cpu_engine(Precision::F32)),
        })
    }

    /// The engine, opened on first use.
    fn engine(&mut self) -> Result<&mut Box<dyn Engine>> {
        if self.engine.is_none() {
            let e: Box<dyn Engine> = if self.validate {
                Box::new(GpuEngine::new()?)
            } else {
                open(self.backend, self.precision)?
            };
            self.engine = Some(e);
        }
        Ok(self.engine.as_mut().expect("opened above"))
    }

    pub fn describe(&self) -> String {
        self.engine.as_ref().map_or_else(
            || "none (no work needed an engine)".into(),
            |e| e.describe(),
        )
    }

    pub fn adapter(&self) -> Option<crate::gpu::AdapterDesc> {
        self.engine.as_ref().and_then(|e| e.adapter())
    }

    /// The device counters of the engine, if it has a device.
    pub fn counters(&self) -> Option<crate::gpu::Counters> {
        self.engine.as_ref().and_then(|e| e.counters())
    }

    /// Pairs of `h x w` the engine fuses in one batch (1 until an engine is open).
    pub fn pairs_per_batch(
        &mut self,
        dc: &crate::dictionary::Dictionary,
        dt: &crate::dictionary::Dictionary,
        h: usize,
        w: usize,
    ) -> Result<usize> {
        Ok(self.engine()?.pairs_per_batch(dc, dt, h, w))
    }

    /// Whether a batch may also run on the CPU engine (`--validate`, or `auto` after a GPU
    /// failure), so host memory must hold a CPU batch's coefficient maps.
    pub fn may_run_on_cpu(&self) -> bool {
        self.validate || self.backend == Backend::Auto
    }

    /// The precision of a CPU engine this session runs on without validation: jobs may then run
    /// concurrently, each on its own CPU engine. `None` for a GPU or a validating session.
    pub fn parallel_cpu(&mut self) -> Result<Option<Precision>> {
        let on_cpu = self.engine()?.adapter().is_none();
        Ok((self.reference.is_none() && on_cpu).then_some(self.precision))
    }

    /// Run `job`; with validation also on the CPU engine, measured by `compare` (the GPU result is
    /// returned; checking the tolerance is left to the caller, so it can record the numbers first).
    pub fn run<T, V>(
        &mut self,
        mut job: impl FnMut(&mut dyn Engine) -> Result<T>,
        compare: impl Fn(&T, &T) -> V,
    ) -> Result<(T, Option<V>)> {
        let (backend, validate) = (self.backend, self.validate);
        let engine = self.engine()?;
        if validate {
            let g = job(engine.as_mut())?;
            let cpu = self
                .reference
                .as_mut()
                .expect("validating sessions have one");
            let c = job(cpu.as_mut())?;
            let v = compare(&g, &c);
            return Ok((g, Some(v)));
        }
        match job(engine.as_mut()) {
            Err(Error::Gpu(msg)) if backend == Backend::Auto => {
                log::warn!("GPU: {msg}; falling back to the CPU engine");
                let cpu = self.engine.insert(cpu_engine(self.precision));
                Ok((job(cpu.as_mut())?, None))
            }
            r => Ok((r?, None)),
        }
    }
}

/// Run one job in a fresh [`Session`].
pub fn run_job<T>(
    backend: Backend,
    precision: Precision,
    validate: bool,
    job: impl FnMut(&mut dyn Engine) -> Result<T>,
    compare: impl Fn(&T, &T) -> Validation,
) -> Result<Outcome<T>> {
    let mut s = Session::open(backend, precision, validate)?;
    let (result, validation) = s.run(job, compare)?;
    Ok(Outcome {
        result,
        engine: s.describe(),
        adapter: s.adapter(),
        validation,
    })
}

/// What `--validate` measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Validation {
    /// Max abs difference of the fused images (GPU vs CPU) in [0, 1] units.
    pub max_abs_diff: f64,
    /// Largest relative difference of the final CBPDN objectives.
    pub objective_rel_diff: f64,
    pub tolerance_max_abs: f64,
    pub tolerance_objective_rel: f64,
    pub passed: bool,
}

impl Validation {
    pub fn new(max_abs_diff: f64, objective_rel_diff: f64) -> Self {
        Validation {
            max_abs_diff,
            objective_rel_diff,
            tolerance_max_abs: VALIDATE_MAX_ABS,
            tolerance_objective_rel: VALIDATE_OBJECTIVE_REL,
            passed: max_abs_diff <= VALIDATE_MAX_ABS
                && objective_rel_diff <= VALIDATE_OBJECTIVE_REL,
        }
    }

    /// The larger of each difference of `self` and `other` (the worst of several comparisons).
    pub fn worst(&self, other: &Validation) -> Validation {
        Validation::new(
            self.max_abs_diff.max(other.max_abs_diff),
            self.objective_rel_diff.max(other.objective_rel_diff),
        )
    }

    /// `Ok` when within tolerance, else the error `--validate` exits with.
    pub fn check(&self) -> Result<()> {
        log::info!(
            "validate: GPU vs CPU max abs diff {:.3e} (tolerance {:.0e}), objective rel diff {:.3e} \
             (tolerance {:.0e})",
            self.max_abs_diff,
            VALIDATE_MAX_ABS,
            self.objective_rel_diff,
            VALIDATE_OBJECTIVE_REL
        );
        if self.passed {
            Ok(())
        } else {
            Err(Error::Validation(format!(
                "GPU and CPU disagree: max abs diff {:.3e} (tolerance {:.0e}), objective rel diff \
                 {:.3e} (tolerance {:.0e})",
                self.max_abs_diff,
                VALIDATE_MAX_ABS,
                self.objective_rel_diff,
                VALIDATE_OBJECTIVE_REL
            )))
        }
    }
}

/// Largest `|a - b|` of paired values.
pub fn max_diffs(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

pub fn rel_diff(a: f64, b: f64) -> f64 {
    let d = (a - b).abs();
    if d == 0.0 {
        0.0
    } else {
        d / b.abs().max(f64::MIN_POSITIVE)
    }
}
