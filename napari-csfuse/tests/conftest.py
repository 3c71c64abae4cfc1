"""Fixtures: the csfuse command line (the plugin's results are compared with it) and its phantoms."""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli(*args):
    exe = pathlib.Path(os.environ.get("CSFUSE_BIN", ROOT / "target" / "release" / "csfuse"))
    if not exe.exists():
        raise RuntimeError(f"{exe} is missing: build it first (cargo build --release) or set CSFUSE_BIN")
    out = subprocess.run([str(exe), "-q", *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise AssertionError(f"csfuse {' '.join(map(str, args))}: {out.stderr}")
    return out


@pytest.fixture(scope="session")
def phantoms(tmp_path_factory):
    d = tmp_path_factory.mktemp("phantoms")
    cli("phantom", "--out-dir", d, "--size", "48", "--depth", "8")
    return d
