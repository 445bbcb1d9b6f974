"""The linked image viewer of the web app: one self-contained HTML page (inline script and style, images as
data URIs or media URLs) shown with ``st.iframe``; it draws the difference maps.

A panel is either a ``uint8`` display image (a PNG), or a difference map that the page computes in the browser
from two images' values that the reading viewer has already fetched (:class:`Difference`): the same URLs, read from
the browser's cache, so that a map costs no bytes from the server and a new colour scale only a new page.

Zoom (mouse wheel, double-click, Fit, 1:1 pixels), pan (drag) and the wipe divider (dragged on the image)
run in the browser, without a round trip to the server, and every panel shares one view: the same region
of the patient in every panel, whatever each panel's own pixel size (the low-resolution input is stretched
onto the output's grid). Nothing is fetched from anywhere: the page works offline.

The page publishes its state as ``window.medsrViewer.state()`` (view, mode, divider, and the region each
panel shows) so that a browser test can check the panels stay linked.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image

TOOLBAR_PX = 44
"""Height of the viewer's toolbar (CSS pixels)."""

LEGEND_PX = 46
"""Height reserved under the panels for colour bars, when any panel has one."""


@dataclass(frozen=True)
class Legend:
    """A colour bar under a panel: CSS gradient stops (``"black 0%"``, ...), tick labels spread evenly along
    it, and a caption."""

    stops: tuple[str, ...]
    ticks: tuple[str, ...]
    caption: str


@dataclass(frozen=True)
class Difference:
    """A difference map computed in the browser: ``a`` and ``b`` are how two same-size images' values were sent
    (the dicts :func:`medsr.app.stack_viewer.show` returns: URL, dtype, row deltas, size, components); each pixel is
    ``d = mean over components of (a - b) x per`` (``per``: 1 / the signed intensity range, so ``d`` is in
    fractions of the range, as the working pixels are), then ``|d|`` on :data:`medsr.app.diffs.HEAT_PALETTE`
    indices (``signed`` False) or ``d`` on the signed palette's, full scale ``full``, and ``border`` pixels masked:
    :func:`medsr.app.diffs.error_indices` and :func:`~medsr.app.diffs.signed_indices` in JavaScript."""

    a: dict
    b: dict
    per: float
    full: float
    signed: bool
    border: int = 0


@dataclass(frozen=True)
class Panel:
    """One image of the viewer: its caption, a ``uint8`` display image (``(H, W)`` or ``(H, W, 3)``), and an
    optional colour bar. With a ``palette`` (``(256, 3)`` uint8) the image holds colour indices, which is a
    third of the size of RGB: colour maps travel to the browser that way. With ``difference`` (and a palette)
    the browser computes the indices and ``image`` may be None."""

    name: str
    image: np.ndarray | None
    legend: Legend | None = None
    palette: np.ndarray | None = None
    difference: Difference | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        if self.image is None:
            if self.difference is None:
                raise ValueError(f"panel {self.name!r} has neither an image nor a difference")
            width, height = self.difference.a["size"]
            return int(width), int(height)
        return int(self.image.shape[1]), int(self.image.shape[0])


