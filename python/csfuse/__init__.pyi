"""Types of the csfuse package (see the docstrings in __init__.py)."""

import os
from typing import Any, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str
features: list[str]  # optional parts of this build, e.g. "jpegls" (JPEG-LS DICOM)

class GpuError(RuntimeError): ...
class ValidationError(RuntimeError): ...

PathLike = Union[str, os.PathLike[str]]
Dictionary = Union[PathLike, npt.NDArray[np.floating[Any]], None]
Backend = Literal["auto", "gpu", "cpu"]
Precision = Literal["f32", "f64"]
Mode = Literal["pyramid", "paper"]
IntensityRange = Union[str, Tuple[float, float]]
Interp = Literal["nearest", "linear", "cubic"]

@overload
def fuse(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    mode: Mode = ...,
    axis: Optional[int] = ...,
    backend: Backend = ...,
    precision: Precision = ...,
    validate: bool = ...,
    cartoon_dict: Dictionary = ...,
    texture_dict: Dictionary = ...,
    intensity_range: IntensityRange = ...,
    out_dtype: Optional[npt.DTypeLike] = ...,
    memory_budget: Optional[int] = ...,
    base_share: Optional[float] = ...,
    base_top: Optional[float] = ...,
    base_bright: Optional[float] = ...,
    vote_radius: Optional[int] = ...,
    texture_rule: Optional[Literal["sum", "choose"]] = ...,
    report: Literal[False] = ...,
) -> np.ndarray: ...
@overload
def fuse(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    *,
    mode: Mode = ...,
    axis: Optional[int] = ...,
    backend: Backend = ...,
    precision: Precision = ...,
    validate: bool = ...,
    cartoon_dict: Dictionary = ...,
    texture_dict: Dictionary = ...,
    intensity_range: IntensityRange = ...,
    out_dtype: Optional[npt.DTypeLike] = ...,
    memory_budget: Optional[int] = ...,
    base_share: Optional[float] = ...,
    base_top: Optional[float] = ...,
    base_bright: Optional[float] = ...,
    vote_radius: Optional[int] = ...,
    texture_rule: Optional[Literal["sum", "choose"]] = ...,
    report: Literal[True],
) -> Tuple[np.ndarray, dict[str, Any]]: ...
def fuse_files(
    a: PathLike,
    b: PathLike,
    output: PathLike,
    *,
    report: Optional[PathLike] = ...,
    montage: Optional[PathLike] = ...,
    html: Optional[PathLike] = ...,
    force: bool = ...,
    mode: Mode = ...,
    axis: Optional[int] = ...,
    ignore_affine: bool = ...,
    interp: Interp = ...,
    grid: Literal["a", "b"] = ...,
    out_format: Optional[Literal["nifti", "dicom"]] = ...,
    backend: Backend = ...,
    precision: Precision = ...,
    validate: bool = ...,
    cartoon_dict: Dictionary = ...,
    texture_dict: Dictionary = ...,
    intensity_range: IntensityRange = ...,
    out_dtype: Optional[npt.DTypeLike] = ...,
    memory_budget: Optional[int] = ...,
    base_share: Optional[float] = ...,
    base_top: Optional[float] = ...,
    base_bright: Optional[float] = ...,
    vote_radius: Optional[int] = ...,
    texture_rule: Optional[Literal["sum", "choose"]] = ...,
) -> dict[str, Any]: ...
def fuse_nifti(path_a: PathLike, path_b: PathLike, path_out: PathLike, **options: Any) -> dict[str, Any]: ...
def sparse_code(
    image: npt.ArrayLike,
    dictionary: Union[PathLike, npt.ArrayLike],
    lmbda: float,
    *,
    highpass: Optional[float] = ...,
    rho: Optional[float] = ...,
    relax: float = ...,
    auto_rho: bool = ...,
    max_iter: int = ...,
    tol: float = ...,
    abs_tol: float = ...,
    l1_weights: Optional[Sequence[float]] = ...,
    backend: Backend = ...,
    precision: Precision = ...,
    validate: bool = ...,
    normalize: bool = ...,
) -> Tuple[np.ndarray, dict[str, Any]]: ...
def learn(
    images: Sequence[npt.ArrayLike],
    kind: Literal["cartoon", "texture"],
    *,
    filters: int = ...,
    size: int = ...,
    iters: int = ...,
    lmbda: float = ...,
    sigma: float = ...,
    tile: int = ...,
    max_tiles: int = ...,
    tv_weight: float = ...,
    seed: int = ...,
) -> npt.NDArray[np.float32]: ...
@overload
def metrics(
    a: npt.ArrayLike, b: npt.ArrayLike, f: Union[list[npt.ArrayLike], Tuple[npt.ArrayLike, ...]]
) -> list[dict[str, Optional[float]]]: ...
@overload
def metrics(a: npt.ArrayLike, b: npt.ArrayLike, f: npt.ArrayLike) -> dict[str, Optional[float]]: ...
def devices() -> list[dict[str, Any]]: ...
def cancel() -> None: ...
def progress() -> Tuple[int, int]: ...
def imread(path: PathLike) -> np.ndarray: ...
def imwrite(path: PathLike, image: npt.ArrayLike, *, force: bool = ...) -> None: ...
def load_volume(path: PathLike) -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]: ...
def resample(
    data: npt.ArrayLike,
    affine: npt.ArrayLike,
    target_shape: Sequence[int],
    target_affine: npt.ArrayLike,
    *,
    interp: Interp = ...,
    fill: Optional[float] = ...,
) -> Tuple[npt.NDArray[np.float32], int]: ...
