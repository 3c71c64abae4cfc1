//! `csfuse batch LIST.csv --out-dir DIR [--shard i/n]`: fuse many pairs, resumably, on a cluster.

mod plan;

use super::fuse::FuseOpts;
use super::json_bytes;
use csfuse::formats::output::{canonical_target, probe_writable, remove_stale_temps, OutputSet};
use csfuse::jobs::batch::{
    input_records, montage_path, parameters, read_list, sha256_file, sidecar_path, view_path,
    Extras, Item, OnDisk, Shard,
};
use csfuse::jobs::session::Session;
use csfuse::jobs::{
    check_job, fuse_files, fuse_image_pairs, image_pairs_per_batch, kind, path_text, ImagePair,
    JobOptions, JobOutput, Kind,
};
use csfuse::{Error, Result};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Fuse every pair of a CSV list into --out-dir, resumably, optionally as one shard of many.
///
/// Each row is `A,B` or `A,B,OUTPUT` (images or NIfTI volumes, as `csfuse fuse` takes them); lines
/// starting with # are comments and a first row `a,b,output` is a header. Relative inputs are relative
/// to the list's folder, OUTPUT to --out-dir (default name: <stem of A>__<stem of B> with A's
/// extension, .nii.gz for volumes). The options are those of `csfuse fuse`; --out-depth applies to
/// the images of the list, volumes keep their first input's datatype.
///
/// Every output is written atomically with a sidecar OUTPUT.json: input paths, sizes and SHA-256,
/// the parameters (fusion, dictionaries' SHA-256, output options), backend and adapter, timings and
/// the csfuse version. An item whose sidecar matches its inputs, parameters and the output's own
/// hash (and the montage's, with --montage) is skipped, so a second run does no work and a killed
/// run resumes where it stopped. One failing item is reported and the others go on.
///
/// Nothing is lost: an output that is any row's input (or a dictionary, or the list) is refused;
/// an existing file that csfuse's sidecar does not vouch for is replaced only with --force; outputs
/// must stay inside --out-dir after symlinks are resolved; concurrent runs on one folder leave each
/// other's temporary files alone.
///
/// Sharding: --shard i/n takes rows i, i+n, i+2n, ... (0-based), the same split on every machine.
/// Without it the shard comes from the environment: SLURM_ARRAY_TASK_ID of --shards N (any subset
/// of task ids 0..N-1), or without --shards of a contiguous array (SLURM_ARRAY_TASK_ID minus
/// SLURM_ARRAY_TASK_MIN, of SLURM_ARRAY_TASK_COUNT); or JOB_COMPLETION_INDEX (Kubernetes Indexed
/// Job) of --shards N. In a Slurm task csfuse uses SLURM_CPUS_PER_TASK threads and budgets 3/4 of
/// SLURM_MEM_PER_NODE (or of the cgroup's memory limit).
///
/// Planning: --plan prints each shard's pairs, those left to do, its largest pair's estimated
/// peak memory and its work, and the sbatch options that fit (array of the shards with work left,
/// --cpus-per-task from --threads, default 1; --mem; --time from the finished pairs' speed, or a
/// rough rate); --plan sbatch prints the options alone. Nothing is fused or written.
///
/// Exit status: 0 every item of the shard is done (fused now or before), 1 some items failed (listed
/// at the end), 2 usage error (bad list, shard or options; nothing was fused).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  csfuse batch pairs.csv --out-dir fused\n  \
csfuse batch pairs.csv --out-dir fused --shard 2/8\n  \
csfuse batch pairs.csv --out-dir fused --shards 8 --plan\n  \
sbatch $(csfuse batch pairs.csv --out-dir fused --shards 8 --plan sbatch) \\\n    \
--wrap 'csfuse batch pairs.csv --out-dir fused --shards 8'   # shard from SLURM_ARRAY_TASK_ID\n\n\
pairs.csv:\n  a,b,output\n  ct/p001.png,mr/p001.png,p001.png\n  ct/p002.nii.gz,mr/p002.nii.gz,p002.nii.gz")]
pub struct Args {
    /// CSV list of pairs.
    pub list: PathBuf,
    /// Folder for outputs and sidecars (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Take shard i of n (0-based), overriding the environment.
    #[arg(long, value_name = "i/n", value_parser = Shard::parse)]
    pub shard: Option<Shard>,
    /// Number of shards when the index comes from the environment: SLURM_ARRAY_TASK_ID (the task
    /// id is the shard index) or JOB_COMPLETION_INDEX (the Job's completions); with --plan, the
    /// shards to plan (default 1).
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// Print what each shard needs instead of fusing (`table`, the default), or only the sbatch
    /// options for the shards with work left (`sbatch`; nothing when all is done).
    #[arg(long, value_enum, value_name = "FORM", num_args = 0..=1, default_missing_value = "table")]
    pub plan: Option<plan::Form>,
    /// Also write OUTPUT.montage.png for each item (see `csfuse fuse --montage`).
    #[arg(long)]
    pub montage: bool,
    /// Also write OUTPUT.view.html for each volume item: its sources and result in slice views
    /// for a browser (see `csfuse fuse --html`).
    #[arg(long)]
    pub html: bool,
    /// Replace existing files at output paths that csfuse did not write (no matching sidecar).
    #[arg(short, long)]
    pub force: bool,
    #[command(flatten)]
    pub opts: FuseOpts,
}

