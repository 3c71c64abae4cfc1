"""The rest of the API against the command line: sparse_code, learn and metrics give what
`csfuse sparse-code`, `csfuse learn` and `csfuse metrics` give; imread/imwrite round-trip."""

import json

import numpy as np
import pytest

import csfuse
from conftest import ROOT, cli

A, B = ROOT / "assets" / "ct_like.png", ROOT / "assets" / "mr_like.png"
CARTOON = ROOT / "assets" / "dict_cartoon_8x8x32.npy"


def test_sparse_code_equals_the_command_line(tmp_path):
    image = csfuse.imread(A)[:70, :90]
    csfuse.imwrite(tmp_path / "img.png", image)
    cli(
        "sparse-code", tmp_path / "img.png", "--dict", CARTOON, "--lambda", "0.05",
        "--highpass", "60", "--iters", "25", "--tol", "0", "--backend", "cpu",
        "--out-coef", tmp_path / "x.npy",
    )
    coef, stats = csfuse.sparse_code(
        image, CARTOON, 0.05, highpass=60, max_iter=25, tol=0, backend="cpu"
    )
    assert coef.shape == (70, 90, 32) and coef.dtype == np.float32
    assert np.array_equal(coef, np.load(tmp_path / "x.npy"))
    assert stats["iterations"] == 25 and stats["objective"] > 0
    # The dictionary as an array gives the same.
    again, _ = csfuse.sparse_code(
        image, np.load(CARTOON), 0.05, highpass=60, max_iter=25, tol=0, backend="cpu"
    )
    assert np.array_equal(again, coef)


def test_learn_equals_the_command_line(tmp_path):
    cli(
        "learn", A, B, "--kind", "texture", "--filters", "4", "--size", "5", "--iters", "4",
        "--tile", "64", "--max-tiles", "6", "-o", tmp_path / "d.npy",
    )
    d = csfuse.learn(
        [csfuse.imread(A), csfuse.imread(B)], "texture",
        filters=4, size=5, iters=4, tile=64, max_tiles=6,
    )
    assert d.shape == (5, 5, 4) and d.dtype == np.float32
    assert np.array_equal(d, np.load(tmp_path / "d.npy"))
    # Unit-norm filters, usable as a dictionary.
    assert np.allclose(np.sqrt((d**2).sum(axis=(0, 1))), 1, atol=1e-5)


def test_metrics_equal_the_command_line(tmp_path):
    a, b = csfuse.imread(A), csfuse.imread(B)
    f = csfuse.fuse(a, b, backend="cpu")
    csfuse.imwrite(tmp_path / "f.png", f)
    want = json.loads(cli("metrics", A, B, tmp_path / "f.png", "--json").stdout)
    got = csfuse.metrics(a, b, f)
    assert got == want
    assert 0 < got["Q_ABF"] < 1 and got["VIFF"] is not None
    with pytest.raises(ValueError, match="8-bit"):
        csfuse.metrics(a, b, f.astype(np.uint16))


def test_images_round_trip_and_are_not_overwritten(tmp_path):
    rgb = np.stack([np.arange(48 * 40, dtype=np.uint16).reshape(48, 40) * k for k in (1, 2, 3)], -1)
    csfuse.imwrite(tmp_path / "rgb16.png", rgb)
    back = csfuse.imread(tmp_path / "rgb16.png")
    assert back.dtype == np.uint16 and np.array_equal(back, rgb)
    with pytest.raises(OSError, match="exists"):
        csfuse.imwrite(tmp_path / "rgb16.png", rgb)
    csfuse.imwrite(tmp_path / "rgb16.png", rgb // 2, force=True)
    assert np.array_equal(csfuse.imread(tmp_path / "rgb16.png"), rgb // 2)
    f = np.linspace(-1, 1, 30 * 20, dtype=np.float32).reshape(30, 20)
    csfuse.imwrite(tmp_path / "f.tif", f)
    assert np.array_equal(csfuse.imread(tmp_path / "f.tif"), f)


def test_devices_is_a_list_of_adapters():
    found = csfuse.devices()
    assert isinstance(found, list)
    for d in found:
        assert {"name", "backend", "device_type", "max_storage_binding"} <= d.keys()
