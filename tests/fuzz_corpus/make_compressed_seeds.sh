#!/bin/bash
# Writes the compressed DICOM seeds of tests/fuzz_corpus/image/ (one small file per transfer
# syntax csfuse decodes with a codec crate) from seeds csfuse itself wrote. Needs DCMTK
# (apt-get install dcmtk) and a Python with pydicom, pylibjpeg-openjpeg and pyjpegls (the test
# venv, target/py-venv, has them). The files are committed; run this only to remake them.
#
#   tests/fuzz_corpus/make_compressed_seeds.sh [PYTHON]
set -euo pipefail
here=$(cd "$(dirname "$0")/image" && pwd)
python=${1:-$(cd "$here/../../.." && pwd)/target/py-venv/bin/python}
dcmcjpeg +eb +un "$here/rgb8.dcm" "$here/jpeg_baseline_rgb8.dcm"       # .4.50, YBR_FULL_422
dcmcjpeg +ee +un "$here/deflated8.dcm" "$here/jpeg_extended8.dcm"      # .4.51, 8-bit
dcmcjpeg +el +un "$here/ct16.dcm" "$here/jpeg_lossless16.dcm"          # .4.57, predictor 6
dcmcjpeg +e1 +un "$here/ct16.dcm" "$here/jpeg_lossless_sv1_16.dcm"     # .4.70
"$python" - "$here" <<'PY'
import sys, pathlib
import numpy as np
import pydicom
from pydicom.uid import JPEG2000Lossless, JPEG2000, JPEGLSLossless, JPEGLSNearLossless
here = pathlib.Path(sys.argv[1])
ct = pydicom.dcmread(here / "ct16.dcm")
# JPEG-LS from csfuse's CT seed (12 x 10, signed, rescaled).
for syntax, name, kw in [(JPEGLSLossless, "jpegls16.dcm", {}),
                         (JPEGLSNearLossless, "jpegls_near16.dcm", {"jls_error": 2})]:
    ds = pydicom.dcmread(here / "ct16.dcm")
    ds.compress(syntax, **kw)
    ds.save_as(here / name, enforce_file_format=True)
# JPEG 2000 needs 32 pixels each way for its default resolutions: the CT seed tiled.
for syntax, name, kw in [(JPEG2000Lossless, "j2k_lossless16.dcm", {}),
                         (JPEG2000, "j2k_lossy16.dcm", {"j2k_cr": [3]})]:
    ds = pydicom.dcmread(here / "ct16.dcm")
    tiled = np.tile(ds.pixel_array, (3, 4))
    ds.Rows, ds.Columns = tiled.shape
    ds.PixelData = tiled.astype(np.int16).tobytes()
    ds.compress(syntax, **kw)
    ds.save_as(here / name, enforce_file_format=True)
# A 12-bit unsigned grey file, the source of the 12-bit lossy JPEG seed: the CT seed moved into
# 0..4095.
ds = pydicom.dcmread(here / "ct16.dcm")
v = np.clip(ds.pixel_array.astype(np.int32) + 1000, 0, 4095).astype(np.uint16)
ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
del ds.RescaleSlope, ds.RescaleIntercept
ds.PixelData = v.tobytes()
ds.save_as(here / "native12.dcm", enforce_file_format=True)
PY
dcmcjpeg +ee +un "$here/native12.dcm" "$here/jpeg_extended12.dcm"      # .4.51, 12-bit
ls -l "$here"/native12.dcm "$here"/jpeg* "$here"/j2k* "$here"/jpegls*
