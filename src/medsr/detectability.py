"""Low-contrast detectability: do the methods keep small, faint round findings, and do they invent detail?

``medsr detectability`` runs a signal-known-exactly task on real backgrounds, as the FDA DIDSR LCD-CT toolbox
does for CT (AAPM TG-233): per HR image (centre-cropped to ``crop`` pixels when set),

1. faint smooth-edged discs (:func:`medsr.observers.disc_signal`, ``sizes`` HR pixels across, or millimetres
   by the image's pixel spacing; ``contrasts`` times the local mean under the disc, or Hounsfield units added)
   are added at known positions on a jittered grid (for CT only where the whole ROI lies in the body, in soft
   tissue: :mod:`medsr.detectability_ct`), each position given one size x contrast class (every
   class about equally often per image); ``realisations`` such placements per image;
2. the signal-present and the signal-absent HR are each degraded by the :class:`~medsr.protocol.Protocol`
   (independent noise: keys ``KEY#present`` / ``KEY#absent``; realisation ``r > 0`` has ``KEY#present{r}``
   and shares the signal-absent image) and each method upscales (or, for CT, restores) both; outputs are
   quantised as the protocol scores them;
3. ROIs at the same positions are cut from both outputs; a channelized Hotelling and a non-prewhitening
   observer (:mod:`medsr.observers`), trained and tested on disjoint halves of the images, give AUC with a
   95 % interval from resampling images, d', and each method's AUC difference to the reference method's
   (bicubic; for CT the sparse-view FBP input) with its interval (the same resamples, so the pairing of
   methods on one image is kept);
4. on the signal-absent outputs: PSNR/SSIM (border cropped) and, where the LR grid is coarser than the HR,
   the band statistics above the LR Nyquist (all of it, and its first octave), pooled per source: power
   relative to the truth's, and correlation with the truth.

Everything is seeded (positions and jitter by the image key, noise by the protocol, halves and bootstrap by
``seed``): the same inputs give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsr import detectability_ct as ct
from medsr.consistency import project
from medsr.degrade import degradation_spec
from medsr.detectability_ct import image_spacing, signal_mask
from medsr.errors import ConfigError, MedsrError
from medsr.intensity import to_value_range
from medsr.metrics import psnr, ssim
from medsr.observers import (
    OBSERVERS,
    auc_difference_interval,
    auc_interval,
    band_from_sums,
    band_sums,
    disc_signal,
    dprime,
    observer_scores,
)
from medsr.protocol import Item, Method, Pair, Protocol, interpolation_methods, quantise, read_images, seeded_rng

REFERENCE = "bicubic"
TRUTH = "original (HR)"
SIZE_UNITS = ("px", "mm")
CONTRAST_UNITS = ("fraction", "HU")


def difference_key(reference: str) -> str:
    """Key of a row's AUC difference to the reference: ``auc_vs_bicubic`` for bicubic (as every chest JSON
    holds it), ``auc_vs_reference`` for any other reference (the JSON's ``reference`` names it)."""
    return "auc_vs_bicubic" if reference == REFERENCE else "auc_vs_reference"


@dataclass(frozen=True)
class DetectabilitySettings:
    """The task: signal sizes and contrasts in their units, where and how they are scored.

    ``size_unit``: ``px`` (HR pixels) or ``mm`` (each image's PixelSpacing, else ``pixel_spacing`` or
    ``spacing_table[file name]``; ROIs are sized for slices as fine as ``finest_spacing`` mm). ``contrast_unit``:
    ``fraction`` of the local mean under the disc, or ``HU`` added (the protocol's ``value_range`` must be in HU).
    ``body_hu``: when set, signals go only where the whole ROI of the largest signal lies inside the body (the
    largest region above ``body_hu`` HU, holes filled) and in ``tissue_hu``. ``reference``: the
    method every other is compared with. ``crop``: the protocol's centre crop (None: whole images).
    """

    sizes: tuple[float, ...] = (4.0, 8.0, 16.0)
    contrasts: tuple[float, ...] = (0.01, 0.02, 0.04)
    crop: int | None = 512
    spacing: int = 64
    edge: float = 1.0
    observers: tuple[str, ...] = OBSERVERS
    bootstrap: int = 1000
    seed: int = 0
    size_unit: str = "px"
    contrast_unit: str = "fraction"
    reference: str = REFERENCE
    realisations: int = 1
    finest_spacing: float = 0.5
    pixel_spacing: float | None = None
    spacing_table: Mapping[str, float] = field(default_factory=dict)
    body_hu: float | None = None
    tissue_hu: tuple[float, float] = (-200.0, 300.0)

    def __post_init__(self) -> None:
        if self.size_unit not in SIZE_UNITS:
            raise ConfigError(f"unknown size unit {self.size_unit!r}; choose from {', '.join(SIZE_UNITS)}")
        if self.contrast_unit not in CONTRAST_UNITS:
            raise ConfigError(f"unknown contrast unit {self.contrast_unit!r}; choose from {', '.join(CONTRAST_UNITS)}")
        if not self.sizes or min(self.sizes) <= 0 or not self.contrasts or min(self.contrasts) <= 0:
            raise ConfigError("signal sizes and contrasts must be positive (and at least one of each)")
        if self.finest_spacing <= 0 or (self.pixel_spacing is not None and self.pixel_spacing <= 0):
            raise ConfigError("pixel spacings must be positive millimetres")
        if self.roi_for(max(self.sizes)) > self.spacing:
            raise ConfigError(f"spacing {self.spacing} is less than the ROI of the largest signal "
                              f"({self.roi_for(max(self.sizes))} px): ROIs would overlap")
        if self.crop is not None and self.crop < 2 * self.spacing:
            raise ConfigError(f"crop {self.crop} holds fewer than 2x2 signal positions at spacing {self.spacing}")
        unknown = [o for o in self.observers if o not in OBSERVERS]
        if unknown or not self.observers:
            raise ConfigError(f"unknown observer {unknown[0] if unknown else ''!r}; choose from {', '.join(OBSERVERS)}")
        if self.bootstrap < 100:
            raise ConfigError(f"bootstrap needs at least 100 resamples, not {self.bootstrap}")
        if self.realisations < 1:
            raise ConfigError(f"realisations must be at least 1, not {self.realisations}")

    @property
    def classes(self) -> list[tuple[float, float]]:
        """Every (size, contrast) pair, sizes outer."""
        return [(s, c) for s in self.sizes for c in self.contrasts]

    @staticmethod
    def roi_size(diameter: float) -> int:
        """ROI side for a signal: three diameters, at least 32 px, even."""
        return max(32, 2 * math.ceil(1.5 * diameter))

    def roi_for(self, size: float) -> int:
        """ROI side (px) for a signal of ``size`` in the task's unit (mm: at ``finest_spacing``)."""
        return self.roi_size(size / self.finest_spacing if self.size_unit == "mm" else size)

    def diameter_px(self, size: float, spacing_mm: float | None) -> float:
        """A signal's diameter in pixels on an image of ``spacing_mm`` (unused for px sizes)."""
        return size / spacing_mm if self.size_unit == "mm" and spacing_mm else size


@dataclass(frozen=True)
class Signal:
    """One inserted signal: centre (row, column) in the HR crop and its class index."""

    y: int
    x: int
    cls: int


def signal_positions(
    shape: tuple[int, int], settings: DetectabilitySettings, rng: np.random.Generator,
    eligible: np.ndarray | None = None, offset: tuple[int, int] = (0, 0),
) -> list[Signal]:
    """A jittered grid of positions (one per ``spacing`` cell that fits its ROI), classes dealt evenly at random.

    ``eligible`` (``(H, W)`` bool): where a centre may lie; each cell then gets a centre drawn among its
    eligible pixels within the jitter, and a cell without one gets no signal. ``offset``: the grid's shift
    (rows, columns; 0 to ``spacing - 1``), for another realisation of positions on the same image.
    """
    height, width = shape
    oy, ox = (int(v) for v in offset)
    rows, columns = (height - oy) // settings.spacing, (width - ox) // settings.spacing
    cells = [(cy, cx) for cy in range(rows) for cx in range(columns)]
    jitter = settings.spacing // 2 - settings.roi_for(max(settings.sizes)) // 2
    if eligible is not None:
        return _masked_positions(cells, jitter, settings, rng, eligible, (oy, ox))
    classes = np.resize(rng.permutation(len(settings.classes)), len(cells))
    rng.shuffle(classes)
    signals = []
    for (cy, cx), cls in zip(cells, classes, strict=True):
        dy, dx = rng.integers(-jitter, jitter + 1, size=2) if jitter > 0 else (0, 0)
        signals.append(Signal(int(oy + cy * settings.spacing + settings.spacing // 2 + dy),
                              int(ox + cx * settings.spacing + settings.spacing // 2 + dx), int(cls)))
    return signals


def _masked_positions(cells, jitter: int, settings: DetectabilitySettings, rng: np.random.Generator,
                      eligible: np.ndarray, offset: tuple[int, int]) -> list[Signal]:
    centres = []
    for cy, cx in cells:
        y0 = offset[0] + cy * settings.spacing + settings.spacing // 2
        x0 = offset[1] + cx * settings.spacing + settings.spacing // 2
        reach = max(jitter, 0)
        ys, xs = np.nonzero(eligible[y0 - reach:y0 + reach + 1, x0 - reach:x0 + reach + 1])
        if ys.size:
            k = int(rng.integers(ys.size))
            centres.append((int(y0 - reach + ys[k]), int(x0 - reach + xs[k])))
    classes = np.resize(rng.permutation(len(settings.classes)), len(centres))
    rng.shuffle(classes)
    return [Signal(y, x, int(cls)) for (y, x), cls in zip(centres, classes, strict=True)]


def insert_signals(
    hr: np.ndarray, signals: Sequence[Signal], settings: DetectabilitySettings, *,
    spacing_mm: float | None = None, value_span: float | None = None,
) -> np.ndarray:
    """``hr`` ``(H, W, C)`` with each signal added, clipped to [0, 1]: ``contrast x (disc-weighted local mean) x
    disc``, or for HU contrasts ``contrast / value_span x disc`` (``value_span``: the HU that [0, 1] spans).
    Sizes in mm become pixels by ``spacing_mm``."""
    if settings.contrast_unit == "HU" and not value_span:
        raise ConfigError("HU contrasts need the HU span of the images' [0, 1] range (a protocol value_range)")
    if settings.size_unit == "mm" and not spacing_mm:
        raise ConfigError("signal sizes in mm need the image's pixel spacing")
    out = np.array(hr, dtype=np.float64)
    grey = out.mean(axis=2)
    for signal in signals:
        size, contrast = settings.classes[signal.cls]
        diameter = settings.diameter_px(size, spacing_mm)
        side = 2 * math.ceil(diameter / 2 + settings.edge) + 1
        disc = disc_signal(side, diameter, settings.edge)
        top, left = signal.y - side // 2, signal.x - side // 2
        if settings.contrast_unit == "HU":
            amplitude = contrast / value_span
        else:
            window = grey[top:top + side, left:left + side]
            amplitude = contrast * float((window * disc).sum() / disc.sum())
        out[top:top + side, left:left + side, :] += (amplitude * disc)[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def cut_rois(image: np.ndarray, signals: Sequence[Signal], size: int) -> np.ndarray:
    """``(N, size, size)`` grey ROIs centred (pixel ``size // 2``) on each signal of an ``(H, W, C)`` image,
    each less its own mean: the observers judge local contrast, not how bright the anatomy around it is (on
    chest backgrounds that brightness varies far more than a faint signal, and a non-prewhitening observer
    would score mostly it)."""
    grey = np.asarray(image, dtype=np.float64).mean(axis=2)
    half = size // 2
    rois = np.stack([grey[s.y - half:s.y - half + size, s.x - half:s.x - half + size] for s in signals])
    return rois - rois.mean(axis=(1, 2), keepdims=True)


def ct_task(
    models: Sequence[str], *, sizes: Sequence[float] | None = None, contrasts: Sequence[float] | None = None,
    crop: int | None = None, realisations: int | None = None, scale: int = 4, degradation: str | None = None,
    seed: int = 0, bootstrap: int = 1000, pixel_spacing: str | float | None = None, device: str = "cpu",
) -> tuple[DetectabilitySettings, Protocol]:
    """The CT task's settings and protocol (:mod:`medsr.detectability_ct`; None takes its defaults), on the HU
    mapping of the first CT model, else of ``ct-sparse-view``. ``pixel_spacing``: mm for slices without
    PixelSpacing, or a CSV of file,pixel_spacing."""
    spacing, table = ct.parse_pixel_spacing(None if pixel_spacing is None else str(pixel_spacing))
    settings = DetectabilitySettings(
        sizes=tuple(sizes or ct.SIZES_MM), contrasts=tuple(contrasts or ct.CONTRASTS_HU), crop=crop,
        spacing=ct.GRID_SPACING, bootstrap=bootstrap, seed=seed, size_unit="mm", contrast_unit="HU",
        reference=ct.REFERENCE, realisations=realisations or ct.REALISATIONS, finest_spacing=ct.FINEST_SPACING,
        pixel_spacing=spacing, spacing_table=table, body_hu=ct.BODY_HU)
    protocol = Protocol(scale=scale, degradation=degradation or ct.DEGRADATION, seed=seed, max_size=crop,
                        **ct.task_units([model_spec(m)[1] for m in models], device))
    return settings, protocol


# --- methods -----------------------------------------------------------------------------------------


def model_spec(spec: str) -> tuple[str, str]:
    """``(label, model)`` of a ``[LABEL=]MODEL`` argument: a bundled name or a checkpoint, and the name its
    method gets (""  when none is given: the model's own name). Two checkpoints of one model keep apart under
    their labels, e.g. ``v2=ct-sparse-view cand=runs/x/best.safetensors``."""
    label, _, model = spec.rpartition("=")
    if not model:
        raise ConfigError(f"--model {spec!r}: give a bundled name or a checkpoint after the '='")
    return label, model


Variant = Callable[[np.ndarray, np.ndarray, Mapping[str, np.ndarray]], np.ndarray]
"""``(output of its base method, lr, every base method's output) -> output``: a method derived from another."""


def projected(kernel: str, scale: int, fidelity: float = 1.0) -> Variant:
    """The base output moved ``fidelity`` of the way to its consistency projection
    (:func:`medsr.consistency.project`; 1: exactly consistent with the LR), clipped to [0, 1]."""
    def variant(sr: np.ndarray, lr: np.ndarray, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        moved = sr + np.float32(fidelity) * (project(sr, lr, scale, kernel) - sr)
        return np.clip(moved, 0.0, 1.0)

    return variant


def blended(strength: float, toward: str = REFERENCE) -> Variant:
    """``toward + strength (base - toward)``: the model's change to bicubic scaled by ``strength``."""
    return lambda sr, lr, outputs: outputs[toward] + strength * (sr - outputs[toward])


def consistency_kernel(degradation: str) -> str:
    """The linear operator of a degradation for the projection: ``box`` for box-noise, ``bicubic`` for bicubic."""
    kernels = {"box-noise": "box", "bicubic": "bicubic"}
    if degradation not in kernels:
        raise ConfigError(f"the consistency projection needs a bicubic or box-noise degradation, not {degradation!r}")
    return kernels[degradation]


def build_methods(
    models: Sequence[str],
    baselines: Sequence[str],
    protocol: Protocol,
    *,
    project_models: bool = False,
    strengths: Sequence[float] = (),
    fidelities: Sequence[float] = (),
    inference: Any = None,
    leading: Mapping[str, tuple[Method, str]] | None = None,
) -> tuple[dict[str, Method | str], dict[str, tuple[str, Variant]], dict[str, str]]:
    """Methods (``leading`` methods with their descriptions, e.g. CT's FBP input, which then is the reference;
    else bicubic first; then the baseline names, resized on each image's Pillow path; then each model by its
    name), variants (``NAME+project``, ``NAME+project@fidelity``, ``NAME@strength``) and what each is. Models:
    ``[LABEL=]MODEL`` (:func:`model_spec`), a bundled name or a checkpoint path, named LABEL or else by its
    header (by its file name where another method already has that name); each must undo the protocol's
    degradation at its scale and, if it works in fixed modality units (CT in HU), on the protocol's
    ``value_range``."""
    from medsr.evaluate import model_method
    from medsr.intensity import model_units
    from medsr.models import load_model, model_name

    names = list(dict.fromkeys([*([] if leading else [REFERENCE]), *baselines]))
    interpolation_methods(names, 8)  # an unknown name fails here
    methods: dict[str, Method | str] = {name: method for name, (method, _) in (leading or {}).items()}
    descriptions = {TRUTH: "the signal-present / signal-absent HR images themselves (upper reference)"}
    descriptions.update({name: text for name, (_, text) in (leading or {}).items()})
    methods.update({name: name for name in names})
    descriptions.update({name: f"Pillow {name} interpolation" for name in names})
    variants: dict[str, tuple[str, Variant]] = {}
    wanted = degradation_spec(protocol.degradation).lr_scale(protocol.scale)
    for spec in models:
        label, model = model_spec(spec)
        net = load_model(model, getattr(inference, "device", "cpu"))
        name = label or model_name(net)
        if name in methods and not label:  # two checkpoints of one model (e.g. a bundled version and an earlier one)
            name = Path(model).name
        if name in methods or name == TRUTH:
            raise ConfigError(f"--model {spec}: another method is already called {name!r}")
        if tuple(int(v) for v in net.scale) != tuple(wanted):
            raise ConfigError(f"model {name} upscales x{net.scale[0]}x{net.scale[1]}, the task ({protocol.degradation} "
                              f"at scale {protocol.scale}) needs x{wanted[0]}x{wanted[1]}")
        units = model_units(getattr(net, "meta", None))["value_range"]
        if units is not None and tuple(units) != tuple(protocol.value_range or ()):
            task = ("each image's own range" if protocol.value_range is None
                    else "{:g}..{:g}".format(*protocol.value_range))
            raise ConfigError(f"model {name} works on values {units[0]:g}..{units[1]:g}, the task on {task}")
        methods[name] = model_method(net, inference)
        descriptions[name] = f"model {model}"
        if project_models:
            kernel = consistency_kernel(protocol.degradation)
            variants[f"{name}+project"] = (name, projected(kernel, protocol.scale))
            descriptions[f"{name}+project"] = f"{name} made consistent with its input ({kernel} projection)"
        for fidelity in fidelities:
            kernel = consistency_kernel(protocol.degradation)
            variants[f"{name}+project@{fidelity:g}"] = (name, projected(kernel, protocol.scale, fidelity))
            descriptions[f"{name}+project@{fidelity:g}"] = f"{name} moved {fidelity:g} of the way to its projection"
        reference = next(iter(leading)) if leading else REFERENCE
        for strength in strengths:
            variants[f"{name}@{strength:g}"] = (name, blended(strength, reference))
            descriptions[f"{name}@{strength:g}"] = f"{reference} + {strength:g} x ({name} - {reference})"
    return methods, variants, descriptions


# --- running --------------------------------------------------------------------------------------------


@dataclass
class Collected:
    """ROIs per method and class (present, absent, image index), band sums and quality rows."""

    rois: dict[str, dict[int, list[tuple[np.ndarray, np.ndarray, int]]]] = field(default_factory=dict)
    band: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    quality: list[dict[str, Any]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (path, source)
    spacings: list[tuple[float, str] | None] = field(default_factory=list)  # per image: (mm, origin), mm sizes
    signals: list[int] = field(default_factory=list)  # per image: signals placed over its realisations
    failures: list[tuple[str, str]] = field(default_factory=list)


def collect(
    items: Sequence[Item],
    protocol: Protocol,
    methods: Mapping[str, Method | str],
    variants: Mapping[str, tuple[str, Variant]],
    settings: DetectabilitySettings,
    progress: Callable[[int, int], None] | None = None,
) -> Collected:
    """Steps 1-2 and the ROI cutting of step 3 over ``items``; unreadable or too small images go to failures."""
    found = Collected()
    for done, item in enumerate(items, start=1):
        for image in read_images([item.path], found.failures):
            try:
                _collect_image(item, image, protocol, methods, variants, settings, found)
            except (MedsrError, ValueError) as exc:
                found.failures.append((str(item.path), getattr(exc, "reason", str(exc))))
        if progress is not None:
            progress(done, len(items))
    return found


def _collect_image(item, image, protocol, methods, variants, settings, found: Collected) -> None:
    pair = protocol.pair(image, item.key)
    if min(pair.hr.shape[:2]) < 2 * settings.spacing:
        raise ValueError(f"image too small for the detectability task ({pair.hr.shape[1]}x{pair.hr.shape[0]})")
    spacing_mm = None
    if settings.size_unit == "mm":
        spacing_mm, origin = image_spacing(image.pixel_spacing, Path(item.path).name, settings.pixel_spacing,
                                           settings.spacing_table)
        if spacing_mm < settings.finest_spacing:
            raise ValueError(f"pixel spacing {spacing_mm:g} mm is finer than the task's {settings.finest_spacing:g} "
                             "mm: the largest disc would not fit its ROI")
    value_span = None if protocol.value_range is None else value_span_of(protocol)
    if value_span is None and (settings.contrast_unit == "HU" or settings.body_hu is not None):
        raise ConfigError("HU contrasts and a body mask need a protocol that maps images to HU (a value_range)")
    eligible = None
    if settings.body_hu is not None:
        hu = protocol.value_range[0] + pair.hr.mean(axis=2).astype(np.float64) * value_span
        eligible = signal_mask(hu, settings.roi_for(max(settings.sizes)), body_hu=settings.body_hu,
                               tissue_hu=settings.tissue_hu)
    if protocol.value_range is None:
        frame = image.with_pixels(pair.hr, pixel_spacing=None, extra={})
    else:  # already on the protocol's value range: pair() maps it again as the identity
        frame = to_value_range(image, protocol.value_range, protocol.raster_offset).with_pixels(pair.hr, extra={})
    absent = protocol.pair(frame, item.key + "#absent")
    size = pair.hr.shape[:2]
    chosen = {name: protocol.baselines([m], pair)[m] if isinstance(m, str) else m for name, m in methods.items()}
    outputs_a = _outputs(absent, chosen, variants, size)
    index = len(found.images)
    placed = 0
    for r in range(settings.realisations):
        suffix = str(r) if r else ""
        rng = seeded_rng(settings.seed, f"{item.key}#signals{suffix}")
        offset = (0, 0) if r == 0 else tuple(int(v) for v in rng.integers(0, settings.spacing, size=2))
        signals = signal_positions(size, settings, rng, eligible, offset)
        if not signals:  # this shift of the grid found no place in soft tissue; another may
            continue
        placed += len(signals)
        hr_present = insert_signals(pair.hr, signals, settings, spacing_mm=spacing_mm, value_span=value_span)
        present = protocol.pair(frame.with_pixels(hr_present), f"{item.key}#present{suffix}")
        outputs_p = _outputs(present, chosen, variants, size)
        for name, out_p in outputs_p.items():
            per_class = found.rois.setdefault(name, {})
            for cls, (diameter, _) in enumerate(settings.classes):
                picked = [s for s in signals if s.cls == cls]
                if picked:
                    roi = settings.roi_for(diameter)
                    per_class.setdefault(cls, []).append(
                        (cut_rois(out_p, picked, roi), cut_rois(outputs_a[name], picked, roi), index))
    if not placed:
        raise ValueError("no signal position fits inside the body (in soft tissue) on this image")
    banded = tuple(degradation_spec(protocol.degradation).lr_scale(protocol.scale)) != (1, 1)
    border = protocol.crop
    inner = (slice(border, -border or None), slice(border, -border or None))
    for name, out_a in outputs_a.items():
        if banded:
            grey_out, grey_truth = out_a.mean(axis=2)[inner], absent.hr.mean(axis=2)[inner]
            sums = np.concatenate([band_sums(grey_out, grey_truth, protocol.scale),
                                   band_sums(grey_out, grey_truth, protocol.scale, octave=True)])
            by_source = found.band.setdefault(name, {})
            by_source[item.source] = by_source.get(item.source, 0) + sums
        found.quality.append({"image": str(item.path), "source": item.source, "method": name,
                              "psnr": float(psnr(out_a, absent.hr, 1.0, border)),
                              "ssim": float(ssim(out_a, absent.hr, 1.0, border))})
    found.images.append((str(item.path), item.source))
    found.spacings.append(None if spacing_mm is None else (spacing_mm, origin))
    found.signals.append(placed)


def value_span_of(protocol: Protocol) -> float:
    """The modality units (HU) that the protocol's [0, 1] spans."""
    low, high = protocol.value_range
    return float(high - low)


def _outputs(pair: Pair, methods: Mapping[str, Method], variants: Mapping[str, tuple[str, Variant]],
             size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The truth, every method's quantised output on one (HR, LR) pair, then the variants of them."""
    base = {name: quantise(np.asarray(method(pair.lr, size)), pair.levels) for name, method in methods.items()}
    outputs = {TRUTH: pair.hr, **base}
    for name, (source, variant) in variants.items():
        outputs[name] = quantise(variant(base[source], pair.lr, base), pair.levels)
    return outputs


def score(found: Collected, settings: DetectabilitySettings) -> list[dict[str, Any]]:
    """Step 3's observers: one row per method, observer and class (AUC, interval, d', difference to the
    reference). Laguerre-Gauss channels are as wide as the disc (at least 4 px; for sizes in mm, at the median
    pixel spacing of the images)."""
    rows = []
    key = difference_key(settings.reference)
    known = [s[0] for s in found.spacings if s is not None]
    typical = float(np.median(known)) if known else None
    for observer in settings.observers:
        reference: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for name in _ordered(found.rois, settings.reference):
            for cls, parts in sorted(found.rois[name].items()):
                diameter, contrast = settings.classes[cls]
                present = np.concatenate([p for p, _, _ in parts])
                absent = np.concatenate([a for _, a, _ in parts])
                groups = np.concatenate([np.full(len(p), i) for p, _, i in parts])
                width = max(settings.diameter_px(diameter, typical), 4.0)
                scores = observer_scores(present, absent, groups, observer, channel_width=width, seed=settings.seed)
                interval = auc_interval(*scores, groups, settings.bootstrap, settings.seed)
                row = {"method": name, "observer": observer, "size": diameter, "contrast": contrast,
                       "signals": int(len(present)), "images": int(np.unique(groups).size),
                       "auc": interval.value, "auc_low": interval.low, "auc_high": interval.high,
                       "dprime": dprime(*scores)}
                if name == settings.reference:
                    reference[cls] = scores
                if cls in reference:
                    diff = auc_difference_interval(scores, reference[cls], groups, settings.bootstrap, settings.seed)
                    row.update({key: diff.value, f"{key}_low": diff.low, f"{key}_high": diff.high})
                rows.append(row)
    return rows


def _ordered(names: Mapping[str, Any], reference: str = REFERENCE) -> list[str]:
    """The reference (bicubic, CT's FBP input) first, so every other method can be compared with it; then as given."""
    return sorted(names, key=lambda n: (n != reference,))


@dataclass
class Detectability:
    """What :func:`run_detectability` measured."""

    protocol: Protocol
    settings: DetectabilitySettings
    rows: list[dict[str, Any]]
    band: dict[str, dict[str, dict[str, float]]]
    quality: dict[str, dict[str, dict[str, float]]]
    images: list[tuple[str, str]]
    failures: list[tuple[str, str]]
    methods: dict[str, str]
    spacings: list[tuple[float, str] | None] = field(default_factory=list)
    signals: list[int] = field(default_factory=list)

    def to_json(self, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
        p = self.protocol
        per_image = [{"path": path, "source": source, "signals": count}
                     for (path, source), count in zip(self.images, self.signals, strict=True)]
        for entry, spacing in zip(per_image, self.spacings, strict=True):
            if spacing is not None:
                entry.update(pixel_spacing_mm=spacing[0], pixel_spacing_from=spacing[1])
        return {
            "task": {**asdict(self.settings), "classes": self.settings.classes,
                     "roi_sizes": {str(s): self.settings.roi_for(s) for s in self.settings.sizes}},
            "protocol": {"scale": p.scale, "degradation": p.degradation,
                         "degradation_params": dict(p.degradation_params), "border": p.crop, "seed": p.seed,
                         "crop": p.max_size, "value_range": None if p.value_range is None else list(p.value_range)},
            "reference": self.settings.reference,
            "methods": self.methods,
            "images": len(self.images),
            "sources": _count_sources(self.images),
            "per_image": per_image,
            "detectability": self.rows,
            "band_above_lr_nyquist": self.band,
            "signal_absent_quality": self.quality,
            "failures": [{"path": path, "reason": reason} for path, reason in self.failures],
            "arguments": dict(arguments or {}),
        }


def _count_sources(images: Sequence[tuple[str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, source in images:
        counts[source or "all"] = counts.get(source or "all", 0) + 1
    return counts


def summarise_band(band: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per method: band statistics per source and pooled over all images, above the LR Nyquist
    (``power_ratio``, ``correlation``) and in its first octave (``octave_power_ratio``, ``octave_correlation``)."""
    def stats(sums: np.ndarray) -> dict[str, float]:
        whole, octave = band_from_sums(sums[:3]), band_from_sums(sums[3:])
        return {"power_ratio": whole.power_ratio, "correlation": whole.correlation,
                "octave_power_ratio": octave.power_ratio, "octave_correlation": octave.correlation}

    out = {}
    for name, by_source in band.items():
        rows = {source or "all": stats(sums) for source, sums in sorted(by_source.items())}
        if len(by_source) > 1:
            rows["all images"] = stats(sum(by_source.values()))
        out[name] = rows
    return out


def summarise_quality(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per method: mean PSNR/SSIM of the signal-absent outputs per source and as the mean of sources."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == name]
        per = {}
        for source in sorted({r["source"] for r in mine}):
            group = [r for r in mine if r["source"] == source]
            per[source or "all"] = {"images": len(group), "psnr": float(np.mean([r["psnr"] for r in group])),
                                    "ssim": float(np.mean([r["ssim"] for r in group]))}
        if len(per) > 1:
            per["mean of sources"] = {k: float(np.mean([v[k] for v in per.values()])) for k in ("psnr", "ssim")}
        out[name] = per
    return out


def run_detectability(
    items: Sequence[Item],
    protocol: Protocol,
    methods: Mapping[str, Method | str],
    variants: Mapping[str, tuple[str, Variant]] | None = None,
    settings: DetectabilitySettings | None = None,
    descriptions: Mapping[str, str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Detectability:
    """The whole task (module docstring) of ``methods`` (must include the settings' reference) and their
    ``variants``.

    A method is a :data:`~medsr.protocol.Method` or the name of an interpolation baseline (resized on each
    image's own Pillow path, as the protocol does); :func:`build_methods` makes both mappings.
    """
    settings = settings or DetectabilitySettings()
    if settings.reference not in methods:
        raise ConfigError(f"the detectability task compares every method with {settings.reference}: include it")
    if protocol.max_size != settings.crop:
        raise ConfigError(f"the protocol's max_size ({protocol.max_size}) must be the task's crop ({settings.crop})")
    found = collect(items, protocol, methods, variants or {}, settings, progress)
    if not found.images:
        raise MedsrError("no image could be scored for detectability")
    return Detectability(
        protocol=protocol, settings=settings, rows=score(found, settings), band=summarise_band(found.band),
        quality=summarise_quality(found.quality), images=found.images, failures=found.failures,
        methods={name: (descriptions or {}).get(name, name) for name in [TRUTH, *methods, *(variants or {})]},
        spacings=found.spacings, signals=found.signals,
    )


# --- reports ----------------------------------------------------------------------------------------------


def size_label(unit: str) -> str:
    """How a signal size reads in tables and plots: ``HR px`` or ``mm``."""
    return "HR px" if unit == "px" else unit


def contrast_label(contrast: float, unit: str) -> str:
    """A contrast as tables print it: ``2 %`` of the local mean, or ``5 HU``."""
    return f"{100 * contrast:g} %" if unit == "fraction" else f"{contrast:g} {unit}"


def auc_table(result: Detectability, observer: str) -> Any:
    """A Rich table: a row per method and signal size, a column per contrast: AUC [95 % interval], marked
    ``(-)`` where the AUC difference to the reference's is below zero beyond its interval, ``(+)`` above."""
    from rich.table import Table

    settings = result.settings
    table = Table(title=f"{observer.upper()} AUC [95 % interval]; (-)/(+): below/above {settings.reference} "
                        "beyond the interval of the difference")
    table.add_column("method")
    table.add_column(f"disc ({size_label(settings.size_unit)})", justify="right")
    for contrast in result.settings.contrasts:
        table.add_column(f"contrast {contrast_label(contrast, settings.contrast_unit)}", justify="right")
    for name in result.methods:
        for i, size in enumerate(result.settings.sizes):
            cells = []
            for contrast in result.settings.contrasts:
                row = _find(result.rows, name, observer, size, contrast)
                cells.append("-" if row is None else f"{row['auc']:.3f} [{row['auc_low']:.2f}, "
                             f"{row['auc_high']:.2f}]{_mark(row, settings.reference)}")
            table.add_row(name if i == 0 else "", f"{size:g}", *cells,
                          end_section=i == len(result.settings.sizes) - 1)
    return table


def _find(rows, name, observer, size, contrast) -> dict[str, Any] | None:
    return next((r for r in rows if (r["method"], r["observer"], r["size"], r["contrast"]) ==
                 (name, observer, size, contrast)), None)


def _mark(row: Mapping[str, Any], reference: str = REFERENCE) -> str:
    key = difference_key(reference)
    if f"{key}_high" in row and row["method"] != reference:
        if row[f"{key}_high"] < 0:
            return " (-)"
        if row[f"{key}_low"] > 0:
            return " (+)"
    return ""


def band_table(result: Detectability) -> Any:
    """A Rich table of the band statistics: power ratio and correlation above the LR Nyquist, per source."""
    from rich.table import Table

    sources = list(dict.fromkeys(s for per in result.band.values() for s in per))
    table = Table(title="signal-absent detail above the LR Nyquist (and in its first octave): power / truth's, "
                        "correlation with truth")
    table.add_column("method")
    for source in sources:
        table.add_column(source, justify="right")
    for name, per in result.band.items():
        if name == TRUTH:
            continue
        table.add_row(name, *(f"{per[s]['power_ratio']:.2f} / {per[s]['correlation']:.2f} (octave "
                              f"{per[s]['octave_power_ratio']:.2f} / {per[s]['octave_correlation']:.2f})"
                              if s in per else "-" for s in sources))
    return table


def plot(result: Detectability, path: str | Path, observer: str = "cho", methods: Sequence[str] | None = None) -> Path:
    """AUC vs contrast per signal size (one panel each), one line per method (default: all but the variants)
    with its interval, as PNG. :func:`plot_rows` draws the same from a saved JSON."""
    p, settings = result.protocol, result.settings
    task = f"x{p.scale} {p.degradation}" if settings.reference == REFERENCE else p.degradation
    return plot_rows(result.rows, path, sizes=settings.sizes, contrasts=settings.contrasts,
                     methods=list(methods or [m for m in result.methods if "+" not in m and "@" not in m]),
                     observer=observer, title=f"{task}, {len(result.images)} images",
                     size_unit=settings.size_unit, contrast_unit=settings.contrast_unit)


def plot_rows(
    rows: Sequence[Mapping[str, Any]], path: str | Path, *, sizes: Sequence[float], contrasts: Sequence[float],
    methods: Sequence[str], observer: str = "cho", title: str = "", size_unit: str = "px",
    contrast_unit: str = "fraction",
) -> Path:
    """The plot of :func:`plot` from ``detectability`` rows (as :meth:`Detectability.to_json` holds them)."""
    from medsr.atomic import atomic_path
    from medsr.extras import require

    require("matplotlib", "plot", "the detectability plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), sharey=True, squeeze=False)
    for ax, size in zip(axes[0], sizes, strict=True):
        for name in methods:
            found = [_find(rows, name, observer, size, c) for c in contrasts]
            found = [r for r in found if r is not None]
            if not found:
                continue
            x = [100 * r["contrast"] if contrast_unit == "fraction" else r["contrast"] for r in found]
            y = np.array([r["auc"] for r in found])
            err = np.array([[r["auc"] - r["auc_low"] for r in found], [r["auc_high"] - r["auc"] for r in found]])
            style = {"linestyle": ":", "color": "grey"} if name == TRUTH else {}
            if np.all(err >= 0):
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name, **style)
            else:  # a percentile interval need not hold its estimate (few images): draw it as it is
                (line,) = ax.plot(x, y, marker="o", label=name, **style)
                ax.vlines(x, y - err[0], y + err[1], colors=line.get_color(), linewidth=1.0)
        ax.set_title(f"{size:g} {size_label(size_unit)} disc")
        ax.set_xlabel("contrast (% of local mean)" if contrast_unit == "fraction" else f"contrast ({contrast_unit})")
        ax.axhline(0.5, color="lightgrey", linewidth=0.8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{observer.upper()} AUC (95 % interval)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"detectability ({observer.upper()}), {title}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    except OSError as exc:
        raise MedsrError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)
    return path
