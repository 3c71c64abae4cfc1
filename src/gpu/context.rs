//! Adapter choice, device, and the small amount of plumbing every kernel needs: buffers, cached
//! pipelines with explicit layouts, cached uniform blocks, dispatch and read-back.

use crate::error::{Error, Result};
use serde::Serialize;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use wgpu::util::DeviceExt;

/// What a report says about the adapter.
#[derive(Clone, Debug, Serialize)]
pub struct AdapterDesc {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// Largest storage binding in bytes (the batching limit).
    pub max_storage_binding: u64,
    /// Workgroup memory in bytes (the longest FFT line is a quarter of it in complex f32 pairs).
    pub max_workgroup_storage: u32,
    pub timestamps: bool,
}

impl AdapterDesc {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let limits = adapter.limits();
        AdapterDesc {
            name: info.name,
            backend: format!("{:?}", info.backend).to_lowercase(),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
            max_storage_binding: limits.max_storage_buffer_binding_size,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            timestamps: adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY),
        }
    }
}

impl std::fmt::Display for AdapterDesc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.backend, self.device_type)
    }
}

/// On a headless machine (SSH, container, Slurm job) Mesa's Wayland probing prints "error:
/// XDG_RUNTIME_DIR is invalid or not set" twice for every instance, even when the run succeeds.
/// An absolute XDG_RUNTIME_DIR silences it (the Wayland connection then just fails); a session that
/// has one keeps it.
fn quiet_headless() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let set = std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|d| std::path::Path::new(&d).is_absolute());
        if !set {
            // Set once, before any wgpu or Mesa code runs in this process.
            std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
        }
    });
}

/// Adapters of the backends `WGPU_BACKEND` names (e.g. `vulkan`, `gl`); without it the primary
/// backends (Vulkan, Metal, DX12), then GL only if those have none (GL probing is noisy and slower).
fn adapters() -> Vec<wgpu::Adapter> {
    quiet_headless();
    let enumerate = |backends| {
        let mut d = wgpu::InstanceDescriptor::new_without_display_handle();
        d.backends = backends;
        let inst = wgpu::Instance::new(d);
        pollster::block_on(inst.enumerate_adapters(backends))
    };
    if let Some(b) = wgpu::Backends::from_env() {
        return enumerate(b);
    }
    let all = enumerate(wgpu::Backends::PRIMARY);
    if all.is_empty() {
        enumerate(wgpu::Backends::GL)
    } else {
        all
    }
}

/// Preference order: real GPUs first, software adapters last; Vulkan/Metal/DX12 before GL.
fn rank(a: &wgpu::Adapter) -> (u8, u8) {
    let info = a.get_info();
    let t = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let b = if info.backend == wgpu::Backend::Gl {
        1
    } else {
        0
    };
    (t, b)
}

/// Every adapter wgpu sees (after `WGPU_BACKEND`), best first.
pub fn list_adapters() -> Vec<AdapterDesc> {
    let mut all = adapters();
    all.sort_by_key(rank);
    all.iter().map(AdapterDesc::of).collect()
}

const INSTALL_HINT: &str =
    "no GPU adapter found. Without a GPU, install Mesa's software Vulkan adapter \
    (Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1), or use --backend cpu";

fn choose_adapter() -> Result<wgpu::Adapter> {
    let mut all = adapters();
    if let Ok(want) = std::env::var("WGPU_ADAPTER_NAME") {
        let want = want.to_lowercase();
        let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
        all.retain(|a| a.get_info().name.to_lowercase().contains(&want));
        if all.is_empty() {
            return Err(Error::Gpu(format!(
                "WGPU_ADAPTER_NAME={want:?} matches none of the adapters [{}]",
                names.join(", ")
            )));
        }
    }
    all.sort_by_key(rank);
    all.into_iter()
        .next()
        .ok_or_else(|| Error::Gpu(INSTALL_HINT.into()))
}

/// How a binding is used by a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    Uniform,
    Read,
    Write,
}

/// A compiled entry point with its bind group layout.
pub struct Kernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// Device, queue, limits and caches. Single-threaded by design: one host scheduler drives it.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub desc: AdapterDesc,
    pub limits: wgpu::Limits,
    kernels: RefCell<HashMap<String, Rc<Kernel>>>,
    uniforms: RefCell<HashMap<Vec<u32>, Rc<wgpu::Buffer>>>,
    /// First uncaptured error (validation, out of memory) or device loss, reported at the next sync.
    fault: Arc<Mutex<Option<String>>>,
    dummies: Vec<wgpu::Buffer>,
}

