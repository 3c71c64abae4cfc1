//! `csfuse phantom --out-dir DIR`: write the generated example images and volumes.

use csfuse::formats::dicom::write::ct_series;
use csfuse::formats::image::{check_output, write_gray, write_image, Raster, SampleFormat};
use csfuse::formats::nifti;
use csfuse::formats::output::temp_sibling;
use csfuse::phantom::{head_pair, pet_like, phantom_volumes, phantom_volumes_on_other_grids};
use csfuse::{Error, Result};
use std::path::{Path, PathBuf};

/// Generate co-registered phantoms (deterministic): a CT-like / MR-like head pair and a PET-like
/// colour image as 8-bit PNG; with --sixteen-bit the pair as 16-bit TIFF too, with --dicom the
/// CT-like image as a DICOM file, and with --depth a CT-like / MR-like NIfTI volume pair (with
/// --dicom also the CT-like volume as a DICOM series; with --other-grids also the same head on the
/// grids a CT and an MR of one session come on).
///
/// The CT-like image shows bright bone and flat soft tissue; the MR-like image dark bone, grey/white
/// matter contrast and fine texture; the PET-like image smooth uptake under the "hot" colour map with
/// a hot lesion. This is how assets/ct_like.png and assets/mr_like.png were made. The volumes have
/// 1 x 1 x 2 mm voxels; ct_like.nii.gz is int16 in Hounsfield-like units (-1000..2000),
/// mr_like.nii.gz float32 in [0, 1]; slices beyond the top and bottom of the head are empty.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  csfuse phantom --out-dir example --size 256 --sixteen-bit --depth 128"
)]
pub struct Args {
    /// Folder to write ct_like.png, mr_like.png, pet_like.png (and the volumes) into.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Image and slice size (square), 16 to 8192.
    #[arg(long, default_value_t = 256, value_parser = |s: &str| super::num::count(s, 8192))]
    pub size: usize,
    /// Also write ct_like.nii.gz and mr_like.nii.gz with this many slices.
    #[arg(long, value_name = "SLICES", value_parser = |s: &str| super::num::count(s, 4096))]
    pub depth: Option<usize>,
    /// Also write ct_like16.tif and mr_like16.tif: the pair as 16-bit TIFF, the CT-like image with
    /// 12-bit data (0..4095, as CT is usually stored) and the MR-like one over the full 16-bit range.
    #[arg(long)]
    pub sixteen_bit: bool,
    /// Also write ct_like.dcm: the CT-like image as a CT DICOM file, signed 16-bit with Rescale
    /// Intercept -1000, so that it reads as -1000..2000 Hounsfield-like units. With --depth, also
    /// the folder ct_like_dicom/: the CT-like volume as a DICOM series (one file per slice,
    /// Rescale Intercept -1024) on the same grid as mr_like.nii.gz.
    #[arg(long)]
    pub dicom: bool,
    /// With --depth: also write the same head on other grids, as a CT and an MR of one session
    /// come: ct_fine_dicom/, the CT-like volume as a DICOM series at 0.5 x 0.5 x 2 mm (twice the
    /// in-plane resolution), and mr_oblique.nii.gz, the MR-like volume at 1 mm isotropic on a grid
    /// turned 5° about z and 3° about x. `csfuse fuse` resamples one onto the other.
    #[arg(long, requires = "depth")]
    pub other_grids: bool,
    /// Replace existing files.
    #[arg(short, long)]
    pub force: bool,
}

/// Write `files` as the folder `dir`: into a temporary sibling, then renamed into place, so that
/// the folder is whole or absent. An existing folder is replaced only with `force`.
fn write_folder(dir: &Path, files: &[(String, Vec<u8>)], force: bool) -> Result<()> {
    if dir.exists() && !force {
        return Err(Error::BadOutput {
            path: dir.to_path_buf(),
            msg: "exists; pass --force to replace it".into(),
        });
    }
    let tmp = temp_sibling(dir, "")?;
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    for (name, bytes) in files {
        let p = tmp.join(name);
        std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))
}

pub fn run(args: Args) -> Result<()> {
    if args.size < 16 {
        return Err(Error::Param("--size must be at least 16".into()));
    }
    std::fs::create_dir_all(&args.out_dir).map_err(|e| Error::io(&args.out_dir, e))?;
    let path = |name: &str| -> Result<PathBuf> {
        let p = args.out_dir.join(name);
        check_output(&p, &[], args.force)?;
        Ok(p)
    };
    let (ct, mr) = head_pair(args.size);
    for (name, plane) in [("ct_like.png", &ct), ("mr_like.png", &mr)] {
        let p = path(name)?;
        write_gray(&p, plane, SampleFormat::U8)?;
        log::info!("wrote {}", p.display());
    }
    if args.sixteen_bit {
        for (name, plane, max) in [
            ("ct_like16.tif", &ct, 4095.0),
            ("mr_like16.tif", &mr, 65535.0),
        ] {
            let p = path(name)?;
            let raster = Raster {
                h: plane.h,
                w: plane.w,
                channels: vec![plane.data.iter().map(|v| v * max).collect()],
                format: SampleFormat::U16,
            };
            write_image(&p, &raster)?;
            log::info!("wrote {}", p.display());
        }
    }
    if args.dicom {
        let p = path("ct_like.dcm")?;
        let stored: Vec<i16> = ct
            .data
            .iter()
            .map(|v| (v * 3000.0).round() as i16)
            .collect();
        let bytes = csfuse::formats::dicom::write::ct_bytes(ct.h, ct.w, &stored, -1000.0)?;
        csfuse::formats::output::write_atomic(&p, &bytes)?;
        log::info!("wrote {}", p.display());
    }
    let p = path("pet_like.png")?;
    let rgb = pet_like(args.size);
    write_image(
        &p,
        &Raster {
            h: args.size,
            w: args.size,
            channels: rgb
                .iter()
                .map(|c| c.data.iter().map(|v| v * 255.0).collect())
                .collect(),
            format: SampleFormat::U8,
        },
    )?;
    log::info!("wrote {}", p.display());
    if let Some(depth) = args.depth {
        let (pc, pm) = (path("ct_like.nii.gz")?, path("mr_like.nii.gz")?);
        let (ct, mr) = phantom_volumes(args.size, depth);
        for (p, v) in [(&pc, &ct), (&pm, &mr)] {
            nifti::write(p, v, &v.data, v.datatype)?;
            log::info!("wrote {}", p.display());
        }
        if args.dicom {
            let dir = args.out_dir.join("ct_like_dicom");
            write_folder(&dir, &ct_series(&ct, -1024.0)?, args.force)?;
            log::info!("wrote {} ({depth} slices)", dir.display());
        }
        if args.other_grids {
            let pm = path("mr_oblique.nii.gz")?;
            let (ct, mr) = phantom_volumes_on_other_grids(args.size, depth);
            nifti::write(&pm, &mr, &mr.data, mr.datatype)?;
            log::info!("wrote {}", pm.display());
            let dir = args.out_dir.join("ct_fine_dicom");
            write_folder(&dir, &ct_series(&ct, -1024.0)?, args.force)?;
            log::info!("wrote {} ({depth} slices)", dir.display());
        }
    }
    Ok(())
}
