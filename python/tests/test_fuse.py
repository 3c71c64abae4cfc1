"""csfuse.fuse on arrays gives what the command line writes for the same inputs, bit for bit:
8-bit, 16-bit and colour images, NIfTI volumes; in any memory order; with the report."""

import threading
import time

import nibabel as nib
import numpy as np
import pytest

import csfuse
from conftest import ROOT, cli

A, B = ROOT / "assets" / "ct_like.png", ROOT / "assets" / "mr_like.png"


def centre(tmp_path):
    """The bundled pair's central 128x128 (a quarter of the cost of the whole) as arrays and as
    files for the command line."""
    a, b = (csfuse.imread(p)[64:192, 64:192] for p in (A, B))
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    csfuse.imwrite(pa, a)
    csfuse.imwrite(pb, b)
    return a, b, pa, pb


def test_the_bundled_pair_fuses_as_the_command_line_does(tmp_path):
    cli("fuse", A, B, "-o", tmp_path / "cli.png", "--backend", "cpu")
    a, b = csfuse.imread(A), csfuse.imread(B)
    assert a.dtype == np.uint8 and a.shape == (256, 256)
    fused, report = csfuse.fuse(a, b, backend="cpu", report=True)
    assert fused.dtype == np.uint8 and fused.shape == a.shape
    assert np.array_equal(fused, csfuse.imread(tmp_path / "cli.png"))
    assert report["inputs"][0]["path"] == "a" and report["output"]["format"] == "U8"
    assert report["params"]["mode"] == "pyramid"
    # The published rules, chosen by name, as on the command line (on the centre: 720 iterations).
    ca, cb, pa, pb = centre(tmp_path)
    cli("fuse", pa, pb, "-o", tmp_path / "paper.png", "--backend", "cpu", "--mode", "paper")
    paper = csfuse.fuse(ca, cb, backend="cpu", mode="paper")
    assert np.array_equal(paper, csfuse.imread(tmp_path / "paper.png"))
    assert not np.array_equal(paper, fused[64:192, 64:192])
    assert not np.array_equal(paper, csfuse.fuse(ca, cb, backend="cpu"))
    # fuse_files writes the same bytes as the command line.
    rep = csfuse.fuse_files(A, B, tmp_path / "py.png", backend="cpu")
    assert (tmp_path / "py.png").read_bytes() == (tmp_path / "cli.png").read_bytes()
    assert rep["output"]["path"].endswith("py.png")


@pytest.mark.parametrize(
    "pair, out",
    [
        (("ct_like16.tif", "mr_like16.tif"), "f16.tif"),
        (("mr_like.png", "pet_like.png"), "fpet.png"),
    ],
)
def test_sixteen_bit_and_colour_pairs_match_the_command_line(phantoms, tmp_path, pair, out):
    a, b = (csfuse.imread(phantoms / p) for p in pair)
    cli("fuse", *(phantoms / p for p in pair), "-o", tmp_path / out, "--backend", "cpu")
    want = csfuse.imread(tmp_path / out)
    got = csfuse.fuse(a, b, backend="cpu")
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)


def test_the_base_rule_matches_the_command_line_and_is_checked(tmp_path):
    a, b, pa, pb = centre(tmp_path)
    cli("fuse", pa, pb, "-o", tmp_path / "c.png", "--backend", "cpu", "--base-share", "0.9", "--base-top", "1")
    got = csfuse.fuse(a, b, backend="cpu", base_share=0.9, base_top=1)
    assert np.array_equal(got, csfuse.imread(tmp_path / "c.png"))
    assert not np.array_equal(got, csfuse.fuse(a, b, backend="cpu"))
    explicit = csfuse.fuse(a, b, backend="cpu", base_share=0.2, base_top=0.6)
    assert np.array_equal(explicit, csfuse.fuse(a, b, backend="cpu"))
    with pytest.raises(ValueError, match="pyramid"):
        csfuse.fuse(a, b, mode="paper", base_share=0.5)
    with pytest.raises(ValueError, match="from 0 to 1"):
        csfuse.fuse(a, b, base_top=1.5)


def test_the_bright_base_and_the_vote_match_the_command_line_and_are_checked(tmp_path):
    a, b, pa, pb = centre(tmp_path)
    cli("fuse", pa, pb, "-o", tmp_path / "c.png", "--backend", "cpu", "--base-bright", "0.7",
        "--vote-radius", "7")
    got = csfuse.fuse(a, b, backend="cpu", base_bright=0.7, vote_radius=7)
    assert np.array_equal(got, csfuse.imread(tmp_path / "c.png"))
    assert not np.array_equal(got, csfuse.fuse(a, b, backend="cpu"))
    with pytest.raises(ValueError, match="pyramid"):
        csfuse.fuse(a, b, mode="paper", vote_radius=3)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="vote_radius"):
            csfuse.fuse(a, b, vote_radius=bad)
    with pytest.raises(ValueError, match="at most 64"):
        csfuse.fuse(a, b, vote_radius=65)
    # The texture rule: the published choose-max on request, as on the command line.
    cli("fuse", pa, pb, "-o", tmp_path / "t.png", "--backend", "cpu", "--texture-rule", "choose")
    chosen = csfuse.fuse(a, b, backend="cpu", texture_rule="choose")
    assert np.array_equal(chosen, csfuse.imread(tmp_path / "t.png"))
    assert not np.array_equal(chosen, csfuse.fuse(a, b, backend="cpu"))
    with pytest.raises(ValueError, match="texture_rule"):
        csfuse.fuse(a, b, texture_rule="max")