/// Exit status of a usage error.
const USAGE: i32 = 2;

/// The shard to fuse: --shard, or the environment's, or the whole list.
fn choose_shard(args: &Args) -> Result<Shard> {
    match args.shard {
        Some(s) if args.shards.is_some_and(|n| n != s.count) => Err(Error::Param(format!(
            "--shard {}/{} disagrees with --shards {}",
            s.index,
            s.count,
            args.shards.unwrap_or_default()
        ))),
        Some(s) => Ok(s),
        None => match Shard::from_env(args.shards).map_err(Error::Param)? {
            Some((s, var)) => {
                log::info!("shard {}/{} from {var}", s.index, s.count);
                Ok(s)
            }
            None => Ok(Shard::ALL),
        },
    }
}

/// Everything checked before any item runs: the list, the options, the files of every item that
/// `takes` keeps, and the output folder (which is not made here). An error here is a usage error.
fn checked_items(
    args: &Args,
    takes: impl Fn(&Item) -> bool,
) -> Result<(Vec<Item>, JobOptions, PathBuf)> {
    let items = read_list(&args.list, &args.out_dir)?;
    let opts = args.opts.job_options(None, true)?;
    // Every row's inputs, the dictionaries and the list: no output of any shard may replace one.
    let mut inputs: HashSet<PathBuf> = HashSet::new();
    for p in items.iter().flat_map(|i| [&i.a, &i.b]) {
        inputs.extend(canonical_target(p));
    }
    for p in args.opts.dictionary_paths() {
        inputs.extend(canonical_target(p));
    }
    inputs.extend(canonical_target(&args.list));
    let root = canonical_target(&args.out_dir).ok_or_else(|| Error::BadOutput {
        path: args.out_dir.clone(),
        msg: "cannot resolve this folder".into(),
    })?;
    let mine: Vec<Item> = items.into_iter().filter(|i| takes(i)).collect();
    for it in &mine {
        let at = |e: Error| Error::Param(format!("{}:{}: {e}", args.list.display(), it.line));
        let kind = check_job(&it.a, &it.b, &it.out, &item_options(&opts, it)).map_err(at)?;
        if kind == Kind::Volume && !csfuse::formats::nifti::is_nifti(&it.out) {
            return Err(at(Error::BadOutput {
                path: it.out.clone(),
                msg: "batch writes volumes as NIfTI (.nii or .nii.gz); a DICOM series is \
                      written by `csfuse fuse A B -o FOLDER/`"
                    .into(),
            }));
        }
        for p in item_outputs(it, extras(args, it)) {
            if canonical_target(&p).is_some_and(|c| inputs.contains(&c)) {
                return Err(at(Error::BadOutput {
                    path: p,
                    msg: "output is an input of the list (or a dictionary, or the list itself); \
                          refusing to overwrite it: choose another --out-dir or output name"
                        .into(),
                }));
            }
            confined(&p, &root).map_err(at)?;
        }
    }
    Ok((mine, opts, root))
}

/// The shard, its checked items, the options and the canonical --out-dir, which is made.
fn plan(args: &Args) -> Result<(Shard, Vec<Item>, JobOptions, PathBuf)> {
    let shard = choose_shard(args)?;
    let (mine, opts, root) = checked_items(args, |i| shard.takes(i))?;
    std::fs::create_dir_all(&args.out_dir).map_err(|e| Error::io(&args.out_dir, e))?;
    Ok((shard, mine, opts, root))
}

/// The extra files `args` ask of `it`: a montage, and a view page for a volume.
pub(super) fn extras(args: &Args, it: &Item) -> Extras {
    Extras {
        montage: args.montage,
        html: args.html && kind(&it.a) == Kind::Volume,
    }
}

