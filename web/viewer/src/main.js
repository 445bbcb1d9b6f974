// medsr's image viewer: a Streamlit component (protocol v1, spoken by hand) around Cornerstone3D stack viewports.
//
// The page script sends, once per image, each panel's real values (modality values: HU for CT, grey levels for
// PNG) as a zlib-compressed typed array behind a URL of Streamlit's media endpoint; everything after that (W/L by
// drag and presets, value readout, length and ROI statistics in mm, invert, zoom/pan/window/slice linked across
// panels, side by side / single / wipe) runs here, with no request to the server.
import * as core from "@cornerstonejs/core";
import * as tools from "@cornerstonejs/tools";

const { RenderingEngine, Enums, imageLoader, metaData } = core;
const ENGINE = "medsr";
const TYPES = { u8: Uint8Array, u16: Uint16Array, i16: Int16Array, f32: Float32Array };
const TOOLS = { wl: "WindowLevel", pan: "Pan", zoom: "Zoom", length: "Length", roi: "RectangleROI",
                probe: "Probe" };

let config = null, engine = null, group = null, started = false, mode = "side", pick = 0, divider = 0.5;
const meta = new Map(); // imageId -> {modality, spacing, window}
const values = new Map(); // imageId -> typed array of modality values (for the readout)
const panels = []; // {cfg, id, box, element, ids}
let state = { ready: false };

function send(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, apiVersion: 1, type, ...data }, "*");
}
function setHeight() { send("streamlit:setFrameHeight", { height: document.body.scrollHeight }); }

async function fetchValues(url, dtype, length) {
  // the media URL is absolute from the server root; this page lives at <base>/component/<name>/index.html
  // a media URL names its bytes (Streamlit derives it from them), so a copy the browser already holds is the
  // right one: the preview's values serve the result's input panel when they are the same, with no second download
  const response = await fetch(new URL("../.." + url, window.location.href), { cache: "force-cache" });
  if (!response.ok) throw new Error(`cannot fetch ${url}: ${response.status}`);
  const stream = response.body.pipeThrough(new DecompressionStream("deflate"));
  const buffer = await new Response(stream).arrayBuffer();
  const data = new TYPES[dtype](buffer);
  if (data.length !== length) throw new Error(`${url}: ${data.length} values, expected ${length}`);
  return data;
}

function undoRowDelta(data, width, components) {
  // the server sent each row as differences from its left neighbour (wrapping, as in PNG's Sub filter)
  const step = width * components;
  for (let row = 0; row < data.length; row += step) {
    for (let i = row + components; i < row + step; i++) data[i] = data[i] + data[i - components];
  }
}

metaData.addProvider((type, imageId) => {
  const m = meta.get(imageId);
  if (!m) return undefined;
  if (type === "generalSeriesModule") return { modality: m.modality, seriesInstanceUID: m.series };
  if (type === "modalityLutModule") return { rescaleSlope: 1, rescaleIntercept: 0 };
  if (type === "voiLutModule") return { windowCenter: [m.window[1]], windowWidth: [m.window[0]] };
  if (type === "generalImageModule") return { instanceNumber: m.frame + 1 };
  return undefined;
}, 10000);

