//! `csfuse devices`: the adapters wgpu sees, best first (the one `--backend gpu` takes).

use csfuse::gpu::list_adapters;
use csfuse::Result;

/// List the GPU adapters wgpu sees (name, backend, device type, key limits), best first.
///
/// `--backend gpu` takes the first line; `--backend auto` takes it unless it is a software adapter
/// (device type Cpu, e.g. lavapipe), where the CPU engine is faster. WGPU_BACKEND (vulkan, metal,
/// dx12, gl; comma-separated) limits the backends searched and WGPU_ADAPTER_NAME (a case-insensitive
/// substring of the name) picks one adapter.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  csfuse devices\n  WGPU_BACKEND=vulkan csfuse devices --json\n  WGPU_ADAPTER_NAME=llvmpipe csfuse fuse a.png b.png -o f.png --backend gpu"
)]
pub struct Args {
    /// One JSON object per adapter instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let all = list_adapters();
    if args.json {
        for a in &all {
            println!("{}", serde_json::to_string(a).expect("JSON of plain data"));
        }
        return Ok(());
    }
    if all.is_empty() {
        println!(
            "no adapters. Without a GPU, install Mesa's software Vulkan adapter \
             (apt-get install mesa-vulkan-drivers libvulkan1); --backend cpu always works."
        );
        return Ok(());
    }
    println!(
        "{:<3} {:<40} {:<8} {:<14} {:>12} {:>10} {:>10}",
        "#", "name", "backend", "type", "max binding", "wg memory", "timestamps"
    );
    for (i, a) in all.iter().enumerate() {
        println!(
            "{:<3} {:<40} {:<8} {:<14} {:>8} MiB {:>7} KiB {:>10}",
            i,
            a.name,
            a.backend,
            a.device_type,
            a.max_storage_binding >> 20,
            a.max_workgroup_storage >> 10,
            if a.timestamps { "yes" } else { "no" }
        );
    }
    println!("driver of #0: {}", all[0].driver);
    Ok(())
}