def test_memory_order_does_not_change_the_result():
    a, b = csfuse.imread(A)[:96, :80], csfuse.imread(B)[:96, :80]
    want = csfuse.fuse(a, b, backend="cpu")
    # Fortran order and a strided view.
    strided = np.zeros((96, 160), np.uint8)
    strided[:, ::2] = b
    assert np.array_equal(csfuse.fuse(np.asfortranarray(a), strided[:, ::2], backend="cpu"), want)


def test_float_arrays_fuse_as_float_tiffs_do_on_the_command_line(tmp_path):
    # Float copies of the 8-bit values (float64 and float32): each source in its own range, the
    # result float32 in the inputs' range, as `csfuse fuse` does with float TIFFs.
    a, b = csfuse.imread(A)[:96, :80], csfuse.imread(B)[:96, :80]
    af, bf = a.astype(np.float64) * 0.5 - 10, b.astype(np.float32) * 3
    csfuse.imwrite(tmp_path / "a.tif", af.astype(np.float32))
    csfuse.imwrite(tmp_path / "b.tif", bf)
    cli("fuse", tmp_path / "a.tif", tmp_path / "b.tif", "-o", tmp_path / "f.tif", "--backend", "cpu")
    want = csfuse.imread(tmp_path / "f.tif")
    got = csfuse.fuse(af, bf, backend="cpu")
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got, want)
    assert got.min() < 0 < got.max()


def test_volumes_match_the_command_line_and_keep_the_dtype(phantoms, tmp_path):
    cli(
        "fuse",
        phantoms / "ct_like.nii.gz",
        phantoms / "mr_like.nii.gz",
        "-o",
        tmp_path / "cli.nii.gz",
        "--backend",
        "cpu",
    )
    ct, mr = nib.load(phantoms / "ct_like.nii.gz"), nib.load(phantoms / "mr_like.nii.gz")
    a, b = np.asanyarray(ct.dataobj), np.asanyarray(mr.dataobj)
    assert a.dtype == np.int16
    fused, report = csfuse.fuse(a, b, axis=2, backend="cpu", report=True)
    want = nib.load(tmp_path / "cli.nii.gz")
    assert fused.dtype == want.get_data_dtype() == np.int16
    assert fused.shape == a.shape
    assert np.array_equal(fused, np.asanyarray(want.dataobj))
    assert report["slices"]["total"] == 10
    # Another axis gives another (valid) volume of the same shape.
    assert csfuse.fuse(a, b, axis=0, backend="cpu").shape == a.shape


def test_a_nibabel_round_trip_keeps_the_affine(phantoms, tmp_path):
    ct, mr = nib.load(phantoms / "ct_like.nii.gz"), nib.load(phantoms / "mr_like.nii.gz")
    fused = csfuse.fuse(
        ct.get_fdata(dtype=np.float32), mr.get_fdata(dtype=np.float32), axis=2, backend="cpu"
    )
    assert fused.dtype == np.float32
    nib.save(nib.Nifti1Image(fused, ct.affine), tmp_path / "fused.nii.gz")
    back = nib.load(tmp_path / "fused.nii.gz")
    assert np.allclose(back.affine, ct.affine)
    assert np.array_equal(back.get_fdata(dtype=np.float32), fused)
    # fuse_nifti writes what the command line writes.
    csfuse.fuse_nifti(phantoms / "ct_like.nii.gz", phantoms / "mr_like.nii.gz", tmp_path / "p.nii.gz", backend="cpu")
    cli("fuse", phantoms / "ct_like.nii.gz", phantoms / "mr_like.nii.gz", "-o", tmp_path / "c.nii.gz", "--backend", "cpu")
    p, c = nib.load(tmp_path / "p.nii.gz"), nib.load(tmp_path / "c.nii.gz")
    assert np.array_equal(np.asanyarray(p.dataobj), np.asanyarray(c.dataobj))
    assert np.array_equal(p.affine, c.affine)


def test_the_gil_is_released_while_fusing():
    a, b = csfuse.imread(A), csfuse.imread(B)
    ticks, done = [0], threading.Event()

    def count():
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    t0 = time.perf_counter()
    csfuse.fuse(a, b, backend="cpu")
    seconds = time.perf_counter() - t0
    done.set()
    t.join()
    # A thread holding the GIL for the whole fusion would leave the counter near zero.
    assert seconds > 0.2 and ticks[0] > 20 * seconds, (ticks, seconds)
