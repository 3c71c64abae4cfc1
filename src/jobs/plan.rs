//! `csfuse batch --plan`: what each shard of a list needs before it is submitted to a scheduler —
//! its pairs, those still to do, its peak memory from the same estimates that `fuse` checks
//! against its budget, and its work — and the `sbatch` options that ask for that.

use super::allocation::BUDGET_SHARE;
use super::batch::{Item, Shard};
use super::volume::GridPlan;
use super::{image_bytes, kind, slice_bytes, JobOptions, Kind};
use crate::error::Result;
use crate::formats::{image as io, nifti, volume};

/// What one pair will take: peak host bytes with `threads` cores, and pixels fused (a volume's
/// voxels), the measure of its work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub bytes: u64,
    pub pixels: u64,
}

/// The [`Cost`] of fusing `it`, from its headers only (nothing is decoded). A volume on the CPU
/// fuses up to one slice pair per core at once; on a GPU the host holds less, so this bounds it.
pub fn item_cost(it: &Item, opts: &JobOptions, threads: usize) -> Result<Cost> {
    match kind(&it.a) {
        Kind::Image => {
            let (h, w) = io::image_dims(&it.a)?;
            Ok(Cost {
                bytes: image_bytes(h, w, opts),
                pixels: (h * w) as u64,
            })
        }
        Kind::Volume => {
            let (ia, ib) = (volume::read_info(&it.a)?, volume::read_info(&it.b)?);
            let grids = GridPlan::new((&it.a, ia.grid()), (&it.b, ib.grid()), opts)?;
            let slicer = nifti::Slicer {
                dims: grids.grid.dims,
                axis: opts.axis.unwrap_or(2),
            };
            let (h, w) = slicer.shape();
            let per_slice = slice_bytes(h, w, opts);
            let in_flight = threads.clamp(1, slicer.count().max(1)) as u64;
            Ok(Cost {
                bytes: grids
                    .fixed_bytes(&ia, &ib)
                    .saturating_add(in_flight * per_slice),
                pixels: grids.grid.voxels() as u64,
            })
        }
    }
}

/// One shard's share of the list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShardPlan {
    pub index: usize,
    pub pairs: usize,
    pub to_do: usize,
    /// The largest pair's peak bytes (the shard fuses one pair at a time).
    pub peak_bytes: u64,
    /// Pixels of the pairs still to do.
    pub to_do_pixels: u64,
}

/// Core-seconds per pixel when no finished pair says better: about three times what one core of
/// the 2-core build machine takes with the default parameters (3.0e-4 s for a 96x96 phantom pair),
/// so that a slower node still finishes inside the time asked for.
pub const ROUGH_CORE_SECONDS_PER_PIXEL: f64 = 1e-3;

/// How fast pairs are fused: core-seconds per pixel, and how that was found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Speed {
    /// From finished pairs' sidecars (their seconds and threads) over their pixels.
    Measured {
        core_s_per_pixel: f64,
        pairs: usize,
    },
    Rough,
}

impl Speed {
    /// From (seconds, threads, pixels) of finished pairs.
    pub fn from_finished(done: &[(f64, usize, u64)]) -> Speed {
        let core_s: f64 = done.iter().map(|(s, t, _)| s * *t as f64).sum();
        let pixels: u64 = done.iter().map(|(_, _, p)| p).sum();
        if done.is_empty() || pixels == 0 || core_s <= 0.0 {
            return Speed::Rough;
        }
        Speed::Measured {
            core_s_per_pixel: core_s / pixels as f64,
            pairs: done.len(),
        }
    }

