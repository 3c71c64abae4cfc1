//! Helpers of the crate's unit tests: the published reference data and the test GPU.

// One definition for the unit and the integration tests.
#[path = "../tests/common/reference.rs"]
mod reference;
pub use reference::reference;

/// The GPU the tests run on: a real one if present, else Mesa's lavapipe. GPU tests are
/// `#[ignore]`d (a fresh clone may have no adapter); run with `--include-ignored`, they fail and say
/// how to install the software adapter when there is none.
pub fn gpu() -> crate::gpu::context::Gpu {
    match crate::gpu::context::Gpu::new() {
        Ok(g) => {
            eprintln!("GPU tests run on {}", g.desc);
            g
        }
        Err(e) => panic!(
            "GPU tests need an adapter and found none ({e}). On Debian/Ubuntu install the software \
             Vulkan adapter: sudo apt-get install mesa-vulkan-drivers libvulkan1"
        ),
    }
}
