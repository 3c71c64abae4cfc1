"""Compressed and multi-frame DICOM against the tools users trust.

- Every file with pixel data in pydicom's own test set is read by csfuse and compared with
  pydicom's ``pixel_array`` (decoded by pylibjpeg, pyjpegls and pydicom's RLE decoder), or is
  refused with the reason listed in REFUSED. A file that is neither fails the test.
- docs/formats.md's transfer syntax table is checked against what csfuse does with each file.
- Enhanced multi-frame files written here with pydicom (oblique, frames shuffled, plain and
  compressed) read as the volume dcm2niix converts them to.
"""

import os
import pathlib
import re
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import csfuse
from conftest import cli, cli_path, convert, new_dataset

TEST_FILES = pathlib.Path(get_testdata_file("CT_small.dcm", download=False)).parent
DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "formats.md"
JPEG_LS = ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")

# What csfuse refuses among pydicom's files, and the reason its message must give.
REFUSED = {
    # A corrupt codestream (pydicom fails on it as well).
    "JPEG2000-embedded-sequence-delimiter.dcm": r"cannot decode the JPEG 2000 pixel data",
    "MR_truncated.dcm": r"truncated or corrupt",
    # Its data set is implicit VR under an explicit VR transfer syntax; pydicom guesses.
    "SC_rgb_jpeg.dcm": r"truncated or corrupt",
    # No transfer syntax in the file meta.
    "meta_missing_tsyntax.dcm": r"truncated or corrupt",
    "badVR.dcm": r"Number of Frames \(0028,0008\) \"1A\" is not a number",
    "nested_priv_SQ.dcm": r"no Rows",
    "examples_palette.dcm": r"PALETTE COLOR",
    "liver_1frame.dcm": r"Bits Allocated 1\b",
    "liver_expb_1frame.dcm": r"Bits Allocated 1\b",
    # Colour multi-frame files: volumes are grey.
    "SC_rgb_rle_2frame.dcm": r"colour multi-frame file \(2 frames\)",
    "SC_rgb_rle_16bit_2frame.dcm": r"colour multi-frame file \(2 frames\)",
    "SC_rgb_rle_32bit_2frame.dcm": r"colour multi-frame file \(2 frames\)",
    "examples_ybr_color.dcm": r"colour multi-frame file \(30 frames\)",
}

# Files pydicom's decoders fail on, and a file holding the same image that they decode:
# JPEG-lossy.dcm is JPGExtended.dcm's 12-bit image in a stream libjpeg rejects.
PYDICOM_FAILS = {"JPEG-lossy.dcm": "JPGExtended.dcm"}

# Largest difference from pydicom per lossy codec: jpeg-decoder and csfuse's 12-bit decoder round
# the inverse DCT and the chroma upsampling differently from libjpeg (by 2 of 255, 1 of 4095). JPEG 2000 and JPEG-LS use the same codec
# families on both sides and must agree exactly.
LOSSY_TOLERANCE = {"1.2.840.10008.1.2.4.50": 2, "1.2.840.10008.1.2.4.51": 2}

OUTCOMES = {}


def pixel_files():
    found = []
    for p in sorted(TEST_FILES.rglob("*")):
        if not p.is_file():
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=False, force=True)
        except Exception:
            continue
        if "PixelData" in ds:
            found.append(p)
    return found


FILES = pixel_files()


def syntax_of(path):
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


def read_with_csfuse(path):
    """csfuse's reading: an image, or a volume for a multi-frame file (X, Y, Z as dcm2niix)."""
    try:
        return "image", csfuse.imread(path)
    except ValueError as e:
        if "multi-frame DICOM" in str(e) and "is a volume" in str(e):
            return "volume", csfuse.load_volume(path)[0]
        raise


def pydicom_values(path):
    ds = pydicom.dcmread(path)
    slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
    values = ds.pixel_array.astype(np.float64) * slope + intercept
    if ds.PhotometricInterpretation == "MONOCHROME1":
        # csfuse shows bright as high: integers inverted about 2^BitsStored - 1, float data
        # (signed or rescaled) about its own range.
        if ds.PixelRepresentation == 0 and (slope, intercept) == (1, 0) and ds.BitsAllocated <= 16:
            values = (2 ** ds.BitsStored - 1) - values
        else:
            values = values.min() + values.max() - values
    return values


