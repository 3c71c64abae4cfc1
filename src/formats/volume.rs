//! Volumes whatever holds them: a NIfTI-1 file (`.nii`, `.nii.gz`) or a folder holding one DICOM
//! series. Both read into a [`Volume`] with a NIfTI header, which a fused result is written with.

use super::dicom::series;
use super::nifti::{self, Volume, VolumeInfo};
use crate::error::Result;
use std::path::Path;

/// Whether `path` names a volume: a NIfTI file by its extension, or a folder (a DICOM series).
pub fn is_volume(path: &Path) -> bool {
    nifti::is_nifti(path) || path.is_dir()
}

/// What reading the volume at `path` takes, from its headers; nothing else is decoded.
pub fn read_info(path: &Path) -> Result<VolumeInfo> {
    if path.is_dir() {
        Ok(series::scan(path)?.info(path))
    } else {
        nifti::read_info(path)
    }
}

/// Read the volume at `path`.
pub fn read(path: &Path) -> Result<Volume> {
    if path.is_dir() {
        series::scan(path)?.read(path)
    } else {
        nifti::read(path)
    }
}