    /// Core-seconds per pixel to plan with: the measured rate with half again as margin (nodes
    /// differ, a busy disk slows the reads), or the rough one. Scaled with the dictionaries'
    /// atoms and iterations against the defaults the rough rate was measured with.
    fn planned(self, opts: &JobOptions) -> f64 {
        match self {
            Speed::Measured {
                core_s_per_pixel, ..
            } => 1.5 * core_s_per_pixel,
            Speed::Rough => {
                let atoms = (opts.cartoon.m + opts.texture.m) as f64 / 64.0;
                // The rough rate was measured with the published 6 x 30 iterations per part.
                let iters = opts.params.mca.iteration_cap() as f64 / 360.0;
                ROUGH_CORE_SECONDS_PER_PIXEL * atoms.max(0.1) * iters.max(0.1)
            }
        }
    }
}

/// Host memory beside the pairs' own: the program, its dictionaries and the allocator's slack;
/// with a GPU also the driver's mappings and staging buffers.
const BASE_BYTES_CPU: u64 = 64 << 20;
const BASE_BYTES_GPU: u64 = 1 << 30;

/// What `sbatch` should be asked for: one array task per shard with work left.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// Shard indices with work left (the array's task ids), empty when every pair is done.
    pub tasks: Vec<usize>,
    pub cpus: usize,
    pub mem_mib: u64,
    pub seconds: u64,
    pub gpu: bool,
}

impl Request {
    /// The request covering the largest shard: memory so that the largest pair fits csfuse's
    /// default budget (3/4 of the allocation), time for the most work left plus a minute to
    /// start, at least 5 minutes.
    pub fn new(
        shards: &[ShardPlan],
        cpus: usize,
        gpu: bool,
        speed: Speed,
        opts: &JobOptions,
    ) -> Request {
        let cpus = cpus.max(1);
        let base = if gpu { BASE_BYTES_GPU } else { BASE_BYTES_CPU };
        let peak = shards.iter().map(|s| s.peak_bytes).max().unwrap_or(0) + base;
        let mem = peak.div_ceil(BUDGET_SHARE.0) * BUDGET_SHARE.1;
        let mem_mib = mem.div_ceil(64 << 20) * 64;
        let work = shards.iter().map(|s| s.to_do_pixels).max().unwrap_or(0);
        let seconds = (work as f64 * speed.planned(opts) / cpus as f64).ceil() as u64 + 60;
        Request {
            tasks: shards
                .iter()
                .filter(|s| s.to_do > 0)
                .map(|s| s.index)
                .collect(),
            cpus,
            mem_mib,
            seconds: seconds.max(300).div_ceil(60) * 60,
            gpu,
        }
    }

    /// The options for `sbatch`, or `None` when there is nothing to submit.
    pub fn sbatch_options(&self) -> Option<String> {
        if self.tasks.is_empty() {
            return None;
        }
        let mut o = format!(
            "--array={} --cpus-per-task={} --mem={}M --time={}",
            array_spec(&self.tasks),
            self.cpus,
            self.mem_mib,
            slurm_time(self.seconds)
        );
        if self.gpu {
            o.push_str(" --gres=gpu:1");
        }
        Some(o)
    }
}

/// Sorted task ids as Slurm's array syntax: runs of consecutive ids as ranges (`0-3,5,7-8`).
pub fn array_spec(ids: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut k = 0;
    while k < ids.len() {
        let mut j = k;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if j == k {
            ids[k].to_string()
        } else {
            format!("{}-{}", ids[k], ids[j])
        });
        k = j + 1;
    }
    parts.join(",")
}

