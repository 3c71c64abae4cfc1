// Auto-rho follow-up (CPU twin: the dual rescale in cpu::cbpdn::Cbpdn::update_rho): when the control changes rho by a
// factor f, the scaled dual becomes U / f and Y - U is rewritten for the next X step. Before a warm
// start's first iteration (fresh = 1) it scales the dual by the change in lambda and writes Y - U
// (CPU twin: cpu::cbpdn::Cbpdn::warm_start).

struct Params {
    per_item: u32,
    nwx: u32,
    _p0: u32,
    _p1: u32,
}

// struct Item: shaders/item.wgsl

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read_write> yu: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> u: array<f32>;
@group(0) @binding(4) var<storage, read> items: array<Item>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x + gid.y * prm.nwx * 256u;
    let b = gid.z;
    let f = items[b].u_scale;
    if (e >= prm.per_item || (f == 1.0 && items[b].fresh == 0u)) {
        return;
    }
    let i = b * prm.per_item + e;
    let un = u[i] * f;
    u[i] = un;
    yu[i] = y[i] - un;
}
