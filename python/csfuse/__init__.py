"""CS-MCA fusion of co-registered multimodal medical images, from NumPy arrays or files.

csfuse splits each source into a smooth base and a detail layer, decomposes the detail into
cartoon and texture parts by convolutional sparse coding against two learned dictionaries, keeps
the more active coefficients of each part, and synthesises the fused image (Liu et al., IEEE SPL
2019). The work runs on a GPU through wgpu when one is usable, else on the CPU; results are the
same as the ``csfuse`` command line's, bit for bit, on the same inputs.

Quick start::

    import csfuse, nibabel as nib
    ct, mr = nib.load("ct.nii.gz"), nib.load("mr.nii.gz")          # co-registered, same grid
    fused = csfuse.fuse(ct.get_fdata(dtype="float32"), mr.get_fdata(dtype="float32"), axis=2)
    nib.save(nib.Nifti1Image(fused, ct.affine), "fused.nii.gz")  # float32, with the CT's affine

Errors are exceptions with the command line's messages: ``ValueError`` for bad input (shapes,
dtypes, NaN, parameters), ``OSError``/``FileNotFoundError`` for files, ``MemoryError`` when a job
is over its memory budget, ``GpuError`` for device faults with ``backend="gpu"``,
``ValidationError`` when ``validate=True`` finds the GPU and CPU apart, and ``KeyboardInterrupt``
when Ctrl-C stops a running job (which writes nothing).
"""

import json as _json
import numbers as _numbers
import os as _os

from . import _csfuse
from ._csfuse import GpuError, ValidationError, __version__, features

__all__ = [
    "fuse",
    "fuse_files",
    "fuse_nifti",
    "sparse_code",
    "learn",
    "metrics",
    "devices",
    "imread",
    "imwrite",
    "load_volume",
    "resample",
    "cancel",
    "progress",
    "GpuError",
    "ValidationError",
    "__version__",
    "features",
]


def _fuse_args(mode, axis, cartoon_dict, texture_dict, intensity_range, out_dtype, memory_budget,
               base_share, base_top, base_bright, vote_radius, texture_rule):
    if intensity_range is None:
        intensity_range = "minmax"
    elif isinstance(intensity_range, (tuple, list)):
        lo, hi = intensity_range
        intensity_range = f"{lo}:{hi}"
    if out_dtype is not None:
        out_dtype = _dtype_name(out_dtype)
    return {
        "mode": str(mode),
        "cartoon_dict": _path_or_array(cartoon_dict),
        "texture_dict": _path_or_array(texture_dict),
        "intensity_range": str(intensity_range),
        "out_dtype": out_dtype,
        "axis": axis,
        "memory_budget": memory_budget,
        "base_share": None if base_share is None else float(base_share),
        "base_top": None if base_top is None else float(base_top),
        "base_bright": None if base_bright is None else float(base_bright),
        "vote_radius": None if vote_radius is None else _index(vote_radius, "vote_radius"),
        "texture_rule": None if texture_rule is None else str(texture_rule),
    }


def _index(v, name):
    if isinstance(v, bool) or not isinstance(v, _numbers.Integral) or v < 0:
        raise ValueError(f"{name}={v!r}: give a whole number of pixels, 0 or more")
    return int(v)


def _path_or_array(d):
    return _os.fspath(d) if isinstance(d, (str, _os.PathLike)) else d


def _dtype_name(dt):
    import numpy as np

    try:
        return np.dtype(dt).name
    except TypeError:
        raise ValueError(f"out_dtype={dt!r}: use numpy.uint8, numpy.uint16 or numpy.float32") from None


