#!/bin/bash
# The Python package built and tested as a user installs it:
#   1. a virtual environment VENV (default target/py-venv) with pytest, NumPy, nibabel, pydicom,
#      the decoders pydicom uses for compressed DICOM, and selenium (the page tests drive Chromium);
#   2. `pip install .`, which builds the abi3 extension with maturin (release, sharing target/);
#   3. pytest on python/tests, against the csfuse binary in target/release (build it first);
#   4. napari, pytest-qt and the napari plugin (napari-csfuse/) installed, and its tests run.
#
#   python/test.sh [VENV]
#
# The dcm2niix comparisons need dcm2niix on the PATH, and the page tests chromium and chromedriver
# (.ci/run installs them); without them they are skipped, and CSFUSE_MAX_SKIPPED=N (.ci/run sets 0) makes more than N skipped tests a failure.
# Each test run ends with a line in cargo's `test result:` form, so that .ci/run's closing line
# counts these tests too.
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
  pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pyjpegls selenium \
  || { echo "python: error: cannot install the test requirements" >&2; exit 1; }
# CSFUSE_FEATURES (e.g. jpegls, which .ci/run sets) builds the wheel with those cargo features.
if [ -n "${CSFUSE_FEATURES:-}" ]; then
  export MATURIN_PEP517_ARGS="--features ${CSFUSE_FEATURES}"
fi
"$venv/bin/pip" install -q --disable-pip-version-check . \
  || { echo "python: error: pip install . failed" >&2; exit 1; }
status=0
total_skipped=0
# pytest_in NAME FOLDER [RUNNER...]: pytest on FOLDER (from inside it, so that `import csfuse` is
# the installed package), then one line in cargo's `test result:` form.
pytest_in() {
  local name=$1 folder=$2 log
  shift 2
  log=$(mktemp)
  (cd "$folder" && "$@" "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider .) 2>&1 | tee "$log"
  local st=${PIPESTATUS[0]}
  local summary
  summary=$(tail -n 1 "$log")
  count() { echo "$summary" | grep -oE "[0-9]+ $1" | grep -oE "[0-9]+" || echo 0; }
  local passed failed errors skipped
  passed=$(count passed) failed=$(count failed) errors=$(count error) skipped=$(count skipped)
  echo "test result: ${name}. $passed passed; $((failed + errors)) failed; $skipped ignored"
  rm -f "$log"
  total_skipped=$((total_skipped + skipped))
  [ "$st" = 0 ] || status=1
}
pytest_in python "$repo/python/tests"

# The napari plugin (napari-csfuse/), in the same environment: napari with PyQt5, pytest-qt
# (napari's make_napari_viewer fixture), and the plugin as a user installs it. Qt runs on its
# offscreen platform; napari's canvas still needs an OpenGL context, which Xvfb provides.
if "$venv/bin/pip" install -q --disable-pip-version-check "napari[pyqt5]" pytest-qt ./napari-csfuse; then
  if command -v xvfb-run >/dev/null 2>&1; then
    pytest_in napari-csfuse "$repo/napari-csfuse/tests" xvfb-run -a env QT_QPA_PLATFORM=offscreen
  else
    echo "python: the napari plugin's tests need xvfb-run (apt-get install xvfb xauth); skipped" >&2
    echo "test result: napari-csfuse. 0 passed; 0 failed; 1 ignored"
    total_skipped=$((total_skipped + 1))
  fi
else
  echo "python: error: cannot install napari, pytest-qt and napari-csfuse" >&2
  status=1
fi
if [ -n "${CSFUSE_MAX_SKIPPED:-}" ] && [ "$total_skipped" -gt "$CSFUSE_MAX_SKIPPED" ]; then
  echo "python: error: $total_skipped tests were skipped (at most $CSFUSE_MAX_SKIPPED expected; the -rs lines above say why)" >&2
  status=1
fi
exit "$status"
