"""napari-csfuse: csfuse in napari. A dock widget fuses two image layers (2-D, 3-D, or an RGB
PET/SPECT with a grey MR) in a worker thread, with progress and cancel; a reader opens what
csfuse writes (fused NIfTI volumes, DICOM series, images with their report or sidecar) with the
report as layer metadata."""

from ._reader import get_reader, read
from ._widget import FuseWidget

__all__ = ["FuseWidget", "get_reader", "read"]