def png_data_uri(display: np.ndarray, palette: np.ndarray | None = None) -> str:
    """A ``uint8`` display image (or colour indices with their ``palette``) as a ``data:image/png;base64,...``
    URI (fast, lossless compression)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(display, palette)).decode("ascii")


def png_bytes(display: np.ndarray, palette: np.ndarray | None = None) -> bytes:
    """A ``uint8`` display image (or colour indices with their ``palette``) as PNG bytes."""
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(display))
    if palette is not None:
        image = image.convert("P") if image.mode != "P" else image
        image.putpalette(np.asarray(palette, dtype=np.uint8).ravel().tolist())
    image.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def viewer_html(panels: list[Panel], *, height: int, viewer_id: str = "viewer",
                wipe: tuple[int, int] | None = None, start_mode: str = "side",
                urls: list[str] | None = None) -> str:
    """The viewer page for ``panels`` (shown left to right), ``height`` CSS pixels tall in all.

    ``wipe``: indices of the two panels the wipe compares at first (left, right), or None for no wipe.
    ``urls``: where the browser fetches each panel's PNG (:func:`png_bytes` served by the app), instead of
    embedding it in the page; an empty URL embeds that panel.
    The reference grid is the largest panel's size. ``viewer_id`` keys the view kept across reloads of the
    page (a new window re-renders the images, and the zoom should stay where the reader left it).
    """
    if not panels:
        raise ValueError("the viewer needs at least one panel")
    ref_w = max(p.size[0] for p in panels)
    ref_h = max(p.size[1] for p in panels)
    has_legend = any(p.legend is not None for p in panels)
    config = {
        "id": viewer_id,
        "ref": [ref_w, ref_h],
        "wipe": list(wipe) if wipe is not None and len(panels) > 1 else None,
        "mode": start_mode,
        "stage": height - TOOLBAR_PX - (LEGEND_PX if has_legend else 0) - 8,
        "panels": [
            {
                "name": p.name,
                "size": list(p.size),
                "difference": None if p.difference is None else _difference_config(p),
                "legend": None if p.legend is None else {
                    "gradient": f"linear-gradient(to right, {', '.join(p.legend.stops)})",
                    "ticks": list(p.legend.ticks),
                    "caption": p.legend.caption,
                },
            }
            for p in panels
        ],
    }
    urls = urls or [""] * len(panels)
    images = "\n".join(
        f'<canvas class="src" id="src{i}"></canvas>' if p.difference is not None else
        f'<img class="src" id="src{i}" alt="{html.escape(p.name)}" '
        f'src="{html.escape(url) if url else png_data_uri(p.image, p.palette)}">'
        for i, (p, url) in enumerate(zip(panels, urls, strict=True))
    )
    return (_PAGE.replace("__STYLE__", _STYLE).replace("__IMAGES__", images)
            .replace("__CONFIG__", json.dumps(config).replace("</", "<\\/")).replace("__SCRIPT__", _SCRIPT))


def _difference_config(panel: Panel) -> dict:
    d = panel.difference
    if d.a["size"] != d.b["size"] or d.a.get("components", 1) != d.b.get("components", 1):
        raise ValueError(f"{panel.name}: the two images differ in size or components")
    if panel.palette is None or not d.full > 0:
        raise ValueError(f"{panel.name}: a difference map needs a palette and a positive full scale")
    keep = ("url", "dtype", "delta", "size", "components", "frames")
    return {"a": {k: d.a.get(k) for k in keep}, "b": {k: d.b.get(k) for k in keep}, "per": float(d.per),
            "full": float(d.full), "signed": bool(d.signed), "border": int(d.border),
            "palette": np.asarray(panel.palette, dtype=np.uint8).ravel().tolist()}


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>__STYLE__</style></head>
<body><div id="mv">
<div class="bar">
  <span class="grp" id="modes"></span>
  <span class="grp" id="picks"></span>
  <span class="grp"><button id="fit" title="Whole image in each panel">Fit</button><button id="one"
    title="One image pixel per screen pixel">1:1 pixels</button><span id="zoom"></span><span id="where"
    title="Cursor position in output pixels"></span></span>
  <span id="slice" title="The slice (frame) of a stack the maps show: the reading viewer's"></span>
  <span class="hint">Wheel: zoom &middot; drag: pan &middot; double-click: zoom in &middot; keys 1-9: panel</span>
</div>
<div id="stage"></div>
</div>
<div hidden>__IMAGES__</div>
<script>const CONFIG = __CONFIG__;</script>
<script>__SCRIPT__</script>
</body></html>"""

