#!/usr/bin/env bash
# The GPU figures of docs/gpu.md in one call, for a machine with an NVIDIA GPU, no Rust toolchain
# and no network. It takes a release binary built elsewhere (CSFUSE_BIN, default
# target/release/csfuse) and, where the machine has no Vulkan loader, the loader's Debian packages
# in .gl/ (docs/gpu.md#measuring-a-gpu says how to fetch them). Everything it prints also goes
# to OUT (the first argument, else $OUT, else gpu-check/): gpu-check.log, the adapter list,
# bench.json (per-iteration rows for solves of 1, 8 and 64 signals at 256x256 and 512x512, a warm
# 256x256 fusion in both modes with stage times, counters and its difference from the CPU engine),
# validate-MODE.json (`fuse --validate` reports) and volume.json (a 256x256x128 volume in both
# modes). It stops each step at a time limit so that the whole run stays well inside 6 minutes.
# GPU_CHECK_SIZES, GPU_CHECK_BATCHES, GPU_CHECK_PAIR (the fused pair's side) and GPU_CHECK_VOLUME
# shrink the run, for a smoke test on a software adapter: GPU_CHECK_SIZES=64 GPU_CHECK_BATCHES=1,2
# GPU_CHECK_PAIR=48 GPU_CHECK_VOLUME=48x48x3.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-${OUT:-gpu-check}}"
BIN="${CSFUSE_BIN:-target/release/csfuse}"
sizes="${GPU_CHECK_SIZES:-256,512}" batches="${GPU_CHECK_BATCHES:-1,8,64}"
volume="${GPU_CHECK_VOLUME:-256x256x128}" pair="${GPU_CHECK_PAIR:-256}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
t0=$(date +%s)
step() { echo; echo "== $1 (at $(( $(date +%s) - t0 )) s)"; }
failed=0
run() { # run LIMIT_S COMMAND...: a step that may fail without stopping the others
  timeout "$1" "${@:2}" || { echo "!! exit $? from: ${*:2}"; failed=1; }
}

step "machine"
date -u +%Y-%m-%dT%H:%M:%SZ
if [ ! -x "$BIN" ]; then echo "no csfuse binary at $BIN (set CSFUSE_BIN)"; exit 2; fi
"$BIN" --version
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  | tee "$OUT/nvidia-smi.txt" || echo "nvidia-smi not found"
echo "CPU cores: $(nproc)"

step "Vulkan loader and driver"
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  if ls .gl/*.deb >/dev/null 2>&1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    echo "unpacked the loader packages carried in .gl/"
  else
    echo "no libvulkan.so.1 here and no .gl/*.deb carried: wgpu will find no Vulkan adapter"
  fi
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ] \
   && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* >/dev/null 2>&1; then
  export VK_DRIVER_FILES="$icd"
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  echo "VK_DRIVER_FILES=$VK_DRIVER_FILES"
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
run 60 "$BIN" devices
run 60 "$BIN" devices --json > "$OUT/devices.json"

step "per-iteration rows, warm fusions in both modes, GPU against CPU"
tmp=$(mktemp -d)
run 30 "$BIN" -q phantom --out-dir "$tmp" --size "$pair"
run 150 "$BIN" bench --gpu --sizes "$sizes" --threads-list "$(nproc)" --batches "$batches" \
  --iters 20 --pair "$tmp/ct_like.png" "$tmp/mr_like.png" --json "$OUT/bench.json"

step "fuse --validate in both modes"
for mode in pyramid paper; do
  run 60 "$BIN" fuse "$tmp/ct_like.png" "$tmp/mr_like.png" -o "$tmp/fused_$mode.png" \
    --mode "$mode" --backend gpu --validate --report "$OUT/validate-$mode.json" --force
done

step "a $volume volume in both modes, GPU engine"
run 180 "$BIN" bench --volume "$volume" --gpu --gpu-only --json "$OUT/volume.json"

step "done"
echo "results in $OUT; $(( $(date +%s) - t0 )) s in all"
exit $failed
