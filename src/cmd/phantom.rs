//! `csfuse phantom --out-dir DIR`: write the generated CT-like / MR-like example pair.

use csfuse::io::{check_output, write_gray, BitDepth};
use csfuse::phantom::head_pair;
use csfuse::{Error, Result};
use std::path::PathBuf;

/// Generate a co-registered CT-like / MR-like head phantom pair (8-bit PNG, deterministic).
///
/// The CT-like image shows bright bone and flat soft tissue; the MR-like image dark bone, grey/white
/// matter contrast and fine texture. This is how assets/ct_like.png and assets/mr_like.png were made.
#[derive(clap::Args)]
pub struct Args {
    /// Folder to write ct_like.png and mr_like.png into.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Image size (square).
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Replace existing files.
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.size < 16 {
        return Err(Error::Param("--size must be at least 16".into()));
    }
    std::fs::create_dir_all(&args.out_dir).map_err(|e| Error::io(&args.out_dir, e))?;
    let (ct, mr) = head_pair(args.size);
    for (name, plane) in [("ct_like.png", ct), ("mr_like.png", mr)] {
        let path = args.out_dir.join(name);
        check_output(&path, &[], args.force)?;
        write_gray(&path, &plane, BitDepth::U8)?;
        log::info!("wrote {}", path.display());
    }
    Ok(())
}