_STYLE = """
html, body { margin: 0; padding: 0; background: transparent; font: 13px/1.3 "Source Sans Pro", sans-serif;
  color: #31333f; overflow: hidden; }
.bar { display: flex; gap: 14px; align-items: center; height: 36px; flex-wrap: nowrap; white-space: nowrap; }
.grp { display: inline-flex; gap: 4px; align-items: center; }
button, select { font: inherit; padding: 3px 9px; border: 1px solid #c9cbd3; border-radius: 6px;
  background: #fff; color: #31333f; cursor: pointer; }
button.on { background: #ff4b4b; border-color: #ff4b4b; color: #fff; }
.hint { color: #808495; overflow: hidden; text-overflow: ellipsis; }
#zoom { color: #808495; min-width: 92px; margin-left: 4px; }
#slice { color: #31333f; font-variant-numeric: tabular-nums; }
#where { color: #808495; min-width: 110px; font-variant-numeric: tabular-nums; }
#stage { display: flex; gap: 6px; margin-top: 6px; }
.panel { position: relative; flex: 1 1 0; min-width: 0; display: flex; flex-direction: column; }
.panel canvas { width: 100%; display: block; background: #000; border-radius: 4px; cursor: grab;
  touch-action: none; }
.panel canvas.dragging { cursor: grabbing; }
.label { position: absolute; left: 6px; top: 6px; padding: 1px 6px; border-radius: 4px; color: #fff;
  background: rgba(0, 0, 0, .6); pointer-events: none; max-width: calc(100% - 24px); overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
.label.right { left: auto; right: 6px; }
.legend { height: 40px; margin-top: 4px; }
.legend .ramp { height: 10px; border-radius: 2px; border: 1px solid #c9cbd3; }
.legend .ticks { display: flex; justify-content: space-between; color: #31333f; font-size: 11px; }
.legend .cap { color: #808495; font-size: 11px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
"""