def fuse(
    a,
    b,
    *,
    mode="pyramid",
    axis=None,
    backend="auto",
    precision="f32",
    validate=False,
    cartoon_dict=None,
    texture_dict=None,
    intensity_range="minmax",
    out_dtype=None,
    memory_budget=None,
    base_share=None,
    base_top=None,
    base_bright=None,
    vote_radius=None,
    texture_rule=None,
    report=False,
):
    """Fuse two co-registered images or volumes given as NumPy arrays.

    Parameters
    ----------
    a, b : numpy.ndarray
        Images ``(H, W)`` grey or ``(H, W, 3)`` RGB (a colour PET/SPECT: its luminance is fused,
        its colour kept), or with ``axis`` volumes ``(X, Y, Z)`` in nibabel's order. Any memory
        order; uint8, uint16, int16, float32, float64, ... . ``b`` wins ties of the fusion rule.
    mode : {"pyramid", "paper"}
        The fusion rules, as ``csfuse fuse --mode``. ``"pyramid"`` (the default) fuses the base
        layers with a Laplacian pyramid that keeps the brighter structure and keeps a colour
        result's luminance exact; ``"paper"`` is the published method (averaged base layers,
        choose-max on the cartoon and texture coefficients).
    axis : {0, 1, 2}, optional
        Fuse ``a`` and ``b`` as volumes, slice by slice along this axis (2: the z slices).
    backend : {"auto", "gpu", "cpu"}
        ``auto`` uses a hardware GPU when one works and the CPU otherwise; ``gpu`` insists (any
        adapter, software ones too) and raises ``GpuError``; ``cpu`` is the reference engine.
    precision : {"f32", "f64"}
        Floating point of the CPU engine (the GPU computes in f32).
    validate : bool
        Also fuse on the CPU and raise ``ValidationError`` if the GPU result is further than 0.01
        of the full range from it anywhere.
    cartoon_dict, texture_dict : str, os.PathLike or numpy.ndarray, optional
        Dictionaries ``(h, w, M)``: an ``.npy`` path or an array; the built-in ones by default.
    intensity_range : str or (lo, hi)
        How sources map to [0, 1]: ``"minmax"`` (8-bit by 255, others by their own range),
        ``"pA-B"`` percentiles (e.g. ``"p0.5-99.5"``), or a fixed range ``(lo, hi)`` such as
        ``(-1000, 3000)`` for CT in HU.
    out_dtype : numpy dtype, optional
        Images only: ``uint8``, ``uint16`` or ``float32``; by default the deeper source's
        (uint8 and uint16 kept, anything else float32).
    memory_budget : int, optional
        Bytes the job may use (estimated before any work); 3/4 of the available memory by default.
    base_share, base_top : float, optional
        The ``"pyramid"`` mode's base rule, as ``csfuse fuse --base-share`` and ``--base-top``
        (each from 0 to 1): the pyramid fusion's share of the fused base layer (0.2 by default)
        and how far its coarsest level moves towards the brighter source (0.6). The defaults
        were chosen by cross-validation; ``mode="paper"`` refuses them.
    base_bright : float, optional
        As ``--base-bright`` (0 to 1, 0.25 by default): how far the fused base moves towards one that
        takes the clearly brighter source's base whole and averages bases of about equal
        brightness.
    vote_radius : int, optional
        As ``--vote-radius`` (5 by default; 0 for none): each choose-max decision becomes the majority of the
        decisions in the ``(2R+1) x (2R+1)`` window around it.
    texture_rule : {"sum", "choose"}, optional
        As ``--texture-rule`` (``"sum"`` by default): the texture parts' coefficient maps are
        added, so that each source's fine texture is kept where it is, or ``"choose"``: choose-max,
        as published.
    report : bool
        Also return the report (parameters, timings, objective values) as a dict.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, dict)
        The fused image in the sources' range (an 8-bit pair gives uint8), or the fused volume
        ``(X, Y, Z)`` with ``a``'s dtype (integers rounded and clamped). With ``report=True``, the
        array and the report.
    """
    args = _fuse_args(mode, axis, cartoon_dict, texture_dict, intensity_range, out_dtype, memory_budget,
                      base_share, base_top, base_bright, vote_radius, texture_rule)
    fused, text = _csfuse.fuse(a, b, args, backend, precision, bool(validate))
    return (fused, _json.loads(text)) if report else fused