/// Seconds as Slurm's `[D-]HH:MM:SS`.
pub fn slurm_time(s: u64) -> String {
    let (d, h, m, s) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// Bytes as MiB or GiB for the plan's table.
pub fn human_bytes(b: u64) -> String {
    if b >= 10 << 30 {
        format!("{:.0} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", b.div_ceil(1 << 20))
    }
}

/// Group per-item (shard, done, cost) into one [`ShardPlan`] per shard of `count`.
pub fn shard_plans(count: usize, items: &[(Shard, bool, Cost)]) -> Vec<ShardPlan> {
    let mut plans: Vec<ShardPlan> = (0..count)
        .map(|index| ShardPlan {
            index,
            ..Default::default()
        })
        .collect();
    for (shard, done, cost) in items {
        let p = &mut plans[shard.index];
        p.pairs += 1;
        p.peak_bytes = p.peak_bytes.max(cost.bytes);
        if !done {
            p.to_do += 1;
            p.to_do_pixels += cost.pixels;
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fuse::{FuseParams, Mode};

    #[test]
    fn arrays_are_written_as_ranges() {
        assert_eq!(array_spec(&[]), "");
        assert_eq!(array_spec(&[3]), "3");
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[0, 1, 3, 5, 6, 9]), "0-1,3,5-6,9");
    }

    #[test]
    fn times_are_written_as_slurm_reads_them() {
        assert_eq!(slurm_time(300), "00:05:00");
        assert_eq!(slurm_time(3 * 3600 + 61), "03:01:01");
        assert_eq!(slurm_time(86400 + 7200), "1-02:00:00");
    }

    #[test]
    fn the_request_covers_the_largest_shard_and_only_shards_with_work() {
        // The rough rate is for the published schedule's iterations.
        let opts = JobOptions::with_params(FuseParams::new(Mode::Paper));
        let cost = |bytes, pixels| Cost { bytes, pixels };
        let s = |index, count| Shard { index, count };
        let items = [
            (s(0, 3), true, cost(100 << 20, 1000)),
            (s(1, 3), false, cost(200 << 20, 10_000_000)),
            (s(2, 3), false, cost(50 << 20, 2_000_000)),
            (s(0, 3), true, cost(10 << 20, 1000)),
        ];
        let plans = shard_plans(3, &items);
        assert_eq!(plans[0].pairs, 2);
        assert_eq!(plans[0].to_do, 0);
        assert_eq!(plans[1].peak_bytes, 200 << 20);
        let r = Request::new(&plans, 2, false, Speed::Rough, &opts);
        assert_eq!(r.tasks, vec![1, 2]);
        // (200 + 64) MiB is 3/4 of 352 MiB, rounded up to 384 MiB.
        assert_eq!(r.mem_mib, 384);
        // 1e7 pixels at 1e-3 core-s on 2 cores, plus a minute: 5060 s, rounded up to 85 min.
        assert_eq!(r.seconds, 85 * 60);
        assert_eq!(
            r.sbatch_options().unwrap(),
            "--array=1-2 --cpus-per-task=2 --mem=384M --time=01:25:00"
        );
        // The default mode's short schedule (100 ADMM iterations a source, not 360) plans less:
        // 1e7 pixels at 1e-3 * 100 / 360 core-s on 2 cores, plus a minute: 1449 s, 25 min.
        let short = JobOptions::with_params(FuseParams::default());
        let rs = Request::new(&plans, 2, false, Speed::Rough, &short);
        assert_eq!(rs.seconds, 25 * 60);
        // The default budget (3/4 of the allocation) then holds the largest pair.
        assert!((r.mem_mib << 20) / 4 * 3 >= (200 << 20) + BASE_BYTES_CPU);

        let measured = Speed::from_finished(&[(2.0, 2, 8000), (1.0, 1, 2000)]);
        assert_eq!(
            measured,
            Speed::Measured {
                core_s_per_pixel: 5.0 / 10_000.0,
                pairs: 2
            }
        );
        let g = Request::new(&plans, 4, true, measured, &opts);
        assert!(g.sbatch_options().unwrap().ends_with(" --gres=gpu:1"));
        // 1e7 pixels at 1.5 * 5e-4 core-s on 4 cores, plus a minute.
        assert_eq!(g.seconds, (1875 + 60u64).div_ceil(60) * 60);

        let all_done = shard_plans(2, &[(s(0, 2), true, cost(1, 1))]);
        assert_eq!(
            Request::new(&all_done, 1, false, Speed::Rough, &opts).sbatch_options(),
            None
        );
        assert_eq!(Speed::from_finished(&[]), Speed::Rough);
    }
}
