"""The rest of the API against the command line: sparse_code, learn and metrics give what
`csfuse sparse-code`, `csfuse learn` and `csfuse metrics` give; imread/imwrite round-trip."""

import json
import os

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


def test_sparse_code_uses_the_filters_as_given_unless_asked(tmp_path):
    # Filters scaled by 2 at lambda 0.1 and rho 4 are the unit filters' problem at 0.05 and 1,
    # every iterate doubled: the same objective, half the maps (as SPORCO's ConvBPDN codes).
    image = csfuse.imread(A)[:64, :64]
    d = np.load(CARTOON).astype(np.float64)
    opts = dict(highpass=60, max_iter=15, tol=0, auto_rho=False, backend="cpu", precision="f64")
    unit, s1 = csfuse.sparse_code(image, d, 0.05, rho=1.0, **opts)
    twice, s2 = csfuse.sparse_code(image, 2 * d, 0.1, rho=4.0, **opts)
    assert s2["objective"] == pytest.approx(s1["objective"], rel=1e-9)
    assert np.allclose(twice, unit / 2, rtol=0, atol=1e-9)
    # normalize=True codes against unit filters, whatever their scale.
    n1, _ = csfuse.sparse_code(image, d, 0.05, rho=1.0, normalize=True, **opts)
    n2, _ = csfuse.sparse_code(image, 3 * d, 0.05, rho=1.0, normalize=True, **opts)
    assert np.allclose(n1, n2, rtol=0, atol=1e-9)


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


def test_a_list_of_fused_images_scores_as_each_alone():
    a, b = csfuse.imread(A), csfuse.imread(B)
    fused = [csfuse.fuse(a, b, backend="cpu"), np.maximum(a, b), ((a.astype(np.uint16) + b) // 2).astype(np.uint8)]
    many = csfuse.metrics(a, b, fused)
    assert isinstance(many, list) and len(many) == 3
    for f, got in zip(fused, many):
        assert got == csfuse.metrics(a, b, f)
    # Three different images, three different scores: the sources' shared part is not the answer.
    assert len({m["Q_P"] for m in many}) == 3
    assert csfuse.metrics(a, b, tuple(fused[:1])) == many[:1]
    assert csfuse.metrics(a, b, []) == []
    # A bad one is named by its place in the list.
    with pytest.raises(ValueError, match=r"f\[1\].*differ in size"):
        csfuse.metrics(a, b, [fused[0], fused[1][:-1]])
    with pytest.raises(ValueError, match=r"f\[2\].*8-bit"):
        csfuse.metrics(a, b, [fused[0], fused[1], fused[2].astype(np.uint16)])


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
    # The adapters `csfuse devices` lists, in its order.
    lines = cli("devices", "--json").stdout.splitlines()
    want = [json.loads(line) for line in lines if line.strip()]
    assert [d["name"] for d in found] == [d["name"] for d in want]
    for d in found:
        assert {"name", "backend", "device_type", "max_storage_binding"} <= d.keys()
    # CI installs lavapipe, so there the list may not be empty.
    if os.environ.get("CSFUSE_REQUIRE_ADAPTER"):
        assert found, "no adapter found, and CSFUSE_REQUIRE_ADAPTER is set"
