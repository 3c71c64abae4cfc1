"""Shared fixtures: the csfuse command line the package is compared with, the phantoms it writes,
and DICOM series written with pydicom."""

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli_path():
    """The csfuse binary built from this checkout (CSFUSE_BIN overrides)."""
    p = pathlib.Path(os.environ.get("CSFUSE_BIN", ROOT / "target" / "release" / "csfuse"))
    if not p.exists():
        raise RuntimeError(
            f"{p} is missing: build it first (cargo build --release) or set CSFUSE_BIN"
        )
    return p


def cli(*args, cwd=None, check=True):
    """Run the command line; returns the finished process (stderr as text)."""
    out = subprocess.run(
        [str(cli_path()), "-q", *map(str, args)], cwd=cwd, capture_output=True, text=True
    )
    if check and out.returncode != 0:
        raise AssertionError(f"csfuse {' '.join(map(str, args))}: {out.stderr}")
    return out


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory):
    """csfuse phantom at 64 px with a 16-bit pair, 10-slice NIfTI volumes and a DICOM series."""
    d = tmp_path_factory.mktemp("phantoms")
    cli("phantom", "--out-dir", d, "--size", "64", "--sixteen-bit", "--depth", "10", "--dicom")
    return d


def dcm2niix():
    """The dcm2niix binary, or skip (CI installs it: apt-get install dcm2niix)."""
    exe = shutil.which("dcm2niix")
    if exe is None:
        pytest.skip("needs dcm2niix (apt-get install dcm2niix)")
    return exe


def new_dataset(sop_class, modality):
    """An empty pydicom data set of `sop_class`, with its file meta (explicit VR little endian), a
    new SOP instance UID and its modality."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    return ds


def write_series(
    folder,
    *,
    shape=(5, 24, 20),
    orientation=(1, 0, 0, 0, 1, 0),
    spacing=(0.8, 0.9),
    step=2.5,
    origin=(-10.0, 20.0, 30.0),
    rescale=None,
    signed=False,
    series_uid=None,
    positions=None,
    seed=0,
    reverse_names=True,
    prefix="im",
):
    """A DICOM series written with pydicom: `shape` is (slices, rows, columns); slice k lies at
    origin + k * step * normal (or `positions[k]`). Returns the stored values (slices, rows,
    columns) in position order."""
    import pydicom
    from pydicom.uid import generate_uid

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, cols = shape
    rng = np.random.default_rng(seed)
    placed = orientation if orientation is not None else (1, 0, 0, 0, 1, 0)
    row = np.array(placed[:3], float)
    col = np.array(placed[3:], float)
    normal = np.cross(row, col)
    series_uid = series_uid or generate_uid()
    study, frame = generate_uid(), generate_uid()
    dtype = np.int16 if signed else np.uint16
    stored = rng.integers(0, 3000, (n, rows, cols)).astype(dtype)
    for k in range(n):
        ds = new_dataset("1.2.840.10008.5.1.4.1.1.2", "CT")
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series_uid, frame
        ds.PatientName, ds.PatientID = "Phantom", "0"
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        if orientation is not None:
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        pos = positions[k] if positions is not None else np.array(origin) + k * step * normal
        ds.ImagePositionPatient = [f"{v:.4f}" for v in pos]
        ds.PixelSpacing = list(spacing)
        ds.SliceThickness = abs(step)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = 1 if signed else 0
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.PixelData = stored[k].tobytes()
        name = f"{prefix}{(n - 1 - k) if reverse_names else k:03d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
    return stored


def convert(folder, out_dir):
    """dcm2niix's NIfTI of a series folder, loaded with nibabel."""
    import nibabel as nib

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [dcm2niix(), "-o", str(out_dir), "-f", "converted", "-b", "n", str(folder)],
        check=True,
        capture_output=True,
    )
    return nib.load(out_dir / "converted.nii")


def pytest_terminal_summary(terminalreporter):
    """The pydicom sweep's counts (test_dicom_codecs.py), for CI's log."""
    import sys

    sweep = sys.modules.get("test_dicom_codecs")
    outcomes = getattr(sweep, "OUTCOMES", {})
    if outcomes:
        read = sum(1 for v in outcomes.values() if v == "read")
        terminalreporter.write_line(
            f"pydicom test files with pixel data: {read} read by csfuse (equal to pydicom, or "
            f"within the lossy codec's tolerance), {len(outcomes) - read} refused with their reason"
        )