/// The files an item writes: output, extra files, and sidecar (last, it marks the item done).
fn item_outputs(it: &Item, extras: Extras) -> Vec<PathBuf> {
    let mut v = vec![it.out.clone()];
    v.extend(extras.files(&it.out).into_iter().map(|(_, p)| p));
    v.push(sidecar_path(&it.out));
    v
}

/// Refuse an output that a symlinked folder would place outside --out-dir: its folder, with
/// symlinks resolved, must lie inside `root` (the canonical --out-dir).
fn confined(p: &Path, root: &Path) -> Result<()> {
    let dir = p.parent().and_then(canonical_target);
    match dir {
        Some(c) if !c.starts_with(root) => Err(Error::BadOutput {
            path: p.to_path_buf(),
            msg: format!(
                "its folder resolves to {}, outside --out-dir {}; outputs stay inside it",
                c.display(),
                root.display()
            ),
        }),
        _ => Ok(()),
    }
}

/// Run `batch`; `threads` is the global --threads (the cores --plan asks for per task).
pub fn run(args: Args, threads: Option<usize>) -> i32 {
    if let Some(form) = args.plan {
        return plan::print(&args, form, threads);
    }
    let (shard, mine, opts, root) = match plan(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("csfuse: error: {e}");
            return USAGE;
        }
    };
    let params = parameters(&opts, args.opts.precision, args.montage);
    log::info!(
        "batch {}: {} of the list's pairs in shard {}/{}",
        args.list.display(),
        mine.len(),
        shard.index,
        shard.count
    );
    let mut run = Run {
        args: &args,
        shard,
        opts: &opts,
        params: &params,
        total: mine.len(),
        session: None,
        groups: HashMap::new(),
        per_batch: HashMap::new(),
        fused: 0,
        skipped: 0,
        failed: Vec::new(),
    };
    let t0 = Instant::now();
    for (k, it) in mine.iter().enumerate() {
        run.add(k, it, &root);
    }
    run.flush_all();
    let Run {
        fused,
        skipped,
        mut failed,
        ..
    } = run;
    log::info!(
        "batch done in {:.1} s: {fused} fused, {skipped} up to date, {} failed",
        t0.elapsed().as_secs_f64(),
        failed.len()
    );
    if failed.is_empty() {
        return 0;
    }
    failed.sort_by_key(|(line, _)| *line);
    for (line, e) in &failed {
        eprintln!("csfuse: {}:{line}: {e}", args.list.display());
    }
    1
}

/// An item read and waiting for its batch: same-size images are fused together on a GPU.
struct Waiting<'a> {
    k: usize,
    it: &'a Item,
    inputs: serde_json::Value,
    job: ImagePair,
    t: Instant,
}

/// One shard's run: the session, the images waiting for a batch, and the tally.
struct Run<'a> {
    args: &'a Args,
    shard: Shard,
    opts: &'a JobOptions,
    params: &'a serde_json::Value,
    total: usize,
    session: Option<Session>,
    groups: HashMap<(usize, usize), Vec<Waiting<'a>>>,
    /// Pairs per batch by image size, on this session.
    per_batch: HashMap<(usize, usize), usize>,
    fused: usize,
    skipped: usize,
    failed: Vec<(usize, String)>,
}

/// What every commit of a run needs besides its item.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    args: &'a Args,
    params: &'a serde_json::Value,
    shard: Shard,
}

