"""The registration recipe of docs/volumes-and-batch.md, run as written: the phantom MR is moved by
a known rigid transform and put on another grid, the recipe registers it onto the CT with
SimpleITK and fuses, and the transform it finds must be the known one within 1 voxel and 1
degree."""

import re

import nibabel as nib
import numpy as np

import csfuse
from conftest import ROOT, cli


def recipe():
    page = (ROOT / "docs" / "volumes-and-batch.md").read_text()
    section = page.split("## Registration", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```python[^\n]*\n(.*?)^```", section, flags=re.S | re.M)
    assert len(blocks) == 1, "the Registration section has one python block"
    return blocks[0]


def rotation(degrees):
    az, ay, ax = np.radians(degrees)
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    return rz @ ry @ rx


def test_the_registration_recipe_recovers_a_known_rigid_motion(tmp_path, monkeypatch):
    cli("phantom", "--out-dir", tmp_path, "--size", "96", "--depth", "40")
    ct = nib.load(tmp_path / "ct_like.nii.gz")
    nib.save(ct, tmp_path / "ct.nii.gz")
    mr = nib.load(tmp_path / "mr_like.nii.gz")

    # The MR moved in world space by a rigid motion (about the head's centre) ...
    centre = mr.affine @ np.r_[(np.array(mr.shape) - 1) / 2, 1]
    motion = np.eye(4)
    motion[:3, :3] = rotation((4.0, -3.0, 2.0))
    motion[:3, 3] = centre[:3] - motion[:3, :3] @ centre[:3] + [3.0, -2.5, 4.0]
    moved_affine = motion @ mr.affine
    # ... and put on another grid: 1.3 mm isotropic, covering the head.
    grid = np.diag([1.3, 1.3, 1.3, 1.0])
    grid[:3, 3] = centre[:3] - 1.3 * (np.array([80, 80, 66]) - 1) / 2
    data, _ = csfuse.resample(mr.get_fdata(dtype=np.float32), moved_affine, (80, 80, 66), grid,
                              interp="cubic", fill=0.0)
    nib.save(nib.Nifti1Image(data, grid), tmp_path / "mr.nii.gz")

    monkeypatch.chdir(tmp_path)
    names = {}
    exec(compile(recipe(), "docs/volumes-and-batch.md#registration", "exec"), names)

    # The transform maps CT (fixed) points to MR (moving) points, in ITK's LPS millimetres;
    # the known one does that with `motion` in RAS.
    t = names["transform"]
    flip = np.diag([-1.0, -1.0, 1.0])
    want = lambda p: flip @ (motion[:3, :3] @ (flip @ p) + motion[:3, 3])  # noqa: E731
    corners = [flip @ (ct.affine @ np.r_[np.array(ijk) * (np.array(ct.shape) - 1), 1])[:3]
               for ijk in np.ndindex(2, 2, 2)]
    found_at = lambda p: np.array(t.TransformPoint(tuple(float(v) for v in p)))  # noqa: E731
    worst = max(np.linalg.norm(found_at(p) - want(p)) for p in corners)
    voxel = min(ct.header.get_zooms())
    assert worst < voxel, f"registration is {worst:.2f} mm off at a corner (voxel {voxel} mm)"
    # The rotation it found: its linear part, from unit steps.
    p0 = corners[0]
    found = np.stack([found_at(p0 + e) - found_at(p0) for e in np.eye(3)], 1)
    known = flip @ motion[:3, :3] @ flip
    angle = np.degrees(np.arccos(np.clip((np.trace(found.T @ known) - 1) / 2, -1, 1)))
    assert angle < 1.0, f"rotation is {angle:.2f} degrees off"
    print(f"recovered within {worst:.2f} mm at the corners and {angle:.2f} degrees")

    fused = nib.load(tmp_path / "fused.nii.gz")
    assert fused.shape == ct.shape
    np.testing.assert_allclose(fused.affine, ct.affine, atol=1e-3)
