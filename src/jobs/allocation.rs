//! What this process was given to run on: the cores and memory a scheduler allocated (Slurm's
//! variables, the cgroup's memory limit of a container or a Slurm task), not the whole node's.
//!
//! A Slurm task without CPU binding (`TaskPlugin=task/none`) still sees every core of the node, and
//! a pod sees the node's `MemAvailable`; csfuse sizes its thread pool and its memory budget from
//! the allocation so that it neither oversubscribes a shared node nor is killed for memory.

use std::path::Path;

/// Cores the scheduler gave this task: `SLURM_CPUS_PER_TASK`, else `SLURM_CPUS_ON_NODE` inside a
/// Slurm job. `None` outside Slurm.
pub fn scheduler_cpus() -> Option<(usize, &'static str)> {
    cpus_from(|k| std::env::var(k).ok())
}

fn cpus_from(var: impl Fn(&str) -> Option<String>) -> Option<(usize, &'static str)> {
    let num = |k: &'static str| {
        var(k)
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map(|n| (n, k))
    };
    num("SLURM_CPUS_PER_TASK").or_else(|| {
        var("SLURM_JOB_ID")
            .is_some()
            .then(|| num("SLURM_CPUS_ON_NODE"))
            .flatten()
    })
}

/// The memory limit of this process's allocation in bytes and where it comes from: Slurm's
/// `SLURM_MEM_PER_NODE` or `SLURM_MEM_PER_CPU` (MiB), or the cgroup's limit (v2 `memory.max`, v1
/// `memory.limit_in_bytes`), whichever is smallest. `None` when nothing limits it.
pub fn memory_limit() -> Option<(u64, &'static str)> {
    let slurm = slurm_memory(|k| std::env::var(k).ok());
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| cgroup_memory(&t, Path::new("/sys/fs/cgroup")))
        .map(|b| (b, "the cgroup's memory limit"));
    match (slurm, cgroup) {
        (Some(s), Some(c)) => Some(if c.0 < s.0 { c } else { s }),
        (s, c) => s.or(c),
    }
}

fn slurm_memory(var: impl Fn(&str) -> Option<String>) -> Option<(u64, &'static str)> {
    let mib = |k: &str| var(k).and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(m) = mib("SLURM_MEM_PER_NODE").filter(|m| *m > 0) {
        return Some((m << 20, "SLURM_MEM_PER_NODE"));
    }
    let per_cpu = mib("SLURM_MEM_PER_CPU").filter(|m| *m > 0)?;
    let cpus = mib("SLURM_CPUS_ON_NODE").unwrap_or(1).max(1);
    Some((per_cpu.saturating_mul(cpus) << 20, "SLURM_MEM_PER_CPU"))
}

/// The memory limit of the cgroup named in `/proc/self/cgroup` (`proc_cgroup`), read under `root`.
/// A v2 entry is `0::/path` with `memory.max`; a v1 entry names the `memory` controller with
/// `memory.limit_in_bytes` (a huge value there means no limit). Limits set on parent cgroups apply
/// too, so every level up to the root is read.
fn cgroup_memory(proc_cgroup: &str, root: &Path) -> Option<u64> {
    let mut best: Option<u64> = None;
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let (dir, file) = if controllers.is_empty() {
            (root.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (root.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        let mut at = dir.join(path.trim_start_matches('/'));
        loop {
            let limit = std::fs::read_to_string(at.join(file))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                // v1 writes "no limit" as a page-rounded i64::MAX.
                .filter(|b| *b < 1 << 60);
            if let Some(b) = limit {
                best = Some(best.map_or(b, |x| x.min(b)));
            }
            if at == dir || !at.pop() {
                break;
            }
        }
    }
    best
}

/// Bytes the kernel reports as available (`MemAvailable`).
fn mem_available() -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    })
}

/// The share of memory a job may plan to use: three quarters, leaving room for what the estimate
/// leaves out (allocator slack, the GPU driver, the page cache of the files being written).
pub const BUDGET_SHARE: (u64, u64) = (3, 4);

/// Three quarters of the memory this process may use: the smaller of `MemAvailable` and the
/// allocation's limit ([`memory_limit`]); a budget of 4 GiB if neither is known.
pub fn default_memory_budget() -> u64 {
    let limit = memory_limit().map(|(b, _)| b);
    let usable = match (mem_available(), limit) {
        (Some(a), Some(l)) => a.min(l),
        (a, l) => match a.or(l) {
            Some(x) => x,
            None => return 4 << 30,
        },
    };
    usable / BUDGET_SHARE.1 * BUDGET_SHARE.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn slurm_cores_come_from_cpus_per_task_then_cpus_on_node() {
        assert_eq!(cpus_from(env(&[])), None);
        let per_task = env(&[("SLURM_CPUS_PER_TASK", "3"), ("SLURM_CPUS_ON_NODE", "8")]);
        assert_eq!(cpus_from(per_task), Some((3, "SLURM_CPUS_PER_TASK")));
        let on_node = env(&[("SLURM_JOB_ID", "7"), ("SLURM_CPUS_ON_NODE", "2")]);
        assert_eq!(cpus_from(on_node), Some((2, "SLURM_CPUS_ON_NODE")));
        // SLURM_CPUS_ON_NODE alone (no job) is not an allocation; 0 and junk are ignored.
        assert_eq!(cpus_from(env(&[("SLURM_CPUS_ON_NODE", "2")])), None);
        assert_eq!(cpus_from(env(&[("SLURM_CPUS_PER_TASK", "0")])), None);
        assert_eq!(cpus_from(env(&[("SLURM_CPUS_PER_TASK", "x")])), None);
    }

    #[test]
    fn slurm_memory_is_per_node_or_per_cpu_times_cpus() {
        assert_eq!(slurm_memory(env(&[])), None);
        let node = env(&[("SLURM_MEM_PER_NODE", "1500")]);
        assert_eq!(slurm_memory(node), Some((1500 << 20, "SLURM_MEM_PER_NODE")));
        let cpu = env(&[("SLURM_MEM_PER_CPU", "1000"), ("SLURM_CPUS_ON_NODE", "4")]);
        assert_eq!(slurm_memory(cpu), Some((4000 << 20, "SLURM_MEM_PER_CPU")));
    }

    #[test]
    fn cgroup_limits_are_read_at_every_level_v1_and_v2() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        let mk = |p: &str, file: &str, v: &str| {
            std::fs::create_dir_all(r.join(p)).unwrap();
            std::fs::write(r.join(p).join(file), v).unwrap();
        };
        // v2: the job's own cgroup says "max", its parent sets 2 GiB.
        mk("slurm/job_1", "memory.max", "max\n");
        mk("slurm", "memory.max", "2147483648\n");
        assert_eq!(cgroup_memory("0::/slurm/job_1\n", r), Some(2 << 30));
        // v1: the memory controller's file; the "unlimited" value is no limit.
        mk(
            "memory/pod",
            "memory.limit_in_bytes",
            "9223372036854771712\n",
        );
        assert_eq!(cgroup_memory("4:memory:/pod\n3:cpuset:/\n", r), None);
        mk("memory/pod", "memory.limit_in_bytes", "536870912\n");
        assert_eq!(
            cgroup_memory("5:cpu,cpuacct:/\n4:memory:/pod\n", r),
            Some(512 << 20)
        );
        // Nothing readable: no limit.
        assert_eq!(cgroup_memory("0::/elsewhere\n", &r.join("none")), None);
    }
}
