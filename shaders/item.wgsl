// Per-item ADMM parameters, prepended by the host to the shaders that use them (src/gpu/kernels.rs).
struct Item {
    rho: f32,
    lam_over_rho: f32,
    alpha: f32,
    // 0 once the item has converged: the kernels skip it
    live: u32,
    // dual rescale factor after an auto-rho change (1 = none)
    u_scale: f32,
    // 1 before the first iteration of a warm start: rescale.wgsl writes Y - U even when u_scale is 1
    fresh: u32,
    _p1: f32,
    _p2: f32,
}