impl Gpu {
    /// Open the best adapter (or the one `WGPU_ADAPTER_NAME` names) with its own limits.
    pub fn new() -> Result<Self> {
        let adapter = choose_adapter()?;
        let desc = AdapterDesc::of(&adapter);
        let limits = adapter.limits();
        let mut features = wgpu::Features::empty();
        if desc.timestamps {
            features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("csfuse"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("{desc}: cannot open the device: {e}")))?;
        let fault = Arc::new(Mutex::new(None));
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
        });
        let dummies = (0..4)
            .map(|_| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("unused binding"),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Ok(Gpu {
            device,
            queue,
            desc,
            limits,
            kernels: RefCell::new(HashMap::new()),
            uniforms: RefCell::new(HashMap::new()),
            fault,
            dummies,
        })
    }

    /// A 16-byte placeholder for a binding an entry point does not use; `i < 4` gives distinct ones
    /// (one buffer may not fill two writable bindings of a dispatch).
    pub fn dummy(&self, i: usize) -> &wgpu::Buffer {
        &self.dummies[i]
    }

    /// Fail with the first fault the device reported since the last check.
    pub fn check(&self) -> Result<()> {
        let mut slot = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some(msg) => Err(Error::Gpu(format!("{}: {msg}", self.desc))),
            None => Ok(()),
        }
    }

    /// Largest buffer one binding may hold.
    pub fn max_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// A zeroed storage buffer of `bytes`; refuses sizes beyond the adapter's binding limit.
    pub fn storage(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let bytes = bytes.max(16).next_multiple_of(16);
        if bytes > self.max_binding() {
            return Err(Error::Gpu(format!(
                "{label} needs {} MiB, over the adapter's {} MiB storage-binding limit",
                bytes >> 20,
                self.max_binding() >> 20
            )));
        }
        crate::fault::gpu_buffer()
            .map_err(|m| Error::Gpu(format!("{}: {m} for {label}", self.desc)))?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu(format!("out of GPU memory for {label}: {e}")));
        }
        Ok(buf)
    }

    /// A storage buffer holding `data`.
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let buf = self.storage(label, std::mem::size_of_val(data) as u64)?;
        self.queue.write_buffer(&buf, 0, bytemuck::cast_slice(data));
        Ok(buf)
    }

    /// A cached uniform block of 32-bit words (floats go in as bits).
    pub fn uniform(&self, words: &[u32]) -> Rc<wgpu::Buffer> {
        let mut key = words.to_vec();
        key.resize(key.len().next_multiple_of(4), 0);
        let mut cache = self.uniforms.borrow_mut();
        cache
            .entry(key.clone())
            .or_insert_with(|| {
                Rc::new(
                    self.device
                        .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                            label: Some("params"),
                            contents: bytemuck::cast_slice(&key),
                            usage: wgpu::BufferUsages::UNIFORM,
                        }),
                )
            })
            .clone()
    }

    /// Compile (once) entry point `entry` of `source` with bindings `slots` (binding i = slots[i]).
    /// `key` must identify the source text (shaders specialised by string substitution differ in it).
    pub fn kernel(&self, key: &str, source: &str, entry: &str, slots: &[Slot]) -> Rc<Kernel> {
        let full = format!("{key}::{entry}");
        if let Some(k) = self.kernels.borrow().get(&full) {
            return k.clone();
        }
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(key),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            });
        let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
            .iter()
            .enumerate()
            .map(|(i, s)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match s {
                        Slot::Uniform => wgpu::BufferBindingType::Uniform,
                        Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Slot::Write => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(key),
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(key),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&full),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[],
                    // The kernels initialise their workgroup memory themselves; the zero-fill costs a lot
                    // on software adapters (DESIGN.md section 4).
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        let k = Rc::new(Kernel { pipeline, layout });
        self.kernels.borrow_mut().insert(full, k.clone());
        k
    }

    /// Record one dispatch of `k` with `bufs` bound in order. Grids larger than 65535 workgroups in x
    /// are the caller's job (the kernels take a row stride in their uniforms).
    pub fn dispatch(
        &self,
        enc: &mut wgpu::CommandEncoder,
        k: &Kernel,
        bufs: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
    ) {
        let entries: Vec<wgpu::BindGroupEntry> = bufs
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &k.layout,
            entries: &entries,
        });
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, &bg, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default())
    }

    /// Submit and wait for completion.
    pub fn submit(&self, enc: wgpu::CommandEncoder) -> Result<()> {
        self.queue.submit([enc.finish()]);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("{}: {e}", self.desc)))?;
        self.check()
    }

    /// Submit `enc` plus a copy of `bytes` bytes of `src` (from `offset`), wait, and return them.
    pub fn read<T: bytemuck::Pod>(
        &self,
        mut enc: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        offset: u64,
        count: usize,
    ) -> Result<Vec<T>> {
        let bytes = (count * std::mem::size_of::<T>()) as u64;
        let padded = bytes.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT).max(4);
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size: padded,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        enc.copy_buffer_to_buffer(src, offset, &staging, 0, padded);
        self.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("{}: {e}", self.desc)))?;
        self.check()?;
        rx.recv()
            .map_err(|_| Error::Gpu("read-back never completed".into()))?
            .map_err(|e| Error::Gpu(format!("{}: read-back failed: {e}", self.desc)))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("read-back map: {e}")))?;
        let out = bytemuck::cast_slice::<u8, T>(&view[..bytes as usize]).to_vec();
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Read `count` elements of `src` from element `start`.
    pub fn download<T: bytemuck::Pod>(
        &self,
        src: &wgpu::Buffer,
        start: usize,
        count: usize,
    ) -> Result<Vec<T>> {
        let off = (start * std::mem::size_of::<T>()) as u64;
        self.read(self.encoder(), src, off, count)
    }
}

/// Workgroups for `n` threads of `wg` each, as (x, y) with x at most 32768 (kernels rebuild the linear
/// index as `id.x + id.y * x`).
pub fn grid(n: usize, wg: usize) -> (u32, u32) {
    let groups = n.div_ceil(wg).max(1);
    let x = groups.min(32768);
    (x as u32, groups.div_ceil(x) as u32)
}
