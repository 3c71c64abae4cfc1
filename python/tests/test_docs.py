"""The Python examples of the README and docs/python.md run as written, and so does the example
script, in a folder prepared as the README's quick start prepares it."""

import pathlib
import re
import runpy
import shutil
import sys

import pytest

from conftest import ROOT, cli

PAGES = [ROOT / "README.md", ROOT / "docs" / "python.md"]


def python_blocks(page):
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "assets", d / "assets")
    cli("phantom", "--out-dir", "ex", "--size", "128", "--sixteen-bit", "--depth", "16", "--dicom",
        "--other-grids", cwd=d)
    return d


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_blocks_run(page, workdir, monkeypatch):
    blocks = python_blocks(page)
    assert blocks, f"{page} has no python block"
    monkeypatch.chdir(workdir)
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name} block {i + 1}", "exec"), {})
        except Exception as e:
            raise AssertionError(f"{page.name}, python block {i + 1} failed: {e!r}\n{code}") from e


def test_the_example_script_writes_its_montage(tmp_path, monkeypatch, capsys):
    script = ROOT / "python" / "examples" / "fuse_and_compare.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(tmp_path / "out")])
    runpy.run_path(str(script), run_name="__main__")
    import csfuse

    montage = csfuse.imread(tmp_path / "out" / "montage.png")
    assert montage.shape == (512, 1280, 3)
    assert "csfuse" in capsys.readouterr().out
