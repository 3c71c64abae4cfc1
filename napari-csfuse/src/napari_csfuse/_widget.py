"""The dock widget: two image layers in, the fused layer out. The fusion runs in a worker thread
(napari's thread_worker); the widget polls csfuse.progress() for its bar and Cancel calls
csfuse.cancel(), which stops the job at its next solver iteration."""

import threading

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, ProgressBar, PushButton, SpinBox, create_widget

import csfuse


class Cancelled(Exception):
    """The fusion was cancelled (csfuse raises KeyboardInterrupt, which napari's workers do not
    catch)."""


def fuse_in_thread(a, b, kwargs, poll=0.1):
    """A generator for thread_worker: runs csfuse.fuse on a thread of its own, yields
    csfuse.progress() while it runs, and returns the (fused, report) pair (or raises its error)."""
    out = {}

    def job():
        try:
            out["result"] = csfuse.fuse(a, b, report=True, **kwargs)
        except BaseException as e:  # handed to the worker's caller below
            out["error"] = e

    t = threading.Thread(target=job, name="csfuse fusion", daemon=True)
    t.start()
    while t.is_alive():
        t.join(poll)
        yield csfuse.progress()
    if isinstance(out.get("error"), KeyboardInterrupt):
        raise Cancelled(str(out["error"]))
    if "error" in out:
        raise out["error"]
    return out["result"]


def fusion_inputs(la, lb, axis):
    """The arrays and fuse() arguments for layers `la` and `lb`, or ValueError saying what to fix."""
    a, b = np.asarray(la.data), np.asarray(lb.data)
    if la is lb:
        raise ValueError("choose two different layers for A and B")
    for layer, x in ((la, a), (lb, b)):
        if x.ndim not in (2, 3) or (layer.rgb and x.ndim != 3):
            raise ValueError(
                f"layer '{layer.name}' has shape {x.shape}: csfuse fuses 2-D images, RGB images "
                "(H, W, 3) and 3-D volumes"
            )
    if la.rgb and lb.rgb:
        raise ValueError("both layers are RGB: csfuse fuses a grey image with at most one colour one")
    grey_a = a if not la.rgb else a[..., 0]
    grey_b = b if not lb.rgb else b[..., 0]
    if grey_a.shape != grey_b.shape:
        raise ValueError(
            f"layers '{la.name}' {a.shape} and '{lb.name}' {b.shape} are not on one grid: "
            "resample one onto the other first (csfuse.resample, or csfuse fuse on the files)"
        )
    volume = a.ndim == 3 and not la.rgb and not lb.rgb
    if not volume:
        return a, b, {}
    # napari's volumes are (z, y, x); csfuse's are nibabel's (x, y, z), each slice with x along
    # its rows, as the command line reads a NIfTI file. Reversing the axes gives the same slices.
    return a.transpose(2, 1, 0), b.transpose(2, 1, 0), {"axis": 2 - axis}


class FuseWidget(Container):
    """Fuse two image layers with csfuse: choose A and B (co-registered, one grid), the mode,
    the backend and the options, and press Fuse. The result is added as a new layer with A's
    scale, translate, rotation and shear; its report is in the layer's metadata["csfuse"]."""

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._a = create_widget(annotation="napari.layers.Image", label="A (e.g. CT, MR)")
        self._b = create_widget(annotation="napari.layers.Image", label="B (e.g. MR, PET)")
        self._mode = ComboBox(choices=["pyramid", "paper"], value="pyramid", label="mode")
        self._backend = ComboBox(choices=["auto", "gpu", "cpu"], value="auto", label="backend")
        self._axis = SpinBox(value=0, min=0, max=2, label="slice axis (3-D)")
        self._vote = SpinBox(value=5, min=0, max=20, label="vote radius (pyramid)")
        self._run = PushButton(text="Fuse")
        self._stop = PushButton(text="Cancel", enabled=False)
        self._bar = ProgressBar(value=0, min=0, max=1, label="progress")
        self._status = Label(value="")
        self.extend([self._a, self._b, self._mode, self._backend, self._axis, self._vote,
                     self._run, self._stop, self._bar, self._status])
        self._run.changed.connect(self.start)
        self._stop.changed.connect(self.cancel)
        self._mode.changed.connect(lambda v: setattr(self._vote, "enabled", v == "pyramid"))
        layers = napari_viewer.layers.events
        layers.inserted.connect(self.reset_choices)
        layers.removed.connect(self.reset_choices)
        self.reset_choices()
        if len(self._a.choices) > 1:
            self._a.value, self._b.value = self._a.choices[-2], self._a.choices[-1]
        self.worker = None

    @property
    def status(self):
        return self._status.value

    def start(self, *_):
        """Start fusing the chosen layers (in a worker thread)."""
        from napari.qt.threading import thread_worker

        if self.worker is not None:
            return
        la, lb = self._a.value, self._b.value
        if la is None or lb is None:
            self._status.value = "Add two image layers first."
            return
        try:
            a, b, kwargs = fusion_inputs(la, lb, self._axis.value)
        except ValueError as e:
            self._status.value = f"Cannot fuse: {e}"
            return
        kwargs.update(mode=self._mode.value, backend=self._backend.value)
        if self._mode.value == "pyramid":
            kwargs["vote_radius"] = self._vote.value
        self._bar.min, self._bar.max, self._bar.value = 0, 0, 0  # busy until slices are counted
        self._status.value = f"Fusing {la.name} + {lb.name} ..."
        self._run.enabled, self._stop.enabled = False, True
        # Errors are shown in the widget (_on_error), not raised again in the event loop.
        worker = thread_worker(fuse_in_thread, start_thread=False, ignore_errors=True)(a, b, kwargs)
        worker.yielded.connect(self._on_progress)
        worker.returned.connect(lambda r: self._on_done(r, la, lb))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        worker.start()

    def cancel(self, *_):
        """Stop the running fusion at its next solver iteration; nothing is added."""
        if self.worker is not None:
            self._status.value = "Cancelling ..."
            csfuse.cancel()

    def _on_progress(self, p):
        done, total = p
        if total:
            self._bar.max = int(total)
            self._bar.value = int(min(done, total))

    def _on_done(self, result, la, lb):
        fused, report = result
        if report.get("axis") is not None:
            fused = fused.transpose(2, 1, 0)
        self._viewer.add_image(
            fused,
            name=f"fused ({la.name} + {lb.name})",
            rgb=fused.ndim == 3 and fused.shape[-1] == 3 and (la.rgb or lb.rgb),
            scale=la.scale,
            translate=la.translate,
            rotate=la.rotate,
            shear=la.shear,
            metadata={"csfuse": report},
        )
        seconds = ((report.get("timings_ms") or {}).get("fusion_total") or 0) / 1e3
        self._status.value = f"Fused {la.name} + {lb.name}" + (f" in {seconds:.1f} s" if seconds else "")

    def _on_error(self, e):
        if isinstance(e, Cancelled):
            self._status.value = "Cancelled: nothing was added."
        else:
            self._status.value = f"csfuse failed: {e}"

    def _on_finished(self):
        self.worker = None
        self._run.enabled, self._stop.enabled = True, False
        if self._bar.max == 0:
            self._bar.max = 1
