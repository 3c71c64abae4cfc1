//! Adapter choice, device, and the small amount of plumbing every kernel needs: buffers, cached
//! pipelines with explicit layouts, cached uniform blocks, dispatch and read-back.

use crate::error::{Error, Result};
use serde::Serialize;
use std::cell::{Cell, RefCell};
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
        // wgpu checks each indirect grid with an extra dispatch. Ours are the host's own grids or
        // zero (skip.wgsl), so the check buys nothing; WGPU_VALIDATION_INDIRECT_CALL=1 restores it.
        d.flags
            .remove(wgpu::InstanceFlags::VALIDATION_INDIRECT_CALL);
        d.flags = d.flags.with_env();
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

/// A WGSL module as its Rust wrapper binds it: binding `i` of group 0 is `slots[i]` in every entry
/// point. One value per shader, so the wrapper and the binding test (`gpu/tests/bindings.rs`, naga,
/// no GPU) read the same description.
pub(crate) struct Shader {
    /// Cache key; must identify the source text.
    pub key: &'static str,
    pub source: fn() -> &'static str,
    pub entries: &'static [&'static str],
    pub slots: &'static [Slot],
}

/// What the device was asked to do, counted on the host. Deterministic for a given job, so tests
/// assert on them (a per-dispatch allocation or a per-iteration read-back shows up here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub submits: u64,
    /// Times the host blocked on the device (a read-back or a synchronous submit).
    pub host_waits: u64,
    pub dispatches: u64,
    pub bind_groups_created: u64,
    /// Storage, uniform, staging and query-resolve buffers.
    pub buffers_created: u64,
    pub bytes_read_back: u64,
}

impl Counters {
    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Counters) -> Counters {
        Counters {
            submits: self.submits - before.submits,
            host_waits: self.host_waits - before.host_waits,
            dispatches: self.dispatches - before.dispatches,
            bind_groups_created: self.bind_groups_created - before.bind_groups_created,
            buffers_created: self.buffers_created - before.buffers_created,
            bytes_read_back: self.bytes_read_back - before.bytes_read_back,
        }
    }
}

/// Timestamp slots: the stage boundaries of one job.
pub const MAX_STAMPS: u32 = 8;

/// Dispatch slots of one skippable region (the heavy part of an ADMM iteration); dispatches
/// beyond it run with their direct grids, which is correct but not skipped.
pub const SKIP_SLOTS: usize = 1024;

/// Bind groups kept at most; beyond it the cache is dropped (only a job that keeps changing
/// sizes gets there).
const MAX_BIND_GROUPS: usize = 4096;

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
    /// Bind groups per (kernel, bound buffers): buffers come from caches, so a job's second
    /// fusion of one size binds exactly the same sets again.
    bind_groups: RefCell<HashMap<(usize, Vec<wgpu::Buffer>), wgpu::BindGroup>>,
    /// Named work buffers (grow-only: a larger request replaces the buffer).
    scratch: RefCell<HashMap<String, wgpu::Buffer>>,
    /// Read-back staging buffers per size.
    staging: RefCell<HashMap<u64, wgpu::Buffer>>,
    counters: Cell<Counters>,
    /// Timestamp queries (with their resolve buffer) where the adapter supports them.
    stamps: Option<(wgpu::QuerySet, wgpu::Buffer)>,
    /// First uncaptured error (validation, out of memory) or device loss, reported at the next sync.
    fault: Arc<Mutex<Option<String>>>,
    dummies: Vec<wgpu::Buffer>,
    /// A binding limit below the adapter's, set by [`Gpu::cap_binding`].
    binding_cap: Cell<u64>,
    /// Grids of the dispatches recorded since [`Gpu::open_skip`], while a region is open.
    skip: RefCell<Option<Vec<[u32; 3]>>>,
    /// `None` where the adapter cannot dispatch indirectly.
    skip_tables: Option<SkipTables>,
}

