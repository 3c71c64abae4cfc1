//! GPU FFT (shaders/fft.wgsl) against its CPU twin (src/fft2.rs) on power-of-two, odd, mixed-radix and
//! prime (Bluestein) sizes. Runs on whatever adapter wgpu picks; on a machine without a GPU that is
//! Mesa's lavapipe. A missing adapter fails the test with the install hint.

use crate::cpu::fft::Fft2;
use crate::gpu::fft::FftCache;
use rustfft::num_complex::Complex;

fn rel_err(a: &[[f32; 2]], b: &[Complex<f64>]) -> f64 {
    let mut num = 0.0;
    let mut den = 0.0;
    for (x, y) in a.iter().zip(b) {
        num += (x[0] as f64 - y.re).powi(2) + (x[1] as f64 - y.im).powi(2);
        den += y.re.powi(2) + y.im.powi(2);
    }
    (num / den).sqrt()
}

#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn fft_matches_cpu_twin_on_many_sizes() {
    let gpu = crate::test_support::gpu();
    let mut cache = FftCache::default();
    let sizes = [
        (8, 8),
        (9, 15),
        (16, 12),
        (49, 35),
        (64, 64),
        (181, 217),
        (128, 250),
        (256, 256),
        (97, 101),
        (512, 512),
        (210, 343),
        (11, 13),
    ];
    for (h, w) in sizes {
        check(&gpu, &mut cache, h, w, 3);
    }
}

/// Lines longer than workgroup memory holds (4096 complex f32 pairs need 64 KiB, 2187 = 3^7 needs
/// 35 KiB, Bluestein's 2053 needs 4105 * 16 bytes) run as global-memory passes, along rows and
/// along columns.
#[test]
#[ignore = "needs a GPU adapter: without a GPU install Mesa's lavapipe (apt-get install mesa-vulkan-drivers libvulkan1), then pass --include-ignored"]
fn long_lines_match_cpu_twin() {
    let gpu = crate::test_support::gpu();
    let mut cache = FftCache::default();
    for (h, w) in [
        (3, 4096),
        (4096, 4),
        (2, 2187),
        (2187, 3),
        (2, 2053),
        (2053, 2),
    ] {
        check(&gpu, &mut cache, h, w, 2);
        let plan = cache.get(&gpu, h, w).unwrap();
        println!(
            "{h}x{w}: {} on {} ({} bytes of workgroup memory)",
            if plan.uses_global_memory() {
                "global-memory passes"
            } else {
                "workgroup memory"
            },
            gpu.desc,
            gpu.limits.max_compute_workgroup_storage_size
        );
        if gpu.limits.max_compute_workgroup_storage_size < 65536 {
            assert!(plan.uses_global_memory(), "{h}x{w} fits no workgroup");
        }
    }
}

/// Forward against the CPU twin and the round trip, on `planes` planes of `h x w`.
fn check(gpu: &crate::gpu::context::Gpu, cache: &mut FftCache, h: usize, w: usize, planes: usize) {
    {
        let data: Vec<f32> = (0..planes * h * w)
            .map(|i| (((i * 7919) % 1013) as f32 / 1013.0) - 0.5)
            .collect();
        let cpu = Fft2::<f64>::new(h, w);
        let ns = cpu.spectrum_len();
        let mut want = vec![Complex::new(0.0, 0.0); planes * ns];
        let mut buf: Vec<f64> = data.iter().map(|v| *v as f64).collect();
        cpu.forward_batch(&mut buf, &mut want);

        let plan = cache.get(gpu, h, w).unwrap();
        let real = gpu.upload("real", &data).unwrap();
        let spec = gpu.storage("spec", (planes * ns * 8) as u64).unwrap();
        let mut enc = gpu.encoder();
        plan.forward(gpu, &mut enc, &real, &spec, planes);
        gpu.submit(enc).unwrap();
        let got: Vec<[f32; 2]> = gpu.download(&spec, 0, planes * ns).unwrap();
        let e = rel_err(&got, &want);
        println!("{h}x{w}: forward rel err {e:.2e}");
        assert!(e < 1e-5, "{h}x{w}: forward FFT relative error {e:.2e}");

        let back = gpu.storage("back", (planes * h * w * 4) as u64).unwrap();
        let mut enc = gpu.encoder();
        plan.inverse(gpu, &mut enc, &spec, &back, planes);
        gpu.submit(enc).unwrap();
        let round: Vec<f32> = gpu.download(&back, 0, planes * h * w).unwrap();
        let num: f64 = round
            .iter()
            .zip(&data)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum();
        let den: f64 = data.iter().map(|b| (*b as f64).powi(2)).sum();
        let e = (num / den).sqrt();
        println!("{h}x{w}: round trip rel err {e:.2e}");
        assert!(
            e < 1e-5,
            "{h}x{w}: inverse FFT round trip relative error {e:.2e}"
        );
    }
}
