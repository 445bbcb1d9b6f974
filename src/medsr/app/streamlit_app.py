"""medsr web app: see what super-resolution does to a study, in the browser.

Start it with ``medsr demo`` (or ``streamlit run`` on this file). Page layout only: what is computed lives in
:mod:`medsr.app.logic` and its neighbours (windows, cards, estimate, viewer, diffs, exports, batch). Each
browser session keeps its image and results in ``st.session_state`` and writes downloads through private
temporary folders, so two users never see or overwrite each other's results; only loaded models and
measured speeds are shared by the process (``st.cache_resource``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from medsr.app import batch, cards, diffs, estimate, exports, fidelity, frames, logic, series, stack_viewer, windows
from medsr.app.viewer import Difference, Panel, png_bytes, viewer_html
from medsr.degrade import lr_scale
from medsr.devices import resolve_device
from medsr.errors import MedsrError
from medsr.infer import InferenceSettings
from medsr.infer.modality import MODALITY_MODELS, mismatch
from medsr.io.image import MedicalImage
from medsr.models import DEFAULT_MODEL, load_model, model_name

VIEWER_HEIGHT = 600  # CSS pixels of the result viewer (toolbar included): fits a 900 px high window
PREVIEW_HEIGHT = 520
SOURCES = ["Bundled sample", "Upload a file", "Series", "Batch"]
COMPACT = "<style>.block-container {padding-top: 2.2rem; padding-bottom: 2rem;}</style>"


@st.cache_resource
def speed_book() -> estimate.SpeedBook:
    """Measured model speeds, shared by every session of this server process."""
    return estimate.SpeedBook()


def model_speed(model: Any, stamp: str, device: str) -> tuple[float, str]:
    """``(input pixels per second, how measured)`` of ``model`` here: the last run, else a calibration."""
    book, key = speed_book(), (stamp, device)
    if book.get(key) is None:
        side = estimate.CALIBRATION_SIDE
        speed = estimate.measure_speed(model, logic.SETTINGS, side)
        book.record(key, side * side, side * side / speed, how=f"timed on a {side} x {side} test image")
    return book.get(key)


def session_image(name: str, data: bytes) -> tuple[str, MedicalImage]:
    """The decoded image of ``data``, read once per session and kept in ``st.session_state``."""
    digest = hashlib.sha256(data).hexdigest()
    held = st.session_state.get("_image")
    if held is None or held[0] != digest:
        st.session_state.pop("_image", None)
        image = logic.read_upload(name, data)  # raises ImageReadError: the caller shows it
        st.session_state["_image"] = (digest, image)
    return st.session_state["_image"]


# --- sidebar: the model and its card --------------------------------------------------------------------------


def sidebar_model(modality: str | None = None, given: bool = False,
                  image: bool = True) -> tuple[Any, str, str, str]:
    """Model and device pickers and the model card; returns ``(model or None, reference, device, stamp)``.

    The first choice, automatic, runs the bundled model of the image's ``modality`` as ``medsr upscale`` does
    (``given``: the user stated it, the image does not); a named model of another modality gets a warning.
    ``image``: False in Batch, where each file's own modality decides (the default model otherwise).
    """
    st.sidebar.header("Model")
    models_dir = logic.models_dir_from_env()
    choices = logic.model_choices(models_dir)
    devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    labels = list(choices)
    label = st.sidebar.selectbox("Model", labels, index=0, key="model",
                                 help="Automatic: CT -> ct-sparse-view, US -> ultrasound-lateral-x4, CR/DX and "
                                      f"images without a modality -> {DEFAULT_MODEL}, as `medsr upscale` "
                                      "chooses without --model.")
    device = st.sidebar.selectbox("Device", devices, key="device", help="auto: CUDA if available, else CPU")
    where = f"`{models_dir}`" if models_dir else "none (set `MEDSR_MODELS_DIR` or `medsr demo --models-dir`)"
    st.sidebar.caption(f"Bundled models, and checkpoints in the models folder: {where}.")
    ref = choices[label]
    if not ref:
        ref, why = logic.automatic_model(modality if image else None, given)
        st.sidebar.info(f"Model {why}." if image else
                        f"Model {DEFAULT_MODEL}; in Batch each DICOM gets the model of its own Modality.")
    try:
        with st.spinner("Loading the model (once per server process)..."):
            model = load_model(ref, device)  # cached per process by file, modification time and device
    except MedsrError as exc:
        st.sidebar.error(str(exc))
        return None, ref, device, ""
    trained = mismatch(modality, getattr(model, "meta", None)) if image and choices[label] else ()
    if trained:
        st.sidebar.warning(f"This image's modality is {modality.upper()}, but {model_name(model)} was trained "
                           f"for {'/'.join(trained)}: choose Automatic for the {modality.upper()} model.")
    show_card(cards.model_card(ref, getattr(model, "meta", None)), model)
    return model, ref, device, str(id(model))  # a replaced checkpoint loads as a new object


def show_card(card: cards.ModelCard, model: Any) -> None:
    """The model card in the sidebar: summary, then architecture, data, test scores and limits."""
    sy, sx = model.scale
    st.sidebar.markdown(f"### {card.name}")
    st.sidebar.caption(f"upsamples x{sy}" + (f" (rows) x{sx} (columns)" if sy != sx else "")
                       + f", {model.in_channels} channel(s) · " + ("model card" if card.source == "card"
                                                                     else "from the checkpoint header"))
    if card.summary.upper().startswith("WARNING"):
        st.sidebar.warning(card.summary)
    else:
        st.sidebar.markdown(card.summary)
    with st.sidebar.expander("Architecture"):
        st.markdown(card.architecture or "not stated")
    with st.sidebar.expander("Training data (sources, licences)"):
        st.markdown(card.data or "not stated")
    with st.sidebar.expander("Test scores vs bicubic", expanded=True):
        for heading, table in card.tests.items() or {"Test split": "not stated"}.items():
            st.markdown(f"**{heading}**\n\n{table}")
    with st.sidebar.expander("Known limits", expanded=True):
        st.markdown(card.limits)
    if card.small_findings:
        with st.sidebar.expander("Small findings: faint discs vs bicubic"):
            st.markdown(card.small_findings)


def sidebar_faint_findings(model: Any, ref: str) -> InferenceSettings:
    """The Faint findings choice under the model card: how close the result stays to the input, as the
    :class:`InferenceSettings` ``medsr upscale`` would run with (:mod:`medsr.app.fidelity`); as trained (its
    defaults) when no model is loaded."""
    if model is None:
        return logic.SETTINGS
    offered = fidelity.choices(tuple(model.scale))
    captions = {fidelity.AS_TRAINED: "The model's own output, as `medsr upscale` runs it by default.",
                fidelity.CLOSER: f"Consistency projection, fidelity {fidelity.CLOSER_FIDELITY:g}: the output "
                                 "moved halfway to agreeing exactly with its input.",
                fidelity.STRENGTH: "Keep only this share of the model's change to bicubic."}
    choice = st.sidebar.radio("Faint findings", offered, key="faint", captions=[captions[c] for c in offered],
                              help=fidelity.HELP)
    kernel, strength = "bicubic", fidelity.DEFAULT_STRENGTH
    if choice == fidelity.CLOSER:
        first, why = fidelity.kernel_advice(getattr(model, "meta", None), model_name(model))
        kernel = st.sidebar.selectbox("Consistency kernel", fidelity.CONSISTENCY_KERNELS,
                                      index=fidelity.CONSISTENCY_KERNELS.index(first), key=f"faint_kernel:{ref}",
                                      help=fidelity.KERNEL_HELP.format(advice=why))
    elif choice == fidelity.STRENGTH:
        strength = st.sidebar.slider("Strength", 0.0, 1.0, fidelity.DEFAULT_STRENGTH, 0.05, key="faint_strength",
                                     help="1: the model as trained; 0: bicubic (for a model that keeps the size: "
                                          "its input).")
    settings = fidelity.settings_for(choice, kernel=kernel, strength=strength, base=logic.SETTINGS)
    flags = fidelity.flags(settings)
    st.sidebar.caption(f"{fidelity.TRADE} (see Small findings above)."
                       + (f" Runs as `medsr upscale {flags}`." if flags else ""))
    return settings


def faint_key(settings: InferenceSettings) -> str:
    """The Faint findings choice in a run's settings key: a result of other flags is not this choice's."""
    return fidelity.flags(settings) or "as trained"


# --- input: choose, describe, preview -------------------------------------------------------------------------


def choose_image(source: str) -> tuple[str, MedicalImage] | None:
    """Sample or upload, read and described; None (after showing why) when there is nothing to work on."""
    if source == "Bundled sample":
        samples = {path.name: path for path in logic.sample_paths()}
        picked = st.selectbox("Sample chest X-ray (test-split patients, never trained on)", list(samples),
                              key="sample")
        name, data = picked, samples[picked].read_bytes()
    else:
        upload = st.file_uploader("PNG, JPEG, TIFF or DICOM image", key="upload",
                                  help=f"8- or 16-bit PNG or TIFF, JPEG, DICOM; {logic.size_limits_text()}.")
        if upload is None:
            st.info("Upload an image to start, or pick a bundled sample.")
            return None
        name, data = upload.name, upload.getvalue()
    try:
        digest, image = session_image(name, data)
    except MedsrError as exc:
        message = str(exc)
        st.error(f"{message[:1].upper()}{message[1:]}. Choose another file.")
        return None
    info = logic.describe(image)
    st.markdown(" · ".join(f"**{key}:** {value}" for key, value in info.items()))
    small = logic.too_small(image.height, image.width)
    if small:
        st.error(f"{image.path}: {small}. Choose another file.")
        return None
    if max(image.height, image.width) > logic.DEMO_MAX_SIDE:
        st.caption(f"Larger than {logic.DEMO_MAX_SIDE} px per side: this page works on its centre "
                   f"{logic.DEMO_MAX_SIDE} x {logic.DEMO_MAX_SIDE} crop (`medsr upscale` does whole files).")
    return digest, image


def choose_modality(image: MedicalImage) -> tuple[str | None, bool]:
    """The image's modality, and whether the user gave it: a DICOM states its own; a PNG/TIFF/JPEG does not, so
    the reader may say it, as ``medsr upscale --modality`` does."""
    if image.format == "dicom":
        return image.modality, False
    stated = {"Not stated (chest X-ray)": None, **{m: m for m in MODALITY_MODELS}}
    picked = st.selectbox("Modality (a PNG, JPEG or TIFF does not say)", list(stated), key="raster_modality",
                          help="Chooses the automatic model, as `medsr upscale --modality` does.")
    return stated[picked], stated[picked] is not None


def choose_frames(image: MedicalImage, model: Any) -> tuple[int | None, MedicalImage, bool]:
    """For a multi-frame file: every frame (``None``: the result scrolls as its input does) or one frame (its
    index), the image to run, and whether it can run (every frame: within the page's limit)."""
    if not image.is_multiframe:
        return 0, image, True
    count = len(image.pixels)
    large = frames.too_large(image, tuple(model.scale)) if model is not None else None
    scope = st.radio("Frames", [f"All {count} frames", "One frame"], index=1 if large else 0, horizontal=True,
                     key="frames_scope", help="All frames: every frame is run, as `medsr upscale` does, and "
                     "input, bicubic and the model scroll together. One frame: quicker, for a long cine.")
    if scope == "One frame":
        index = st.slider("Frame", 1, count, 1, key="frame") - 1
        return index, logic.select_frame(image, index), True
    if large:
        st.error(f"Every frame is too much for this page: {large}.")
    return None, image, not large


def choose_mode(model: Any) -> tuple[str, str, int, int, bool]:
    """Mode, and for Simulate the degradation, scale and seed; the last value says whether it can run."""
    mode = st.radio(
        "Mode: what is your image?",
        ["Enhance", "Simulate"],
        captions=[
            "It is the low-resolution input (no ground truth, no scores).",
            "It is the ground truth: degrade, super-resolve, score.",
        ],
        help="Enhance: your image is upscaled by bicubic interpolation and by the model; there is no ground "
             "truth, so there are no scores. Simulate: a low-resolution copy of your image is made with the "
             "chosen degradation, super-resolved, and bicubic and the model are scored (PSNR/SSIM) against "
             "your original.",
        horizontal=True,
        key="mode",
    )
    if mode == "Enhance":
        return mode, "", 0, 0, model is not None
    offered = logic.compatible_degradations(tuple(model.scale)) if model is not None else []
    if not offered:
        st.warning(f"No degradation makes an input this model can undo (it upsamples x{model.scale[0]}"
                   f"x{model.scale[1]}): use Enhance, or choose another model." if model is not None else
                   "No model loaded.")
        return mode, "", 0, 0, False
    columns = st.columns(3)
    degradation = columns[0].selectbox("Degradation", offered, key="degradation",
                                       help="Only degradations whose low-resolution input this model can undo.")
    scales = logic.compatible_scales(degradation, tuple(model.scale))
    scale = columns[1].selectbox("Scale", scales, index=len(scales) - 1, key="scale")
    seed = int(columns[2].number_input("Noise seed", 0, 2**31 - 1, 0, key="seed"))
    return mode, degradation, int(scale), seed, True


def simulate_too_small(image: MedicalImage, degradation: str, scale: int) -> bool:
    """Say so (and return True) when Simulate would give the model an input under the minimum size."""
    side = logic.DEMO_MAX_SIDE
    sy, sx = lr_scale(degradation, scale)
    small = logic.too_small(min(image.height, side) // sy, min(image.width, side) // sx)
    if small:
        st.error(f"Simulate at x{scale}: {small}. Use Enhance, a smaller scale, or a larger image.")
    return bool(small)


def reading_window(image: MedicalImage) -> tuple[tuple[float, float] | None, dict[str, tuple[float, float]]]:
    """The window the viewer opens in (the header's where present) and the presets it offers; None for colour."""
    if image.channels != 1:
        return None, {}
    options, default = windows.window_options(image)
    return options[default], {name: win for name, win in options.items() if win is not None}


def show_estimate(image: MedicalImage, model: Any, stamp: str, device: str, mode: str, scale: int,
                  count: int = 1) -> None:
    """The estimated run time, from the measured speed and the number of input pixels (``count`` frames)."""
    if model is None:
        return
    side = logic.DEMO_MAX_SIDE
    height, width = min(image.height, side), min(image.width, side)
    if mode == "Simulate" and scale:
        height, width = height // scale, width // scale
    pixels = count * estimate.work_pixels(height, width,
                                          estimate.passes(image.channels, model.in_channels, logic.SETTINGS))
    speed, how = model_speed(model, stamp, device)
    seconds = estimate.estimate_seconds(pixels, speed)
    st.caption(estimate.format_estimate(seconds, pixels, speed, how, str(resolve_device(device))))


def preview(image: MedicalImage, owner: str) -> None:
    """The chosen image (every frame of a multi-frame file, as a stack) in the reading viewer, before any run."""
    pixels = image.pixels if image.is_multiframe else image.pixels[None]  # (F, H, W, C)
    frames, channels = pixels.shape[0], pixels.shape[-1]
    shown, _ = logic.limit_side(np.moveaxis(pixels, 0, 2).reshape(*pixels.shape[1:3], frames * channels))
    shown = np.moveaxis(shown.reshape(*shown.shape[:2], frames, channels), 2, 0)
    window, presets = reading_window(image)
    spacing = image.pixel_spacing or (1.0, 1.0)
    layer = stack_viewer.Layer(logic.input_label(image, shown.shape[1:]), stack_viewer.panel_values(shown, image),
                               spacing, monochrome1=image.value_range[0] > image.value_range[1])
    stack_viewer.show([layer], key="preview", height=PREVIEW_HEIGHT, window=window, presets=presets,
                      modality=image.modality, calibrated=image.pixel_spacing is not None)


# --- running and results --------------------------------------------------------------------------------------


def run(image: MedicalImage, model: Any, settings: dict[str, Any], inference: InferenceSettings) -> None:
    """Run the chosen mode under ``inference`` with a tile progress bar; keep the outcome in the session."""
    bar = st.progress(0.0, text="Super-resolving...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Super-resolving: tile {done} of {total}")

    try:
        if settings["mode"] == "Enhance":
            outcome = logic.run_enhance(image, model, device=settings["device"], progress=progress,
                                        settings=inference)
        else:
            outcome = logic.run_simulate(
                image, model, degradation=settings["degradation"], scale=settings["scale"],
                device=settings["device"], seed=settings["seed"], progress=progress, settings=inference,
            )
    except (MedsrError, ValueError, RuntimeError) as exc:  # RuntimeError: e.g. out of GPU memory
        bar.empty()
        st.error(f"The run failed: {exc}")
        return
    bar.empty()
    channels = estimate.passes(outcome.lr.shape[-1], model.in_channels, logic.SETTINGS)
    pixels = estimate.work_pixels(outcome.lr.shape[0], outcome.lr.shape[1], channels)
    speed_book().record((settings["stamp"], settings["device"]), pixels, outcome.seconds)
    st.session_state["_outcome"] = {"key": settings, "outcome": outcome, "display": {}, "downloads": {},
                                    "inference": inference}


COMPARED = ("model", "stamp")
"""Settings that may differ between results shown together: the model (and its file)."""


def same_input(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two runs' settings differ at most in the model: their results can be compared panel by panel."""
    return all(a.get(k) == b.get(k) for k in set(a) | set(b) if k not in COMPARED)


def keep_for_comparison(settings: dict[str, Any]) -> None:
    """Before a new run replaces the result: keep the old one when it is of the same input with another model."""
    held = st.session_state.get("_outcome")
    others = st.session_state.setdefault("_others", {})
    if held is not None and same_input(held["key"], settings) and held["key"]["model"] != settings["model"]:
        others[held["key"]["model"]] = held
    others.pop(settings["model"], None)


def layers(outcome: logic.Outcome, image: MedicalImage, others: list[logic.Outcome],
           part: str = "") -> list[stack_viewer.Layer]:
    """The viewer's panels: input, bicubic, the model (and other models' results on the same input), original.
    ``part``: which part of the file was run (``"frame 2 of 3"``), said in every caption.

    Every panel is drawn on the finest panel's grid (coarser ones as blocks of whole pixels), in mm from the
    header's PixelSpacing (else in output pixels); a caption says when the page worked on a crop of the image.
    Another model's result whose scale does not divide the grid is left out.
    """
    sy, sx = outcome.scale
    grid = outcome.sr.shape[:2]
    if outcome.mode == "enhance":
        first = logic.input_label(image, outcome.lr.shape)
        spacing = (image.pixel_spacing[0] / sy, image.pixel_spacing[1] / sx) if image.pixel_spacing else (1.0, 1.0)
    else:
        first = f"Input ({outcome.lr.shape[1]} x {outcome.lr.shape[0]}, degraded)"
        spacing = image.pixel_spacing or (1.0, 1.0)
    mono1 = image.value_range[0] > image.value_range[1]

    def layer(name: str, pixels: np.ndarray) -> stack_viewer.Layer | None:
        (fy, ry), (fx, rx) = divmod(grid[0], pixels.shape[0]), divmod(grid[1], pixels.shape[1])
        if ry or rx:
            return None
        return stack_viewer.Layer(name, stack_viewer.panel_values(pixels, image), spacing, mono1, (fy, fx))

    out = outcome.sr
    of = f"{part}, " if part else ""
    first = first.replace("(", f"({of}", 1)
    model = f" ({part})" if part else ""
    shown = [layer(first, outcome.lr), layer(f"Bicubic ({of}{out.shape[1]} x {out.shape[0]})", outcome.bicubic),
             layer(f"Model: {outcome.shown_name}{model}", out)]
    shown += [layer(f"Model: {other.shown_name}{model}", other.sr) for other in others]
    if outcome.hr is not None:
        crop = f", centre crop of {image.width} x {image.height}" if outcome.cropped else ""
        shown.append(layer(f"Original ({of}ground truth{crop})", outcome.hr))
    return [s for s in shown if s is not None]


def show_scores(outcome: logic.Outcome) -> None:
    """PSNR/SSIM of bicubic and the model against the original, and what they mean."""
    scores = outcome.scores or {}
    bicubic, model = scores["Bicubic"], scores["Model"]
    columns = st.columns(4)
    columns[0].metric("Bicubic PSNR", f"{bicubic['psnr']:.2f} dB")
    gain = model["psnr"] - bicubic["psnr"]
    columns[1].metric("Model PSNR", f"{model['psnr']:.2f} dB", delta=f"{gain:+.2f} dB")
    columns[2].metric("Bicubic SSIM", f"{bicubic['ssim']:.4f}")
    columns[3].metric("Model SSIM", f"{model['ssim']:.4f}", delta=f"{model['ssim'] - bicubic['ssim']:+.4f}")
    sy, sx = outcome.scale
    st.caption(
        "Scores against the original on the image's own intensity scale, outputs rounded to the input's bit "
        f"depth as a saved file would be, {max(sy, sx)} border pixels excluded (medsr evaluate's protocol)."
    )
    st.markdown(diffs.SCORES_EXPLAINED)


def show_results(state: dict[str, Any], image: MedicalImage, part: str = "") -> None:
    """Timing, scores, the reading viewer (with other models' results on the same input), differences, downloads.
    ``part``: the frame of a multi-frame file that was run (``"frame 2 of 3"``; "" for a single image)."""
    outcome: logic.Outcome = state["outcome"]
    sy, sx = outcome.scale
    (h, w), (oh, ow) = outcome.lr.shape[:2], outcome.sr.shape[:2]
    st.header("Result")
    st.success(
        f"Model {outcome.shown_name} on {outcome.device}: {outcome.seconds:.2f} s "
        f"({f'{part}: ' if part else ''}{w} x {h} -> {ow} x {oh}, x{sy}" + (f" x{sx}" if sx != sy else "") + ")."
    )
    if part:
        st.info(f"This result covers {part} only, the frame chosen above: choose another and run again for it, "
                "or choose All frames to run every frame and scroll the result as the input.")
    if outcome.cropped:
        st.warning(
            f"The image is larger than {logic.DEMO_MAX_SIDE} px per side: this page used its centre "
            f"{logic.DEMO_MAX_SIDE} x {logic.DEMO_MAX_SIDE} crop. Use `medsr upscale` for the whole image."
        )
    if outcome.scores:
        show_scores(outcome)
    others = [held["outcome"] for ref, held in st.session_state.get("_others", {}).items()
              if ref != state["key"]["model"] and same_input(held["key"], state["key"])]
    window, presets = reading_window(image)
    st.subheader("Compare (linked: zoom, pan, window and slice move every panel)")
    if others:
        st.caption("Also shown: " + ", ".join(o.shown_name for o in others) + " on the same input (kept until the "
                   "image changes; run another model to add it).")
    sent = stack_viewer.show(layers(outcome, image, others, part), key="result", height=VIEWER_HEIGHT,
                             window=window, presets=presets, modality=image.modality,
                             calibrated=image.pixel_spacing is not None, wipe=(1, 2))
    show_differences(state, outcome, image, sent)
    show_downloads(state, image, part)


def show_differences(state: dict[str, Any], outcome: logic.Outcome, image: MedicalImage,
                     sent: list[dict[str, Any]]) -> None:
    """Difference maps with colour bars: |bicubic - original|, |model - original|, model - bicubic and the
    consistency with the input. The first three are computed in the browser from the values the reading viewer
    was sent (``sent``: bicubic, model and, in Simulate, the original last), so they cost no bytes and a new
    colour scale only a new page; the consistency map (the result degraded again: server work) is a PNG, sent
    when the maps are turned on. Shown at once in Simulate, where they are the errors the scores count."""
    st.subheader("Differences")
    if not st.toggle("Show the difference maps", value=outcome.hr is not None, key="show_differences",
                     help="Model - bicubic and the consistency with the input (and, in Simulate, the errors "
                          "against the original), as colour maps with their colour bars."):
        return
    border = max(outcome.scale) if outcome.hr is not None else 0
    scale = colour_scale(state, lambda: logic.abs_error(outcome.bicubic, outcome.hr) if outcome.hr is not None
                         else np.abs(diffs.signed_difference(outcome.sr, outcome.bicubic)), image)
    per = value_fraction(image)
    bicubic, model = sent[1], sent[2]
    maps = []
    if outcome.hr is not None:
        maps += [Panel(f"|{name} - original|", None, diffs.heat_legend(scale, image, f"|{name.lower()} - original|"),
                       diffs.HEAT_PALETTE, Difference(values, sent[-1], per, scale, False, border))
                 for name, values in (("Bicubic", bicubic), ("Model", model))]
    maps.append(Panel("Model - bicubic", None, diffs.signed_legend(scale, image, "what the model changed over bicubic"),
                      diffs.SIGNED_PALETTE, Difference(model, bicubic, per, scale, True, border)))
    urls = [""] * len(maps)
    if outcome.scale != (1, 1):  # a model that keeps the size has no degradation to undo
        if "consistency_png" not in state:
            kernel = state.get("inference", logic.SETTINGS).consistency_kernel  # as --consistency-map draws it
            indices, legend = diffs.consistency_layer(outcome.sr, outcome.lr, outcome.scale, image, kernel)
            state["consistency_png"] = (png_bytes(indices, diffs.SIGNED_PALETTE), indices, legend)
        data, indices, legend = state["consistency_png"]
        maps.append(Panel("Consistency with the input", indices, legend, diffs.SIGNED_PALETTE))
        urls.append(stack_viewer.media_url(data, "medsr-diff-consistency"))  # the media endpoint, not the page
    html = viewer_html(maps, height=VIEWER_HEIGHT, viewer_id="diff", wipe=(0, 1) if outcome.hr is not None else None,
                       urls=urls)
    what = ("Black: no difference. " + ("Heat maps: error against the original; " if outcome.hr is not None else "")
            + "model - bicubic: blue where the model is darker than bicubic, orange where brighter; consistency: "
              "the result degraded again minus the input in units of the input's noise (what the model added that "
              "its input cannot have given; `medsr upscale --consistency-map` writes it).")
    st.caption(what + (f" Grey frame: the {border} border pixels the scores leave out." if border else ""))
    st.iframe(html, height=VIEWER_HEIGHT)


def colour_scale(state: dict[str, Any], errors: Any, image: MedicalImage) -> float:
    """The difference maps' full scale (a fraction of the intensity range), picked on a slider that opens at the
    scale fitting this result's own ``errors()`` (computed once per result)."""
    if "heat_default" not in state:
        state["heat_default"] = logic.suggest_full_scale(errors())
        st.session_state["heat_scale"] = state["heat_default"]
    return st.select_slider("Colour scale: full scale (of the intensity range)", logic.HEATMAP_SCALES,
                            format_func=lambda s: f"{s:.1%} ({diffs.in_units(s, image)})", key="heat_scale")


def value_fraction(image: MedicalImage) -> float:
    """What one unit of the viewer's values is as a fraction of the image's intensity range."""
    low, high = image.value_range
    return 1.0 / 255.0 if image.channels == 3 else 1.0 / (high - low)


def show_stack_differences(state: dict[str, Any], outcome: Any, image: MedicalImage,
                           sent: list[dict[str, Any]]) -> None:
    """Model - bicubic of a stack (a series' slices, a file's frames), computed in the browser from the values
    the reading viewer was sent, on the slice that viewer shows (it follows the wheel and the arrow keys)."""
    st.subheader("Differences")
    if not st.toggle("Show the difference map", value=False, key="show_differences",
                     help="Model - bicubic as a colour map with its colour bar, on the slice shown above."):
        return
    scale = colour_scale(state, lambda: np.abs(diffs.signed_difference(outcome.sr, outcome.bicubic)), image)
    panel = Panel("Model - bicubic", None, diffs.signed_legend(scale, image, "what the model changed over bicubic"),
                  diffs.SIGNED_PALETTE, Difference(sent[2], sent[1], value_fraction(image), scale, True, 0))
    st.caption("Black: no difference; blue where the model is darker than bicubic, orange where brighter. It "
               "follows the slice of the viewer above. (The consistency map is drawn for single images; "
               "`medsr upscale --consistency-map` writes it for every slice.)")
    st.iframe(viewer_html([panel], height=VIEWER_HEIGHT, viewer_id="diff"), height=VIEWER_HEIGHT)


def encoded(state: dict[str, Any], fmt: str) -> bytes:
    """The result written as ``fmt`` (kept, so a second click costs nothing)."""
    if fmt not in state["downloads"]:
        state["downloads"][fmt] = logic.encode_image(state["outcome"].result, fmt)
    return state["downloads"][fmt]


def show_downloads(state: dict[str, Any], image: MedicalImage, part: str = "") -> None:
    """Download buttons, and why a format is withheld or rescaled; each file is encoded once per result.
    ``part``: the frame that was run, named in each button and file name (the file holds that frame only)."""
    outcome: logic.Outcome = state["outcome"]
    stem = Path(image.path or "image").stem + (f"_{part.split(' of ')[0].replace(' ', '')}" if part else "")
    options, notes = exports.download_options(outcome.result, image, outcome.mode, outcome.cropped, stem)
    st.subheader("Download")
    columns = st.columns(len(options))
    for column, option in zip(columns, options, strict=True):
        # encoded and sent only when clicked (a 16-bit TIFF of a large result is tens of MB), once per result
        label = option.label.replace("Download ", f"Download {part}: ", 1) if part else option.label
        column.download_button(label, lambda fmt=option.fmt: encoded(state, fmt),
                               file_name=option.file_name, mime=option.mime, key=f"download_{option.fmt}",
                               on_click="ignore")
    for note in notes:
        st.caption(note)


# --- batch ----------------------------------------------------------------------------------------------------


def batch_page(model: Any, stamp: str, device: str, inference: InferenceSettings) -> None:
    """Several files (or a DICOM series) upscaled whole, each with its status, and one zip."""
    kind = st.radio("Upload", ["Files", "A folder (e.g. a DICOM series)"], horizontal=True, key="batch_kind")
    if kind == "Files":
        uploads = st.file_uploader("Image files (PNG, JPEG, TIFF, DICOM; select several)",
                                   accept_multiple_files=True, key="batch_upload")
    else:
        uploads = st.file_uploader("A folder: every image in it and its subfolders",
                                   accept_multiple_files="directory", key="batch_folder")
    st.caption("Enhance only: every file is upscaled whole, as `medsr upscale` does. Derived DICOMs of one input "
               "series stay one series (one new SeriesInstanceUID) in a folder of their own in the zip; slices "
               "without a SeriesInstanceUID are taken as one series per folder.")
    formats = {"Same as each input (JPEG becomes PNG)": None, "TIFF": "tiff", "PNG": "png"}
    fmt = formats[st.selectbox("Output format", list(formats), key="batch_format")]
    by_modality = st.checkbox(
        "DICOM files of another modality get its bundled model", value=True, key="batch_by_modality",
        help="As `medsr upscale` without --model: CT -> ct-sparse-view, US -> ultrasound-lateral-x4, CR/DX -> "
             f"{DEFAULT_MODEL}, when the model in the sidebar was trained for another modality. PNG, JPEG and "
             "TIFF files, and models of unknown modality, always use the sidebar's model.")
    if not uploads:
        return
    files = [(u.name, u.getvalue()) for u in uploads]
    if model is not None:
        speed, how = model_speed(model, stamp, device)
        pixels = sum(batch.pixel_count(data) for _, data in files)
        st.caption(f"{len(files)} file(s), {sum(len(d) for _, d in files) / 2**20:.1f} MB. "
                   + estimate.format_estimate(estimate.estimate_seconds(pixels, speed), pixels, speed, how,
                                              str(resolve_device(device))))
    if st.button("Run batch", type="primary", key="run_batch", disabled=model is None):
        bar = st.progress(0.0, text="Starting...")
        table = st.empty()
        shown: list[dict[str, Any]] = []

        def on_file(done: int, total: int, row: batch.BatchRow) -> None:
            bar.progress(done / total, text=f"File {done} of {total}: {row.file} ({row.status})")
            shown.append(vars(row))
            table.dataframe(shown, hide_index=True)

        result = batch.run_batch(files, model, fmt=fmt, on_file=on_file, by_modality=by_modality, device=device,
                                 settings=inference)
        st.session_state["_batch"] = {"files": [n for n, _ in files], "result": result, "faint": faint_key(inference)}
        bar.empty()
    held = st.session_state.get("_batch")
    if held is None or held["files"] != [n for n, _ in files]:
        return
    if held["faint"] != faint_key(inference):  # a result of other flags is not this choice's
        st.info(f"The faint-findings setting ({held['faint']} -> {faint_key(inference)}) has changed since the "
                "last run: press Run batch to update the results.")
        return
    result: batch.BatchResult = held["result"]
    st.dataframe([vars(r) for r in result.rows], hide_index=True, key="batch_table")
    skipped = [r for r in result.rows if r.status != "done"]
    (st.warning if skipped else st.success)(
        f"{result.written} of {len(result.rows)} file(s) upscaled" + (f"; {len(skipped)} skipped (see the "
                                                                       "table for why)." if skipped else "."))
    for note in result.notes:
        st.info(note)
    if result.written:
        st.download_button(f"Download all results (zip, {len(result.zip_bytes) / 2**20:.1f} MB)", result.zip_bytes,
                           file_name="medsr_results.zip", mime="application/zip", key="download_zip",
                           on_click="ignore")


# --- a DICOM series: slices scrolled together -----------------------------------------------------------------


def choose_series() -> tuple[str, series.Series] | None:
    """Uploaded slices read into series (once per session and upload), the one to work on picked, described;
    None (after showing why) when there is none."""
    kind = st.radio("Upload", ["Slices (select several)", "A folder"], horizontal=True, key="series_kind")
    if kind == "A folder":
        uploads = st.file_uploader("A folder of DICOM slices", accept_multiple_files="directory",
                                   key="series_folder", help=f"Each slice {logic.size_limits_text()}.")
    else:
        uploads = st.file_uploader("The DICOM slices of a series (select several)", accept_multiple_files=True,
                                   key="series_upload", help=f"Each slice {logic.size_limits_text()}.")
    if not uploads:
        st.info("Upload the slices of a DICOM series (several files, or a folder): input, bicubic and the model "
                "then scroll together, slice by slice.")
        return None
    files = [(u.name, u.getvalue()) for u in uploads]
    digest = hashlib.sha256(b"".join(hashlib.sha256(n.encode() + b"\0" + d).digest() for n, d in files)).hexdigest()
    held = st.session_state.get("_series_upload")
    if held is None or held[0] != digest:
        st.session_state.pop("_series_upload", None)
        with st.spinner(f"Reading {len(files)} file(s)..."):
            st.session_state["_series_upload"] = (digest, series.read_series(files))
    found: series.SeriesUpload = st.session_state["_series_upload"][1]
    if found.skipped:
        shown = found.skipped[:8]
        st.warning(f"{len(found.skipped)} file(s) left out:\n" + "\n".join(f"- {n}: {why}" for n, why in shown)
                   + ("\n- ..." if len(found.skipped) > len(shown) else ""))
    for note in found.notes:
        st.info(note)
    if not found.series:
        st.error("No DICOM slice to show: choose the slices of a series.")
        return None
    labels = [s.label for s in found.series]
    picked = found.series[labels.index(st.selectbox("Series", labels, key="series_pick"))] if len(labels) > 1 \
        else found.series[0]
    first = picked.first
    spacing = first.pixel_spacing
    info = {"Slices": str(len(picked.slices)), "Size": f"{first.width} x {first.height} px",
            "Modality": first.modality or "not given",
            "Pixel spacing": f"{spacing[0]:.4g} x {spacing[1]:.4g} mm" if spacing else "not given",
            "Order": {"position": "by position along the slice normal", "instance number": "by InstanceNumber",
                      "file name": "by file name (no position or InstanceNumber)"}[picked.order]}
    st.markdown(" · ".join(f"**{key}:** {value}" for key, value in info.items()))
    return f"{digest}:{picked.key}", picked


def series_page(left: Any, right: Any) -> None:
    """Several slices of one series: the stack in the viewer (``right``; the form in ``left``), Enhance on every
    slice, the three stacks scrolled together, and the derived series as one zip."""
    with left:
        chosen = choose_series()
        if chosen is None:
            sidebar_model(image=False)
            return
        key, picked = chosen
        model, ref, device, stamp = sidebar_model(picked.first.modality)
        inference = sidebar_faint_findings(model, ref)
        st.caption("Enhance only: each slice is the low-resolution input, upscaled by bicubic and by the model "
                   "exactly as `medsr upscale` does; no ground truth, so no scores.")
        large = series.too_large(picked, tuple(model.scale)) if model is not None else None
        if large:
            st.error(f"Too large for this page: {large}.")
        elif model is not None:
            first = picked.first
            pixels = len(picked.slices) * estimate.work_pixels(
                first.height, first.width, estimate.passes(first.channels, model.in_channels, logic.SETTINGS))
            speed, how = model_speed(model, stamp, device)
            st.caption(estimate.format_estimate(estimate.estimate_seconds(pixels, speed), pixels, speed, how,
                                                str(resolve_device(device))))
        clicked = st.button("Run super-resolution", type="primary", key="run",
                            disabled=model is None or bool(large))
    labels = [s.label for s in picked.slices]
    with right:
        first = picked.first
        layer = stack_viewer.Layer(f"Input ({len(picked.slices)} slices of {first.width} x {first.height})",
                                   stack_viewer.panel_values(picked.stack(), first), first.pixel_spacing or (1.0, 1.0),
                                   monochrome1=first.value_range[0] > first.value_range[1])
        window, presets = reading_window(first)
        stack_viewer.show([layer], key="preview", height=PREVIEW_HEIGHT, window=window, presets=presets,
                          modality=first.modality, calibrated=first.pixel_spacing is not None, slice_labels=labels)
    settings = {"series": key, "model": ref, "stamp": stamp, "device": device, "faint": faint_key(inference)}
    if clicked:
        run_series(picked, model, settings, inference)
    state = st.session_state.get("_series_outcome")
    if state is None:
        return
    if state["key"]["series"] != key:
        del st.session_state["_series_outcome"]
        return
    if state["key"] != settings:
        st.info(logic.describe_changes(state["key"], settings))
        return
    show_series_results(state, picked, labels)


def _run_stack(run: Any, settings: dict[str, Any], pixels: int) -> Any:
    """Run ``run(progress)`` (a stack of slices or frames) under a progress bar; record its speed for the estimate.

    ``run`` calls ``progress(fraction, text)``; returns its outcome, or None after showing why it failed.
    """
    bar = st.progress(0.0, text="Super-resolving...")
    try:
        outcome = run(lambda fraction, text: bar.progress(fraction, text=text))
    except (MedsrError, ValueError, RuntimeError) as exc:  # RuntimeError: e.g. out of GPU memory
        bar.empty()
        st.error(f"The run failed: {exc}")
        return None
    bar.empty()
    speed_book().record((settings["stamp"], settings["device"]), pixels, outcome.seconds)
    return outcome


def run_series(picked: series.Series, model: Any, settings: dict[str, Any], inference: InferenceSettings) -> None:
    """Run Enhance on every slice under ``inference`` with a progress bar; keep the outcome in the session."""
    first = picked.first
    channels = estimate.passes(first.channels, model.in_channels, logic.SETTINGS)

    def run(report: Any) -> Any:
        def progress(index: int, count: int, done: int, total: int) -> None:
            report((index + done / total) / count,
                   f"Super-resolving: slice {index + 1} of {count}, tile {done} of {total}")

        return series.run_series(picked, model, device=settings["device"], progress=progress, settings=inference)

    outcome = _run_stack(run, settings, len(picked.slices) * estimate.work_pixels(first.height, first.width, channels))
    if outcome is not None:
        st.session_state["_series_outcome"] = {"key": settings, "outcome": outcome, "download": None}


def show_stack(outcome: Any, image: MedicalImage, what: str, labels: list[str] | None = None,
               others: list[Any] = ()) -> list[dict[str, Any]]:
    """The timing line and the three stacks (input, bicubic, model; then ``others``' models on the same input)
    in the linked viewer, for a series' slices or a file's frames (``what``); returns how each panel's values
    were sent (:func:`medsr.app.stack_viewer.show`)."""
    sy, sx = outcome.scale
    count, (h, w), (oh, ow) = len(outcome.lr), outcome.lr.shape[1:3], outcome.sr.shape[1:3]
    st.header("Result")
    st.success(f"Model {outcome.shown_name} on {outcome.device}: {outcome.seconds:.2f} s for {count} {what} "
               f"({w} x {h} -> {ow} x {oh}, x{sy}" + (f" x{sx}" if sx != sy else "") + ").")
    spacing = (image.pixel_spacing[0] / sy, image.pixel_spacing[1] / sx) if image.pixel_spacing else (1.0, 1.0)
    mono1 = image.value_range[0] > image.value_range[1]
    layers = [stack_viewer.Layer(f"Input ({count} {what} of {w} x {h})",
                                 stack_viewer.panel_values(outcome.lr, image), spacing, mono1, (sy, sx)),
              stack_viewer.Layer(f"Bicubic ({ow} x {oh})", stack_viewer.panel_values(outcome.bicubic, image),
                                 spacing, mono1),
              stack_viewer.Layer(f"Model: {outcome.shown_name}", stack_viewer.panel_values(outcome.sr, image),
                                 spacing, mono1)]
    layers += [stack_viewer.Layer(f"Model: {other.shown_name}", stack_viewer.panel_values(other.sr, image),
                                  spacing, mono1) for other in others if other.sr.shape == outcome.sr.shape]
    window, presets = reading_window(image)
    st.subheader(f"Compare (linked: wheel or arrow keys scroll every panel to the same {what[:-1]})")
    if len(layers) > 3:
        st.caption("Also shown: " + ", ".join(layer.name.removeprefix("Model: ") for layer in layers[3:])
                   + " on the same input (kept until the image changes; run another model to add it).")
    return stack_viewer.show(layers, key="result", height=VIEWER_HEIGHT, window=window, presets=presets,
                             modality=image.modality, calibrated=image.pixel_spacing is not None, wipe=(1, 2),
                             slice_labels=labels)


def show_series_results(state: dict[str, Any], picked: series.Series, labels: list[str]) -> None:
    """The three stacks in the linked viewer, and the derived series (encoded when its button is clicked)."""
    outcome: series.SeriesOutcome = state["outcome"]
    count = len(outcome.names)
    sent = show_stack(outcome, picked.first, "slices", labels)
    show_stack_differences(state, outcome, picked.first, sent)
    st.subheader("Download")

    def derived() -> bytes:  # encoded once, when first clicked
        if state["download"] is None:
            state["download"] = series.derived_series_zip(outcome)
        return state["download"]

    st.download_button(f"Download derived series (zip of {count} DICOM slices)", derived,
                       file_name="medsr_derived_series.zip", mime="application/zip", key="download_series",
                       on_click="ignore")
    st.caption(f"One new series: the {count} derived slices share one new SeriesInstanceUID, in the study of "
               "their input, each written as `medsr upscale` writes a derived DICOM (marked DERIVED, the model "
               "named, spacing and positions on the new grid).")


# --- every frame of a multi-frame file ------------------------------------------------------------------------


def run_frames(image: MedicalImage, model: Any, settings: dict[str, Any], inference: InferenceSettings) -> None:
    """Run Enhance on every frame under ``inference`` with a progress bar; keep the outcome in the session."""
    channels = estimate.passes(image.channels, model.in_channels, logic.SETTINGS)

    def run(report: Any) -> Any:
        return frames.run_frames(image, model, device=settings["device"], settings=inference,
                                 progress=lambda done, total: report(done / total,
                                                                     f"Super-resolving: frame {done} of {total}"))

    pixels = len(image.pixels) * estimate.work_pixels(image.height, image.width, channels)
    outcome = _run_stack(run, settings, pixels)
    if outcome is not None:
        st.session_state["_outcome"] = {"key": settings, "outcome": outcome, "display": {}, "downloads": {}}


def show_frames_results(state: dict[str, Any], image: MedicalImage) -> None:
    """Every frame's input, bicubic and model result scrolled together, and the result as one file (the
    derived multi-frame DICOM of `medsr upscale`), encoded when its button is clicked."""
    outcome: frames.FramesOutcome = state["outcome"]
    others = [held["outcome"] for ref, held in st.session_state.get("_others", {}).items()
              if ref != state["key"]["model"] and same_input(held["key"], state["key"])]
    count = len(outcome.lr)
    sent = show_stack(outcome, image, "frames", [f"frame {k + 1} of {count}" for k in range(count)], others)
    show_stack_differences(state, outcome, image, sent)
    st.subheader("Download")
    stem = Path(image.path or "image").stem
    options = frames.download_options(outcome.result, image, stem)
    for column, option in zip(st.columns(len(options)), options, strict=True):
        column.download_button(option.label, lambda fmt=option.fmt: encoded(state, fmt),
                               file_name=option.file_name, mime=option.mime, key=f"download_{option.fmt}",
                               on_click="ignore")
    if image.format == "dicom":
        st.caption(f"One file of {count} frames, written as `medsr upscale` writes a derived DICOM (marked "
                   "DERIVED, the model named, a new SeriesInstanceUID, spacing on the new grid).")


# --- the page -------------------------------------------------------------------------------------------------


def main() -> None:
    st.set_page_config(page_title="medsr: super-resolution", layout="wide")
    st.markdown(COMPACT, unsafe_allow_html=True)
    st.title("medsr: medical image super-resolution")
    st.caption("Compare bicubic interpolation with a super-resolution model on your own image. Everything runs "
               "on the machine that serves this page; each browser session keeps its own images and results. "
               "Research software: not for diagnosis.")
    left, right = st.columns([2, 3], gap="large")
    with left:
        source = st.radio("Image source", SOURCES, horizontal=True, key="source", label_visibility="collapsed")
    if source == "Batch":  # full width: a table of files, not a preview
        model, ref, device, stamp = sidebar_model(image=False)
        batch_page(model, stamp, device, sidebar_faint_findings(model, ref))
        return
    if source == "Series":
        series_page(left, right)
        return
    with left:
        chosen = choose_image(source)
        if chosen is None:
            sidebar_model(image=False)
            return
        digest, whole = chosen
        modality, given = choose_modality(whole)
        model, ref, device, stamp = sidebar_model(modality, given)
        inference = sidebar_faint_findings(model, ref)
        frame, image, fits = choose_frames(whole, model)
        mode, degradation, scale, seed, runnable = choose_mode(model)
        if frame is None and mode == "Simulate":
            st.warning("Simulate scores one frame against itself: choose One frame above.")
            runnable = False
        if runnable and mode == "Simulate" and simulate_too_small(image, degradation, scale):
            runnable = False
        runnable = runnable and fits
        if fits:  # else the reason is shown above, next to the choice
            show_estimate(image, model, stamp, device, mode, scale, len(whole.pixels) if frame is None else 1)
        clicked = st.button("Run super-resolution", type="primary", key="run", disabled=not runnable)
    with right:
        preview(whole, digest)
    settings = {
        "image": digest, "frame": "all" if frame is None else frame, "mode": mode, "model": ref, "stamp": stamp,
        "device": device, "faint": faint_key(inference), "degradation": degradation, "scale": scale, "seed": seed,
    }
    if clicked:
        keep_for_comparison(settings)
        if frame is None:
            run_frames(whole, model, settings, inference)
        else:
            run(image, model, settings, inference)
    state = st.session_state.get("_outcome")
    if state is None:
        return
    if state["key"]["image"] != digest:  # a new image: its preview is the news, the old results go
        del st.session_state["_outcome"]
        st.session_state.pop("_others", None)
        return
    if state["key"] != settings:
        st.info(logic.describe_changes(state["key"], settings))
        return
    if frame is None:
        show_frames_results(state, whole)
    else:
        show_results(state, image, f"frame {frame + 1} of {len(whole.pixels)}" if whole.is_multiframe else "")


main()