def docs_table():
    """UID -> the 'csfuse' column of docs/formats.md's transfer syntax table."""
    rows = {}
    for line in DOCS.read_text().splitlines():
        m = re.match(r"^\| (1\.2\.840\.10008\.[0-9.]+) \| [^|]+ \| ([^|]+) \|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


def test_the_sweep_sees_pydicoms_files():
    # pydicom 3 ships about 90 such files; far fewer means the sweep lost them.
    assert len(FILES) >= 60, [p.name for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(TEST_FILES)) for p in FILES])
def test_each_pydicom_file_reads_as_pydicom_reads_it_or_is_refused_with_its_reason(path):
    ts = syntax_of(path)
    if ts in JPEG_LS and "jpegls" not in csfuse.features:
        pytest.skip("csfuse built without JPEG-LS (MATURIN_PEP517_ARGS='--features jpegls')")
    reason = REFUSED.get(path.name)
    if reason is not None:
        with pytest.raises(ValueError) as e:
            read_with_csfuse(path)
        assert re.search(reason, str(e.value)), str(e.value)
        assert path.name in str(e.value), "the message names the file"
        OUTCOMES[path.name] = "refused"
        return
    kind, got = read_with_csfuse(path)
    twin = PYDICOM_FAILS.get(path.name)
    if twin is not None:
        with pytest.raises(Exception):
            pydicom.dcmread(path).pixel_array
    want = pydicom_values(TEST_FILES / twin if twin else path)
    if kind == "volume":
        # pydicom gives (frames, rows, columns); csfuse x along a row, y up the rows, z by position.
        want = np.transpose(want, (2, 1, 0))[:, ::-1, :]
    assert got.shape == want.shape
    got = got.astype(np.float64)
    # Values csfuse gives as float32 (32-bit or rescaled data) are compared at float32 precision.
    want32 = want.astype(np.float32).astype(np.float64)
    diff = np.abs(got - want32).max()
    tolerance = LOSSY_TOLERANCE.get(ts, 0)
    assert diff <= tolerance, f"{path.name} ({ts}): differs from pydicom by {diff}"
    if tolerance:
        assert np.abs(got - want32).mean() < 0.5
    OUTCOMES[path.name] = "read"


def test_docs_table_says_what_csfuse_does_with_each_syntax():
    table = docs_table()
    assert len(table) >= 20, "docs/formats.md lost its transfer syntax table"
    seen = set()
    for path in FILES:
        ts = syntax_of(path)
        if not ts:
            continue
        said = table.get(ts)
        assert said is not None, f"{ts} ({path.name}) is missing from docs/formats.md"
        try:
            read_with_csfuse(path)
            refused_for_syntax = False
        except ValueError as e:
            refused_for_syntax = bool(re.search(r"transfer syntax .* is not supported", str(e)))
        if said.startswith("read with `--features jpegls`"):
            assert refused_for_syntax == ("jpegls" not in csfuse.features), path.name
        elif said.startswith("read"):
            assert not refused_for_syntax, f"{path.name}: the docs say {ts} is read"
            assert ("lossy warning" in said) == (ts in LOSSY_TOLERANCE or ts in (
                "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.91")), ts
        else:
            assert refused_for_syntax, f"{path.name}: the docs say {ts} is refused"
        seen.add(ts)
    # pydicom's files cover every syntax csfuse reads but the lossless JPEG of process 14.
    assert len(seen) >= 12, seen


def test_lossy_inputs_are_reported_and_warned_about(tmp_path):
    lossy = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm", download=False)
    lossless = get_testdata_file("SC_rgb_jpeg_gdcm.dcm", download=False)
    report = tmp_path / "r.json"
    # Without -q: the warning is a log line.
    run = subprocess.run(
        [str(cli_path()), "fuse", lossy, lossless, "-o", tmp_path / "f.png", "--report", report],
        capture_output=True, text=True, check=True,
    )
    assert "SC_rgb_jpeg_dcmtk.dcm: stored with lossy compression (JPEG Baseline (Process 1))" in run.stderr
    import json

    inputs = json.loads(report.read_text())["inputs"]
    assert inputs[0]["lossy_compression"] == "stored with lossy compression (JPEG Baseline (Process 1))"
    assert inputs[1]["lossy_compression"] is None