impl<'a> Run<'a> {
    fn ctx(&self) -> Ctx<'a> {
        Ctx {
            args: self.args,
            params: self.params,
            shard: self.shard,
        }
    }

    fn tag(&self, k: usize, it: &Item) -> String {
        format!("[{}/{}] line {}", k + 1, self.total, it.line)
    }

    fn done(&mut self, k: usize, it: &Item, r: Result<bool>) {
        let tag = self.tag(k, it);
        match r {
            Ok(true) => {
                self.fused += 1;
                log::info!("{tag}: wrote {}", it.out.display());
            }
            Ok(false) => {
                self.skipped += 1;
                log::info!("{tag}: {} is up to date, skipped", it.out.display());
            }
            Err(e) => {
                log::error!("{tag}: FAILED: {e}");
                self.failed.push((it.line, e.to_string()));
            }
        }
    }

    /// The session, opened on the first item that needs work (a no-op re-run opens none).
    fn session(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            self.session = Some(self.args.opts.session()?);
        }
        Ok(self.session.as_mut().expect("opened above"))
    }

    /// Fuse item `k` now (a volume, or an image on a session that fuses one pair at a time) or
    /// read it into its size's batch, fused when the batch is full.
    fn add(&mut self, k: usize, it: &'a Item, root: &Path) {
        let inputs = match prepare(it, self.params, self.args, root) {
            Ok(Some(inputs)) => inputs,
            Ok(None) => return self.done(k, it, Ok(false)),
            Err(e) => return self.done(k, it, Err(e)),
        };
        let t = Instant::now();
        let job = match self.image_job(it) {
            Ok(Some(job)) => job,
            Ok(None) => {
                let r = self.fuse_alone(it, inputs, t);
                return self.done(k, it, r.map(|_| true));
            }
            Err(e) => return self.done(k, it, Err(e)),
        };
        let size = job.size();
        let full = self.per_batch[&size];
        let group = self.groups.entry(size).or_default();
        group.push(Waiting {
            k,
            it,
            inputs,
            job,
            t,
        });
        if group.len() >= full {
            self.flush(size);
        } else if self.groups.values().map(Vec::len).sum::<usize>() >= 2 * full {
            // Mixed sizes: hold at most two batches' worth of decoded images.
            let largest = self
                .groups
                .iter()
                .max_by_key(|(_, g)| g.len())
                .map(|(s, _)| *s);
            if let Some(s) = largest {
                self.flush(s);
            }
        }
    }

    /// The item as an image pair to batch, when it is an image and this session batches its size.
    fn image_job(&mut self, it: &Item) -> Result<Option<ImagePair>> {
        if kind(&it.a) != Kind::Image {
            return Ok(None);
        }
        let (h, w) = csfuse::formats::image::image_dims(&it.a)?;
        let opts = self.item_options(it);
        if !self.per_batch.contains_key(&(h, w)) {
            let n = image_pairs_per_batch(self.session()?, h, w, &opts)?;
            self.per_batch.insert((h, w), n);
        }
        if self.per_batch[&(h, w)] < 2 {
            return Ok(None);
        }
        ImagePair::read(&it.a, &it.b, &it.out, &opts).map(Some)
    }

    fn item_options(&self, it: &Item) -> JobOptions {
        JobOptions {
            montage: self.args.montage.then(|| montage_path(&it.out)),
            html: extras(self.args, it).html.then(|| view_path(&it.out)),
            ..item_options(self.opts, it)
        }
    }

    fn fuse_alone(&mut self, it: &Item, inputs: serde_json::Value, t: Instant) -> Result<()> {
        let job = self.item_options(it);
        let ctx = self.ctx();
        let s = self.session()?;
        // Output, montage and sidecar are committed together, the sidecar last.
        let mut set = OutputSet::default();
        let done = fuse_files(s, &it.a, &it.b, &it.out, &job, &mut set)?;
        commit(it, inputs, done, set, ctx, t)
    }

    /// Fuse the images waiting at `size` as one batch. If the batch fails, each pair is fused on
    /// its own, so that one bad pair fails alone.
    fn flush(&mut self, size: (usize, usize)) {
        let group = self.groups.remove(&size).unwrap_or_default();
        if group.is_empty() {
            return;
        }
        let results = self.fuse_group(&group);
        match results {
            Ok(rs) => {
                for (w, r) in group.into_iter().zip(rs) {
                    self.done(w.k, w.it, r.map(|_| true));
                }
            }
            Err(e) if group.len() == 1 => {
                let w = &group[0];
                self.done(w.k, w.it, Err(e));
            }
            Err(e) => {
                log::warn!(
                    "a batch of {} {}x{} pairs failed ({e}); fusing them one at a time",
                    group.len(),
                    size.1,
                    size.0
                );
                for w in group {
                    let r = self
                        .fuse_group(std::slice::from_ref(&w))
                        .and_then(|mut r| r.pop().expect("one in, one out"));
                    self.done(w.k, w.it, r.map(|_| true));
                }
            }
        }
    }

    fn fuse_group(&mut self, group: &[Waiting]) -> Result<Vec<Result<()>>> {
        let (ctx, opts) = (self.ctx(), self.opts);
        let jobs: Vec<&ImagePair> = group.iter().map(|w| &w.job).collect();
        let mut sets: Vec<OutputSet> = group.iter().map(|_| OutputSet::default()).collect();
        let s = self.session()?;
        let done = fuse_image_pairs(s, &jobs, opts, &mut sets)?;
        Ok(group
            .iter()
            .zip(done)
            .zip(sets)
            .map(|((w, d), set)| commit(w.it, w.inputs.clone(), d?, set, ctx, w.t))
            .collect())
    }

    fn flush_all(&mut self) {
        let mut sizes: Vec<(usize, usize)> = self.groups.keys().copied().collect();
        sizes.sort_unstable();
        for size in sizes {
            self.flush(size);
        }
    }
}

