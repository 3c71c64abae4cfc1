//! Volumes whatever holds them: a NIfTI-1 file (`.nii`, `.nii.gz`), a folder holding one DICOM
//! series, or a multi-frame DICOM file. Each reads into a [`Volume`] with a NIfTI header, which a
//! fused result is written with.

use super::dicom::{self, series};
use super::nifti::{self, Volume, VolumeInfo};
use crate::error::Result;
use std::path::Path;

/// Whether `path` names a volume: a NIfTI file by its extension, a folder (a DICOM series), or a
/// DICOM file whose header gives several frames.
pub fn is_volume(path: &Path) -> bool {
    nifti::is_nifti(path) || path.is_dir() || dicom::is_multiframe(path)
}

/// The series of a folder or of a multi-frame file; `None` for a NIfTI file.
pub fn dicom_series(path: &Path) -> Result<Option<series::Series>> {
    if path.is_dir() {
        series::scan(path).map(Some)
    } else if !nifti::is_nifti(path) && dicom::is_dicom_file(path) {
        series::scan_file(path).map(Some)
    } else {
        Ok(None)
    }
}

/// What reading the volume at `path` takes, from its headers; nothing else is decoded.
pub fn read_info(path: &Path) -> Result<VolumeInfo> {
    match dicom_series(path)? {
        Some(s) => Ok(s.info(path)),
        None => nifti::read_info(path),
    }
}

/// Read the volume at `path`.
pub fn read(path: &Path) -> Result<Volume> {
    match dicom_series(path)? {
        Some(s) => s.read(path),
        None => nifti::read(path),
    }
}
