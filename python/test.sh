#!/bin/bash
# The Python package built and tested as a user installs it:
#   1. a virtual environment VENV (default target/py-venv) with pytest, NumPy, nibabel, pydicom and
#      the decoders pydicom uses for compressed DICOM;
#   2. `pip install .`, which builds the abi3 extension with maturin (release, sharing target/);
#   3. pytest on python/tests, against the csfuse binary in target/release (build it first).
#
#   python/test.sh [VENV]
#
# The dcm2niix comparisons need dcm2niix on the PATH (.ci/run installs it); without it they are
# skipped, and CSFUSE_MAX_SKIPPED=N (.ci/run sets 0) makes more than N skipped tests a failure.
# The last line is in cargo's `test result:` form, so that .ci/run's closing line counts these
# tests too.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$repo/target/py-venv}
cd "$repo"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || { echo "python: error: cannot make a virtual environment" >&2; exit 1; }
fi
# pydicom decodes compressed DICOM through pylibjpeg (libjpeg, OpenJPEG) and pyjpegls (CharLS):
# the reference for csfuse's own decoding in test_dicom_codecs.py.
"$venv/bin/pip" install -q --disable-pip-version-check maturin pytest numpy scipy nibabel pydicom SimpleITK \
  pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pyjpegls \
  || { echo "python: error: cannot install the test requirements" >&2; exit 1; }
# CSFUSE_FEATURES (e.g. jpegls, which .ci/run sets) builds the wheel with those cargo features.
if [ -n "${CSFUSE_FEATURES:-}" ]; then
  export MATURIN_PEP517_ARGS="--features ${CSFUSE_FEATURES}"
fi
"$venv/bin/pip" install -q --disable-pip-version-check . \
  || { echo "python: error: pip install . failed" >&2; exit 1; }
log=$(mktemp)
# From outside the source folder, so that `import csfuse` is the installed package.
(cd "$repo/python/tests" && "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider .) 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
summary=$(tail -n 1 "$log")
count() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE "[0-9]+" || echo 0; }
passed=$(count passed) failed=$(count failed) errors=$(count error) skipped=$(count skipped)
echo "test result: python. $passed passed; $((failed + errors)) failed; $skipped ignored"
rm -f "$log"
if [ -n "${CSFUSE_MAX_SKIPPED:-}" ] && [ "$skipped" -gt "$CSFUSE_MAX_SKIPPED" ]; then
  echo "python: error: $skipped tests were skipped (at most $CSFUSE_MAX_SKIPPED expected; the -rs lines above say why)" >&2
  status=1
fi
exit "$status"