/// --out-depth applies to the list's images; volumes keep their first input's datatype.
fn item_options(opts: &JobOptions, it: &Item) -> JobOptions {
    let mut o = opts.clone();
    if kind(&it.a) == Kind::Volume {
        o.out_depth = None;
    }
    o
}

/// Make ready to fuse an item that is not up to date: its outputs confined to --out-dir, their
/// folder made, stale temporary files removed, each path writable. `None` when it is up to date;
/// otherwise the records of its inputs for the sidecar.
fn prepare(
    it: &Item,
    params: &serde_json::Value,
    args: &Args,
    root: &Path,
) -> Result<Option<serde_json::Value>> {
    let inputs = input_records(it)?;
    let on_disk = OnDisk::read(&it.out, extras(args, it));
    if on_disk.up_to_date(&inputs, params) {
        return Ok(None);
    }
    let foreign = on_disk.foreign();
    if let (Some(f), false) = (foreign.first(), args.force) {
        return Err(Error::BadOutput {
            path: f.clone(),
            msg: "file exists and no csfuse sidecar vouches for it; pass --force to replace it"
                .into(),
        });
    }
    // Confined before the folders are made, so a symlink cannot make them elsewhere.
    let outs = item_outputs(it, extras(args, it));
    for p in &outs {
        confined(p, root)?;
    }
    if let Some(dir) = it.out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    for p in &outs {
        remove_stale_temps(p);
        probe_writable(p)?;
    }
    Ok(Some(inputs))
}

/// The `OUT.json` beside each output: what went in (with hashes, for resuming), what came out, and
/// the job's report.
#[derive(serde::Serialize)]
struct Sidecar<'a> {
    csfuse_version: &'static str,
    /// Path, size and SHA-256 of each input.
    inputs: serde_json::Value,
    output: serde_json::Value,
    montage: Option<serde_json::Value>,
    /// The volume view (`--html`), for volume items.
    #[serde(skip_serializing_if = "Option::is_none")]
    html: Option<serde_json::Value>,
    /// Everything that changes the output (a resumed run redoes an item when they differ).
    parameters: &'a serde_json::Value,
    backend: &'a str,
    adapter: Option<&'a csfuse::gpu::AdapterDesc>,
    seconds: f64,
    /// CPU worker threads (with `seconds`, what `--plan` measures a list's speed from).
    threads: usize,
    /// Where it ran: the host, the shard, and the Slurm job (`ARRAYJOB_TASK`) or Kubernetes
    /// completion index when there was one.
    host: String,
    shard: String,
    scheduler_task: Option<String>,
    report: &'a csfuse::jobs::report::Report,
}

/// The Slurm array task (`12_3`), Slurm job, or Kubernetes completion index this runs as.
fn scheduler_task() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        (Some(j), Some(t)) => Some(format!("slurm {j}_{t}")),
        _ => var("SLURM_JOB_ID")
            .map(|j| format!("slurm {j}"))
            .or_else(|| var("JOB_COMPLETION_INDEX").map(|i| format!("kubernetes index {i}"))),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Commit a fused item: its staged output and montage, then the sidecar that marks it done.
fn commit(
    it: &Item,
    inputs: serde_json::Value,
    done: JobOutput,
    mut set: OutputSet,
    ctx: Ctx,
    t: Instant,
) -> Result<()> {
    let Ctx {
        args,
        params,
        shard,
    } = ctx;
    if let Some(e) = done.validation_failure {
        return Err(e);
    }
    let montage = args.montage.then(|| montage_path(&it.out));
    let html = extras(args, it).html.then(|| view_path(&it.out));
    let record = |p: &Path| -> Result<serde_json::Value> {
        let staged = set.staged_file(p).unwrap_or(p);
        Ok(json!({"path": path_text(p), "sha256": sha256_file(staged)?}))
    };
    let sidecar = Sidecar {
        csfuse_version: env!("CARGO_PKG_VERSION"),
        inputs,
        output: record(&it.out)?,
        montage: montage.as_deref().map(record).transpose()?,
        html: html.as_deref().map(record).transpose()?,
        parameters: params,
        backend: &done.report.backend,
        adapter: done.report.adapter.as_ref(),
        seconds: t.elapsed().as_secs_f64(),
        threads: rayon::current_num_threads(),
        host: host_name(),
        shard: format!("{}/{}", shard.index, shard.count),
        scheduler_task: scheduler_task(),
        report: &done.report,
    };
    set.stage_bytes(&sidecar_path(&it.out), &json_bytes(&sidecar))?;
    set.commit()
}
