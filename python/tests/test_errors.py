"""Every class of bad input raises the exception a Python user expects, with csfuse's message;
device faults raise GpuError with the command line's words; Ctrl-C stops a running fusion."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import csfuse
from conftest import ROOT, cli_path

A = ROOT / "assets" / "ct_like.png"


@pytest.fixture(scope="module")
def pair():
    a = csfuse.imread(A)[:64, :64]
    return a, a[::-1].copy()


def bad_calls(a, b):
    nan = a.astype(np.float32)
    nan[3, 5] = np.nan
    vol = np.zeros((16, 16, 4), np.float32)
    vol_nan = vol.copy()
    vol_nan[1, 2, 3] = np.inf
    return [
        (lambda: csfuse.fuse(a.tolist(), b), ValueError, "expected a NumPy array"),
        (lambda: csfuse.fuse(a.astype(complex), b), ValueError, "dtype complex128"),
        (lambda: csfuse.fuse(a > 9, b), ValueError, "dtype bool"),
        (lambda: csfuse.fuse(a.ravel(), b), ValueError, "an image is \\(H, W\\)"),
        (lambda: csfuse.fuse(np.zeros((64, 64, 5)), b), ValueError, "pass axis="),
        (lambda: csfuse.fuse(nan, b), ValueError, "non-finite sample .* x=5, y=3"),
        (lambda: csfuse.fuse(a, b[:60]), ValueError, "differ in size"),
        (lambda: csfuse.fuse(a[:6, :6], b[:6, :6]), ValueError, "filters are 8x8"),
        (lambda: csfuse.fuse(a, b, backend="cuda"), ValueError, 'backend="cuda"'),
        (lambda: csfuse.fuse(a, b, mode="best"), ValueError, 'mode="best": use pyramid, paper'),
        (lambda: csfuse.fuse(a, b, precision="f16"), ValueError, "precision"),
        (lambda: csfuse.fuse(a, b, intensity_range="p99-1"), ValueError, "not an intensity range"),
        (lambda: csfuse.fuse(a, b, out_dtype="int8"), ValueError, 'out_dtype="int8"'),
        (lambda: csfuse.fuse(a, b, cartoon_dict=np.ones((8, 8))), ValueError, "shape \\(h, w, M\\)"),
        (lambda: csfuse.fuse(a, b, memory_budget=1000), MemoryError, "over --memory-budget"),
        (lambda: csfuse.fuse(vol, vol, axis=3), ValueError, "axis must be 0, 1 or 2"),
        (lambda: csfuse.fuse(vol_nan, vol, axis=2), ValueError, "non-finite voxel .* at \\(1, 2, 3\\)"),
        (lambda: csfuse.fuse(vol, vol[:, :, :3], axis=2), ValueError, "differ in shape"),
        (lambda: csfuse.fuse(vol, vol, axis=2, out_dtype="uint8"), ValueError, "out_dtype applies to images"),
        (lambda: csfuse.fuse(a, a, axis=2), ValueError, "a volume is a 3-D array"),
        (lambda: csfuse.sparse_code(a, A, 0), ValueError, "lmbda must be a positive number"),
        (lambda: csfuse.sparse_code(a, A, 0.1, relax=2.5), ValueError, "relax"),
        (lambda: csfuse.learn([a], "edges"), ValueError, 'kind="edges"'),
        (lambda: csfuse.learn([], "cartoon"), ValueError, "at least one training image"),
        (lambda: csfuse.learn([a], "cartoon", tile=128), ValueError, "smaller than one 128x128"),
        (lambda: csfuse.imread(ROOT / "no such file.png"), FileNotFoundError, "no such file.png"),
        (lambda: csfuse.load_volume(ROOT / "README.md"), ValueError, "README.md"),
    ]


def test_bad_input_raises_with_the_reason(pair):
    for call, kind, message in bad_calls(*pair):
        with pytest.raises(kind, match=message):
            call()


def test_file_jobs_refuse_to_overwrite_and_name_missing_files(tmp_path):
    out = tmp_path / "f.png"
    out.write_bytes(b"keep me")
    with pytest.raises(OSError, match="exists"):
        csfuse.fuse_files(A, A, out, backend="cpu")
    assert out.read_bytes() == b"keep me"
    with pytest.raises(FileNotFoundError, match="missing.png"):
        csfuse.fuse_files(A, tmp_path / "missing.png", tmp_path / "g.png", backend="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]


NO_GPU = {"VK_DRIVER_FILES": "/nonexistent", "VK_ICD_FILENAMES": "/nonexistent", "WGPU_BACKEND": "vulkan"}


def test_a_missing_gpu_raises_gpu_error_with_the_command_lines_message(tmp_path):
    env = {**os.environ, **NO_GPU}
    script = textwrap.dedent(
        f"""
        import csfuse
        a = csfuse.imread({str(A)!r})
        try:
            csfuse.fuse(a, a, backend="gpu")
        except csfuse.GpuError as e:
            assert isinstance(e, RuntimeError)
            print(e)
        """
    )
    py = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert py.returncode == 0, py.stderr
    out = subprocess.run(
        [str(cli_path()), "fuse", str(A), str(A), "-o", str(tmp_path / "f.png"), "--backend", "gpu"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    cli_message = out.stderr.strip().splitlines()[-1].removeprefix("csfuse: error: ")
    assert py.stdout.strip() == cli_message and cli_message.startswith("GPU:")


def test_ctrl_c_stops_a_running_fusion():
    script = textwrap.dedent(
        """
        import os, signal, threading, time
        import numpy as np
        import csfuse
        # A child of a shell's background job starts with SIGINT ignored; Python then installs
        # no KeyboardInterrupt handler. Restore it, as an interactive session has it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        rng = np.random.default_rng(0)
        a = rng.integers(0, 255, (384, 384)).astype(np.uint8)
        b = rng.integers(0, 255, (384, 384)).astype(np.uint8)
        sent = []
        def interrupt():
            time.sleep(1.5)
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGINT)
        threading.Thread(target=interrupt, daemon=True).start()
        try:
            csfuse.fuse(a, b, backend="cpu", precision="f64")
            print("finished")
        except KeyboardInterrupt:
            print("interrupted after", time.perf_counter() - sent[0])
        # The next job runs (the stop request is not left behind).
        small = a[:32, :32]
        print(csfuse.fuse(small, small, backend="cpu").shape)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("interrupted after"), out.stdout
    assert float(lines[0].split()[-1]) < 3.0, out.stdout
    assert lines[1] == "(32, 32)"