async function loadPanel(p, index) {
  const [w, h] = p.size, comps = p.components || 1, frames = p.frames || 1;
  const all = await fetchValues(p.url, p.dtype, w * h * comps * frames);
  if (p.delta) undoRowDelta(all, w, comps);
  const ids = [];
  for (let k = 0; k < frames; k++) {
    const id = `medsr:${config.id}:${index}:${k}:${p.url}`;
    const data = all.subarray(k * w * h * comps, (k + 1) * w * h * comps);
    meta.set(id, { modality: config.modality || "OT", series: `${config.id}.${index}`, frame: k,
                   window: config.window || [1, 0] });
    values.set(id, data);
    if (!core.cache.getImageLoadObject(id)) {
      // world = mm from the image's top-left edge, so that panels of different pixel sizes line up
      const [sy, sx] = p.spacing;
      imageLoader.createAndCacheLocalImage(id, { scalarData: data, dimensions: [w, h], spacing: [sx, sy],
                                                 origin: [sx / 2, sy / 2, 0], frameOfReferenceUID: config.id });
    }
    ids.push(id);
  }
  return ids;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function voi() {
  const vp = engine.getViewport(panels[0].id);
  const range = vp.getProperties().voiRange;
  if (!range) return null;
  return [range.upper - range.lower, (range.upper + range.lower) / 2];
}

function setWindow(width, level) {
  const range = { lower: level - width / 2, upper: level + width / 2 };
  panels.forEach(p => { const vp = engine.getViewport(p.id); vp.setProperties({ voiRange: range }); vp.render(); });
  updateStatus();
}

function setInvert(on) {
  panels.forEach((p, i) => {
    const vp = engine.getViewport(p.id);
    vp.setProperties({ invert: on !== !!p.cfg.monochrome1 });
    vp.render();
  });
  state.invert = on;
  document.getElementById("invert").classList.toggle("on", on);
}

function readout(panel, event) {
  const vp = engine.getViewport(panel.id);
  const rect = panel.element.getBoundingClientRect();
  const world = vp.canvasToWorld([event.clientX - rect.left, event.clientY - rect.top]);
  const [w, h] = panel.cfg.size, [sy, sx] = panel.cfg.spacing;
  const gx = Math.floor(world[0] / sx), gy = Math.floor(world[1] / sy);  // on the viewer's grid
  if (gx < 0 || gy < 0 || gx >= w || gy >= h) return null;
  const id = panel.ids[vp.getCurrentImageIdIndex()];
  const data = values.get(id), comps = panel.cfg.components || 1, at = (gy * w + gx) * comps;
  const value = comps === 1 ? data[at] : Array.from(data.subarray(at, at + comps));
  const [ry, rx] = panel.cfg.repeat || [1, 1];  // the panel's own pixel (an input pixel is a block)
  return { panel: panel.cfg.name, x: Math.floor(gx / rx), y: Math.floor(gy / ry), value,
           unit: config.unit || "" };
}

function formatValue(v) {
  if (Array.isArray(v)) return "RGB " + v.join(", ");
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

// the slice shown goes out on a BroadcastChannel (same origin), so that the difference maps of a stack (their own
// frame, medsr.app.viewer) follow it; they ask for it when they load
const sliceChannel = typeof BroadcastChannel !== "undefined" ? new BroadcastChannel("medsr-slice") : null;
function announceSlice() {
  if (!sliceChannel || !state.ready || !panels.length) return;
  const slice = engine.getViewport(panels[0].id).getCurrentImageIdIndex();
  sliceChannel.postMessage({ urls: panels.map(p => p.cfg.url), slice });
}
if (sliceChannel) {
  sliceChannel.onmessage = e => {
    const asked = (e.data || {}).ask;
    if (Array.isArray(asked) && asked.every(u => panels.some(p => p.cfg.url === u))) announceSlice();
  };
}

function updateStatus() {
  announceSlice();
  const win = voi();
  if (win) document.getElementById("wl").textContent = `W ${win[0].toFixed(0)} / L ${win[1].toFixed(0)}`;
  const vp = engine.getViewport(panels[0].id);
  const frames = panels[0].ids.length;
  const k = vp.getCurrentImageIdIndex(), label = (config.slice_labels || [])[k];
  document.getElementById("slice").textContent = frames > 1 ? `slice ${k + 1} / ${frames}` : "";
  document.getElementById("slicename").textContent = frames > 1 && label ? label : "";
}

function layout() {
  const wipe = mode === "wipe" && config.wipe;
  panels.forEach((p, i) => {
    let shown = mode === "side" || (mode === "single" && i === pick) || (wipe && config.wipe.includes(i));
    p.box.style.display = shown ? "" : "none";
    p.box.classList.toggle("wipe-left", !!wipe && i === config.wipe[0]);
    p.box.classList.toggle("wipe-right", !!wipe && i === config.wipe[1]);
    p.box.style.clipPath = wipe && i === config.wipe[1] ? `inset(0 0 0 ${(divider * 100).toFixed(2)}%)` : "";
  });
  const handle = document.getElementById("divider");
  handle.style.display = wipe ? "" : "none";
  handle.style.left = `${(divider * 100).toFixed(2)}%`;
  document.getElementById("stage").classList.toggle("wiping", !!wipe);
  document.querySelectorAll("#modes button").forEach(b => b.classList.toggle("on", b.dataset.mode === mode));
  if (engine) { engine.resize(true, true); }
}

function setMode(m, index) {
  mode = m;
  if (index !== undefined) pick = index;
  layout();
}

function setTool(name) {
  Object.entries(TOOLS).forEach(([key, tool]) => {
    if (key !== name && tool !== "Pan" && tool !== "Zoom") group.setToolPassive(tool);
  });
  const MB = tools.Enums.MouseBindings;
  const bindings = [{ mouseButton: MB.Primary }];
  if (name === "pan") bindings.push({ mouseButton: MB.Auxiliary });
  if (name === "zoom") bindings.push({ mouseButton: MB.Secondary });
  group.setToolActive(TOOLS[name], { bindings });
  if (name !== "pan") group.setToolActive("Pan", { bindings: [{ mouseButton: MB.Auxiliary }] });
  if (name !== "zoom") group.setToolActive("Zoom", { bindings: [{ mouseButton: MB.Secondary }] });
  document.querySelectorAll("#tools button").forEach(b => b.classList.toggle("on", b.dataset.tool === name));
  state.tool = name;
}

function measurements() {
  const out = [];
  ["Length", "RectangleROI", "Probe"].forEach(tool => {
    (tools.annotation.state.getAnnotations(tool, panels[0].element) || []).forEach(a => {
      const stats = Object.values(a.data.cachedStats || {})[0] || {};
      out.push({ tool, ...stats });
    });
  });
  return out;
}

function buildToolbar() {
  const bar = document.getElementById("bar");
  const group1 = el("span", "grp"); group1.id = "modes";
  const modeButton = (label, m) => {
    const b = el("button", "", label); b.dataset.mode = m; b.onclick = () => setMode(m); group1.append(b);
  };
  modeButton("Side by side", "side");
  if (config.panels.length > 1) modeButton("Single", "single");
  if (config.wipe) modeButton("Wipe", "wipe");
  const group2 = el("span", "grp"); group2.id = "tools";
  // lengths and areas need PixelSpacing: without it they would be in made-up millimetres
  const offered = [["wl", "W/L"], ["pan", "Pan"], ["zoom", "Zoom"], ["length", "Length"], ["roi", "ROI"],
                   ["probe", "Probe"]].filter(([key]) => config.calibrated || (key !== "length" && key !== "roi"));
  offered.forEach(([key, label]) => {
      const b = el("button", "", label); b.dataset.tool = key; b.onclick = () => setTool(key); group2.append(b);
    });
  const group3 = el("span", "grp");
  const presets = el("select"); presets.id = "presets";
  presets.append(new Option("Window...", ""));
  Object.keys(config.presets || {}).forEach(name => presets.append(new Option(name, name)));
  presets.onchange = () => {
    const win = config.presets[presets.value];
    if (win) setWindow(win[0], win[1]);
    presets.value = "";
  };
  const invert = el("button", "", "Invert"); invert.id = "invert"; invert.onclick = () => setInvert(!state.invert);
  const fit = el("button", "", "Fit"); fit.id = "fit";
  fit.onclick = () => { panels.forEach(p => engine.getViewport(p.id).resetCamera()); engine.render(); };
  const clear = el("button", "", "Clear"); clear.title = "Remove lengths, ROIs and probes";
  clear.onclick = () => { tools.annotation.state.removeAllAnnotations(); engine.render(); };
  group3.append(presets, invert, fit, clear);
  const status = el("span", "status");
  status.append(el("span", "", ""), el("span", "", ""), el("span", "", ""), el("span", "", ""));
  status.children[0].id = "wl"; status.children[1].id = "slice"; status.children[2].id = "slicename";
  status.children[3].id = "value";
  bar.append(group1, group2, group3, status);
}

let initialised = false;

function teardown() {
  // new images in the same frame (the script stays loaded): drop the old viewports, tools and cached arrays
  state = { ready: false };
  tools.annotation.state.removeAllAnnotations();
  tools.SynchronizerManager.destroy();
  tools.ToolGroupManager.destroyToolGroup(`tg-${config.id}`);
  engine.destroy();
  core.cache.purgeCache();
  meta.clear();
  values.clear();
  panels.length = 0;
  document.getElementById("bar").replaceChildren();
  document.getElementById("stage").replaceChildren();
  delete document.body.dataset.ready;
  mode = "side"; pick = 0; divider = 0.5;
}

async function start(args) {
  config = args;
  document.getElementById("stage").style.height = `${config.height}px`;
  if (!initialised) {
    core.init();
    // Cornerstone's CPU path: exact and fast enough for 2D stacks, and the same on every machine (its WebGL
    // path drew grey images inverted under Chromium's software GL here; see docs/app.md)
    core.setUseCPURendering(true);
    tools.init();
    [tools.WindowLevelTool, tools.PanTool, tools.ZoomTool, tools.StackScrollTool, tools.LengthTool,
     tools.RectangleROITool, tools.ProbeTool, tools.ScaleOverlayTool].forEach(t => tools.addTool(t));
    initialised = true;
  }
  const stage = document.getElementById("stage");
  config.panels.forEach((p, i) => {
    const box = el("div", "panel"), element = el("div", "vp"), label = el("div", "label", p.name);
    element.oncontextmenu = e => e.preventDefault();
    box.append(element, label);
    stage.append(box);
    panels.push({ cfg: p, id: `vp${i}`, box, element, ids: [] });
  });
  const handle = el("div", ""); handle.id = "divider"; stage.append(handle);
  buildToolbar();
  engine = new RenderingEngine(ENGINE);
  engine.setViewports(panels.map(p => ({ viewportId: p.id, element: p.element, type: Enums.ViewportType.STACK })));
  const loaded = await Promise.all(config.panels.map((p, i) => loadPanel(p, i)));
  group = tools.ToolGroupManager.createToolGroup(`tg-${config.id}`);
  ["WindowLevel", "Pan", "Zoom", "StackScroll", "Length", "RectangleROI", "Probe", "ScaleOverlay"]
    .forEach(n => group.addTool(n));
  for (let i = 0; i < panels.length; i++) {
    panels[i].ids = loaded[i];
    const vp = engine.getViewport(panels[i].id);
    await vp.setStack(loaded[i], 0);
    group.addViewport(panels[i].id, ENGINE);
  }
  const MB = tools.Enums.MouseBindings;
  group.setToolActive("StackScroll", { bindings: [{ mouseButton: MB.Wheel }] });
  if (config.calibrated) group.setToolEnabled("ScaleOverlay");
  setTool("wl");
  const ids = panels.map(p => ({ renderingEngineId: ENGINE, viewportId: p.id }));
  // every panel is on one grid (the server repeats a coarse panel's pixels), so one camera fits all
  const camera = tools.synchronizers.createCameraPositionSynchronizer(`cam-${config.id}`);
  const window_ = tools.synchronizers.createVOISynchronizer(`voi-${config.id}`, { syncInvertState: false,
                                                                                  syncColormap: false });
  ids.forEach(v => { camera.add(v); window_.add(v); });
  // slices are linked by index: every panel of a viewer holds the same slices in the same order (Cornerstone's
  // ImageSliceSynchronizer matches slices by position, and these images all lie in one plane). The panel the
  // wheel turned leads; the others follow it, and their own new-image events are not passed on.
  let leader = null;
  panels.forEach(p => {
    p.element.addEventListener("mousemove", e => {
      const r = readout(p, e);
      state.readout = r;
      document.getElementById("value").textContent = r ? `${p.cfg.name.split(" (")[0]} x ${r.x} y ${r.y}: ` +
        `${formatValue(r.value)}${r.unit ? " " + r.unit : ""}` : "";
    });
    p.element.addEventListener(Enums.Events.VOI_MODIFIED, updateStatus);
    p.element.addEventListener("wheel", () => { leader = p; }, { capture: true, passive: true });
    p.element.addEventListener(Enums.Events.STACK_NEW_IMAGE, () => {
      if (leader === p) {
        const k = engine.getViewport(p.id).getCurrentImageIdIndex();
        panels.forEach(q => {
          const vp = engine.getViewport(q.id);
          if (q !== p && k < q.ids.length && vp.getCurrentImageIdIndex() !== k) vp.setImageIdIndex(k);
        });
      }
      updateStatus();
    });
  });
  divider = 0.5;
  const handleEl = document.getElementById("divider");
  handleEl.addEventListener("pointerdown", e => {
    handleEl.setPointerCapture(e.pointerId);
    const move = ev => {
      const r = stage.getBoundingClientRect();
      divider = Math.min(Math.max((ev.clientX - r.left) / r.width, 0), 1);
      layout();
    };
    handleEl.onpointermove = move;
    handleEl.onpointerup = () => { handleEl.onpointermove = null; };
  });
  layout();
  const win = config.window || [1, 0];
  setWindow(win[0], win[1]);
  setInvert(false);
  setHeight();
  state.ready = true;
  document.body.dataset.ready = "1";
  announceSlice();
}

function update(args) {
  // a rerun of the page script with the same images: only the opening window may differ
  if (JSON.stringify(args.window) !== JSON.stringify(config.window) && args.window) {
    config.window = args.window;
    setWindow(args.window[0], args.window[1]);
  }
}

document.addEventListener("keydown", e => {
  if (!state.ready) return;
  const n = parseInt(e.key, 10);
  if (n >= 1 && n <= panels.length) setMode("single", n - 1);
  if (e.key === "i") setInvert(!state.invert);
  if (e.key === "ArrowUp" || e.key === "ArrowDown") {
    const vp = engine.getViewport(panels[0].id);
    const next = vp.getCurrentImageIdIndex() + (e.key === "ArrowDown" ? 1 : -1);
    if (next >= 0 && next < panels[0].ids.length) panels.forEach(p => engine.getViewport(p.id).setImageIdIndex(next));
    e.preventDefault();
  }
});

let pending = null, busy = false;

function failed(err) {
  document.body.dataset.error = String(err && err.message || err);
  document.getElementById("bar").textContent = "The viewer could not start: " + document.body.dataset.error;
  setHeight();
}

async function render(args) {
  // one at a time: images that arrive while others load are shown once those are done
  if (busy) { pending = args; return; }
  busy = true;
  try {
    if (!started) { started = true; await start(args); }
    else if (args.id !== config.id) { teardown(); await start(args); }
    else if (state.ready) update(args);
  } catch (err) { failed(err); }
  busy = false;
  if (pending) { const next = pending; pending = null; render(next); }
}

window.addEventListener("message", event => {
  const data = event.data || {};
  if (data.type === "streamlit:render") render(data.args);
});

window.medsrViewer = {
  state: () => {
    if (!state.ready) return { ready: false };
    return {
      ready: true, mode, pick, divider, invert: !!state.invert, tool: state.tool, window: voi(),
      readout: state.readout || null, measurements: measurements(),
      panels: panels.map(p => {
        const vp = engine.getViewport(p.id), camera = vp.getCamera();
        const view = vp.getViewPresentation({ zoom: true, pan: true });
        return { name: p.cfg.name, slice: vp.getCurrentImageIdIndex(), frames: p.ids.length,
                 parallelScale: camera.parallelScale, focalPoint: camera.focalPoint, zoom: view.zoom, pan: view.pan,
                 canvas: [p.element.clientWidth, p.element.clientHeight],
                 shown: p.box.style.display !== "none" };
      }),
    };
  },
  // the on-screen rectangle of the image's corners [0,0] and [w,h] in a panel (CSS pixels, for tests)
  imageBox: index => {
    const p = panels[index], vp = engine.getViewport(p.id);
    const [w, h] = p.cfg.size, [sy, sx] = p.cfg.spacing;
    const a = vp.worldToCanvas([0, 0, 0]), b = vp.worldToCanvas([w * sx, h * sy, 0]);
    return [a[0], a[1], b[0] - a[0], b[1] - a[1]];
  },
  // milliseconds from a window change to every shown panel drawn again (for the speed check)
  timeWindow: (width, level) => new Promise(resolve => {
    const shown = panels.filter(p => p.box.style.display !== "none");
    let left = shown.length;
    const t0 = performance.now();
    shown.forEach(p => p.element.addEventListener(Enums.Events.IMAGE_RENDERED, () => {
      if (--left === 0) resolve(performance.now() - t0);
    }, { once: true }));
    setWindow(width, level);
  }),
  // a checksum of what a panel's canvas shows (to tell that a drag changed the picture)
  canvasSum: index => {
    const canvas = panels[index].element.querySelector("canvas");
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 4) sum += data[i] * ((i >> 2) % 251 + 1);
    return sum;
  },
  // where the centre of pixel (x, y) of a panel is, in this frame's client coordinates
  clientPoint: (index, x, y) => {
    const p = panels[index], vp = engine.getViewport(p.id), [sy, sx] = p.cfg.spacing, [ry, rx] = p.cfg.repeat;
    const [cx, cy] = vp.worldToCanvas([(x + 0.5) * rx * sx, (y + 0.5) * ry * sy, 0]);
    const r = p.element.getBoundingClientRect();
    return [r.left + cx, r.top + cy];
  },
  setMode, setWindow, setInvert, setTool,
  setSlice: k => panels.forEach(p => engine.getViewport(p.id).setImageIdIndex(k)),
};

send("streamlit:componentReady", {});
