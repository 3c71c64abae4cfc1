"""Resampling one volume onto another's grid, checked against the libraries users trust:
nibabel's resample_from_to (SciPy's map_coordinates) and SimpleITK's Resample with the identity
transform, on oblique grids with different voxel sizes that overlap in part. The two libraries
disagree with each other in one place, the half-voxel shell beyond a volume's outer voxel centres
(SimpleITK samples it, SciPy gives the fill), and csfuse follows SimpleITK there; the nibabel
comparison leaves that shell out and counts it."""

import json

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from nibabel.processing import resample_from_to

import csfuse
from conftest import cli

RNG = np.random.default_rng(7)


def oblique(spacing, origin, degrees):
    """A 4x4 RAS affine: rotations about z, y and x by `degrees`, then `spacing`, at `origin`."""
    az, ay, ax = np.radians(degrees)
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    m = np.eye(4)
    m[:3, :3] = rz @ ry @ rx @ np.diag(spacing)
    m[:3, 3] = origin
    return m


def smooth_volume(shape):
    """Smooth structure plus noise, in CT-like units, so that every interpolation matters."""
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    v = 800 * np.sin(3 * x + 2 * y) * np.cos(2.5 * z) + 300 * (x**2 + y**2 < 0.4)
    return (v + 40 * RNG.standard_normal(shape)).astype(np.float32)


# Source: 23 x 19 x 14 voxels of 0.9 x 1.1 x 2.5 mm, turned; target: 31 x 27 x 21 voxels of
# 0.7 x 0.8 x 1.3 mm, turned otherwise and shifted so that part of it lies outside the source.
SOURCE = ((23, 19, 14), oblique((0.9, 1.1, 2.5), (-9.0, -11.0, -16.0), (8, -5, 4)))
TARGET = ((31, 27, 21), oblique((0.7, 0.8, 1.3), (-4.0, -13.0, -9.0), (-6, 3, 10)))


def source_coordinates(affine, shape, target_affine):
    """Where each target voxel falls in the source's voxel coordinates, (X, Y, Z, 3)."""
    m = np.linalg.inv(affine) @ target_affine
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return idx @ m[:3, :3].T + m[:3, 3]


def masks(src_shape, coords, nearest=False):
    """(between the outer centres, outside the field of view, clear of ties): the voxels where
    SciPy samples, where every library gives the fill, and away from rounding boundaries."""
    n = np.array(src_shape, float)
    eps = 1e-4
    centres = np.all((coords >= eps) & (coords <= n - 1 - eps), -1)
    outside = np.any((coords < -0.5 - eps) | (coords >= n - 0.5 + eps), -1)
    clear = np.ones(coords.shape[:3], bool)
    if nearest:
        frac = coords - np.floor(coords)
        clear = np.all(np.abs(frac - 0.5) > eps, -1)
    return centres & clear, outside & clear


def to_sitk(data, affine):
    """A SimpleITK image of `data` (X, Y, Z) placed by the RAS `affine` (ITK works in LPS)."""
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(data, (2, 1, 0))))
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :4]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    img.SetSpacing(tuple(spacing))
    img.SetOrigin(tuple(lps[:, 3]))
    img.SetDirection(tuple((lps[:, :3] / spacing).ravel()))
    return img


def sitk_resample(data, affine, shape, target_affine, interp, fill):
    ref = to_sitk(np.zeros(shape, np.float32), target_affine)
    kind = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear,
            "cubic": sitk.sitkBSpline}[interp]
    out = sitk.Resample(to_sitk(data, affine), ref, sitk.Transform(), kind, float(fill),
                        sitk.sitkFloat64)
    return np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0))


@pytest.mark.parametrize("interp,order", [("nearest", 0), ("linear", 1), ("cubic", 3)])
def test_resampling_equals_nibabel_and_simpleitk(interp, order):
    (src_shape, a), (shape, b) = SOURCE, TARGET
    data = smooth_volume(src_shape)
    fill = float(data.min())
    tol = 1e-4 * float(data.max() - data.min())
    ours, outside = csfuse.resample(data, a, shape, b, interp=interp)
    assert ours.shape == shape and ours.dtype == np.float32

    coords = source_coordinates(a, shape, b)
    centres, out = masks(src_shape, coords, nearest=interp == "nearest")
    n = np.array(src_shape, float)
    in_fov = np.all((coords >= -0.5) & (coords < n - 0.5), -1)
    assert outside == int((~in_fov).sum())
    # Partial overlap: some of the target in each region.
    assert centres.sum() > 3000 and out.sum() > 3000, (centres.sum(), out.sum())

    lib = resample_from_to(nib.Nifti1Image(data, a), (shape, b), order=order, mode="constant",
                           cval=fill).get_fdata()
    agree = centres | out
    worst = np.abs(ours - lib)[agree].max()
    assert worst <= tol, f"nibabel order {order}: {worst} > {tol}"
    shell = ~(centres | out) & in_fov
    print(f"{interp}: {agree.sum()} voxels equal nibabel's within {worst:.2e}; "
          f"{shell.sum()} in the half-voxel shell where SciPy gives the fill")
    assert shell.sum() < 0.2 * shape[0] * shape[1] * shape[2]

    itk = sitk_resample(data, a, shape, b, interp, fill)
    # Every voxel but those within 1e-4 voxel of the field of view's edge or a rounding tie.
    edge = np.any(np.abs(coords + 0.5) < 1e-4, -1) | np.any(np.abs(coords - (n - 0.5)) < 1e-4, -1)
    keep = ~edge
    if interp == "nearest":
        keep &= np.all(np.abs(coords - np.floor(coords) - 0.5) > 1e-4, -1)
    worst = np.abs(ours - itk)[keep].max()
    assert worst <= tol, f"SimpleITK {interp}: {worst} > {tol}"
    print(f"{interp}: {keep.sum()} of {keep.size} voxels equal SimpleITK's within {worst:.2e}")


