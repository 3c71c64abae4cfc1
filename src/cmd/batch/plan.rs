//! `csfuse batch LIST --out-dir DIR --shards N --plan`: what each shard needs, and the sbatch
//! options that ask for it. Reads headers and sidecars only; fuses and writes nothing.

use super::{checked_items, item_options, Args};
use csfuse::jobs::batch::{input_records, parameters, OnDisk, Shard};
use csfuse::jobs::plan::{human_bytes, item_cost, shard_plans, Request, Speed};
use csfuse::jobs::session::Backend;
use csfuse::{Error, Result};

/// What --plan prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Form {
    /// A table per shard, the speed it assumes, and the sbatch options.
    Table,
    /// Only the sbatch options, on one line (nothing when every pair is done), for `$(...)`.
    Sbatch,
}

pub fn print(args: &Args, form: Form, threads: Option<usize>) -> i32 {
    match plan(args, form, threads) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("csfuse: error: {e}");
            super::USAGE
        }
    }
}

fn plan(args: &Args, form: Form, threads: Option<usize>) -> Result<()> {
    if args.shard.is_some() {
        return Err(Error::Param(
            "--plan plans every shard of the list: give --shards N, not --shard i/n".into(),
        ));
    }
    let count = args.shards.unwrap_or(1);
    if count == 0 {
        return Err(Error::Param("--shards must be at least 1".into()));
    }
    let gpu = args.opts.backend == Backend::Gpu;
    // A GPU task still decodes, encodes and drives the device from a few cores.
    let cpus = threads.unwrap_or(if gpu { 4 } else { 1 });
    let (items, opts, _) = checked_items(args, |_| true)?;
    let params = parameters(&opts, args.opts.precision, args.montage);
    let mut rows = Vec::with_capacity(items.len());
    let mut finished = Vec::new();
    let mut unreadable = 0;
    for it in &items {
        let shard = Shard::of(it, count);
        let cost = match item_cost(it, &item_options(&opts, it), cpus) {
            Ok(c) => c,
            Err(e) => {
                // The task will fail this item and go on; the plan says so now.
                log::warn!("{}:{}: {e}", args.list.display(), it.line);
                unreadable += 1;
                rows.push((shard, false, Default::default()));
                continue;
            }
        };
        let on_disk = OnDisk::read(&it.out, super::extras(args, it));
        let done = input_records(it).is_ok_and(|inputs| on_disk.up_to_date(&inputs, &params));
        if let (true, Some((s, t))) = (done, on_disk.spent()) {
            finished.push((s, t, cost.pixels));
        }
        rows.push((shard, done, cost));
    }
    let shards = shard_plans(count, &rows);
    let speed = Speed::from_finished(&finished);
    let request = Request::new(&shards, cpus, gpu, speed, &opts);
    let options = request.sbatch_options();
    if form == Form::Sbatch {
        match &options {
            Some(o) => println!("{o}"),
            None => log::info!("every pair of {} is done", args.list.display()),
        }
        return Ok(());
    }
    let done: usize = shards.iter().map(|s| s.pairs - s.to_do).sum();
    println!(
        "{} into {}: {} pairs in {count} shard{}, {done} done, {} to do{}",
        args.list.display(),
        args.out_dir.display(),
        items.len(),
        if count == 1 { "" } else { "s" },
        items.len() - done,
        if unreadable > 0 {
            format!(" ({unreadable} unreadable, see above: their tasks will fail them)")
        } else {
            String::new()
        }
    );
    println!(
        "{:>7}  {:>6}  {:>6}  {:>20}  {:>12}",
        "shard", "pairs", "to do", "largest pair's peak", "pixels to do"
    );
    for s in &shards {
        println!(
            "{:>7}  {:>6}  {:>6}  {:>20}  {:>12}",
            format!("{}/{count}", s.index),
            s.pairs,
            s.to_do,
            human_bytes(s.peak_bytes),
            s.to_do_pixels
        );
    }
    match speed {
        Speed::Measured {
            core_s_per_pixel,
            pairs,
        } => println!(
            "speed: {core_s_per_pixel:.2e} core-seconds per pixel, measured from {pairs} finished \
             pair{} (the time asked for adds half again)",
            if pairs == 1 { "" } else { "s" }
        ),
        Speed::Rough => println!(
            "speed: no finished pair to measure from; the time asked for assumes a slow core \
             (resubmitting after a time-out only does what is left)"
        ),
    }
    match options {
        Some(o) => println!("sbatch {o}"),
        None => println!("nothing to submit: every pair is done"),
    }
    Ok(())
}