def fuse_files(
    a,
    b,
    output,
    *,
    report=None,
    montage=None,
    html=None,
    force=False,
    mode="pyramid",
    axis=None,
    ignore_affine=False,
    interp="linear",
    grid="a",
    out_format=None,
    backend="auto",
    precision="f32",
    validate=False,
    cartoon_dict=None,
    texture_dict=None,
    intensity_range="minmax",
    out_dtype=None,
    memory_budget=None,
    base_share=None,
    base_top=None,
    base_bright=None,
    vote_radius=None,
    texture_rule=None,
):
    """Fuse two files into ``output`` exactly as ``csfuse fuse a b -o output`` does.

    ``a`` and ``b`` are images (PNG, TIFF, BMP, JPEG, single-frame DICOM) or volumes (NIfTI
    ``.nii``/``.nii.gz``, or a folder holding one DICOM series); volumes are written as NIfTI.
    Volumes on different grids are put on one from their affines: ``b`` is resampled onto ``a``'s
    grid (``grid="b"``: the other way round) with ``interp`` (``"linear"``, ``"nearest"`` or
    ``"cubic"``, as :func:`resample`), and the output has that grid's header and affine;
    ``ignore_affine=True`` fuses voxel by voxel instead (one shape needed). Volumes that hardly
    overlap raise ``ValueError``. ``out_format="dicom"`` writes a fused volume as a DICOM series
    in the folder ``output`` (one file per slice; see docs/volumes-and-batch.md). ``report`` and
    ``montage`` are optional paths to write the JSON report and a picture of the inputs, result
    and decision maps; for volumes, ``html`` a page that shows the sources and the result in
    slice views in a browser (docs/pages.md). Nothing is overwritten unless
    ``force=True``; all outputs appear together or not at all. The other options are
    :func:`fuse`'s. Returns the report as a dict.
    """
    args = _fuse_args(mode, axis, cartoon_dict, texture_dict, intensity_range, out_dtype, memory_budget,
                      base_share, base_top, base_bright, vote_radius, texture_rule)
    opt = lambda p: None if p is None else _os.fspath(p)  # noqa: E731
    text = _csfuse.fuse_files(
        _os.fspath(a),
        _os.fspath(b),
        _os.fspath(output),
        opt(report),
        opt(montage),
        bool(force),
        {"ignore_affine": bool(ignore_affine), "interp": str(interp), "grid": str(grid),
         "out_format": None if out_format is None else str(out_format), "html": opt(html)},
        args,
        backend,
        precision,
        bool(validate),
    )
    return _json.loads(text)


def fuse_nifti(path_a, path_b, path_out, **options):
    """Fuse two volumes (NIfTI files or DICOM series folders) into the NIfTI file ``path_out``
    (with ``out_format="dicom"``, into a DICOM series in the folder ``path_out``).

    The result keeps ``path_a``'s header and affine (float32 when ``path_a`` stores scaled
    integers); ``path_b`` may be on another grid, and is then resampled onto ``path_a``'s
    (``interp=``, ``grid="b"`` for the other way round). Options as :func:`fuse_files`.
    Returns the report as a dict. To fuse volumes you already hold with nibabel, pass
    ``img.get_fdata(dtype="float32")`` arrays to :func:`fuse` with ``axis=`` and save the result
    with the source's affine.
    """
    name = _os.fspath(path_out).lower()
    if options.get("out_format") != "dicom" and not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise ValueError(f"{_os.fspath(path_out)}: volumes are written as NIfTI (use .nii or .nii.gz) "
                         "or, with out_format=\"dicom\", as a DICOM series in a folder")
    options.setdefault("axis", None)
    return fuse_files(path_a, path_b, path_out, **options)


