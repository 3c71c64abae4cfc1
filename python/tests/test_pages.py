"""The pages csfuse writes for a browser (`fuse --html`, `evaluate`'s report.html), loaded from
disk in headless Chromium and driven by WebDriver: no console errors, the canvases show the
volumes' voxels under the page's window, the tables sort and show the CLI's numbers, and the
compare controls change what is shown.

Needs Debian's chromium and chromium-driver (.ci/run installs them) and selenium (python/test.sh).
With CSFUSE_SCREENSHOTS=DIR the screenshots docs/pages.md shows are written into DIR."""

import csv
import json
import os
import pathlib
import shutil
import time

import numpy as np
import pytest

import csfuse
from conftest import cli

LEVELS = 4095


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    # file:// pages may read their own images back into a canvas (the test compares pixels).
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
              "--window-size=1300,1000", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(driver), options=opts)
    yield d
    d.quit()


def open_page(d, path):
    """Load `path` and wait until its script says it is ready; fail on any console error."""
    from selenium.webdriver.support.ui import WebDriverWait

    d.get_log("browser")  # drop what earlier pages logged
    d.get(pathlib.Path(path).resolve().as_uri())
    WebDriverWait(d, 60).until(lambda d: d.execute_script("return document.body.dataset.ready"))
    assert d.execute_script("return document.body.dataset.ready") == "true"
    assert_no_console_errors(d)


def assert_no_console_errors(d):
    errors = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def screenshot(d, name, tmp_path):
    d.save_screenshot(str(tmp_path / name))
    out = os.environ.get("CSFUSE_SCREENSHOTS")
    if out:
        pathlib.Path(out).mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(pathlib.Path(out) / name))


def canvas_pixels(d, canvas_id):
    """A canvas's RGBA pixels, (H, W, 4) uint8, read back with getImageData."""
    w, h, flat = d.execute_script(
        "const c = document.getElementById(arguments[0]);"
        "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "return [c.width, c.height, Array.from(px)];",
        canvas_id,
    )
    return np.array(flat, dtype=np.uint8).reshape(h, w, 4)


def set_input(d, element_id, value, event="input"):
    d.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event(arguments[2], {bubbles: true}));",
        element_id, str(value), event,
    )


def grey(vol, meta_volume, window=None):
    """What the page shows for `vol` (real units): its 4096-level quantization under the window,
    as 0..255 grey levels."""
    lo_v, hi_v = meta_volume["min"], meta_volume["max"]
    q = np.clip(np.round((vol - lo_v) / (hi_v - lo_v) * LEVELS), 0, LEVELS)
    value = lo_v + (hi_v - lo_v) * q / LEVELS
    lo, hi = window or meta_volume["window"]
    return np.round(np.clip((value - lo) / (hi - lo), 0, 1) * 255)


@pytest.fixture(scope="module")
def volume_view(phantoms, tmp_path_factory):
    d = tmp_path_factory.mktemp("view")
    a, b = phantoms / "ct_like.nii.gz", phantoms / "mr_like.nii.gz"
    out, page = d / "fused.nii.gz", d / "view.html"
    cli("fuse", a, b, "-o", out, "--html", page, "--backend", "cpu")
    vols = [np.asarray(csfuse.load_volume(p)[0], dtype=np.float64) for p in (a, b, out)]
    return page, vols


