"""DICOM input against the tools users already trust: pydicom's own sample files read as pydicom
reads them, series written here with pydicom read as dcm2niix + nibabel convert them, a series
fusing like its NIfTI twin, and broken series refused with nothing written."""

import os

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import csfuse
from conftest import cli, convert, write_series


def pydicom_values(path):
    ds = pydicom.dcmread(path)
    slope = float(ds.get("RescaleSlope", 1))
    intercept = float(ds.get("RescaleIntercept", 0))
    return ds.pixel_array.astype(np.float64) * slope + intercept


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
        # RLE Lossless (grey and RGB, 8, 16 and 32 bits) and a deflated data set
        "MR_small_RLE.dcm", "SC_rgb_rle.dcm", "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_32bit.dcm",
        "rtdose_rle_1frame.dcm", "image_dfl.dcm",
        # 32-bit samples, little and big endian
        "rtdose_1frame.dcm", "rtdose_expb_1frame.dcm",
    ],
)
def test_pydicom_sample_files_read_as_pydicom_reads_them(name):
    path = get_testdata_file(name, download=False)
    got = csfuse.imread(path)
    want = pydicom_values(path)
    # Values are whole numbers here: exact in the dtype csfuse gives (float32 for signed,
    # rescaled or 32-bit data, so 32-bit values to float32's precision; uint8/uint16 otherwise).
    assert got.shape == want.shape
    assert np.array_equal(got, want.astype(got.dtype))


