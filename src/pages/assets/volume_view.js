"use strict";
// csfuse volume view: three volumes (A, B, fused) on one grid, each shown in up to three slice
// views that follow one cursor. Voxels arrive as gzipped 16-bit levels (see volume_view.rs).
(async function () {
  const meta = JSON.parse(document.getElementById("meta").textContent);
  const [nx, ny, nz] = meta.dims;
  const vols = meta.volumes;
  const orients = nz > 1 ? ["axial", "coronal", "sagittal"] : ["axial"];

  async function inflate(id) {
    const text = document.getElementById(id).textContent.trim();
    const bin = atob(text);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    const buf = await new Response(stream).arrayBuffer();
    // The words are little-endian, as every platform a browser runs on is.
    return new Uint16Array(buf);
  }
  const voxels = await Promise.all(vols.map((_, k) => inflate("voxels-" + k)));
  for (const v of voxels) {
    if (v.length !== nx * ny * nz) throw new Error("volume data does not match its grid");
  }

  const state = {
    cursor: [nx >> 1, ny >> 1, nz >> 1],
    windows: vols.map((v) => v.window.slice()),
    overlay: false,
    overlaySource: 0,
    opacity: 0.5,
    focus: "axial",
  };
  const value = (k, q) => vols[k].min + ((vols[k].max - vols[k].min) * q) / meta.levels;

  // Grey level (0..255) of each quantized level under a volume's window.
  function lut(k) {
    const [lo, hi] = state.windows[k];
    const out = new Uint8ClampedArray(meta.levels + 1);
    for (let q = 0; q <= meta.levels; q++) {
      const v = value(k, q);
      const t = hi > lo ? (v - lo) / (hi - lo) : v >= lo ? 1 : 0;
      out[q] = Math.round(Math.min(1, Math.max(0, t)) * 255);
    }
    return out;
  }
  let luts = vols.map((_, k) => lut(k));

  // Canvas size and the voxel index of each canvas pixel, per orientation; rows run top-down,
  // so the second axis of a view is flipped to point up.
  const geometry = {
    axial: { w: nx, h: ny, mm: [meta.spacing[0], meta.spacing[1]], idx: (c, r, s) => c + nx * ((ny - 1 - r) + ny * s), slice: 2, cols: 0, rows: 1 },
    coronal: { w: nx, h: nz, mm: [meta.spacing[0], meta.spacing[2]], idx: (c, r, s) => c + nx * (s + ny * (nz - 1 - r)), slice: 1, cols: 0, rows: 2 },
    sagittal: { w: ny, h: nz, mm: [meta.spacing[1], meta.spacing[2]], idx: (c, r, s) => s + nx * (c + ny * (nz - 1 - r)), slice: 0, cols: 1, rows: 2 },
  };
  const extent = Math.max(nx * meta.spacing[0], ny * meta.spacing[1], nz > 1 ? nz * meta.spacing[2] : 0);
  const scale = 300 / extent;

  const app = document.getElementById("app");
  app.innerHTML = "";
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // Controls: a window per volume, the overlay.
  const controls = el("div", { class: "controls" });
  vols.forEach((v, k) => {
    const box = el("span");
    box.append(el("b", {}, v.label + " window "));
    for (const [j, name] of [[0, "lo"], [1, "hi"]]) {
      const input = el("input", { type: "number", step: "any", id: `win-${name}-${k}`, size: 8, "aria-label": `${v.label} window ${name}` });
      input.value = +state.windows[k][j].toPrecision(6);
      input.addEventListener("input", () => {
        const x = parseFloat(input.value);
        if (!Number.isFinite(x)) return;
        state.windows[k][j] = x;
        luts[k] = lut(k);
        render();
      });
      box.append(input, " ");
    }
    controls.append(box);
  });
  const overlay = el("label", {}, "");
  const overlayBox = el("input", { type: "checkbox", id: "overlay" });
  overlay.append(overlayBox, " overlay ");
  const sourceSel = el("select", { id: "overlay-source", "aria-label": "overlay source" });
  vols.slice(0, 2).forEach((v, k) => sourceSel.append(el("option", { value: k }, v.label)));
  const opacity = el("input", { type: "range", id: "overlay-opacity", min: 0, max: 100, value: 50, "aria-label": "overlay opacity" });
  overlay.append(sourceSel, " in colour over the fused volume, opacity ", opacity);
  controls.append(overlay);
  overlayBox.addEventListener("change", () => { state.overlay = overlayBox.checked; render(); });
  sourceSel.addEventListener("change", () => { state.overlaySource = +sourceSel.value; render(); });
  opacity.addEventListener("input", () => { state.opacity = opacity.value / 100; render(); });
  app.append(controls);

  // The views: one row per volume, one column per orientation, a slider above each column.
  const grid = el("div", { class: "grid" });
  grid.style.gridTemplateColumns = "auto " + orients.map((o) => `${Math.round(geometry[o].w * geometry[o].mm[0] * scale)}px`).join(" ");
  grid.append(el("span"));
  const sliders = {};
  for (const o of orients) {
    const g = geometry[o];
    const n = meta.dims[g.slice];
    const cell = el("label", {}, `${o} `);
    const s = el("input", { type: "range", id: `slice-${o}`, min: 0, max: n - 1, value: state.cursor[g.slice], "aria-label": `${o} slice` });
    const shown = el("span", { id: `slice-${o}-value` });
    s.addEventListener("input", () => { state.cursor[g.slice] = +s.value; state.focus = o; render(); });
    cell.append(s, " ", shown);
    sliders[o] = { input: s, shown };
    grid.append(cell);
  }
  const views = [];
  vols.forEach((v, k) => {
    grid.append(el("span", { class: "row-label" }, `${v.label}: ${v.name}`));
    for (const o of orients) {
      const g = geometry[o];
      const box = el("div", { class: "view" });
      box.style.width = `${Math.round(g.w * g.mm[0] * scale)}px`;
      box.style.height = `${Math.round(g.h * g.mm[1] * scale)}px`;
      const canvas = el("canvas", { id: `view-${k}-${o}`, width: g.w, height: g.h });
      const cv = el("div", { class: "cross-v" });
      const ch = el("div", { class: "cross-h" });
      const a = meta.axes;
      const edges = [[a[g.cols][0], "left:2px;top:45%"], [a[g.cols][1], "right:2px;top:45%"], [a[g.rows][1], "top:1px;left:48%"], [a[g.rows][0], "bottom:1px;left:48%"]];
      box.append(canvas, cv, ch);
      for (const [t, css] of edges) {
        const e = el("span", { class: "edge", style: css }, t);
        box.append(e);
      }
      box.addEventListener("mouseenter", () => { state.focus = o; });
      canvas.addEventListener("click", (ev) => {
        const r = canvas.getBoundingClientRect();
        const c = Math.min(g.w - 1, Math.floor(((ev.clientX - r.left) / r.width) * g.w));
        const row = Math.min(g.h - 1, Math.floor(((ev.clientY - r.top) / r.height) * g.h));
        state.cursor[g.cols] = c;
        state.cursor[g.rows] = (o === "axial" ? ny : nz) - 1 - row;
        state.focus = o;
        render();
      });
      views.push({ k, o, canvas, ctx: canvas.getContext("2d"), cv, ch });
      grid.append(box);
    }
  });
  app.append(grid);
  const readout = el("div", { class: "readout", id: "readout" });
  app.append(readout);

  document.addEventListener("keydown", (ev) => {
    const step = { ArrowUp: 1, ArrowRight: 1, PageUp: 10, ArrowDown: -1, ArrowLeft: -1, PageDown: -10 }[ev.key];
    if (step === undefined || ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    const g = geometry[state.focus];
    const n = meta.dims[g.slice];
    state.cursor[g.slice] = Math.max(0, Math.min(n - 1, state.cursor[g.slice] + step));
    ev.preventDefault();
    render();
  });

  function draw(view) {
    const g = geometry[view.o];
    const s = state.cursor[g.slice];
    const img = view.ctx.createImageData(g.w, g.h);
    const px = img.data;
    const grey = luts[view.k];
    const src = voxels[view.k];
    const blend = state.overlay && view.k === 2;
    const other = voxels[state.overlaySource];
    const hot = luts[state.overlaySource];
    const alpha = state.opacity;
    for (let r = 0; r < g.h; r++) {
      for (let c = 0; c < g.w; c++) {
        const i = g.idx(c, r, s);
        const o = 4 * (r * g.w + c);
        const v = grey[src[i]];
        const t = blend ? hot[other[i]] / 255 : 0;
        if (t > 0) {
          // A "hot" colour map (red, yellow, white) over the grey; voxels at or below the source's
          // window stay grey, so its background does not darken the fused volume.
          const colour = [Math.min(1, 3 * t), Math.min(1, Math.max(0, 3 * t - 1)), Math.max(0, 3 * t - 2)];
          for (let ch = 0; ch < 3; ch++) px[o + ch] = Math.round((1 - alpha) * v + alpha * 255 * colour[ch]);
        } else {
          px[o] = px[o + 1] = px[o + 2] = v;
        }
        px[o + 3] = 255;
      }
    }
    view.ctx.putImageData(img, 0, 0);
    const across = state.cursor[g.cols];
    const down = (view.o === "axial" ? ny : nz) - 1 - state.cursor[g.rows];
    view.cv.style.left = `${((across + 0.5) / g.w) * 100}%`;
    view.ch.style.top = `${((down + 0.5) / g.h) * 100}%`;
  }

  function render() {
    for (const o of orients) {
      const g = geometry[o];
      sliders[o].input.value = state.cursor[g.slice];
      sliders[o].shown.textContent = `${state.cursor[g.slice]} / ${meta.dims[g.slice] - 1}`;
    }
    views.forEach(draw);
    const [x, y, z] = state.cursor;
    const i = x + nx * (y + ny * z);
    readout.textContent = `voxel (${x}, ${y}, ${z}): ` + vols.map((v, k) => `${v.label} ${+value(k, voxels[k][i]).toPrecision(5)}`).join(", ");
  }
  render();
  document.body.dataset.ready = "true";
})().catch((e) => {
  const app = document.getElementById("app");
  app.textContent = "This view could not be shown: " + e.message;
  document.body.dataset.ready = "failed";
  throw e;
});
