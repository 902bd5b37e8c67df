"use strict";
// qbsd map: every song a point on one canvas. Data: the JSON of #qbsd-data (mappage.py).
// Text from the data goes into the page only through textContent, never as HTML.
(function () {
  const data = JSON.parse(document.getElementById("qbsd-data").textContent);
  const n = data.count, tags = data.tags, T = tags.length;
  const bytes = (b64) => { const s = atob(b64), a = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) a[i] = s.charCodeAt(i); return a; };
  const scores = bytes(data.scores);
  function coords(b64) {  // uint16 pairs, little-endian, 0..65535 -> 0..1
    if (b64 === null) return null;
    const raw = bytes(b64), view = new DataView(raw.buffer), out = new Float32Array(2 * n);
    for (let i = 0; i < 2 * n; i++) out[i] = view.getUint16(2 * i, true) / 65535;
    return out;
  }
  const views = { mood: coords(data.mood), vector: coords(data.vector) };
  // many songs: squares written straight into the canvas' pixels (drawPixels)
  const PIXEL_LIMIT = 20000;
  const canvas = document.getElementById("map"), ctx = canvas.getContext("2d", { willReadFrequently: n > PIXEL_LIMIT });
  const tip = document.getElementById("tip"), status = document.getElementById("status");
  const viewSelect = document.getElementById("view"), colourSelect = document.getElementById("colour");
  const sizeSelect = document.getElementById("size");
  const search = document.getElementById("search");
  const QUAD_RGB = [[242, 193, 46], [232, 69, 60], [74, 123, 208], [63, 179, 127]];
  const RAMP_RGB = [];  // 16 steps from dark blue through teal to yellow
  for (let k = 0; k < 16; k++) { const t = k / 15;
    RAMP_RGB.push([Math.round(40 + 215 * t * t), Math.round(40 + 180 * t), Math.round(140 + 40 * t - 150 * t * t)]); }
  const css = ([r, g, b]) => `rgb(${r},${g},${b})`;
  const QUAD_COLOURS = QUAD_RGB.map(css), RAMP = RAMP_RGB.map(css), BACKGROUND = [17, 17, 17];
  // a colour as one little-endian RGBA pixel, `alpha` of it over the background
  const pixel = (rgb, alpha) => { const [r, g, b] = rgb.map((v, k) => Math.round(v * alpha + BACKGROUND[k] * (1 - alpha)));
    return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0; };
  const state = { view: views.mood ? "mood" : "vector", colour: "quadrant", zoom: 1, panX: 0, panY: 0,
    highlight: null, selected: [], shared: [], drawn: 0, drawMs: 0, hover: -1 };
  let colourIndex = new Uint8Array(n), palette = QUAD_COLOURS, paletteRGB = QUAD_RGB;
  // songs in colour order (recolour), so that each colour is set once a frame
  let order = new Int32Array(n), starts = [0, n];
  const screenX = new Float32Array(n), screenY = new Float32Array(n);
  const radius = n > 20000 ? 1.5 : n > 2000 ? 2.5 : 3.5;
  const MARGIN = 40;

  if (!views.mood) { viewSelect.querySelector('option[value="mood"]').disabled = true; viewSelect.value = "vector"; }
  if (!data.quadrants) { colourSelect.querySelector('option[value="quadrant"]').remove(); state.colour = "0"; }
  tags.forEach((tag, t) => { const o = document.createElement("option"); o.value = String(t); o.textContent = tag;
    colourSelect.appendChild(o); sizeSelect.appendChild(o.cloneNode(true)); });
  // point size by a tag's score: half the radius at 0 to twice it at 1 (one size above PIXEL_LIMIT)
  let sizeTag = -1;
  function radiusOf(i) { return sizeTag < 0 ? radius : radius * (0.5 + 1.5 * scores[i * T + sizeTag] / 255); }
  colourSelect.value = state.colour;

  function score(i, t) { return scores[i * T + t] / 255; }
  function recolour() {
    if (state.colour === "quadrant") {
      palette = QUAD_COLOURS; paletteRGB = QUAD_RGB; const q = data.quadrants;
      for (let i = 0; i < n; i++) { let best = 0;
        for (let k = 1; k < 4; k++) if (scores[i * T + q[k]] > scores[i * T + q[best]]) best = k;
        colourIndex[i] = best; }
    } else {
      palette = RAMP; paletteRGB = RAMP_RGB; const t = Number(state.colour);
      for (let i = 0; i < n; i++) colourIndex[i] = Math.min(15, scores[i * T + t] >> 4);
    }
    const counts = new Int32Array(palette.length + 1);
    for (let i = 0; i < n; i++) counts[colourIndex[i] + 1]++;
    for (let k = 1; k <= palette.length; k++) counts[k] += counts[k - 1];
    starts = Array.from(counts); const next = counts.slice(0, palette.length);
    for (let i = 0; i < n; i++) order[next[colourIndex[i]]++] = i;
  }
  function legend() {  // what the colours mean, built as DOM text
    const box = document.getElementById("legend"); box.replaceChildren();
    const entries = state.colour === "quadrant" ? data.moods.map((m, k) => [QUAD_COLOURS[k], `Q${k + 1} ${m}`])
      : [[RAMP[0], `${tags[Number(state.colour)]} 0`], [RAMP[7], "0.5"], [RAMP[15], "1"]];
    for (const [colour, text] of entries) { const row = document.createElement("div"), swatch = document.createElement("span");
      swatch.className = "swatch"; swatch.style.background = colour; row.append(swatch, document.createTextNode(text));
      box.appendChild(row); }
  }
  function size() { const dpr = window.devicePixelRatio || 1, r = canvas.getBoundingClientRect();
    canvas.width = Math.max(1, Math.round(r.width * dpr)); canvas.height = Math.max(1, Math.round(r.height * dpr));
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0); }
  function place() {  // data (0..1, y up) -> canvas CSS pixels
    const pts = views[state.view], w = canvas.clientWidth, h = canvas.clientHeight;
    const s = Math.min(w, h) - 2 * MARGIN, ox = (w - s) / 2, oy = (h - s) / 2;
    for (let i = 0; i < n; i++) {
      screenX[i] = (ox + pts[2 * i] * s - w / 2) * state.zoom + w / 2 + state.panX;
      screenY[i] = (oy + (1 - pts[2 * i + 1]) * s - h / 2) * state.zoom + h / 2 + state.panY;
    }
    return { s, ox, oy, w, h };
  }
  function axes(g) {
    ctx.strokeStyle = "#444"; ctx.fillStyle = "#888"; ctx.font = "13px system-ui, sans-serif";
    if (state.view === "mood") {
      const r = data.moodRange, zx = (0 - r[0]) / (r[1] - r[0] || 1), zy = (0 - r[2]) / (r[3] - r[2] || 1);
      const cx = (g.ox + zx * g.s - g.w / 2) * state.zoom + g.w / 2 + state.panX;
      const cy = (g.oy + (1 - zy) * g.s - g.h / 2) * state.zoom + g.h / 2 + state.panY;
      ctx.beginPath(); ctx.moveTo(0, cy); ctx.lineTo(g.w, cy); ctx.moveTo(cx, 0); ctx.lineTo(cx, g.h); ctx.stroke();
      const m = data.moods;
      ctx.textAlign = "right"; ctx.fillText("Q1 " + m[0], g.w - 8, 18); ctx.fillText("Q4 " + m[3], g.w - 8, g.h - 8);
      ctx.textAlign = "left"; ctx.fillText("Q2 " + m[1], 8, 18); ctx.fillText("Q3 " + m[2], 8, g.h - 8);
      ctx.fillText("valence →", g.w / 2 + 6, g.h - 24); ctx.save(); ctx.translate(16, g.h / 2);
      ctx.rotate(-Math.PI / 2); ctx.fillText("arousal →", 0, 0); ctx.restore();
    } else {
      ctx.textAlign = "left"; ctx.fillText(`whole vector (${data.method})`, 8, 18);
    }
  }
  // fillRect per song is the slow part of a frame at 100,000 songs: beyond PIXEL_LIMIT the
  // squares are written into the pixels; later songs cover earlier ones, no blending
  function drawPixels(alpha) {
    const dpr = window.devicePixelRatio || 1, W = canvas.width, H = canvas.height;
    const image = ctx.getImageData(0, 0, W, H), buffer = new Uint32Array(image.data.buffer);
    const colours = paletteRGB.map((rgb) => pixel(rgb, alpha)), half = Math.max(1, Math.round(radius * dpr));
    let drawn = 0;
    for (let i = 0; i < n; i++) {
      const x = Math.round(screenX[i] * dpr), y = Math.round(screenY[i] * dpr), c = colours[colourIndex[i]];
      drawn++;
      if (x < -half || y < -half || x >= W + half || y >= H + half) continue;
      const x0 = Math.max(0, x - half + 1), x1 = Math.min(W - 1, x + half - 1);
      for (let yy = Math.max(0, y - half + 1); yy <= Math.min(H - 1, y + half - 1); yy++) {
        const row = yy * W; for (let xx = x0; xx <= x1; xx++) buffer[row + xx] = c; }
    }
    ctx.putImageData(image, 0, 0);
    return drawn;
  }
  function draw() {
    const began = performance.now(), g = place(); ctx.clearRect(0, 0, g.w, g.h); axes(g);
    const hl = state.highlight, d = radius * 2; let drawn = 0;
    const alpha = hl ? 0.18 : 0.85;
    if (n > PIXEL_LIMIT) drawn = drawPixels(alpha);
    else {
      ctx.globalAlpha = alpha;
      for (let k = 0; k < palette.length; k++) { ctx.fillStyle = palette[k];
        for (let j = starts[k]; j < starts[k + 1]; j++) { const i = order[j], r = radiusOf(i);
          ctx.fillRect(screenX[i] - r, screenY[i] - r, 2 * r, 2 * r); drawn++; } }
      ctx.globalAlpha = 1;
    }
    if (hl) { ctx.strokeStyle = "#fff"; ctx.lineWidth = 1;
      for (const i of hl) { ctx.fillStyle = palette[colourIndex[i]];
        ctx.fillRect(screenX[i] - radius - 1, screenY[i] - radius - 1, d + 2, d + 2);
        ctx.strokeRect(screenX[i] - radius - 2, screenY[i] - radius - 2, d + 4, d + 4); } }
    if (state.selected.length) { ctx.strokeStyle = "#0ff";
      for (const i of state.selected) ctx.strokeRect(screenX[i] - radius - 1, screenY[i] - radius - 1, d + 2, d + 2); }
    if (box) { ctx.strokeStyle = "#0ff"; ctx.setLineDash([4, 3]);
      ctx.strokeRect(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0); ctx.setLineDash([]); }
    state.drawn = drawn; state.drawMs = performance.now() - began;
  }
  let pending = false;
  function redraw() { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; draw(); }); } }

  function topTags(i, k) {
    const order = []; for (let t = 0; t < T; t++) order.push(t);
    order.sort((a, b) => scores[i * T + b] - scores[i * T + a] || a - b);
    return order.slice(0, k).map((t) => `${tags[t]} ${score(i, t).toFixed(2)}`);
  }
  function nameOf(i) { return data.artist[i] ? `${data.artist[i]} – ${data.title[i]}` : data.title[i]; }
  function nearest(x, y, limit) {
    let best = -1, bestD = limit * limit;
    for (let i = 0; i < n; i++) { const dx = screenX[i] - x, dy = screenY[i] - y, dd = dx * dx + dy * dy;
      if (dd <= bestD) { bestD = dd; best = i; } }
    return best;
  }
  function showTip(i, x, y) {
    state.hover = i;
    if (i < 0) { tip.hidden = true; return; }
    tip.replaceChildren();
    const title = document.createElement("div"); title.className = "title"; title.textContent = nameOf(i);
    const album = document.createElement("div"); album.textContent = data.album[i] || "(no album)";
    const top = document.createElement("div"); top.textContent = topTags(i, 5).join("\n");
    tip.append(title, album, top); tip.hidden = false;
    tip.style.left = `${x + 14}px`; tip.style.top = `${y + 56}px`;
  }

  // search: each word names the tags whose name (or the part after the colon) contains it;
  // a song's match is the mean over words of its best such tag; the top 10% (score > 0) light up
  function applySearch() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) { state.highlight = null; setStatus(); redraw(); return; }
    const groups = words.map((w) => tags.map((t, k) => [t.toLowerCase(), k])
      .filter(([t]) => t === w || t.split(":").pop() === w).map(([, k]) => k))
      .map((g, k) => g.length ? g : tags.map((t, j) => [t.toLowerCase(), j]).filter(([t]) => t.includes(words[k])).map(([, j]) => j));
    const used = groups.filter((g) => g.length);
    if (!used.length) { state.highlight = []; status.textContent = "no tag matches"; redraw(); return; }
    const match = new Float32Array(n);
    for (let i = 0; i < n; i++) { let sum = 0;
      for (const g of used) { let best = 0; for (const t of g) best = Math.max(best, scores[i * T + t]); sum += best; }
      match[i] = sum / used.length / 255; }
    const sorted = Array.from(match).sort((a, b) => b - a), keep = Math.max(1, Math.ceil(n / 10));
    const threshold = Math.max(sorted[keep - 1], 1e-6);
    const hl = []; for (let i = 0; i < n; i++) if (match[i] >= threshold) hl.push(i);
    state.highlight = hl;
    status.textContent = `${hl.length} songs match ${used.map((g) => g.map((t) => tags[t]).join("|")).join(" + ")}`;
    redraw();
  }
  function setStatus() { status.textContent = `${n.toLocaleString("en")} songs`; }

  // selection
  const selBox = document.getElementById("selection"), selList = document.getElementById("sellist");
  function m3u(list) {
    const lines = ["#EXTM3U"];
    for (const i of list) {
      lines.push(`#EXTINF:${data.length[i]},${nameOf(i).replace("–", "-")}`);
      lines.push(Object.prototype.hasOwnProperty.call(data.location, String(i)) ? data.location[String(i)] : data.path[i]);
    }
    return lines.join("\n") + "\n";
  }
  // what a selection shares: the tags whose mean score in it stands highest above the
  // library's, in the library's standard deviations (the lift, as `qbsd cluster` names clusters)
  let library = null;
  function libraryStats() {
    if (library) return library;
    const mean = new Float64Array(T), square = new Float64Array(T);
    for (let i = 0; i < n; i++) for (let t = 0; t < T; t++) { const v = scores[i * T + t] / 255; mean[t] += v; square[t] += v * v; }
    const std = new Float64Array(T);
    for (let t = 0; t < T; t++) { mean[t] /= n; std[t] = Math.sqrt(Math.max(0, square[t] / n - mean[t] * mean[t])); }
    library = { mean, std }; return library;
  }
  function shared(list, k) {
    if (!list.length) return [];
    const { mean, std } = libraryStats(), sum = new Float64Array(T);
    for (const i of list) for (let t = 0; t < T; t++) sum[t] += scores[i * T + t] / 255;
    const lift = []; for (let t = 0; t < T; t++) lift.push([t, std[t] > 1e-9 ? (sum[t] / list.length - mean[t]) / std[t] : 0]);
    lift.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    return lift.slice(0, k).map(([t, l]) => [tags[t], l]);
  }
  function select(x0, y0, x1, y1) {
    const [a, b] = [Math.min(x0, x1), Math.max(x0, x1)], [c, d] = [Math.min(y0, y1), Math.max(y0, y1)];
    const chosen = []; for (let i = 0; i < n; i++)
      if (screenX[i] >= a && screenX[i] <= b && screenY[i] >= c && screenY[i] <= d) chosen.push(i);
    state.selected = chosen; selList.replaceChildren();
    document.getElementById("selcount").textContent = `${chosen.length} songs selected`;
    state.shared = shared(chosen, 5);
    document.getElementById("selshares").textContent = state.shared.length
      ? "they share: " + state.shared.map(([t, l]) => `${t} ${l >= 0 ? "+" : ""}${l.toFixed(1)}σ`).join(", ") : "";
    for (const i of chosen.slice(0, 500)) { const li = document.createElement("li");
      li.textContent = nameOf(i); li.title = data.path[i]; selList.appendChild(li); }
    selBox.hidden = chosen.length === 0; redraw();
    return chosen;
  }
  document.getElementById("download").addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([m3u(state.selected)], { type: "audio/x-mpegurl" }));
    const a = document.createElement("a"); a.href = url; a.download = "qbsd-selection.m3u";
    document.body.appendChild(a); a.click(); a.remove(); setTimeout(() => URL.revokeObjectURL(url), 1000);
  });

  // mouse: drag pans, shift-drag selects, wheel zooms, hover shows a song
  let drag = null, box = null;
  const local = (e) => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  canvas.addEventListener("mousedown", (e) => { const [x, y] = local(e);
    if (e.shiftKey) box = { x0: x, y0: y, x1: x, y1: y }; else drag = { x, y, panX: state.panX, panY: state.panY }; });
  window.addEventListener("mousemove", (e) => { const [x, y] = local(e);
    if (box) { box.x1 = x; box.y1 = y; redraw(); return; }
    if (drag) { state.panX = drag.panX + x - drag.x; state.panY = drag.panY + y - drag.y; redraw(); return; }
    if (e.target === canvas) showTip(nearest(x, y, Math.max(6, radius + 3)), x, y); else showTip(-1, 0, 0); });
  window.addEventListener("mouseup", () => { if (box) { const b = box; box = null; select(b.x0, b.y0, b.x1, b.y1); }
    drag = null; });
  canvas.addEventListener("wheel", (e) => { e.preventDefault(); const [x, y] = local(e), w = canvas.clientWidth,
    h = canvas.clientHeight, f = Math.exp(-e.deltaY / 500), zoom = Math.min(200, Math.max(0.5, state.zoom * f));
    const k = zoom / state.zoom;  // keep the point under the cursor in place
    state.panX = x - w / 2 - (x - w / 2 - state.panX) * k; state.panY = y - h / 2 - (y - h / 2 - state.panY) * k;
    state.zoom = zoom; redraw(); }, { passive: false });
  viewSelect.addEventListener("change", () => { state.view = viewSelect.value; state.zoom = 1; state.panX = 0;
    state.panY = 0; redraw(); });
  colourSelect.addEventListener("change", () => { state.colour = colourSelect.value; recolour(); legend(); redraw(); });
  sizeSelect.addEventListener("change", () => { sizeTag = sizeSelect.value === "" ? -1 : Number(sizeSelect.value); redraw(); });
  search.addEventListener("input", applySearch);
  window.addEventListener("resize", () => { size(); redraw(); });

  // for tests and scripting: what the page shows, in numbers
  window.qbsdMap = {
    count: () => state.drawn,
    songs: () => n,
    view: () => state.view,
    point: (i) => { const r = canvas.getBoundingClientRect(); return { x: r.left + screenX[i], y: r.top + screenY[i] }; },
    colour: (i) => palette[colourIndex[i]],
    size: (i) => (n > PIXEL_LIMIT ? radius : radiusOf(i)),
    title: (i) => nameOf(i),
    path: (i) => data.path[i],
    hovered: () => state.hover,
    tip: () => (tip.hidden ? "" : tip.textContent),
    highlighted: () => (state.highlight ? state.highlight.slice() : null),
    selected: () => state.selected.slice(),
    m3u: () => m3u(state.selected),
    shared: () => state.shared,
    redraw: () => { draw(); return state.drawMs; },
    firstPaint: null,
  };
  size(); recolour(); legend(); setStatus(); draw();
  window.qbsdMap.firstPaint = performance.now();
})();
