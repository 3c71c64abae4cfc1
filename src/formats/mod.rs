//! Files in and out: 2-D images, NIfTI volumes and DICOM series, `.npy` arrays, montages, and the output rules
//! that keep every write atomic and every input safe.

pub mod colour;
pub mod dicom;
pub mod image;
pub mod intensity;
pub mod montage;
pub mod nifti;
pub mod npy;
pub mod output;
pub mod volume;
