"""The plugin in a real napari viewer (napari's make_napari_viewer fixture, Qt offscreen): the
manifest loads, the widget fuses 2-D, RGB and 3-D layers in a worker thread to the command
line's pixels, keeps the sources' scale and translate, reports progress, cancels, and says what
is wrong with unusable layers; the reader opens what csfuse writes with its report."""

import json
import os

import numpy as np
import pytest

import csfuse
from conftest import cli
from napari_csfuse import FuseWidget, get_reader, read


def fuse_with(widget, qtbot, a, b, **options):
    widget._a.value, widget._b.value = a, b
    for name, value in options.items():
        getattr(widget, "_" + name).value = value
    widget.start()
    assert widget.worker is not None, widget.status
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)


def test_manifest_declares_the_widget_and_the_reader():
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("napari-csfuse")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Fuse (csfuse)"]
    assert manifest.contributions.readers[0].accepts_directories


def test_widget_fuses_2d_layers_to_the_cli_pixels(make_napari_viewer, qtbot, phantoms, tmp_path):
    viewer = make_napari_viewer()
    ct = viewer.add_image(csfuse.imread(phantoms / "ct_like.png"), name="ct", scale=(0.5, 0.5), translate=(3, 4))
    mr = viewer.add_image(csfuse.imread(phantoms / "mr_like.png"), name="mr", scale=(0.5, 0.5), translate=(3, 4))
    widget = FuseWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Fuse (csfuse)")
    fuse_with(widget, qtbot, ct, mr, backend="cpu")
    fused = viewer.layers[-1]
    assert fused.name == "fused (ct + mr)", widget.status
    cli("fuse", phantoms / "ct_like.png", phantoms / "mr_like.png", "-o", tmp_path / "f.png", "--backend", "cpu")
    assert np.array_equal(fused.data, csfuse.imread(tmp_path / "f.png"))
    assert tuple(fused.scale) == (0.5, 0.5) and tuple(fused.translate) == (3, 4)
    assert fused.metadata["csfuse"]["params"]["mode"] == "pyramid"
    assert widget.status.startswith("Fused ct + mr")
    # With CSFUSE_SCREENSHOTS=DIR, the window as docs/pages.md shows it.
    if os.environ.get("CSFUSE_SCREENSHOTS"):
        ct.visible = mr.visible = False
        viewer.window._qt_window.resize(1100, 700)
        viewer.window.screenshot(os.path.join(os.environ["CSFUSE_SCREENSHOTS"], "napari_widget.png"), canvas_only=False)


def test_widget_keeps_a_colour_pet(make_napari_viewer, qtbot, phantoms, tmp_path):
    viewer = make_napari_viewer()
    mr = viewer.add_image(csfuse.imread(phantoms / "mr_like.png"), name="mr")
    pet = viewer.add_image(csfuse.imread(phantoms / "pet_like.png"), name="pet", rgb=True)
    widget = FuseWidget(viewer)
    fuse_with(widget, qtbot, mr, pet, backend="cpu", mode="paper")
    fused = viewer.layers[-1]
    assert fused.rgb and fused.data.shape == pet.data.shape
    cli("fuse", phantoms / "mr_like.png", phantoms / "pet_like.png", "-o", tmp_path / "f.png",
        "--backend", "cpu", "--mode", "paper")
    assert np.array_equal(fused.data, csfuse.imread(tmp_path / "f.png"))