def write_enhanced(path, *, syntax, shuffle=True, seed=1):
    """An enhanced MR image (multi-frame, functional groups) on an oblique grid, frames stored in
    a shuffled order; returns nothing (dcm2niix is the reference)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(seed)
    # JPEG 2000's default of six resolutions needs 32 pixels or more each way.
    frames, rows, cols = 7, 40, 36
    a = np.deg2rad(12.0)
    row = np.array([np.cos(a), np.sin(a), 0.0])
    col = np.array([0.0, np.cos(0.2), -np.sin(0.2)])
    col -= row * (row @ col)
    col /= np.linalg.norm(col)
    normal = np.cross(row, col)
    stored = rng.integers(0, 4000, (frames, rows, cols)).astype(np.uint16)
    order = rng.permutation(frames) if shuffle else np.arange(frames)
    ds = new_dataset("1.2.840.10008.5.1.4.1.1.4.1", "MR")
    ds.PatientName, ds.PatientID = "Phantom", "0"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesNumber, ds.InstanceNumber = 3, 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    measures = Dataset()
    measures.PixelSpacing = [0.9, 0.8]
    measures.SliceThickness = 2.0
    orient = Dataset()
    orient.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
    transform = Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 2, -100, "US"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    origin = np.array([-30.0, 12.0, 55.0])
    for k in order:
        item, pos, content = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [f"{v:.4f}" for v in origin + 2.0 * k * normal]
        item.PlanePositionSequence = Sequence([pos])
        content.InStackPositionNumber = int(k) + 1
        content.StackID = "1"
        item.FrameContentSequence = Sequence([content])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = stored[order].tobytes()
    if syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    ds.save_as(path, enforce_file_format=True)


def test_enhanced_multiframe_reads_as_dcm2niix_converts_it(tmp_path):
    folder = tmp_path / "dicom"
    folder.mkdir()
    path = folder / "enhanced.dcm"
    write_enhanced(path, syntax="1.2.840.10008.1.2.1")
    data, affine = csfuse.load_volume(path)
    nii = convert(folder, tmp_path / "nii")
    want = nii.get_fdata(dtype=np.float64)
    assert data.shape == want.shape == (36, 40, 7)
    assert np.array_equal(data.astype(np.float64), want)
    assert np.allclose(affine, nii.affine, atol=1e-3), (affine, nii.affine)


@pytest.mark.parametrize(
    "syntax",
    ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.80"],
    ids=["rle", "jpeg2000-lossless", "jpeg-ls"],
)
def test_compressed_multiframe_reads_as_its_uncompressed_twin(tmp_path, syntax):
    # The Debian dcm2niix decodes none of these, so the uncompressed file (checked against
    # dcm2niix above) is the reference. pydicom writes each frame as a fragment of its own.
    if syntax in JPEG_LS and "jpegls" not in csfuse.features:
        pytest.skip("csfuse built without JPEG-LS (MATURIN_PEP517_ARGS='--features jpegls')")
    plain, packed = tmp_path / "plain.dcm", tmp_path / "packed.dcm"
    write_enhanced(plain, syntax="1.2.840.10008.1.2.1")
    write_enhanced(packed, syntax=syntax)
    assert pydicom.dcmread(packed).file_meta.TransferSyntaxUID == syntax
    want, want_affine = csfuse.load_volume(plain)
    got, affine = csfuse.load_volume(packed)
    assert np.array_equal(got, want)
    assert np.array_equal(affine, want_affine)


def test_a_multiframe_file_fuses_as_a_volume_and_is_refused_as_an_image(tmp_path):
    path = tmp_path / "enhanced.dcm"
    write_enhanced(path, syntax="1.2.840.10008.1.2.1")
    data, affine = csfuse.load_volume(path)
    import nibabel as nib

    other = tmp_path / "other.nii.gz"
    nib.save(nib.Nifti1Image(data[::-1].copy(), affine), other)
    out = tmp_path / "fused.nii.gz"
    cli("fuse", path, other, "-o", out)
    fused = nib.load(out)
    assert fused.shape == data.shape
    assert np.allclose(fused.affine, affine, atol=1e-4)
    # As a DICOM series: one file per slice, so the enhanced MR class becomes MR Image Storage.
    cli("fuse", path, other, "-o", f"{tmp_path / 'series'}/")
    files = sorted((tmp_path / "series").glob("*.dcm"))
    assert len(files) == 7
    first = pydicom.dcmread(files[0])
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert first.StudyInstanceUID == pydicom.dcmread(path).StudyInstanceUID
    with pytest.raises(ValueError, match=r"multi-frame DICOM \(7 frames\) is a volume"):
        csfuse.imread(path)
    assert not os.path.exists(tmp_path / "f.png")