def sparse_code(
    image,
    dictionary,
    lmbda,
    *,
    highpass=None,
    rho=None,
    relax=1.8,
    auto_rho=True,
    max_iter=1000,
    tol=1e-3,
    abs_tol=0.0,
    l1_weights=None,
    backend="auto",
    precision="f32",
    validate=False,
    normalize=False,
):
    """Convolutional sparse coding (CBPDN, SPORCO's ConvBPDN semantics) of one grey image.

    Solves ``min_X 1/2 ||sum_m d_m * x_m - s||^2 + lmbda sum_m ||x_m||_1`` with circular
    boundaries from zero, by ADMM. ``image`` is ``(H, W)`` (integers scaled by their full range,
    floats as given); ``dictionary`` an ``(h, w, M)`` array or ``.npy`` path. ``highpass`` codes
    the detail layer instead (the image less a Tikhonov low-pass of that lambda; 60 in CS-MCA).
    ``tol=0`` runs exactly ``max_iter`` iterations. The filters are used as given, as SPORCO
    uses them; ``normalize=True`` scales each to unit l2 norm first (``fuse`` and ``learn``
    always work with unit filters).

    Returns ``(coef, stats)``: the coefficient maps ``(H, W, M)`` (float32, or float64 with
    ``precision="f64"``) and a dict with iterations, objective, dfid, l1, the residuals r and s,
    the final rho and the time per iteration.
    """
    coef, text = _csfuse.sparse_code(
        image,
        _path_or_array(dictionary),
        float(lmbda),
        highpass,
        rho,
        float(relax),
        bool(auto_rho),
        int(max_iter),
        float(tol),
        float(abs_tol),
        None if l1_weights is None else [float(w) for w in l1_weights],
        backend,
        precision,
        bool(validate),
        bool(normalize),
    )
    return coef, _json.loads(text)


def learn(
    images,
    kind,
    *,
    filters=32,
    size=8,
    iters=200,
    lmbda=0.1,
    sigma=10.0,
    tile=128,
    max_tiles=16,
    tv_weight=0.02,
    seed=1,
):
    """Learn a cartoon or texture dictionary from training images, as ``csfuse learn``.

    Each image (``(H, W)`` or RGB ``(H, W, 3)``, learned from its luminance) has its detail layer
    split by TV into cartoon and texture; the ``kind`` part is cut into ``tile`` x ``tile`` tiles
    (at most ``max_tiles``) and ``filters`` filters of ``size`` x ``size`` are learned for
    ``iters`` iterations from a seeded start. Returns a float32 ``(size, size, filters)`` array,
    ready for ``fuse(..., cartoon_dict=...)`` or ``numpy.save``.
    """
    return _csfuse.learn(
        list(images),
        kind,
        int(filters),
        int(size),
        int(iters),
        float(lmbda),
        float(sigma),
        int(tile),
        int(max_tiles),
        float(tv_weight),
        int(seed),
    )


def metrics(a, b, f):
    """Objective fusion metrics of ``f`` against its sources ``a`` and ``b`` (uint8 arrays).

    Returns a dict: EN, SD, SF, MI, Q_MI, SSIM_sum, Q_ABF, Q_ABF_vifb, Q_S, Q_Y, Q_CB, Q_P and
    VIFF, each checked against the original MATLAB code (see ``csfuse metrics --help``); a
    metric that does not apply (VIFF below 81x81, Q_P without features) is None. Colour images
    are scored on grey levels.

    ``f`` may be a list (or tuple) of fused images, e.g. one per method: then a list of dicts
    comes back, in its order, and what the metrics take from the sources alone (Q_P's phase
    congruency, Q_CB's contrast, Q_Y's SSIM of a with b) is computed once, which makes each
    image about half as costly to score. The values are the same either way.
    """
    many = isinstance(f, (list, tuple))
    fused = list(f) if many else [f]
    names = [f"f[{i}]" for i in range(len(fused))] if many else ["f"]
    scores = _json.loads(_csfuse.metrics(a, b, fused, names))
    return scores if many else scores[0]