def test_the_same_grid_gives_the_volume_back():
    src_shape, a = SOURCE
    data = smooth_volume(src_shape)
    for interp in ("nearest", "linear", "cubic"):
        out, outside = csfuse.resample(data, a, src_shape, a, interp=interp)
        assert outside == 0
        np.testing.assert_allclose(out, data, atol=1e-3 * np.ptp(data))


def test_resample_refuses_bad_arguments_by_name():
    (src_shape, a), (shape, b) = SOURCE, TARGET
    data = smooth_volume(src_shape)
    flat = a.copy()
    flat[:3, 2] = 0
    cases = [
        (lambda: csfuse.resample(data, flat, shape, b), "affine.*singular"),
        (lambda: csfuse.resample(data, a, shape, np.eye(3)), "target_affine.*4x4"),
        (lambda: csfuse.resample(data, a, (4, 4), b), "target_shape"),
        (lambda: csfuse.resample(data, a, shape, b, interp="sinc"), 'interp="sinc"'),
        (lambda: csfuse.resample(data[..., 0], a, shape, b), "3-D"),
        (lambda: csfuse.resample(data, a * np.nan, shape, b), "finite"),
    ]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


@pytest.fixture(scope="module")
def grids(tmp_path_factory):
    """The phantom's CT-like series at 0.5 x 0.5 x 2 mm and MR-like NIfTI at 1 mm, oblique."""
    d = tmp_path_factory.mktemp("grids")
    cli("phantom", "--out-dir", d, "--size", "48", "--depth", "6", "--other-grids")
    return d


def test_volumes_on_different_grids_fuse_as_the_command_line_does(grids, tmp_path):
    ct, mr = grids / "ct_fine_dicom", grids / "mr_oblique.nii.gz"
    for grid, interp in (("a", "linear"), ("b", "cubic")):
        ours = tmp_path / f"py_{grid}.nii.gz"
        report = csfuse.fuse_nifti(ct, mr, ours, grid=grid, interp=interp, backend="cpu")
        theirs = tmp_path / f"cli_{grid}.nii.gz"
        cli("fuse", ct, mr, "-o", theirs, "--grid", grid, "--interp", interp, "--backend", "cpu",
            "--report", tmp_path / f"r_{grid}.json")
        np.testing.assert_array_equal(nib.load(ours).get_fdata(), nib.load(theirs).get_fdata())
        cli_report = json.loads((tmp_path / f"r_{grid}.json").read_text())
        assert report["grid"] == {**cli_report["grid"], "resampled": {
            **cli_report["grid"]["resampled"], "ms": report["grid"]["resampled"]["ms"]}}
        # The output has the grid of the input it was fused on.
        on = nib.load(ours)
        _, ct_affine = csfuse.load_volume(ct)
        expect_shape, expect_affine = ((96, 96, 6), ct_affine) if grid == "a" else \
            ((48, 48, 12), nib.load(mr).affine)
        assert on.shape == expect_shape
        np.testing.assert_allclose(on.affine, expect_affine, atol=1e-3)
        moved = report["grid"]["resampled"]
        assert moved["input"] == ("b" if grid == "a" else "a") and moved["interp"] == interp
        assert 0 <= moved["outside_fraction"] < 0.5
        assert report["inputs"][0]["dims"] == [96, 96, 6]
        assert report["inputs"][1]["voxel_size_mm"] == pytest.approx([1, 1, 1], abs=1e-5)


def test_volumes_that_hardly_overlap_are_refused_and_nothing_is_written(grids, tmp_path):
    mr = nib.load(grids / "mr_oblique.nii.gz")
    far = mr.affine.copy()
    far[0, 3] += 45.0  # most of a 48 mm wide head moved aside
    nib.save(nib.Nifti1Image(mr.get_fdata(dtype=np.float32), far), tmp_path / "far.nii.gz")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"hardly overlap.*far\.nii\.gz"):
        csfuse.fuse_nifti(grids / "ct_fine_dicom", tmp_path / "far.nii.gz", tmp_path / "f.nii.gz",
                          backend="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(ValueError, match='grid="c"'):
        csfuse.fuse_nifti(grids / "ct_fine_dicom", grids / "mr_oblique.nii.gz",
                          tmp_path / "f.nii.gz", grid="c")
