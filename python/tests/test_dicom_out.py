"""A fused volume written as a DICOM series: pydicom reads every file, dcm2niix converts the
folder to the NIfTI output's array and affine (values within the rescale step), csfuse reads it
back, and the series carries the first input's patient, study and frame of reference."""

import nibabel as nib
import numpy as np
import pydicom
import pytest

import csfuse
from conftest import cli, convert


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    d = tmp_path_factory.mktemp("dicom_out")
    cli("phantom", "--out-dir", d, "--size", "40", "--depth", "6", "--dicom", "--other-grids")
    return d


def canonical(img):
    """nibabel's RAS-closest layout: the same voxels whichever way a writer stored the axes."""
    c = nib.as_closest_canonical(img)
    return c.get_fdata(), c.affine


def read_series(folder):
    return [pydicom.dcmread(p) for p in sorted(folder.iterdir())]


@pytest.mark.parametrize("a,b,first_is_dicom", [
    ("ct_like_dicom", "mr_like.nii.gz", True),        # a series in, left-handed: the same array
    ("mr_oblique.nii.gz", "ct_like.nii.gz", False),   # an oblique right-handed NIfTI grid
])
def test_a_fused_series_is_the_nifti_result_as_dcm2niix_and_csfuse_read_it(
        grids, tmp_path, a, b, first_is_dicom):
    a, b = grids / a, grids / b
    nifti_out, series_out = tmp_path / "fused.nii.gz", tmp_path / "series"
    csfuse.fuse_nifti(a, b, nifti_out, backend="cpu")
    report = csfuse.fuse_nifti(a, b, series_out, out_format="dicom", backend="cpu")
    record = report["output"]["dicom_series"]
    ref = nib.load(nifti_out)
    step = record["rescale_slope"]

    files = read_series(series_out)
    assert len(files) == record["files"] == ref.shape[2]
    assert len({f.SOPInstanceUID for f in files}) == len(files)
    assert {f.SeriesInstanceUID for f in files} == {record["series_instance_uid"]}
    for f in files:
        assert list(f.ImageType) == ["DERIVED", "SECONDARY"]
        assert "csfuse" in f.SeriesDescription and "pyramid" in f.SeriesDescription
        assert f.BitsAllocated == 16 and f.pixel_array.dtype.itemsize == 2
    if first_is_dicom:
        source = read_series(a)[0]
        for key in ("PatientName", "PatientID", "StudyInstanceUID", "FrameOfReferenceUID",
                    "Modality", "SOPClassUID"):
            assert files[0][key].value == source[key].value, key
        assert files[0].SeriesInstanceUID != source.SeriesInstanceUID
        assert record["copied_from_first_input"]
    else:
        assert files[0].PatientID == "CSFUSE-ANONYMOUS" and files[0].Modality == "OT"
        assert not record["copied_from_first_input"]

    # dcm2niix's conversion: the NIfTI output's voxels, on its grid.
    converted = convert(series_out, tmp_path / "dcm2niix")
    (want, want_affine), (got, got_affine) = canonical(ref), canonical(converted)
    assert got.shape == want.shape
    np.testing.assert_allclose(got_affine, want_affine, atol=1e-3)
    # Half a step of rounding, and dcm2niix keeps scl_slope/scl_inter in float32.
    assert np.abs(got - want).max() <= step, np.abs(got - want).max()
    if first_is_dicom:
        # A series in, a series out: the very array, not only the same voxels.
        np.testing.assert_allclose(converted.affine, ref.affine, atol=1e-3)

    # csfuse reads its own series back as the same volume.
    data, affine = csfuse.load_volume(series_out)
    back = nib.Nifti1Image(data, affine)
    (got, got_affine) = canonical(back)
    np.testing.assert_allclose(got_affine, want_affine, atol=1e-3)
    assert np.abs(got - want).max() <= 0.5 * step + 1e-6 * np.abs(want).max()


def test_series_output_is_refused_where_it_would_lose_something(grids, tmp_path):
    a, b = grids / "ct_like_dicom", grids / "mr_like.nii.gz"
    out = tmp_path / "series"
    cli("fuse", a, b, "-o", f"{out}/", "--backend", "cpu")
    first = sorted(p.name for p in out.iterdir())
    # Without --force an existing series is kept; with it, it is replaced.
    refused = cli("fuse", a, b, "-o", f"{out}/", check=False)
    assert refused.returncode == 1 and "pass --force" in refused.stderr
    cli("fuse", a, b, "-o", f"{out}/", "--backend", "cpu", "--force")
    assert sorted(p.name for p in out.iterdir()) == first
    # A folder holding anything else is never replaced.
    (out / "notes.txt").write_text("mine")
    refused = cli("fuse", a, b, "-o", f"{out}/", "--force", check=False)
    assert refused.returncode == 1 and "notes.txt" in refused.stderr
    assert (out / "notes.txt").read_text() == "mine"
    # An input is never an output; images take no --out-format; batch writes NIfTI.
    refused = cli("fuse", a, b, "-o", f"{a}/", "--force", check=False)
    assert refused.returncode == 1 and "input" in refused.stderr
    refused = cli("fuse", grids / "ct_like.png", grids / "mr_like.png", "-o", tmp_path / "x.png",
                  "--out-format", "dicom", check=False)
    assert refused.returncode != 0 and "--out-format applies to volumes" in refused.stderr
    with pytest.raises(ValueError, match="out_format"):
        csfuse.fuse_nifti(a, b, tmp_path / "y", out_format="dcm")