def test_widget_fuses_volumes_with_progress_and_the_sources_geometry(make_napari_viewer, qtbot, phantoms, tmp_path):
    viewer = make_napari_viewer()
    for name in ("ct_like.nii.gz", "mr_like.nii.gz"):
        viewer.open(str(phantoms / name), plugin="napari-csfuse")
    ct, mr = viewer.layers
    nx, ny, nz = csfuse.load_volume(phantoms / "ct_like.nii.gz")[0].shape
    assert ct.data.shape == (nz, ny, nx)
    widget = FuseWidget(viewer)
    fuse_with(widget, qtbot, ct, mr, backend="cpu")
    fused = viewer.layers[-1]
    assert fused.data.shape == ct.data.shape, widget.status
    assert np.allclose(fused.scale, ct.scale) and np.allclose(fused.translate, ct.translate)
    assert tuple(ct.scale) != (1, 1, 1), "the reader gives the voxel size"
    # The bar counted the slices to the end.
    assert (widget._bar.value, widget._bar.max) == (nz, nz)
    # The command line on the same voxels (the layers are float32, as the reader gives them)
    # writes the same volume.
    import nibabel as nib

    for layer, name in ((ct, "a.nii.gz"), (mr, "b.nii.gz")):
        data, affine = csfuse.load_volume(layer.metadata["path"])
        nib.save(nib.Nifti1Image(data, affine), tmp_path / name)
        assert np.array_equal(np.transpose(data, (2, 1, 0)), layer.data)
    cli("fuse", tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", "-o", tmp_path / "f.nii.gz", "--backend", "cpu")
    want = np.transpose(csfuse.load_volume(tmp_path / "f.nii.gz")[0], (2, 1, 0))
    assert np.array_equal(fused.data, want)


def test_cancel_stops_the_fusion_and_adds_nothing(make_napari_viewer, qtbot, phantoms):
    viewer = make_napari_viewer()
    rng = np.random.default_rng(1)
    a = viewer.add_image(rng.random((40, 96, 96), dtype=np.float32), name="a")
    b = viewer.add_image(rng.random((40, 96, 96), dtype=np.float32), name="b")
    widget = FuseWidget(viewer)
    widget._a.value, widget._b.value, widget._backend.value = a, b, "cpu"
    widget.start()
    qtbot.waitUntil(lambda: widget._bar.value >= 1, timeout=60_000)
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)
    assert widget.status == "Cancelled: nothing was added."
    assert len(viewer.layers) == 2
    # The next fusion runs normally.
    small = viewer.add_image(np.asarray(a.data[:2]), name="small_a")
    small_b = viewer.add_image(np.asarray(b.data[:2]), name="small_b")
    fuse_with(widget, qtbot, small, small_b)
    assert viewer.layers[-1].name == "fused (small_a + small_b)", widget.status


def test_unusable_layers_are_refused_with_the_reason(make_napari_viewer, qtbot, phantoms):
    viewer = make_napari_viewer()
    a = viewer.add_image(np.zeros((32, 32), np.float32), name="a")
    b = viewer.add_image(np.zeros((30, 32), np.float32), name="b")
    widget = FuseWidget(viewer)
    widget._a.value, widget._b.value = a, b
    widget.start()
    assert widget.worker is None and "not on one grid" in widget.status
    widget._b.value = a
    widget.start()
    assert "two different layers" in widget.status
    # What only csfuse can tell (a NaN voxel) comes back from the worker as its message.
    bad = np.zeros((32, 32), np.float32)
    bad[3, 4] = np.nan
    c = viewer.add_image(bad, name="c")
    fuse_with(widget, qtbot, a, c)
    assert widget.status.startswith("csfuse failed:") and "NaN" in widget.status, widget.status
    assert len(viewer.layers) == 3


def test_reader_opens_a_report_and_its_volume(phantoms, tmp_path):
    out, report = tmp_path / "fused.nii.gz", tmp_path / "fused.json"
    cli("fuse", phantoms / "ct_like.nii.gz", phantoms / "mr_like.nii.gz", "-o", out, "--report", report, "--backend", "cpu")
    reader = get_reader(str(report))
    assert reader is read
    [(data, kwargs, kind)] = reader(str(report))
    assert kind == "image" and kwargs["metadata"]["csfuse"] == json.loads(report.read_text())
    assert np.array_equal(data, np.transpose(csfuse.load_volume(out)[0], (2, 1, 0)))
    # The phantom's x axis runs to the patient's right-to-left (negative in RAS): kept.
    assert kwargs["scale"] == (2.0, 1.0, -1.0)
    # JSON that is not a csfuse report, and plain images without a sidecar, are left to others.
    other = tmp_path / "other.json"
    other.write_text('{"a": 1}')
    assert get_reader(str(other)) is None
    assert get_reader(str(phantoms / "ct_like.png")) is None


def test_reader_gives_an_evaluate_result_its_sidecar(phantoms, tmp_path):
    (tmp_path / "pairs.csv").write_text(f"a,b,output\n{phantoms / 'ct_like.png'},{phantoms / 'mr_like.png'},ct_mr_1.png\n")
    cli("evaluate", tmp_path / "pairs.csv", "--out-dir", tmp_path / "eval", "--methods", "max", "--metrics", "Q_ABF")
    result = tmp_path / "eval" / "max" / "ct_mr_1.png"
    [(data, kwargs, _)] = get_reader(str(result))(str(result))
    assert np.array_equal(data, csfuse.imread(result))
    assert kwargs["metadata"]["csfuse"]["scores"]["Q_ABF"] == pytest.approx(
        json.loads((tmp_path / "eval" / "max" / "ct_mr_1.png.json").read_text())["scores"]["Q_ABF"]
    )