/// The grid tables of a skippable region: `full` written by the host, `args` (what the
/// dispatches read) by skip.wgsl from it.
pub struct SkipTables {
    pub full: wgpu::Buffer,
    pub args: wgpu::Buffer,
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
                    size: 32,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                })
            })
            .collect();
        let indirect = adapter
            .get_downlevel_capabilities()
            .flags
            .contains(wgpu::DownlevelFlags::INDIRECT_EXECUTION);
        let table = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: SKIP_SLOTS as u64 * 12,
                usage: wgpu::BufferUsages::STORAGE | usage,
                mapped_at_creation: false,
            })
        };
        let skip_tables = indirect.then(|| SkipTables {
            full: table(
                "full grids",
                wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            ),
            args: table(
                "live grids",
                wgpu::BufferUsages::INDIRECT | wgpu::BufferUsages::COPY_SRC,
            ),
        });
        let stamps = desc.timestamps.then(|| {
            let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("stage timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: MAX_STAMPS,
            });
            let buf = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("resolved timestamps"),
                size: MAX_STAMPS as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (set, buf)
        });
        Ok(Gpu {
            stamps,
            device,
            queue,
            desc,
            limits,
            kernels: RefCell::new(HashMap::new()),
            uniforms: RefCell::new(HashMap::new()),
            bind_groups: RefCell::new(HashMap::new()),
            scratch: RefCell::new(HashMap::new()),
            staging: RefCell::new(HashMap::new()),
            counters: Cell::new(Counters::default()),
            fault,
            dummies,
            binding_cap: Cell::new(u64::MAX),
            skip: RefCell::new(None),
            skip_tables,
        })
    }

    /// The grid tables of skippable regions, where the adapter dispatches indirectly.
    pub fn skip_tables(&self) -> Option<&SkipTables> {
        self.skip_tables.as_ref()
    }

    /// From here to [`Gpu::close_skip`], dispatches read their grids from the `args` table, slot by
    /// slot, so that the device can turn the whole region into empty launches.
    pub fn open_skip(&self) {
        if self.skip_tables.is_some() {
            *self.skip.borrow_mut() = Some(Vec::new());
        }
    }

    /// The full grids of the dispatches recorded since [`Gpu::open_skip`], by slot.
    pub fn close_skip(&self) -> Vec<[u32; 3]> {
        self.skip.borrow_mut().take().unwrap_or_default()
    }

    /// The counters since the device was opened.
    pub fn counters(&self) -> Counters {
        self.counters.get()
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        let mut c = self.counters.get();
        f(&mut c);
        self.counters.set(c);
    }

    /// A 32-byte placeholder for a binding an entry point does not use; `i < 4` gives distinct ones
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
            .min(self.binding_cap.get())
    }

    #[cfg(test)]
    /// Act from now on as an adapter whose largest binding is `bytes` (at most the real one): how
    /// the tests reach the layouts of adapters smaller than theirs, at sizes they can afford.
    pub fn cap_binding(&self, bytes: u64) {
        self.binding_cap.set(bytes);
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
        self.count(|c| c.buffers_created += 1);
        Ok(buf)
    }

    /// The work buffer called `name`, at least `bytes` long, zeroed when first made. It is the same
    /// buffer on every call unless a larger one is asked for; its contents are the caller's.
    pub fn scratch(&self, name: &str, bytes: u64) -> Result<wgpu::Buffer> {
        if let Some(b) = self.scratch.borrow().get(name) {
            if b.size() >= bytes {
                return Ok(b.clone());
            }
        }
        let b = self.storage(name, bytes)?;
        if let Some(old) = self.scratch.borrow_mut().insert(name.into(), b.clone()) {
            // Bind groups of the replaced buffer would keep it alive.
            self.bind_groups
                .borrow_mut()
                .retain(|(_, bufs), _| !bufs.contains(&old));
        }
        Ok(b)
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
                self.count(|c| c.buffers_created += 1);
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

    /// Compile (once) entry point `entry` of a fixed shader.
    pub fn shader(&self, shader: &Shader, entry: &str) -> Rc<Kernel> {
        debug_assert!(shader.entries.contains(&entry), "{}::{entry}", shader.key);
        self.kernel(shader.key, (shader.source)(), entry, shader.slots)
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
                    // on software adapters (docs/gpu.md, "Machines without a GPU").
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
        let key = (
            k as *const Kernel as usize,
            bufs.iter().map(|b| (*b).clone()).collect::<Vec<_>>(),
        );
        let mut cache = self.bind_groups.borrow_mut();
        if cache.len() >= MAX_BIND_GROUPS && !cache.contains_key(&key) {
            cache.clear();
        }
        let bg = cache.entry(key).or_insert_with(|| {
            let entries: Vec<wgpu::BindGroupEntry> = bufs
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect();
            self.count(|c| c.bind_groups_created += 1);
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &k.layout,
                entries: &entries,
            })
        });
        let slot = self.skip.borrow_mut().as_mut().and_then(|s| {
            (s.len() < SKIP_SLOTS).then(|| {
                s.push([groups.0, groups.1, groups.2]);
                s.len() - 1
            })
        });
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&k.pipeline);
        pass.set_bind_group(0, &*bg, &[]);
        match (slot, &self.skip_tables) {
            (Some(i), Some(t)) => pass.dispatch_workgroups_indirect(&t.args, i as u64 * 12),
            _ => pass.dispatch_workgroups(groups.0, groups.1, groups.2),
        }
        self.count(|c| c.dispatches += 1);
    }

    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default())
    }

    /// Submit without waiting (faults show at the next wait).
    pub fn submit_nowait(&self, enc: wgpu::CommandEncoder) {
        self.queue.submit([enc.finish()]);
        self.count(|c| c.submits += 1);
    }

    #[cfg(test)]
    /// Submit and wait for completion.
    pub fn submit(&self, enc: wgpu::CommandEncoder) -> Result<()> {
        self.submit_nowait(enc);
        self.wait()
    }

    fn wait(&self) -> Result<()> {
        self.count(|c| c.host_waits += 1);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("{}: {e}", self.desc)))?;
        self.check()
    }

    /// The staging buffer for read-backs of `bytes` (one per size, reused).
    fn staging(&self, bytes: u64) -> wgpu::Buffer {
        self.staging
            .borrow_mut()
            .entry(bytes)
            .or_insert_with(|| {
                self.count(|c| c.buffers_created += 1);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read-back"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .clone()
    }

    /// Submit `enc` plus a copy of `count` elements of `src` (from byte `offset`), wait, and return
    /// them: one submit, one host wait.
    pub fn read<T: bytemuck::Pod>(
        &self,
        enc: wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        offset: u64,
        count: usize,
    ) -> Result<Vec<T>> {
        let bytes = (count * std::mem::size_of::<T>()) as u64;
        let raw = self.read_many(enc, &[(src, offset, bytes)])?;
        Ok(bytemuck::pod_collect_to_vec(&raw[0]))
    }

    /// Record a GPU timestamp in slot `i` (nothing when the adapter has no timestamp queries).
    pub fn stamp(&self, enc: &mut wgpu::CommandEncoder, i: u32) {
        if let Some((set, _)) = &self.stamps {
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("timestamp"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(i),
                    end_of_pass_write_index: None,
                }),
            });
        }
    }

    /// Record the resolve of timestamp slots `0..n`; the buffer to read them from (u64 ticks).
    pub fn resolve_stamps(&self, enc: &mut wgpu::CommandEncoder, n: u32) -> Option<&wgpu::Buffer> {
        let (set, buf) = self.stamps.as_ref()?;
        enc.resolve_query_set(set, 0..n, buf, 0);
        Some(buf)
    }

    /// Nanoseconds per timestamp tick.
    pub fn tick_ns(&self) -> f64 {
        self.queue.get_timestamp_period() as f64
    }

    /// Submit `enc` plus copies of `(buffer, byte offset, bytes)` parts, wait once, and return them.
    pub fn read_many(
        &self,
        mut enc: wgpu::CommandEncoder,
        parts: &[(&wgpu::Buffer, u64, u64)],
    ) -> Result<Vec<Vec<u8>>> {
        let padded: Vec<u64> = parts
            .iter()
            .map(|(_, _, b)| b.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT).max(4))
            .collect();
        let total: u64 = padded.iter().sum();
        let staging = self.staging(total);
        let mut off = 0;
        for ((src, at, _), p) in parts.iter().zip(&padded) {
            enc.copy_buffer_to_buffer(src, *at, &staging, off, *p);
            off += p;
        }
        self.submit_nowait(enc);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| Error::Gpu("read-back never completed".into()))?
            .map_err(|e| Error::Gpu(format!("{}: read-back failed: {e}", self.desc)))?;
        let view = staging
            .get_mapped_range(..)
            .map_err(|e| Error::Gpu(format!("read-back map: {e}")))?;
        let mut out = Vec::with_capacity(parts.len());
        let mut off = 0usize;
        for ((_, _, b), p) in parts.iter().zip(&padded) {
            out.push(view[off..off + *b as usize].to_vec());
            off += *p as usize;
        }
        drop(view);
        staging.unmap();
        self.count(|c| c.bytes_read_back += parts.iter().map(|(_, _, b)| b).sum::<u64>());
        Ok(out)
    }

    #[cfg(test)]
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