def test_volume_view_shows_the_voxels_of_the_slice_the_slider_picks(browser, volume_view, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    d = browser
    page, vols = volume_view
    open_page(d, page)
    meta = json.loads(d.execute_script("return document.getElementById('meta').textContent"))
    nx, ny, nz = meta["dims"]
    assert [v.shape for v in vols] == [(nx, ny, nz)] * 3
    assert [m["label"] for m in meta["volumes"]] == ["A", "B", "fused"]
    for v, m in zip(vols, meta["volumes"]):
        assert m["min"] == pytest.approx(v.min(), rel=1e-6) and m["max"] == pytest.approx(v.max(), rel=1e-6)

    def axial(k, z):
        # Canvas rows run down the page; the view's y axis points up.
        return grey(vols[k][:, ::-1, z].T, meta["volumes"][k])

    for z in (3, nz - 1):
        set_input(d, "slice-axial", z)
        for k in range(3):
            got = canvas_pixels(d, f"view-{k}-axial")
            assert np.abs(got[..., 0].astype(int) - axial(k, z)).max() <= 1, (k, z)
            assert (got[..., 0] == got[..., 1]).all() and (got[..., 3] == 255).all()
    # Keyboard: the arrow keys step the slice of the view under the mouse.
    set_input(d, "slice-axial", 4)
    ActionChains(d).move_to_element(d.find_element("id", "view-1-axial")).perform()
    d.find_element("tag name", "body").send_keys(Keys.ARROW_UP, Keys.ARROW_UP)
    assert d.find_element("id", "slice-axial").get_attribute("value") == "6"
    assert np.abs(canvas_pixels(d, "view-1-axial")[..., 0] - axial(1, 6)).max() <= 1

    # Coronal and sagittal views of the fused volume follow their sliders.
    set_input(d, "slice-coronal", 20)
    want = grey(vols[2][:, 20, ::-1].T, meta["volumes"][2])
    assert np.abs(canvas_pixels(d, "view-2-coronal")[..., 0] - want).max() <= 1
    set_input(d, "slice-sagittal", 40)
    want = grey(vols[0][40, :, ::-1].T, meta["volumes"][0])
    assert np.abs(canvas_pixels(d, "view-0-sagittal")[..., 0] - want).max() <= 1

    # A click on an axial view moves the coronal and sagittal slices to the voxel clicked.
    el = d.find_element("id", "view-0-axial")
    size = el.size
    col, row = 10, 50
    ActionChains(d).move_to_element_with_offset(
        el, (col + 0.5) * size["width"] / nx - size["width"] / 2, (row + 0.5) * size["height"] / ny - size["height"] / 2
    ).click().perform()
    assert d.find_element("id", "slice-sagittal").get_attribute("value") == str(col)
    assert d.find_element("id", "slice-coronal").get_attribute("value") == str(ny - 1 - row)

    # Window/level of A.
    set_input(d, "win-lo-0", 0)
    set_input(d, "win-hi-0", 500)
    z = int(d.find_element("id", "slice-axial").get_attribute("value"))
    want = grey(vols[0][:, ::-1, z].T, meta["volumes"][0], (0, 500))
    assert np.abs(canvas_pixels(d, "view-0-axial")[..., 0] - want).max() <= 1
    screenshot(d, "volume_view.png", tmp_path)

    # Overlay: B in a hot colour map over the fused volume, half opaque.
    before = canvas_pixels(d, "view-2-axial")
    d.find_element("id", "overlay").click()
    set_input(d, "overlay-source", 1, "change")
    after = canvas_pixels(d, "view-2-axial")
    t = axial(1, z) / 255
    hot = np.stack([np.minimum(1, 3 * t), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)
    want = np.round(0.5 * axial(2, z)[..., None] + 0.5 * 255 * hot)
    # B's voxels at or below its window's low end leave the fused grey as it was.
    want = np.where((t > 0)[..., None], want, axial(2, z)[..., None])
    assert np.abs(after[..., :3].astype(int) - want).max() <= 1
    assert (t == 0).any() and (t > 0).any()
    assert (after[..., 0] != after[..., 2]).any() and not np.array_equal(before, after)
    set_input(d, "overlay-opacity", 0)
    assert np.abs(canvas_pixels(d, "view-2-axial")[..., 0] - axial(2, z)).max() <= 1
    set_input(d, "overlay-opacity", 60)
    d.execute_script("document.getElementById('view-1-axial').scrollIntoView()")
    screenshot(d, "volume_view_overlay.png", tmp_path)
    assert_no_console_errors(d)


def test_volume_view_fails_before_writing_on_bad_input(phantoms, tmp_path):
    page = tmp_path / "view.html"
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"\x1f\x8b not a gzip stream")
    for a in (tmp_path / "missing.nii.gz", bad):
        r = cli("fuse", a, phantoms / "mr_like.nii.gz", "-o", tmp_path / "f.nii.gz", "--html", page, check=False)
        assert r.returncode != 0 and str(a.name) in r.stderr, r.stderr
        assert not page.exists() and not (tmp_path / "f.nii.gz").exists()
    r = cli("fuse", phantoms / "ct_like.png", phantoms / "mr_like.png", "-o", tmp_path / "f.png", "--html", page, check=False)
    assert r.returncode != 0 and "evaluate" in r.stderr and not page.exists(), r.stderr
    r = cli("fuse", phantoms / "ct_like.nii.gz", phantoms / "mr_like.nii.gz", "-o", tmp_path / "f.nii.gz",
            "--html", tmp_path / "view.png", check=False)
    assert r.returncode != 0 and ".html" in r.stderr, r.stderr


@pytest.fixture(scope="module")
def report(phantoms, tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    for n in ("ct_like.png", "mr_like.png", "pet_like.png"):
        shutil.copy(phantoms / n, d / n)
    (d / "pairs.csv").write_text(
        "a,b,output\nct_like.png,mr_like.png,ct_mr_p1.png\nmr_like.png,pet_like.png,mr_pet_p2.png\n"
        "mr_like.png,ct_like.png,ct_mr_p3.png\n"
    )
    cli("evaluate", d / "pairs.csv", "--out-dir", d / "eval", "--backend", "cpu",
        "--metrics", "Q_ABF,Q_CB,Q_P,Q_Y,SSIM_sum")
    return d / "eval"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_report_tables_show_the_cli_numbers_and_sort(browser, report, tmp_path):
    d = browser
    open_page(d, report / "report.html")
    summary = {r["method"]: r for r in read_csv(report / "summary.csv")}
    metrics = ["Q_ABF", "Q_CB", "Q_P", "Q_Y", "SSIM_sum"]
    table = d.find_element("id", "summary-0")
    rows = table.find_elements("css selector", "tbody tr")
    assert [r.get_attribute("data-method") for r in rows] == list(summary)
    for r in rows:
        m = r.get_attribute("data-method")
        for k in metrics:
            cell = r.find_element("css selector", f"td[data-metric='{k}']")
            want = f"{float(summary[m][k + '_mean']):.4f} ± {float(summary[m][k + '_sd']):.4f}"
            assert cell.text == want, (m, k)
            best = max(round(float(s[k + "_mean"]) * 1e4) for s in summary.values())
            assert ("best" in cell.get_attribute("class").split()) == (round(float(summary[m][k + "_mean"]) * 1e4) == best)
    # Groups: ct_mr and mr_pet get their own tables.
    titles = [h.text for h in d.find_elements("css selector", "h3")]
    assert titles[:3] == ["All pairs (3 pairs)", "Group ct_mr (2 pairs)", "Group mr_pet (1 pair)"], titles

    def order():
        return [r.get_attribute("data-method") for r in table.find_elements("css selector", "tbody tr")]

    head = table.find_element("css selector", "th[data-metric='Q_CB']")
    head.click()
    by_q_cb = sorted(summary, key=lambda m: -float(summary[m]["Q_CB_mean"]))
    assert order() == by_q_cb
    head.click()
    assert order() == by_q_cb[::-1]

    # The pairs table: one metric at a time, the values of scores.csv.
    scores = read_csv(report / "scores.csv")
    set_input(d, "pair-metric", "Q_P", "change")
    for s in scores:
        cell = d.find_element("css selector", f"#pairs tr[data-pair='{s['pair']}'] td[data-method='{s['method']}']")
        assert cell.text == f"{float(s['Q_P']):.4f}"
    d.find_element("css selector", "#pairs th[data-method='max']").click()
    shown = [r.get_attribute("data-pair") for r in d.find_elements("css selector", "#pairs tbody tr")]
    q_max = {s["pair"]: float(s["Q_P"]) for s in scores if s["method"] == "max"}
    assert shown == sorted(q_max, key=lambda p: -q_max[p])
    screenshot(d, "report_tables.png", tmp_path)
    assert_no_console_errors(d)


def image_pixels(d, element_id):
    """An <img>'s pixels as the page decoded them (drawn into a canvas), (H, W, 3)."""
    w, h, flat = d.execute_script(
        "const i = document.getElementById(arguments[0]);"
        "const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;"
        "const x = c.getContext('2d'); x.drawImage(i, 0, 0);"
        "return [c.width, c.height, Array.from(x.getImageData(0, 0, c.width, c.height).data)];",
        element_id,
    )
    return np.array(flat, dtype=np.uint8).reshape(h, w, 4)[..., :3]


def test_report_pair_view_compares_any_two_pictures(browser, report, tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    open_page(d, report / "report.html")
    assert d.find_element("id", "pair-view").get_attribute("hidden") is not None
    d.find_element("css selector", "#pairs tr[data-pair='mr_pet_p2.png']").click()
    assert d.find_element("id", "pair-title").text == "mr_pet_p2.png"
    names = [o.text for o in d.find_elements("css selector", "#cmp-left option")]
    assert names[:2] == ["A", "B"] and "pyramid" in names and "max" in names
    assert "pyramid cartoon decision (white: A)" in names and "paper texture decision (white: A)" in names
    loaded = "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    WebDriverWait(d, 20).until(lambda d: d.execute_script(loaded))

    # The pictures are the CLI's files: the page's pyramid result equals what csfuse wrote.
    set_input(d, "cmp-left", names.index("pyramid"), "change")
    set_input(d, "cmp-right", names.index("B"), "change")
    WebDriverWait(d, 20).until(lambda d: d.execute_script(loaded))
    fused = csfuse.imread(report / "pyramid" / "mr_pet_p2.png")
    assert fused.ndim == 3
    assert np.array_equal(image_pixels(d, "cmp-top"), fused)
    pet = csfuse.imread(report.parent / "pet_like.png")
    assert np.array_equal(image_pixels(d, "cmp-bottom"), pet)

    # Swipe: the first picture is cut at the slider.
    set_input(d, "cmp-swipe", 30)
    assert "70%" in d.find_element("id", "cmp-top").value_of_css_property("clip-path")
    # Blink: the two take turns by themselves; flip steps by hand.
    compare = d.find_element("id", "compare")
    set_input(d, "cmp-mode", "blink", "change")
    assert compare.get_attribute("data-showing") == "left"
    WebDriverWait(d, 5).until(lambda d: compare.get_attribute("data-showing") == "right")
    assert d.find_element("id", "cmp-top").value_of_css_property("visibility") == "hidden"
    d.find_element("id", "cmp-flip").click()
    state = compare.get_attribute("data-showing")
    time.sleep(1.0)
    assert compare.get_attribute("data-showing") == state, "flip stops the blinking"
    d.find_element("id", "cmp-flip").click()
    assert compare.get_attribute("data-showing") != state
    screenshot(d, "report_pair.png", tmp_path)

    # The command and parameters that made the report.
    assert "evaluate" in d.find_element("id", "command").get_attribute("textContent")
    params = json.loads(d.find_element("id", "parameters").get_attribute("textContent"))
    for m in ("pyramid", "paper"):
        assert params[m]["fusion"]["fuse"]["mode"] == m
        side = json.loads((report / m / "mr_pet_p2.png.json").read_text())
        assert params[m] == side["parameters"], "the parameters the sidecars record"
    assert params["max"]["method"] == "max"
    assert_no_console_errors(d)


def test_batch_writes_a_view_for_each_volume_item_and_resumes(browser, phantoms, tmp_path):
    (tmp_path / "pairs.csv").write_text(
        f"a,b,output\n{phantoms / 'ct_like.nii.gz'},{phantoms / 'mr_like.nii.gz'},vol.nii.gz\n"
        f"{phantoms / 'ct_like.png'},{phantoms / 'mr_like.png'},img.png\n"
    )
    out = tmp_path / "out"
    cli("batch", tmp_path / "pairs.csv", "--out-dir", out, "--html", "--backend", "cpu")
    view = out / "vol.nii.gz.view.html"
    assert view.is_file() and not (out / "img.png.view.html").exists()
    side = json.loads((out / "vol.nii.gz.json").read_text())
    assert side["html"]["path"].endswith("vol.nii.gz.view.html") and "html" not in json.loads((out / "img.png.json").read_text())
    open_page(browser, view)
    assert [m["name"] for m in json.loads(browser.execute_script(
        "return document.getElementById('meta').textContent"))["volumes"]] == ["ct_like.nii.gz", "mr_like.nii.gz", "vol.nii.gz"]
    # A second run does nothing; a missing page makes the item run again.
    before = view.stat().st_mtime_ns
    cli("batch", tmp_path / "pairs.csv", "--out-dir", out, "--html", "--backend", "cpu")
    assert view.stat().st_mtime_ns == before
    view.unlink()
    cli("batch", tmp_path / "pairs.csv", "--out-dir", out, "--html", "--backend", "cpu")
    assert view.is_file()
    # A page csfuse did not write is not replaced without --force.
    view.write_text("someone else's page")
    r = cli("batch", tmp_path / "pairs.csv", "--out-dir", out, "--html", "--backend", "cpu", check=False)
    assert r.returncode != 0 and "--force" in r.stderr and "view.html" in r.stderr, r.stderr
    assert view.read_text() == "someone else's page"


def test_python_fuse_nifti_writes_the_same_view(phantoms, tmp_path):
    a, b = phantoms / "ct_like.nii.gz", phantoms / "mr_like.nii.gz"
    csfuse.fuse_nifti(a, b, tmp_path / "py.nii.gz", html=tmp_path / "py.html", backend="cpu")
    cli("fuse", a, b, "-o", tmp_path / "cli.nii.gz", "--html", tmp_path / "cli.html", "--backend", "cpu")
    # The same page but for the output's name, which it shows.
    py = (tmp_path / "py.html").read_text().replace("py.nii.gz", "OUT")
    assert py == (tmp_path / "cli.html").read_text().replace("cli.nii.gz", "OUT")
    with pytest.raises(ValueError, match="--html"):
        csfuse.fuse_files(phantoms / "ct_like.png", phantoms / "mr_like.png", tmp_path / "f.png", html=tmp_path / "v.html")


def test_report_lists_the_pairs_that_failed(browser, phantoms, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "pairs.csv").write_text(
        f"a,b,output\n{phantoms / 'ct_like.png'},{phantoms / 'mr_like.png'},ct_mr_1.png\n{bad},{phantoms / 'mr_like.png'},ct_mr_2.png\n"
    )
    r = cli("evaluate", tmp_path / "pairs.csv", "--out-dir", tmp_path / "eval", "--methods", "max,average",
            "--metrics", "Q_ABF", check=False)
    assert r.returncode != 0 and "broken.png" in r.stderr, r.stderr
    open_page(browser, tmp_path / "eval" / "report.html")
    failures = [li.text for li in browser.find_elements("css selector", "#failures li")]
    assert len(failures) == 1 and failures[0].startswith("line 3:") and "broken.png" in failures[0], failures
    assert [r.get_attribute("data-pair") for r in browser.find_elements("css selector", "#pairs tbody tr")] == ["ct_mr_1.png"]
