# %% [markdown]
# # Fusing CT + MR and MR + PET with csfuse, and comparing with simple rules
#
# A notebook in script form (the `# %%` cells open as a notebook in VS Code, Spyder or
# Jupytext). Run it from anywhere:
#
#     python python/examples/fuse_and_compare.py OUT_DIR
#
# It fuses the bundled CT-like / MR-like pair, scores csfuse against a pixel-wise average and
# maximum with the objective fusion metrics, fuses an MR / colour PET pair, and writes
# `montage.png` (one row per pair: sources, average, maximum, csfuse) into OUT_DIR.

# %%
import pathlib
import sys

import numpy as np

import csfuse

root = pathlib.Path(__file__).resolve().parents[2]
out_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "csfuse_example")
out_dir.mkdir(parents=True, exist_ok=True)
ct = csfuse.imread(root / "assets" / "ct_like.png")
mr = csfuse.imread(root / "assets" / "mr_like.png")
print("sources:", ct.shape, ct.dtype, "and", mr.shape, mr.dtype)

# %% Fuse: the GPU when one works, else the CPU; the report says which and how long.
fused, report = csfuse.fuse(ct, mr, report=True)
print(f"fused on {report['backend']} in {report['timings_ms']['fusion_total']:.0f} ms")

# %% Score against two rules that need no dictionaries.
average = ((ct.astype(np.float64) + mr) / 2).round().astype(np.uint8)
maximum = np.maximum(ct, mr)
names = ["Q_ABF", "Q_CB", "Q_Y", "SSIM_sum", "VIFF"]
print(f"{'method':<8}" + "".join(f"{n:>10}" for n in names))
for method, f in [("average", average), ("maximum", maximum), ("csfuse", fused)]:
    scores = csfuse.metrics(ct, mr, f)
    print(f"{method:<8}" + "".join(f"{scores[n]:>10.4f}" for n in names))

# %% A functional image in colour: PET-like uptake over the MR; its hue is kept.
rows = np.arange(256)[:, None]
cols = np.arange(256)[None, :]
uptake = np.exp(-((rows - 120) ** 2 + (cols - 150) ** 2) / (2 * 30.0**2))
pet = np.stack([uptake, uptake**2, 0.2 * uptake], axis=-1)
pet = (255 * pet / pet.max()).round().astype(np.uint8)
fused_pet = csfuse.fuse(mr, pet)
print("MR + PET:", fused_pet.shape, fused_pet.dtype)


# %% The montage: one row per pair.
def rgb(image):
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=-1)


row1 = [ct, mr, average, maximum, fused]
mr_rgb = rgb(mr).astype(np.float64)
row2 = [
    mr,
    pet,
    ((mr_rgb + pet) / 2).round().astype(np.uint8),
    np.maximum(rgb(mr), pet),
    fused_pet,
]
montage = np.concatenate(
    [np.concatenate([rgb(p) for p in row], axis=1) for row in (row1, row2)], axis=0
)
csfuse.imwrite(out_dir / "montage.png", montage, force=True)
print("wrote", out_dir / "montage.png", montage.shape)