_SCRIPT = r"""
(function () {
  const [REFW, REFH] = CONFIG.ref;
  const dpr = () => window.devicePixelRatio || 1;
  const imgs = CONFIG.panels.map((p, i) => document.getElementById("src" + i));
  const stage = document.getElementById("stage");
  const key = "medsr-viewer-" + CONFIG.id + "-" + REFW + "x" + REFH;
  let view = { s: 0, cx: REFW / 2, cy: REFH / 2, fit: true };
  let mode = CONFIG.mode, pick = CONFIG.panels.length - 1;
  let wipeL = CONFIG.wipe ? CONFIG.wipe[0] : 0, wipeR = CONFIG.wipe ? CONFIG.wipe[1] : 0, divider = 0.5;
  try { const kept = JSON.parse(sessionStorage.getItem(key) || "null");
        if (kept) { view = kept.view; mode = kept.mode; divider = kept.divider; } } catch (e) { /* no storage */ }

  function el(tag, cls, text) { const e = document.createElement(tag); if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; return e; }

  // one panel element per image, plus one for the wipe
  const panels = CONFIG.panels.map((p, i) => {
    const box = el("div", "panel"), canvas = el("canvas"), label = el("div", "label", p.name);
    box.append(canvas, label);
    if (p.legend) {
      const leg = el("div", "legend"), ramp = el("div", "ramp"), ticks = el("div", "ticks");
      ramp.style.background = p.legend.gradient;
      p.legend.ticks.forEach(t => ticks.append(el("span", "", t)));
      leg.append(ramp, ticks, el("div", "cap", p.legend.caption));
      box.append(leg);
    }
    stage.append(box);
    return { index: i, box, canvas, rect: null };
  });
  const wipeBox = el("div", "panel"), wipeCanvas = el("canvas");
  const wipeLabelL = el("div", "label"), wipeLabelR = el("div", "label right");
  wipeBox.append(wipeCanvas, wipeLabelL, wipeLabelR);
  stage.append(wipeBox);
  const wipePanel = { index: -1, box: wipeBox, canvas: wipeCanvas, rect: null, wipe: true };

  function visible() {
    if (mode === "wipe") return [wipePanel];
    if (mode === "flip") return [panels[pick]];
    return panels;
  }

  function fitScale(canvas) {
    const w = canvas.clientWidth || 1, h = canvas.clientHeight || 1;
    return Math.min(w / REFW, h / REFH);
  }

  function clampView() {
    const c = visible()[0].canvas, fit = fitScale(c);
    view.s = Math.min(Math.max(view.s, fit * 0.5), 64);
    view.cx = Math.min(Math.max(view.cx, 0), REFW);
    view.cy = Math.min(Math.max(view.cy, 0), REFH);
  }

  function drawImage(ctx, img, w, h) {
    const x0 = w / 2 - view.cx * view.s, y0 = h / 2 - view.cy * view.s;
    const magnify = view.s * REFW / (img.naturalWidth || img.width) * dpr();
    ctx.imageSmoothingEnabled = magnify < 1;  // magnified: nearest neighbour shows the real pixels
    ctx.drawImage(img, x0, y0, REFW * view.s, REFH * view.s);
  }

  function draw(p) {
    const c = p.canvas, w = c.clientWidth, h = c.clientHeight, r = dpr();
    if (c.width !== Math.round(w * r) || c.height !== Math.round(h * r)) {
      c.width = Math.round(w * r); c.height = Math.round(h * r);
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(r, 0, 0, r, 0, 0);
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, w, h);
    if (p.wipe) {
      const split = Math.round(divider * w);
      ctx.save(); ctx.beginPath(); ctx.rect(0, 0, split, h); ctx.clip(); drawImage(ctx, imgs[wipeL], w, h);
      ctx.restore();
      ctx.save(); ctx.beginPath(); ctx.rect(split, 0, w - split, h); ctx.clip(); drawImage(ctx, imgs[wipeR], w, h);
      ctx.restore();
      ctx.fillStyle = "#ffdc00"; ctx.fillRect(split - 1, 0, 2, h);
      ctx.beginPath(); ctx.arc(split, h / 2, 9, 0, 2 * Math.PI); ctx.fill();
      ctx.fillStyle = "#000"; ctx.font = "bold 11px sans-serif"; ctx.textAlign = "center";
      ctx.fillText("\u2194", split, h / 2 + 4);
    } else {
      drawImage(ctx, imgs[p.index], w, h);
    }
    p.rect = [view.cx - w / 2 / view.s, view.cy - h / 2 / view.s, w / view.s, h / view.s];
  }

  function layout() {
    const height = CONFIG.stage;
    panels.forEach((p, i) => { p.box.style.display = visible().includes(p) ? "" : "none"; });
    wipeBox.style.display = mode === "wipe" ? "" : "none";
    [...panels, wipePanel].forEach(p => { p.canvas.style.height = height + "px"; });
    if (mode === "wipe") {
      wipeLabelL.textContent = "\u25c0 " + CONFIG.panels[wipeL].name;
      wipeLabelR.textContent = CONFIG.panels[wipeR].name + " \u25b6";
    }
    document.querySelectorAll("#modes button").forEach(b => b.classList.toggle("on", b.dataset.mode === mode));
    document.querySelectorAll("#picks button").forEach(b => b.classList.toggle("on", +b.dataset.pick === pick));
    document.getElementById("picks").style.display = mode === "flip" ? "" : "none";
    const wsel = document.getElementById("wipesel");
    if (wsel) wsel.style.display = mode === "wipe" ? "" : "none";
  }

  function redraw() {
    const vis = visible();
    if (view.fit || !view.s) { view.s = fitScale(vis[0].canvas); view.cx = REFW / 2; view.cy = REFH / 2; }
    clampView();
    vis.forEach(draw);
    const oneToOne = view.s * dpr();
    document.getElementById("zoom").textContent = "zoom " + (oneToOne >= 10 ? oneToOne.toFixed(0) :
      oneToOne.toFixed(2)) + "x";
    document.getElementById("one").classList.toggle("on", Math.abs(oneToOne - 1) < 1e-6);
    document.getElementById("fit").classList.toggle("on", !!view.fit);
    try { sessionStorage.setItem(key, JSON.stringify({ view, mode, divider })); } catch (e) { /* no storage */ }
  }

  function zoomAt(canvas, clientX, clientY, factor) {
    const r = canvas.getBoundingClientRect();
    const mx = clientX - r.left - canvas.clientWidth / 2, my = clientY - r.top - canvas.clientHeight / 2;
    const rx = view.cx + mx / view.s, ry = view.cy + my / view.s;
    const fit = fitScale(canvas);
    const s = Math.min(Math.max(view.s * factor, fit * 0.5), 64);
    view = { s, cx: rx - mx / s, cy: ry - my / s, fit: false };
    redraw();
  }

  function attach(p) {
    const c = p.canvas;
    let drag = null;
    c.addEventListener("wheel", e => {
      e.preventDefault();
      zoomAt(c, e.clientX, e.clientY, Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)));
    }, { passive: false });
    c.addEventListener("dblclick", e => { e.preventDefault(); zoomAt(c, e.clientX, e.clientY, 2); });
    const nearDivider = e => p.wipe && Math.abs(e.clientX - c.getBoundingClientRect().left -
      divider * c.clientWidth) < 12;
    c.addEventListener("pointerdown", e => {
      drag = { x: e.clientX, y: e.clientY, divider: nearDivider(e) };
      c.setPointerCapture(e.pointerId);
      c.classList.add("dragging");
    });
    c.addEventListener("pointermove", e => {
      if (!drag) {
        c.style.cursor = nearDivider(e) ? "ew-resize" : "";
        const r = c.getBoundingClientRect();
        const x = view.cx + (e.clientX - r.left - c.clientWidth / 2) / view.s;
        const y = view.cy + (e.clientY - r.top - c.clientHeight / 2) / view.s;
        const inside = x >= 0 && y >= 0 && x < REFW && y < REFH;
        document.getElementById("where").textContent = inside ? "x " + Math.floor(x) + ", y " + Math.floor(y) : "";
        return;
      }
      if (drag.divider) {
        const r = c.getBoundingClientRect();
        divider = Math.min(Math.max((e.clientX - r.left) / c.clientWidth, 0), 1);
      } else {
        view.cx -= (e.clientX - drag.x) / view.s; view.cy -= (e.clientY - drag.y) / view.s; view.fit = false;
        drag.x = e.clientX; drag.y = e.clientY;
      }
      redraw();
    });
    const end = e => { drag = null; c.classList.remove("dragging"); };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", end);
  }
  [...panels, wipePanel].forEach(attach);

  function button(parent, text, onclick, data) {
    const b = el("button", "", text); b.onclick = onclick; Object.assign(b.dataset, data || {});
    parent.append(b); return b;
  }
  const modes = document.getElementById("modes");
  button(modes, "Side by side", () => { mode = "side"; layout(); redraw(); }, { mode: "side" });
  if (CONFIG.panels.length > 1) {
    button(modes, "Single", () => { mode = "flip"; layout(); redraw(); }, { mode: "flip" });
  }
  if (CONFIG.wipe) button(modes, "Wipe", () => { mode = "wipe"; layout(); redraw(); }, { mode: "wipe" });
  if (!CONFIG.wipe && mode === "wipe") mode = "side";
  const picks = document.getElementById("picks");
  CONFIG.panels.forEach((p, i) => button(picks, (i + 1) + ": " + p.name.split(" (")[0],
    () => { pick = i; layout(); redraw(); }, { pick: i }));
  if (CONFIG.wipe) {
    const span = el("span", "grp"); span.id = "wipesel";
    const selL = el("select"), selR = el("select");
    CONFIG.panels.forEach((p, i) => { selL.append(new Option(p.name, i)); selR.append(new Option(p.name, i)); });
    selL.value = wipeL; selR.value = wipeR;
    selL.onchange = () => { wipeL = +selL.value; layout(); redraw(); };
    selR.onchange = () => { wipeR = +selR.value; layout(); redraw(); };
    span.append(selL, el("span", "", "|"), selR);
    modes.parentNode.insertBefore(span, picks.nextSibling);
  }
  document.getElementById("fit").onclick = () => { view.fit = true; redraw(); };
  document.getElementById("one").onclick = () => { view.s = 1 / dpr(); view.fit = false; redraw(); };
  document.addEventListener("keydown", e => {
    const n = parseInt(e.key, 10);
    if (n >= 1 && n <= CONFIG.panels.length) { pick = n - 1; mode = "flip"; layout(); redraw(); }
  });
  window.addEventListener("resize", redraw);

  // difference maps computed here from the values the reading viewer fetched (the same URLs, from the cache)
  const TYPES = { u8: Uint8Array, u16: Uint16Array, i16: Int16Array, f32: Float32Array };
  const indices = {}, decoded = {};
  const values = spec => (decoded[spec.url] = decoded[spec.url] || load(spec));  // every slice, decoded once
  async function load(spec) {
    const response = await fetch(spec.url, { cache: "force-cache" });
    if (!response.ok) throw new Error("cannot fetch " + spec.url + ": " + response.status);
    const stream = response.body.pipeThrough(new DecompressionStream("deflate"));
    const data = new TYPES[spec.dtype](await new Response(stream).arrayBuffer());
    const step = spec.size[0] * (spec.components || 1), comps = spec.components || 1;
    if (spec.delta) {
      for (let row = 0; row < data.length; row += step) {
        for (let i = row + comps; i < row + step; i++) data[i] = data[i] + data[i - comps];
      }
    }
    return data;
  }
  function rint(x) {  // numpy's rint: halves to even
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  async function compute(i) {
    const c = CONFIG.panels[i].difference, [w, h] = CONFIG.panels[i].size, comps = c.a.components || 1;
    const [a, b] = await Promise.all([values(c.a), values(c.b)]);
    const canvas = imgs[i], out = new ImageData(w, h), index = new Uint8Array(w * h), pal = c.palette;
    const o = slice * w * h * comps;  // a stack: the slice the reading viewer shows
    for (let y = 0, i0 = 0; y < h; y++) {
      const edge = y < c.border || y >= h - c.border;
      for (let x = 0; x < w; x++, i0++) {
        let d = 0;
        for (let k = 0; k < comps; k++) {
          const v = (a[o + i0 * comps + k] - b[o + i0 * comps + k]) * c.per;
          d += c.signed ? v : Math.abs(v);
        }
        d /= comps;
        let n = c.signed ? rint((Math.min(Math.max(d / c.full, -1), 1) + 1) / 2 * 254)
                         : rint(Math.min(Math.max(d / c.full, 0), 1) * 254);
        if (edge || x < c.border || x >= w - c.border) n = 255;
        index[i0] = n;
        out.data[4 * i0] = pal[3 * n]; out.data[4 * i0 + 1] = pal[3 * n + 1]; out.data[4 * i0 + 2] = pal[3 * n + 2];
        out.data[4 * i0 + 3] = 255;
      }
    }
    canvas.width = w; canvas.height = h;
    canvas.getContext("2d").putImageData(out, 0, 0);
    indices[i] = index;
  }

  // a stack's maps follow the slice of the reading viewer that holds both images of every map: it announces
  // its slice on a BroadcastChannel (same origin), and answers this page's question when it loads
  const diffs = CONFIG.panels.map((p, i) => i).filter(i => CONFIG.panels[i].difference);
  const frames = Math.max(1, ...diffs.map(i => CONFIG.panels[i].difference.a.frames || 1));
  const wanted = diffs.map(i => [CONFIG.panels[i].difference.a.url, CONFIG.panels[i].difference.b.url]);
  let slice = 0, computing = Promise.resolve();
  function showSlice() {
    document.getElementById("slice").textContent = frames > 1 ? "slice " + (slice + 1) + " / " + frames : "";
  }
  function setSlice(k) {
    k = Math.min(Math.max(k | 0, 0), frames - 1);
    if (k === slice) return computing;
    slice = k; showSlice();
    computing = computing.then(() => Promise.all(diffs.map(compute))).then(redraw)
      .catch(err => { document.body.dataset.error = String(err && err.message || err); });
    return computing;
  }
  showSlice();
  if (frames > 1 && typeof BroadcastChannel !== "undefined") {
    const channel = new BroadcastChannel("medsr-slice");
    channel.onmessage = e => {
      const m = e.data || {};
      if (typeof m.slice === "number" && wanted.every(pair => pair.every(u => (m.urls || []).includes(u)))) {
        setSlice(m.slice);
      }
    };
    channel.postMessage({ ask: [].concat(...wanted) });
  }

  let pending = imgs.length;
  const ready = () => { if (--pending <= 0) { layout(); redraw(); document.body.dataset.ready = "1"; } };
  imgs.forEach((img, i) => {
    if (CONFIG.panels[i].difference) {
      compute(i).catch(err => { document.body.dataset.error = String(err && err.message || err); }).then(ready);
    } else if (img.complete) ready();
    else { img.onload = ready; img.onerror = ready; }
  });

  window.medsrViewer = {
    state: () => ({ view: { ...view }, mode, divider, pick, wipe: [wipeL, wipeR],
                    rects: visible().map(p => ({ name: p.wipe ? "wipe" : CONFIG.panels[p.index].name,
                                                 rect: p.rect })) }),
    setMode: m => { mode = m; layout(); redraw(); },
    // a computed difference map's palette indices, row by row (for tests), and the slice they are of
    indices: panel => indices[panel] ? Array.from(indices[panel]) : null,
    slice: () => slice,
    setSlice: k => setSlice(k).then(() => slice),
  };
})();
"""
