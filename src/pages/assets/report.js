"use strict";
// csfuse evaluate report: tables from the embedded data, pictures from the files beside the page.
(function () {
  const data = JSON.parse(document.getElementById("data").textContent);
  const app = document.getElementById("app");
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  // A table head: the first column's name, then one column per key, each tagged `attr`.
  function header(first, attr, keys) {
    const head = el("tr");
    head.append(el("th", {}, first));
    keys.forEach((k) => head.append(el("th", { [attr]: k }, k)));
    const thead = el("thead");
    thead.append(head);
    return thead;
  }
  const fmt = (v) => (v === null || v === undefined ? "n/a" : v.toFixed(4));

  // Sort a table's body rows by the numbers in column `col` (data-value), descending on the first
  // click and ascending on the next; rows without a value go last.
  function sortable(table) {
    const heads = table.querySelectorAll("th");
    heads.forEach((th, col) => {
      if (col === 0) return;
      th.addEventListener("click", () => {
        const desc = !th.classList.contains("sorted-desc");
        heads.forEach((h) => h.classList.remove("sorted-desc", "sorted-asc"));
        th.classList.add(desc ? "sorted-desc" : "sorted-asc");
        const body = table.tBodies[0];
        const rows = Array.from(body.rows);
        const key = (r) => {
          const v = parseFloat(r.cells[col].dataset.value);
          return Number.isFinite(v) ? v : null;
        };
        rows.sort((p, q) => {
          const a = key(p), b = key(q);
          if (a === null || b === null) return (a === null) - (b === null);
          return desc ? b - a : a - b;
        });
        rows.forEach((r) => body.append(r));
      });
    });
  }

  if (data.failures.length) {
    app.append(el("h2", {}, "Failed pairs"));
    const list = el("ul", { id: "failures", class: "failures" });
    for (const f of data.failures) list.append(el("li", {}, `line ${f.line}: ${f.error}`));
    app.append(list, el("p", { class: "note" }, "The tables below hold the other pairs."));
  }

  // The summary tables: mean ± sd per method and metric, the best mean (at 4 decimals) marked.
  app.append(el("h2", {}, "Summary"));
  data.tables.forEach((t, ti) => {
    app.append(el("h3", {}, `${t.title} (${t.pairs} pair${t.pairs === 1 ? "" : "s"})`));
    const table = el("table", { id: `summary-${ti}`, class: "summary" });
    table.append(header("method", "data-metric", data.metrics));
    const body = el("tbody");
    const shown = (c) => (c ? Math.round(c[0] * 1e4) : null);
    const best = data.metrics.map((_, j) => Math.max(...t.cells.map((r) => shown(r[j])).filter((v) => v !== null)));
    data.methods.forEach((m, i) => {
      const tr = el("tr", { "data-method": m });
      tr.append(el("td", {}, m));
      data.metrics.forEach((k, j) => {
        const c = t.cells[i][j];
        const td = el("td", { "data-metric": k }, c ? `${fmt(c[0])} ± ${fmt(c[1])}` : "n/a");
        if (c) td.dataset.value = c[0];
        if (c && shown(c) === best[j]) td.classList.add("best");
        tr.append(td);
      });
      body.append(tr);
    });
    table.append(body);
    sortable(table);
    app.append(table);
  });

  // One row per pair: the chosen metric for every method; a click opens the pair's pictures.
  app.append(el("h2", {}, "Pairs"));
  const pick = el("select", { id: "pair-metric", "aria-label": "metric of the pairs table" });
  data.metrics.forEach((m) => pick.append(el("option", { value: m }, m)));
  const pickLabel = el("p", { class: "controls" });
  pickLabel.append("Metric: ", pick);
  app.append(pickLabel);
  const pairsTable = el("table", { id: "pairs" });
  app.append(pairsTable);
  const score = {};
  for (const s of data.scores) score[`${s.pair}\u0000${s.method}`] = s.scores;
  function fillPairs() {
    const k = pick.value;
    pairsTable.innerHTML = "";
    pairsTable.append(header("pair", "data-method", data.methods));
    const body = el("tbody");
    for (const p of data.pairs) {
      const tr = el("tr", { class: "pair-row", "data-pair": p.pair });
      tr.append(el("td", {}, p.pair));
      const values = data.methods.map((m) => (score[`${p.pair}\u0000${m}`] || {})[k]);
      const top = Math.max(...values.filter((v) => v !== null && v !== undefined).map((v) => Math.round(v * 1e4)));
      values.forEach((v, i) => {
        const td = el("td", { "data-method": data.methods[i] }, fmt(v));
        if (v !== null && v !== undefined) {
          td.dataset.value = v;
          if (Math.round(v * 1e4) === top) td.classList.add("best");
        }
        tr.append(td);
      });
      tr.addEventListener("click", () => openPair(p));
      body.append(tr);
    }
    pairsTable.append(body);
    sortable(pairsTable);
  }
  pick.addEventListener("change", fillPairs);
  fillPairs();

  // A pair's pictures at full resolution, and a swipe or blink comparison of any two.
  const view = el("section", { id: "pair-view", hidden: "" });
  app.append(view);
  let blinkTimer = null;
  function openPair(p) {
    if (blinkTimer) clearInterval(blinkTimer);
    blinkTimer = null;
    view.hidden = false;
    view.innerHTML = "";
    view.dataset.pair = p.pair;
    view.append(el("h2", { id: "pair-title" }, p.pair));
    const pictures = [["A", p.a], ["B", p.b]];
    for (const [m, f] of p.results) pictures.push([m, f]);
    for (const [m, c, t] of p.decisions) pictures.push([`${m} cartoon decision (white: A)`, c], [`${m} texture decision (white: A)`, t]);

    const controls = el("div", { class: "controls" });
    const left = el("select", { id: "cmp-left", "aria-label": "first picture" });
    const right = el("select", { id: "cmp-right", "aria-label": "second picture" });
    pictures.forEach(([name, f], i) => {
      left.append(el("option", { value: i }, name));
      right.append(el("option", { value: i }, name));
    });
    left.value = 2 < pictures.length ? 2 : 0;
    right.value = 0;
    const mode = el("select", { id: "cmp-mode", "aria-label": "comparison" });
    mode.append(el("option", { value: "swipe" }, "swipe"), el("option", { value: "blink" }, "blink"));
    const swipe = el("input", { type: "range", id: "cmp-swipe", min: 0, max: 100, value: 50, "aria-label": "swipe position" });
    const flip = el("button", { id: "cmp-flip", type: "button" }, "flip");
    const zoom = el("select", { id: "cmp-zoom", "aria-label": "zoom" });
    [1, 2, 3, 4].forEach((z) => zoom.append(el("option", { value: z }, `${z}×`)));
    zoom.value = "";
    controls.append("Compare ", left, " with ", right, " by ", mode, " ", swipe, " ", flip, " zoom ", zoom);
    view.append(controls);

    const compare = el("div", { class: "compare", id: "compare" });
    const bottom = el("img", { id: "cmp-bottom", class: "full", alt: "second picture" });
    const topImg = el("img", { id: "cmp-top", class: "full top", alt: "first picture" });
    compare.append(bottom, topImg);
    view.append(compare);
    // Whole pixels, enlarged: small images open at up to 4x, so that about 512 px are shown.
    function applyZoom() {
      if (!topImg.naturalWidth) return;
      if (!zoom.value) zoom.value = Math.min(4, Math.max(1, Math.floor(512 / topImg.naturalWidth)));
      for (const i of [topImg, bottom]) if (i.naturalWidth) i.style.width = `${i.naturalWidth * zoom.value}px`;
    }
    topImg.addEventListener("load", applyZoom);
    bottom.addEventListener("load", applyZoom);
    zoom.addEventListener("change", applyZoom);
    function show(which) {
      // In blink mode one picture shows at a time; `data-showing` says which.
      compare.dataset.showing = which;
      topImg.style.visibility = which === "left" ? "visible" : "hidden";
    }
    function update() {
      topImg.src = pictures[+left.value][1];
      bottom.src = pictures[+right.value][1];
      if (blinkTimer) clearInterval(blinkTimer);
      blinkTimer = null;
      if (mode.value === "swipe") {
        swipe.disabled = false;
        compare.dataset.showing = "swipe";
        topImg.style.visibility = "visible";
        topImg.style.clipPath = `inset(0 ${100 - swipe.value}% 0 0)`;
      } else {
        swipe.disabled = true;
        topImg.style.clipPath = "none";
        show("left");
        blinkTimer = setInterval(() => show(compare.dataset.showing === "left" ? "right" : "left"), 700);
      }
    }
    [left, right, mode].forEach((c) => c.addEventListener("change", update));
    swipe.addEventListener("input", update);
    flip.addEventListener("click", () => {
      if (mode.value !== "blink") {
        mode.value = "blink";
        update();
      }
      if (blinkTimer) clearInterval(blinkTimer);
      blinkTimer = null;
      show(compare.dataset.showing === "left" ? "right" : "left");
    });
    update();

    const panels = el("div", { class: "panels" });
    for (const [name, f] of pictures) {
      const fig = el("figure");
      fig.append(el("img", { class: "full", src: f, alt: name }), el("figcaption", {}, name));
      panels.append(fig);
    }
    view.append(el("h3", {}, "All pictures"), panels);
    view.scrollIntoView();
  }

  app.append(el("h2", {}, "Box plots"));
  const plots = el("div", { class: "plots" });
  for (const [k, f] of data.plots) plots.append(el("img", { src: f, alt: `${k} per method`, title: k }));
  app.append(plots);

  app.append(el("h2", {}, "How this report was made"));
  app.append(el("p", {}, `csfuse ${data.version}, by:`));
  app.append(el("pre", { id: "command" }, data.command));
  const params = el("details");
  params.append(el("summary", {}, "Parameters of each method"), el("pre", { id: "parameters" }, JSON.stringify(data.parameters, null, 2)));
  app.append(params);
  document.body.dataset.ready = "true";
})();
