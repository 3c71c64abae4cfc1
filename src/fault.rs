//! Fault injection for tests: `CSFUSE_FAULT` makes the GPU engine or the output writer fail at a
//! chosen point, so the fallback and clean-up paths are exercised without a broken device or a
//! full disk. Comma-separated, each counted from the start of the process (1-based):
//!
//! * `gpu_lost_at_iter=N`: the device is "lost" at the N-th ADMM iteration on the GPU;
//! * `gpu_oom_at_buffer=K`: the K-th GPU storage buffer cannot be allocated;
//! * `io_error_at_write=K`: the K-th output file (temp) cannot be written;
//! * `pause_before_commit_ms=N`: sleep N ms between staging a job's outputs and renaming them (so a
//!   test can deliver a signal while the temps exist).
//!
//! Unset (as for every user), each check is one relaxed atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

#[derive(Default)]
struct Plan {
    gpu_lost_at_iter: Option<u64>,
    gpu_oom_at_buffer: Option<u64>,
    io_error_at_write: Option<u64>,
    pause_before_commit_ms: Option<u64>,
}

static PLAN: LazyLock<Plan> = LazyLock::new(|| {
    let mut p = Plan::default();
    let Ok(spec) = std::env::var("CSFUSE_FAULT") else {
        return p;
    };
    for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let parsed = part
            .split_once('=')
            .and_then(|(k, v)| Some((k.trim(), v.trim().parse::<u64>().ok()?)));
        match parsed {
            Some(("gpu_lost_at_iter", n)) => p.gpu_lost_at_iter = Some(n),
            Some(("gpu_oom_at_buffer", n)) => p.gpu_oom_at_buffer = Some(n),
            Some(("io_error_at_write", n)) => p.io_error_at_write = Some(n),
            Some(("pause_before_commit_ms", n)) => p.pause_before_commit_ms = Some(n),
            _ => log::warn!("CSFUSE_FAULT: ignoring `{part}`"),
        }
    }
    p
});

static ITERS: AtomicU64 = AtomicU64::new(0);
static BUFFERS: AtomicU64 = AtomicU64::new(0);
static WRITES: AtomicU64 = AtomicU64::new(0);

fn hit(at: Option<u64>, counter: &AtomicU64) -> bool {
    match at {
        Some(n) => counter.fetch_add(1, Ordering::Relaxed) + 1 == n,
        None => false,
    }
}

/// Called once per GPU ADMM iteration: `Err` with a device-lost message at the planned one.
pub(crate) fn gpu_iteration() -> Result<(), String> {
    if hit(PLAN.gpu_lost_at_iter, &ITERS) {
        return Err("device lost (injected by CSFUSE_FAULT gpu_lost_at_iter)".into());
    }
    Ok(())
}

/// Called once per GPU storage buffer: `Err` with an out-of-memory message at the planned one.
pub(crate) fn gpu_buffer() -> Result<(), String> {
    if hit(PLAN.gpu_oom_at_buffer, &BUFFERS) {
        return Err("out of memory (injected by CSFUSE_FAULT gpu_oom_at_buffer)".into());
    }
    Ok(())
}

/// Called once per output temp before it is written: an I/O error at the planned one.
pub(crate) fn io_write(path: &std::path::Path) -> std::io::Result<()> {
    if hit(PLAN.io_error_at_write, &WRITES) {
        return Err(std::io::Error::other(format!(
            "no space left on device (injected by CSFUSE_FAULT io_error_at_write) writing {}",
            path.display()
        )));
    }
    Ok(())
}

/// Called before an output set is committed.
pub(crate) fn before_commit() {
    if let Some(ms) = PLAN.pause_before_commit_ms {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
