// Indirect grids of the next ADMM iteration (CPU twin: gpu::cbpdn::skip_grids). One workgroup, after
// the control kernel: while any item of the batch is live, the iteration's dispatches get their
// full grids (written by the host into `full`); once every item has stopped they get zero
// workgroups, so the rest of a solve recorded up front launches nothing.

// struct Item: shaders/item.wgsl

struct Prm {
    batch: u32,
    // u32 words of the grid table: 3 per dispatch slot
    words: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> prm: Prm;
@group(0) @binding(1) var<storage, read> items: array<Item>;
@group(0) @binding(2) var<storage, read> full: array<u32>;
@group(0) @binding(3) var<storage, read_write> args: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_index) t: u32) {
    var live = 0u;
    for (var b = 0u; b < prm.batch; b = b + 1u) {
        live = live | items[b].live;
    }
    for (var i = t; i < prm.words; i = i + 64u) {
        args[i] = select(0u, full[i], live != 0u);
    }
}
