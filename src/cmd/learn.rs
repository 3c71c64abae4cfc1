//! `csfuse learn IMAGES... --kind cartoon|texture -o D.npy`: convolutional dictionary learning.

use super::num;
use csfuse::formats::image::{check_output, read_image, write_atomic};
use csfuse::formats::npy::{self, NpyDtype};
use csfuse::learn::training::{check_shape, training_plane, training_tiles, Component};
use csfuse::learn::{learn, LearnParams};
use csfuse::Result;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Cartoon,
    Texture,
}

/// Learn a convolutional dictionary (SPORCO ConvBPDNDictLearn-style ADMM) from training images.
///
/// Each image is read as grayscale, its detail layer taken (Tikhonov high-pass, lambda 60), and split by
/// TV (ROF) denoising into a cartoon part (the TV solution) and a texture part (the rest). The chosen
/// component is cut into tiles and a dictionary of --filters filters of --size x --size is learned:
/// one CBPDN step per tile alternating with one constrained dictionary-update step, for --iters
/// iterations, from a seeded random start (deterministic for a given thread count).
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  csfuse learn train/*.png --kind cartoon --filters 32 --size 8 -o dict_cartoon.npy"
)]
pub struct Args {
    /// Training images (grayscale; colour ones are learned from their luminance Y, the plane that
    /// `fuse` decomposes).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Which component to learn from.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Number of filters M.
    #[arg(long, default_value_t = 32, value_parser = |s: &str| num::count(s, 4096))]
    pub filters: usize,
    /// Filter size (square).
    #[arg(long, default_value_t = 8, value_parser = |s: &str| num::count(s, 256))]
    pub size: usize,
    /// Output dictionary, .npy (size, size, M) float32.
    #[arg(short, long, value_name = "D.npy")]
    pub output: PathBuf,
    /// Outer iterations.
    #[arg(long, default_value_t = 200, value_parser = |s: &str| num::count(s, 1_000_000))]
    pub iters: usize,
    /// Sparsity weight of the coefficient step.
    #[arg(long = "lambda", default_value_t = 0.1, value_parser = num::positive)]
    pub lambda: f64,
    /// Dictionary-update ADMM penalty.
    #[arg(long, default_value_t = 10.0, value_parser = num::positive)]
    pub sigma: f64,
    /// Training tile size (images are cut into non-overlapping tiles of this size).
    #[arg(long, default_value_t = 128, value_parser = |s: &str| num::count(s, 8192))]
    pub tile: usize,
    /// Use at most this many tiles, spread evenly over all tiles.
    #[arg(long, default_value_t = 16, value_parser = |s: &str| num::count(s, 1_000_000))]
    pub max_tiles: usize,
    /// TV weight of the cartoon/texture split of the detail layer.
    #[arg(long, default_value_t = 0.02, value_parser = num::positive)]
    pub tv_weight: f64,
    /// Seed of the random initial dictionary.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Replace an existing output file.
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let inputs: Vec<&std::path::Path> = args.images.iter().map(|p| p.as_path()).collect();
    csfuse::formats::output::remove_stale_temps(&args.output);
    check_output(&args.output, &inputs, args.force)?;
    check_shape(args.filters, args.size, args.tile, args.max_tiles)?;
    let mut images = Vec::with_capacity(args.images.len());
    for path in &args.images {
        images.push((path.as_path(), training_plane(&read_image(path)?)));
    }
    let component = match args.kind {
        Kind::Cartoon => Component::Cartoon,
        Kind::Texture => Component::Texture,
    };
    let tiles = training_tiles(
        &images,
        component,
        args.tile,
        args.max_tiles,
        args.tv_weight,
    )?;
    log::info!(
        "learning {} filters of {}x{} from {} tiles of {}x{}",
        args.filters,
        args.size,
        args.size,
        tiles.len(),
        args.tile,
        args.tile
    );
    let params = LearnParams {
        filters: args.filters,
        size: args.size,
        lambda: args.lambda,
        iters: args.iters,
        sigma: args.sigma,
        seed: args.seed,
    };
    let terminal = std::io::stderr().is_terminal();
    let bar = ProgressBar::new(args.iters as u64);
    if terminal {
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} iterations, ETA {eta} {msg}")
                .expect("valid template"),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let dict = learn(&tiles, &params, |p| {
        bar.set_position(p.iter as u64);
        if let Some(obj) = p.objective {
            bar.set_message(format!("objective {obj:.4}"));
            if !terminal {
                log::info!("iteration {}/{}: objective {obj:.5}", p.iter, args.iters);
            }
        }
    })?;
    bar.finish_and_clear();
    write_atomic(
        &args.output,
        &npy::to_bytes(&[dict.fh, dict.fw, dict.m], &dict.to_hwm(), NpyDtype::F32),
    )?;
    log::info!("wrote {}", args.output.display());
    Ok(())
}
