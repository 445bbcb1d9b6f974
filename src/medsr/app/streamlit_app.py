"""medsr web app: see what super-resolution does to a study, in the browser.

Start it with ``medsr demo`` (or ``streamlit run`` on this file). Page layout only: what is computed lives in
:mod:`medsr.app.logic`. Each browser session keeps its image and results in ``st.session_state`` and writes
downloads through private temporary folders, so two users never see or overwrite each other's results;
only loaded models are shared by the process (``st.cache_resource``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
import torch

from medsr.app import logic
from medsr.errors import MedsrError
from medsr.io.image import MedicalImage
from medsr.models import DEFAULT_MODEL, load_model

ZOOM_PANEL = 384  # display pixels of each zoomed panel
OVERVIEW = 512  # display pixels of a whole-image overview


def uploaded_file() -> tuple[str, bytes] | None:
    """The uploaded file as ``(name, bytes)``, or None before anything is uploaded."""
    upload = st.file_uploader(
        "Image file: PNG, JPEG, 8/16-bit PNG or TIFF, DICOM (up to 200 MB and 50 megapixels)", key="upload"
    )
    return None if upload is None else (upload.name, upload.getvalue())


def session_image(name: str, data: bytes) -> tuple[str, MedicalImage]:
    """The decoded image of ``data``, read once per session and kept in ``st.session_state``."""
    digest = hashlib.sha256(data).hexdigest()
    held = st.session_state.get("_image")
    if held is None or held[0] != digest:
        st.session_state.pop("_image", None)
        image = logic.read_upload(name, data)  # raises ImageReadError: the caller shows it
        st.session_state["_image"] = (digest, image)
    return st.session_state["_image"]


def sidebar_model() -> tuple[Any, str, str, str]:
    """Model and device pickers; returns ``(model or None, reference, device, stamp key)``."""
    st.sidebar.header("Model")
    models_dir = logic.models_dir_from_env()
    choices = logic.model_choices(models_dir)
    where = f"`{models_dir}`" if models_dir else "none (set `MEDSR_MODELS_DIR` or `medsr demo --models-dir`)"
    st.sidebar.caption(f"Bundled models and checkpoints in the models folder: {where}.")
    devices = ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    device = st.sidebar.selectbox("Device", devices, key="device", help="auto: CUDA if available, else CPU")
    if not choices:
        st.sidebar.error("No model found: the bundled weights are missing and the models folder has none.")
        return None, "", device, ""
    labels = list(choices)
    default = next((i for i, label in enumerate(labels) if label.startswith(f"{DEFAULT_MODEL} ")), 0)
    label = st.sidebar.selectbox("Model", labels, index=default, key="model")
    ref = choices[label]
    try:
        with st.spinner("Loading the model (once per server process)..."):
            model = load_model(ref, device)  # cached per process by file, modification time and device
    except MedsrError as exc:
        st.sidebar.error(str(exc))
        return None, ref, device, ""
    meta = getattr(model, "meta", {}) or {}
    sy, sx = model.scale
    skip = " with global skip" if (meta.get("arch_args") or {}).get("global_skip") else ""
    st.sidebar.markdown(
        f"**{meta.get('arch', type(model).__name__)}**{skip}, upsamples x{sy}"
        + (f" (rows) x{sx} (columns)" if sy != sx else "")
        + f", {model.in_channels} channel(s)"
    )
    if "swift-srgan" in ref and "srresnet" not in ref:
        st.sidebar.warning("A GAN-trained model may add texture that is not in the patient: view only.")
    return model, ref, device, str(id(model))  # a replaced checkpoint loads as a new object


def choose_image() -> tuple[str, MedicalImage] | None:
    """Sample or upload, read and described; None (after showing why) when there is nothing to work on."""
    st.header("1. Image")
    source = st.radio("Image source", ["Bundled sample", "Upload a file"], horizontal=True, key="source")
    if source == "Bundled sample":
        samples = {path.name: path for path in logic.sample_paths()}
        picked = st.selectbox("Sample chest X-ray (test-split patients, never trained on)", list(samples),
                              key="sample")
        name, data = picked, samples[picked].read_bytes()
    else:
        upload = uploaded_file()
        if upload is None:
            st.info("Upload an image to start, or pick a bundled sample.")
            return None
        name, data = upload
    try:
        digest, image = session_image(name, data)
    except MedsrError as exc:
        message = str(exc)
        st.error(f"{message[:1].upper()}{message[1:]}. Choose another file.")
        return None
    info = logic.describe(image)
    st.markdown(" · ".join(f"**{key}:** {value}" for key, value in info.items()))
    return digest, image


def choose_frame(image: MedicalImage) -> tuple[int, MedicalImage]:
    """For a multi-frame file, which frame to work on."""
    if not image.is_multiframe:
        return 0, image
    index = st.slider("Frame", 1, len(image.pixels), 1, key="frame") - 1
    return index, logic.select_frame(image, index)


def choose_mode(model: Any) -> tuple[str, str, int, int, bool]:
    """Mode, and for Simulate the degradation, scale and seed; the last value says whether it can run."""
    st.header("2. Mode")
    mode = st.radio(
        "What is your image?",
        ["Enhance", "Simulate"],
        captions=[
            "Your image is the low-resolution input. It is upscaled by bicubic interpolation and by "
            "the model. There is no ground truth, so there are no scores.",
            "Your image is the ground truth. A low-resolution copy is made with the chosen "
            "degradation, super-resolved, and bicubic and the model are scored (PSNR/SSIM) against your "
            "original.",
        ],
        horizontal=True,
        key="mode",
    )
    st.caption(
        f"This demo works on at most {logic.DEMO_MAX_SIDE} x {logic.DEMO_MAX_SIDE} input pixels: larger "
        "images are centre-cropped (the page says so). `medsr upscale` processes whole files of any size "
        "in tiles."
    )
    if mode == "Enhance":
        return mode, "", 0, 0, model is not None
    columns = st.columns(3)
    degradation = columns[0].selectbox("Degradation", logic.SIMULATE_DEGRADATIONS, key="degradation")
    scales = logic.compatible_scales(degradation, tuple(model.scale)) if model is not None else []
    if not scales:
        if model is not None:
            st.warning(
                f"The selected model upsamples x{model.scale[0]}x{model.scale[1]}; the {degradation} "
                "degradation needs a model made for it. Choose another degradation or model."
            )
        return mode, degradation, 0, 0, False
    scale = columns[1].selectbox("Scale", scales, index=len(scales) - 1, key="scale")
    seed = int(columns[2].number_input("Noise seed", 0, 2**31 - 1, 0, key="seed"))
    return mode, degradation, int(scale), seed, True


def choose_window(image: MedicalImage) -> tuple[float, float] | None:
    """Display window (width, level) in modality values, or None for the full range."""
    if image.channels != 1:
        return None
    header = logic.default_window(image)
    options = ["Full range"]
    if header is not None:
        options.append(f"DICOM header (W {header[0]:g} / L {header[1]:g})")
    if image.modality == "CT":
        options += [f"{name} (W {w:g} / L {c:g})" for name, (w, c) in logic.WINDOW_PRESETS.items()]
    options.append("Custom")
    default = options.index("Mediastinum (W 350 / L 50)") if image.modality == "CT" else 0
    st.header("3. Display")
    choice = st.selectbox("Window", options, index=default, key="window",
                          help="Display only: the model always sees the full-range image.")
    if choice == "Full range":
        return None
    if choice.startswith("DICOM header"):
        return header
    if choice == "Custom":
        low, high = sorted(image.value_range)
        columns = st.columns(2)
        width = columns[0].number_input("Window width", 1.0, float(max(high - low, 1.0)),
                                        float(max((high - low) / 2, 1.0)), key="window_width")
        level = columns[1].number_input("Window level", float(low), float(high), float((low + high) / 2),
                                        key="window_level")
        return float(width), float(level)
    return logic.WINDOW_PRESETS[choice.split(" (")[0]]


def run(image: MedicalImage, model: Any, settings: dict[str, Any]) -> None:
    """Run the chosen mode with a spinner and a tile progress bar; keep the outcome in the session."""
    bar = st.progress(0.0, text="Super-resolving...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Super-resolving: tile {done} of {total}")

    with st.spinner("Super-resolving..."):
        try:
            if settings["mode"] == "Enhance":
                outcome = logic.run_enhance(image, model, device=settings["device"], progress=progress)
            else:
                outcome = logic.run_simulate(
                    image, model, degradation=settings["degradation"], scale=settings["scale"],
                    device=settings["device"], seed=settings["seed"], progress=progress,
                )
        except (MedsrError, ValueError, RuntimeError) as exc:  # RuntimeError: e.g. out of GPU memory
            bar.empty()
            st.error(f"The run failed: {exc}")
            return
    bar.empty()
    st.session_state["_outcome"] = {"key": settings, "outcome": outcome, "display": {}, "downloads": {}}


def panels(outcome: logic.Outcome) -> dict[str, np.ndarray]:
    """The images to compare, by caption."""
    lr, out = outcome.lr, outcome.sr
    shown = {
        f"Low-resolution input ({lr.shape[1]} x {lr.shape[0]})": lr,
        f"Bicubic ({out.shape[1]} x {out.shape[0]})": outcome.bicubic,
        f"Model: {outcome.model_name}": out,
    }
    if outcome.hr is not None:
        shown["Original (ground truth)"] = outcome.hr
    return shown


def show_scores(outcome: logic.Outcome) -> None:
    """PSNR/SSIM of bicubic and the model against the original, side by side."""
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


def show_results(state: dict[str, Any], image: MedicalImage, window: tuple[float, float] | None) -> None:
    """Timing, scores, the linked-zoom comparison, the difference heatmaps, the wipe, and downloads."""
    outcome: logic.Outcome = state["outcome"]
    sy, sx = outcome.scale
    (h, w), (oh, ow) = outcome.lr.shape[:2], outcome.sr.shape[:2]
    st.header("4. Result")
    st.success(
        f"Model {outcome.model_name} on {outcome.device}: {outcome.seconds:.2f} s "
        f"({w} x {h} -> {ow} x {oh}, x{sy}" + (f" x{sx}" if sx != sy else "") + ")."
    )
    if outcome.cropped:
        st.warning(
            f"The image is larger than {logic.DEMO_MAX_SIDE} px per side: this page used its centre "
            f"{logic.DEMO_MAX_SIDE} x {logic.DEMO_MAX_SIDE} crop. Use `medsr upscale` for the whole image."
        )
    if outcome.scores:
        show_scores(outcome)

    window_key = repr(window)
    if state["display"].get("window") != window_key:  # display images, made once per window
        pairs = panels(outcome).items()
        shown = {name: logic.to_display(arr, image.value_range, window) for name, arr in pairs}
        state["display"] = {"window": window_key, **shown}
    display = {name: arr for name, arr in state["display"].items() if name != "window"}
    reference = outcome.sr.shape[:2]

    st.subheader("Zoom (linked across all panels)")
    columns = st.columns(3)
    cx = columns[0].slider("Centre x (%)", 0, 100, 50, key="zoom_x") / 100
    cy = columns[1].slider("Centre y (%)", 0, 100, 50, key="zoom_y") / 100
    largest = max(16, min(reference))
    size = columns[2].slider("Region (output pixels)", 16, largest, min(128, largest), key="zoom_size")
    box = logic.zoom_box(reference, (cy, cx), size)
    zoomed = {name: logic.zoom_crop(arr, reference, box, ZOOM_PANEL) for name, arr in display.items()}
    model_caption = next(name for name in display if name.startswith("Model"))

    views = ["Side by side", "Wipe: bicubic | model"]
    if outcome.hr is not None:
        views.append("Difference from original")
    tabs = st.tabs(views)
    with tabs[0]:
        overview = logic.draw_box(logic.thumbnail(display[model_caption], OVERVIEW), box, reference)
        st.image(overview, caption="Model output, whole image: the yellow box is the zoomed region")
        for column, (name, crop) in zip(st.columns(len(zoomed)), zoomed.items(), strict=True):
            column.image(crop, caption=f"{name} (zoom)", width="stretch")
    with tabs[1]:
        position = st.slider("Wipe position (%)", 0, 100, 50, key="wipe") / 100
        bicubic_caption = next(name for name in display if name.startswith("Bicubic"))
        wiped = logic.wipe(zoomed[bicubic_caption], zoomed[model_caption], position, divider=True)
        caption = "Left of the line: bicubic. Right of the line: the model."
        st.image(wiped, caption=caption, width=2 * ZOOM_PANEL)
    if outcome.hr is not None:
        with tabs[2]:
            show_differences(outcome, box, reference)
    show_downloads(state, image)


def show_differences(outcome: logic.Outcome, box: logic.Box, reference: tuple[int, int]) -> None:
    """Absolute-difference heatmaps of bicubic and the model against the original, whole and zoomed."""
    errors = {name: logic.abs_error(out, outcome.hr) for name, out in (("Bicubic", outcome.bicubic),
                                                                       ("Model", outcome.sr))}
    scale = st.select_slider(
        "Heatmap full scale (of the intensity range)", logic.HEATMAP_SCALES,
        value=logic.suggest_full_scale(errors["Bicubic"]), format_func=lambda s: f"{s:.1%}", key="heat_scale",
    )
    st.caption(f"Black: identical to the original; red to yellow: differences up to {scale:.1%} and above.")
    for column, (name, error) in zip(st.columns(2), errors.items(), strict=True):
        heat = logic.heatmap(error, scale)
        column.image(logic.zoom_crop(heat, reference, box, ZOOM_PANEL), caption=f"|{name} - original| (zoom)",
                     width="stretch")
        column.image(logic.thumbnail(heat, OVERVIEW), caption=f"|{name} - original| (whole image)",
                     width="stretch")


def show_downloads(state: dict[str, Any], image: MedicalImage) -> None:
    """Download buttons; each file is encoded once per result, in memory via a private temporary folder."""
    outcome: logic.Outcome = state["outcome"]
    stem = Path(image.path or "image").stem
    options = logic.download_options(outcome, image, stem)
    columns = st.columns(len(options))
    for column, option in zip(columns, options, strict=True):
        if option.fmt not in state["downloads"]:
            try:
                state["downloads"][option.fmt] = logic.encode_image(outcome.result, option.fmt)
            except MedsrError as exc:
                column.error(str(exc))
                continue
        column.download_button(option.label, state["downloads"][option.fmt], file_name=option.file_name,
                               mime=option.mime, key=f"download_{option.fmt}")
    if image.format == "dicom" and outcome.mode == "simulate":
        st.caption("A derived DICOM is offered in Enhance mode: a simulated result is a test, not an image.")


def main() -> None:
    st.set_page_config(page_title="medsr: super-resolution", layout="wide")
    st.title("medsr: medical image super-resolution")
    st.markdown(
        "Compare bicubic interpolation with a super-resolution model on your own image. Everything runs on "
        "the machine that serves this page; each browser session keeps its own image and results. Research "
        "software: not for diagnosis."
    )
    model, ref, device, stamp = sidebar_model()
    chosen = choose_image()
    if chosen is None:
        return
    digest, source = chosen
    frame, image = choose_frame(source)
    mode, degradation, scale, seed, runnable = choose_mode(model)
    window = choose_window(image)
    settings = {
        "image": digest, "frame": frame, "mode": mode, "model": ref, "stamp": stamp, "device": device,
        "degradation": degradation, "scale": scale, "seed": seed,
    }
    if st.button("Run super-resolution", type="primary", key="run", disabled=not runnable):
        run(image, model, settings)
    state = st.session_state.get("_outcome")
    if state is None:
        return
    if state["key"] != settings:
        st.info("The settings changed since the last run: press Run super-resolution to update the result.")
        return
    show_results(state, image, window)


main()