ORIENTATIONS = {
    "axial": (1, 0, 0, 0, 1, 0),
    "sagittal": (0, 1, 0, 0, 0, -1),
    "coronal": (1, 0, 0, 0, 0, -1),
    "oblique": (
        np.cos(0.3), np.sin(0.3), 0.0,
        -np.sin(0.3) * np.cos(0.2), np.cos(0.3) * np.cos(0.2), np.sin(0.2),
    ),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
@pytest.mark.parametrize("step", [2.5, -3.0])
def test_a_series_reads_as_dcm2niix_and_nibabel_give_it(tmp_path, orientation, step):
    folder = tmp_path / "series"
    write_series(
        folder,
        orientation=ORIENTATIONS[orientation],
        step=step,
        signed=True,
        rescale=(1, -1024),
    )
    want = convert(folder, tmp_path / "nifti")
    data, affine = csfuse.load_volume(folder)
    assert data.shape == want.shape
    assert np.array_equal(data.astype(np.float64), want.get_fdata())
    assert np.allclose(affine, want.affine, atol=1e-4), (affine, want.affine)


def test_a_series_and_its_nifti_twin_fuse_to_the_same_volume(phantoms, tmp_path):
    series = phantoms / "ct_like_dicom"
    twin = convert(series, tmp_path / "twin")
    mr = phantoms / "mr_like.nii.gz"
    csfuse.fuse_files(series, mr, tmp_path / "from_series.nii.gz", backend="cpu")
    csfuse.fuse_files(
        tmp_path / "twin" / "converted.nii", mr, tmp_path / "from_twin.nii.gz", backend="cpu"
    )
    a, b = nib.load(tmp_path / "from_series.nii.gz"), nib.load(tmp_path / "from_twin.nii.gz")
    assert np.allclose(a.affine, b.affine, atol=1e-4)
    assert np.allclose(a.affine, nib.load(mr).affine, atol=1e-4)
    # Within float32 rounding (the two store the CT with different scaling).
    assert np.allclose(a.get_fdata(), b.get_fdata(), rtol=1e-5, atol=1e-3)
    # The command line gives the same.
    cli("fuse", series, mr, "-o", tmp_path / "cli.nii.gz", "--backend", "cpu")
    c = nib.load(tmp_path / "cli.nii.gz")
    assert np.array_equal(np.asanyarray(c.dataobj), np.asanyarray(a.dataobj))


def broken_series(root):
    """Series folders that must be refused, with what the message says."""
    cases = {}
    uid = pydicom.uid.generate_uid()
    write_series(root / "mixed", shape=(3, 24, 20), series_uid=uid)
    write_series(root / "mixed", shape=(2, 24, 20), origin=(0, 0, 100), prefix="other")
    cases["mixed"] = "holds 2 series"
    write_series(root / "no_orientation", orientation=None)
    cases["no_orientation"] = "Image Orientation"
    positions = [np.array([0.0, 0.0, z]) for z in (0, 2.5, 5, 10, 12.5)]
    write_series(root / "gap", positions=positions)
    cases["gap"] = "irregular slice spacing"
    tilted = [np.array([0.0, 0.4 * k, 2.5 * k]) for k in range(5)]
    write_series(root / "tilt", positions=tilted)
    cases["tilt"] = "gantry tilt"
    write_series(root / "truncated")
    victim = root / "truncated" / "im002.dcm"
    victim.write_bytes(victim.read_bytes()[:-100])
    cases["truncated"] = "im002.dcm"
    write_series(root / "compressed")
    ds = pydicom.dcmread(root / "compressed" / "im001.dcm")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    ds.PixelData = pydicom.encaps.encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    ds.save_as(root / "compressed" / "im001.dcm")
    cases["compressed"] = "JPEG 2000"
    return cases


def test_bad_series_raise_with_the_reason_and_write_nothing(tmp_path):
    cases = broken_series(tmp_path)
    mr = tmp_path / "mr.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((20, 24, 5), np.float32), np.eye(4)), mr)
    for case, reason in cases.items():
        before = sorted(os.listdir(tmp_path))
        with pytest.raises(ValueError, match=reason):
            csfuse.fuse_nifti(tmp_path / case, mr, tmp_path / "out.nii.gz", ignore_affine=True)
        with pytest.raises(ValueError, match=reason):
            csfuse.load_volume(tmp_path / case)
        assert sorted(os.listdir(tmp_path)) == before, case
    # A series is written as NIfTI only.
    write_series(tmp_path / "good")
    with pytest.raises(ValueError, match="NIfTI"):
        csfuse.fuse_nifti(tmp_path / "good", mr, tmp_path / "out.png")


@pytest.mark.parametrize(
    "syntax",
    [pydicom.uid.RLELossless, pydicom.uid.JPEG2000Lossless, pydicom.uid.JPEGLSLossless],
    ids=["rle", "jpeg2000-lossless", "jpeg-ls"],
)
def test_a_compressed_series_reads_as_its_uncompressed_twin(tmp_path, syntax):
    if syntax == pydicom.uid.JPEGLSLossless and "jpegls" not in csfuse.features:
        pytest.skip("csfuse built without JPEG-LS (MATURIN_PEP517_ARGS='--features jpegls')")
    # 40 x 36: JPEG 2000's default resolutions need 32 pixels each way.
    write_series(tmp_path / "plain", shape=(4, 40, 36), rescale=(1.0, -1024.0))
    write_series(tmp_path / "packed", shape=(4, 40, 36), rescale=(1.0, -1024.0))
    for p in sorted((tmp_path / "packed").iterdir()):
        ds = pydicom.dcmread(p)
        ds.compress(syntax)
        ds.save_as(p)
    plain, plain_affine = csfuse.load_volume(tmp_path / "plain")
    packed, packed_affine = csfuse.load_volume(tmp_path / "packed")
    assert np.array_equal(plain, packed) and np.array_equal(plain_affine, packed_affine)


def test_signed_jpeg2000_under_an_unsigned_header_keeps_its_negative_values(tmp_path):
    # The codestream says signed, the header unsigned: the samples are read signed (as pydicom
    # reads them) and the volume is float32, so the fused NIfTI cannot clip them.
    stored = write_series(tmp_path / "mismatch", shape=(3, 40, 36), signed=True)
    for p in sorted((tmp_path / "mismatch").iterdir()):
        ds = pydicom.dcmread(p)
        ds.PixelData = (ds.pixel_array.astype(np.int16) - 1500).tobytes()
        ds.compress(pydicom.uid.JPEG2000Lossless)
        ds.PixelRepresentation = 0
        ds.save_as(p)
    data, affine = csfuse.load_volume(tmp_path / "mismatch")
    assert data.min() == stored.min() - 1500 < 0
    mr = tmp_path / "mr.nii.gz"
    nib.save(nib.Nifti1Image(np.ones(data.shape, np.float32), affine), mr)
    out = tmp_path / "fused.nii.gz"
    csfuse.fuse_nifti(tmp_path / "mismatch", mr, out)
    fused = nib.load(out)
    assert fused.get_data_dtype() == np.float32
    assert fused.get_fdata().min() < 0