def devices():
    """The GPU adapters csfuse can use, best first: a list of dicts (name, backend, device_type,
    driver, max_storage_binding, max_workgroup_storage, timestamps). Empty without a GPU or a
    software Vulkan adapter."""
    return _json.loads(_csfuse.devices())


def cancel():
    """Ask every running csfuse job to stop at its next solver iteration, from any thread (a GUI's
    Cancel button while a worker thread fuses). The job raises ``KeyboardInterrupt`` in its own
    thread and writes nothing; the next job starts afresh."""
    _csfuse.cancel()


def progress():
    """``(done, total)`` of the latest job that reports progress: the slices of a volume fusion,
    so that another thread can show how far it is; ``(0, 0)`` before any. Images report none."""
    return tuple(_csfuse.progress())


def imread(path):
    """Read an image file (PNG, TIFF, BMP, JPEG, single-frame DICOM, compressed or not) as csfuse
    does: ``(H, W)`` or ``(H, W, 3)``; uint8, uint16, or float32 for float files and rescaled
    DICOM (a CT in HU). YBR colour is converted to RGB."""
    return _csfuse.imread(_os.fspath(path))


def imwrite(path, image, *, force=False):
    """Write ``image`` (``(H, W)`` or ``(H, W, 3)``) to ``path`` as its extension says: PNG, TIFF,
    BMP or JPEG; uint8 or uint16 (float32 as TIFF only). The file appears whole or not at all,
    and an existing one is replaced only with ``force=True``."""
    _csfuse.imwrite(_os.fspath(path), image, bool(force))


def load_volume(path):
    """Read a volume as csfuse fuses it: a NIfTI file, a folder holding one DICOM series, or a
    multi-frame DICOM file.

    Returns ``(data, affine)``: float32 values ``(X, Y, Z)`` with any rescaling applied, and the
    4x4 voxel-to-world (RAS+ mm) affine. A DICOM series is laid out and placed as dcm2niix would
    convert it, so ``data`` and ``affine`` equal ``nibabel.load(converted).get_fdata()`` and
    ``.affine``.
    """
    return _csfuse.load_volume(_os.fspath(path))


def resample(data, affine, target_shape, target_affine, *, interp="linear", fill=None):
    """Put ``data`` (``(X, Y, Z)``, voxel-to-world ``affine``) on another grid: ``target_shape``
    with ``target_affine`` (both 4x4, RAS+ mm, as nibabel's ``img.affine``), as csfuse does
    before it fuses volumes on different grids.

    ``interp`` is ``"linear"`` (trilinear), ``"nearest"`` (label maps) or ``"cubic"`` (cubic
    B-spline with its interpolating prefilter and mirrored edges: SciPy's ``order=3`` and
    SimpleITK's ``sitkBSpline``). A volume covers its voxels, so its field of view reaches half a
    voxel beyond its outer voxel centres, as in SimpleITK; target voxels outside it get ``fill``
    (default: the lowest value of ``data``, its background). nibabel's
    ``resample_from_to(..., mode="constant")`` stops at the outer centres instead, so the two
    differ only in that half-voxel shell.

    Returns ``(resampled, outside)``: float32 ``target_shape`` values and how many voxels lay
    outside ``data``'s field of view.
    """
    def flat(m, name):
        rows = [list(r) for r in m]
        if len(rows) != 4 or any(len(r) != 4 for r in rows):
            raise ValueError(f"{name}: a voxel-to-world affine is 4x4, this one is {m!r}")
        return [float(v) for r in rows for v in r]

    shape = tuple(target_shape)
    if len(shape) != 3:
        raise ValueError(f"target_shape: a volume's shape is (X, Y, Z), not {target_shape!r}")
    return _csfuse.resample(
        data,
        flat(affine, "affine"),
        [_index(n, "target_shape") for n in shape],
        flat(target_affine, "target_affine"),
        str(interp),
        None if fill is None else float(fill),
    )
