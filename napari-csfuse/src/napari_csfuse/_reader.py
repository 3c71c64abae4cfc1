"""Open what csfuse writes: a fused NIfTI volume or DICOM series, a fused image, or a JSON report
(its output is opened). The report (`fuse --report`, or the sidecar `F.json` that `batch` and
`evaluate` write beside `F`) goes into the layer's metadata under "csfuse"."""

import json
import os
import pathlib

import numpy as np

import csfuse

VOLUME_SUFFIXES = (".nii", ".nii.gz")
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".dcm")


def _report_of(path):
    """The csfuse report or sidecar that describes `path`, or None."""
    side = pathlib.Path(str(path) + ".json")
    if side.is_file():
        try:
            data = json.loads(side.read_text())
        except (OSError, ValueError):
            return None
        if isinstance(data, dict) and "csfuse_version" in data:
            return data
    return None


def _report_output(report):
    """The output path a csfuse report or sidecar names, or None."""
    out = (report.get("output") or {}).get("path")
    return out if isinstance(out, str) else None


def _output_of(json_path, report):
    """The file a report describes: a sidecar's own file (`F` for `F.json`), else the path the
    report names, relative to the report's folder or as written."""
    json_path = pathlib.Path(json_path)
    beside = json_path.with_name(json_path.name[: -len(".json")])
    if beside.exists():
        return beside
    named = pathlib.Path(_report_output(report))
    if not named.is_absolute() and (json_path.parent / named).exists():
        return json_path.parent / named
    return named


def _is_volume(path):
    p = str(path).lower()
    return p.endswith(VOLUME_SUFFIXES) or pathlib.Path(path).is_dir()


def get_reader(path):
    """napari's reader hook: a function that reads `path`, or None when it is not for csfuse.
    Volumes and DICOM folders are read by csfuse; images only when a csfuse sidecar describes
    them (napari's own reader takes the rest); JSON only when it is a csfuse report."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = os.fspath(path)
    low = path.lower()
    if low.endswith(".json"):
        try:
            data = json.loads(pathlib.Path(path).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or "csfuse_version" not in data or _report_output(data) is None:
            return None
        return read
    if _is_volume(path):
        return read
    if low.endswith(IMAGE_SUFFIXES) and _report_of(path) is not None:
        return read
    return None


def napari_affine(affine):
    """A NIfTI voxel-to-world affine (x, y, z order) as napari's, for data transposed to (z, y, x):
    both the data axes and the world axes reversed."""
    a = np.asarray(affine, dtype=float)
    m = np.eye(4)
    m[:3, :3] = a[:3, :3][::-1, ::-1]
    m[:3, 3] = a[:3, 3][::-1]
    return m


def read(path):
    """Layer data tuples for `path` (a volume, an image, or a csfuse JSON report)."""
    if isinstance(path, list):
        path = path[0]
    path = os.fspath(path)
    report = None
    if path.lower().endswith(".json"):
        report = json.loads(pathlib.Path(path).read_text())
        path = os.fspath(_output_of(path, report))
    else:
        report = _report_of(path)
    name = pathlib.Path(path.rstrip("/")).name
    meta = {"csfuse": report, "path": path} if report else {"path": path}
    if _is_volume(path):
        data, affine = csfuse.load_volume(path)
        m = napari_affine(affine)
        data = np.ascontiguousarray(np.transpose(data, (2, 1, 0)))
        kwargs = {"name": name, "metadata": meta}
        if np.allclose(m[:3, :3], np.diag(np.diag(m[:3, :3]))):
            kwargs["scale"] = tuple(np.diag(m[:3, :3]))
            kwargs["translate"] = tuple(m[:3, 3])
        else:
            kwargs["affine"] = m
        return [(data, kwargs, "image")]
    data = csfuse.imread(path)
    return [(data, {"name": name, "metadata": meta, "rgb": data.ndim == 3}, "image")]
