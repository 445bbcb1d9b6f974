"""Markdown tables, plots and model-card sections from `medsr detectability --json` output.

    .venv/bin/python bench/detectability_report.py runs/det-test.json --markdown docs/results/detectability/test.md \
        --plot docs/img/detectability-test.png --methods 'original (HR),bicubic,lanczos,xray-x4,...' --cards

Prints (and with --markdown writes) per method: CHO and NPW mean AUC over the size x contrast classes, how many
classes lie below / above the reference (bicubic; for CT the sparse-view FBP input) beyond the 95 % interval of
the AUC difference, PSNR/SSIM of the signal-absent outputs (mean of sources) and, where the LR grid is coarser,
the detail above the LR Nyquist (power / truth's, correlation); then the CHO AUC per class and the band
statistics per source. --cards writes each bundled model's "small_findings" into its card
(src/medsr/weights/NAME.yaml) and re-renders docs/models.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import _bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from medsr.detectability import REFERENCE, TRUTH, contrast_label, difference_key, plot_rows, size_label  # noqa: E402
from medsr.models.cards import read_card, write_card, write_markdown_cards  # noqa: E402

WEIGHTS = ROOT / "src" / "medsr" / "weights"


def rows_of(data: dict, method: str, observer: str) -> list[dict]:
    return [r for r in data["detectability"] if r["method"] == method and r["observer"] == observer]


def reference_of(data: dict) -> tuple[str, str]:
    """The JSON's reference method and the key of its AUC differences (chest JSONs name none: bicubic)."""
    reference = data.get("reference", REFERENCE)
    return reference, difference_key(reference)


def units_of(data: dict) -> tuple[str, str]:
    return data["task"].get("size_unit", "px"), data["task"].get("contrast_unit", "fraction")


def summary(data: dict) -> list[str]:
    observers = list(dict.fromkeys(r["observer"] for r in data["detectability"]))
    reference, key = reference_of(data)
    banded = bool(data["band_above_lr_nyquist"])
    head = ["method"]
    for o in observers:
        head += [f"{o.upper()} mean AUC", f"{o.upper()} classes below / above {reference}"]
    head += ["PSNR / SSIM (signal-absent, mean of sources)"]
    if banded:
        head += ["above LR Nyquist: power / correlation", "first octave above it: power / correlation"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    n = len(data["task"]["classes"])
    for method in data["methods"]:
        cells = [method]
        for o in observers:
            rows = rows_of(data, method, o)
            mean = sum(r["auc"] for r in rows) / len(rows)
            below = sum(r.get(f"{key}_high", 0) < 0 for r in rows)
            above = sum(r.get(f"{key}_low", 0) > 0 for r in rows)
            cells += [f"{mean:.3f}", "-" if method == reference else f"{below} / {above} of {n}"]
        quality = data["signal_absent_quality"][method]
        q = quality.get("mean of sources") or next(iter(quality.values()))
        cells.append(f"{q['psnr']:.2f} / {q['ssim']:.4f}" if method != TRUTH else "-")
        if not banded:
            lines.append("| " + " | ".join(cells) + " |")
            continue
        band = data["band_above_lr_nyquist"][method]
        b = band.get("all images") or next(iter(band.values()))
        cells.append(f"{b['power_ratio']:.2f} / {b['correlation']:.2f}" if method != TRUTH else "1 / 1")
        octave = (b.get("octave_power_ratio", math.nan), b.get("octave_correlation", math.nan))
        cells.append(f"{octave[0]:.2f} / {octave[1]:.2f}" if method != TRUTH else "1 / 1")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def per_class(data: dict, methods: list[str], observer: str = "cho") -> list[str]:
    reference, key = reference_of(data)
    size_unit, contrast_unit = units_of(data)
    lines = ["| method | " + " | ".join(f"{s:g} {size_label(size_unit).removeprefix('HR ')} / "
                                       f"{contrast_label(c, contrast_unit)}" for s, c in data["task"]["classes"])
             + " |", "|---" * (1 + len(data["task"]["classes"])) + "|"]
    for method in methods:
        cells = []
        for r in rows_of(data, method, observer):
            mark = ""
            if method != reference and f"{key}_high" in r:
                mark = " **(-)**" if r[f"{key}_high"] < 0 else " (+)" if r[f"{key}_low"] > 0 else ""
            cells.append(f"{r['auc']:.3f} [{r['auc_low']:.2f}, {r['auc_high']:.2f}]{mark}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def band_table(data: dict, methods: list[str]) -> list[str]:
    sources = list(dict.fromkeys(s for m in methods if m != TRUTH for s in data["band_above_lr_nyquist"][m]))
    lines = ["| method | " + " | ".join(sources) + " |", "|---" * (1 + len(sources)) + "|"]
    for m in methods:
        if m == TRUTH:
            continue
        band = data["band_above_lr_nyquist"][m]
        lines.append(f"| {m} | " + " | ".join(f"{band[s]['power_ratio']:.2f} / {band[s]['correlation']:.2f} "
                                               f"(octave {band[s].get('octave_power_ratio', math.nan):.2f} / "
                                               f"{band[s].get('octave_correlation', math.nan):.2f})"
                                               for s in sources) + " |")
    return lines


def card_findings(data: dict, method: str, command: str) -> dict:
    """The small_findings of one model's card: its CHO rows against bicubic's, its band statistics."""
    if reference_of(data)[0] != REFERENCE:
        return card_findings_against(data, method, command)
    model = {(r["size"], r["contrast"]): r for r in rows_of(data, method, "cho")}
    bicubic = {(r["size"], r["contrast"]): r for r in rows_of(data, REFERENCE, "cho")}
    auc = []
    for key, r in model.items():
        b = bicubic[key]
        auc.append({"size": key[0], "contrast": key[1],
                    "bicubic": [round(b["auc"], 6), round(b["auc_low"], 6), round(b["auc_high"], 6)],
                    "model": [round(r["auc"], 6), round(r["auc_low"], 6), round(r["auc_high"], 6)],
                    "difference": [round(r["auc_vs_bicubic"], 6), round(r["auc_vs_bicubic_low"], 6),
                                   round(r["auc_vs_bicubic_high"], 6)]})
    below = [a for a in auc if a["difference"][2] < 0]
    above = [a for a in auc if a["difference"][1] > 0]
    band_model, band_bicubic = data["band_above_lr_nyquist"][method], data["band_above_lr_nyquist"][REFERENCE]
    keys = ("power_ratio", "correlation", "octave_power_ratio", "octave_correlation")
    band = {s: {"bicubic": [round(band_bicubic[s][k], 6) for k in keys], "model": [round(v[k], 6) for k in keys]}
            for s, v in band_model.items()}
    mean = sum(a["model"][0] for a in auc) / len(auc)
    mean_b = sum(a["bicubic"][0] for a in auc) / len(auc)
    everything = band.get("all images") or next(iter(band.values()))
    text = (f"On the test split ({data['images']} images; faint smooth discs inserted at known positions), the "
            f"channelized Hotelling observer finds them in this model's output with mean AUC {mean:.3f} over "
            f"{len(auc)} size x contrast classes, bicubic's {mean_b:.3f}; below bicubic beyond the interval of "
            f"the difference in {len(below)} class(es), above it in {len(above)}. Above the LR Nyquist "
            f"frequency, in its first octave, its signal-absent output holds {everything['model'][2]:.2f}x the "
            f"truth's power with correlation {everything['model'][3]:.2f} to it (bicubic "
            f"{everything['bicubic'][2]:.2f}x, {everything['bicubic'][3]:.2f}).")
    p = data["protocol"]
    return {"text": text, "observer": "CHO",
            "protocol": f"the test split, x{p['scale']} {p['degradation']}, {p['crop']} px centre crops",
            "command": command, "auc": auc, "band": band}


def card_findings_against(data: dict, method: str, command: str) -> dict:
    """The small_findings of a model scored against another reference than bicubic (CT: the FBP input): its
    CHO rows against the reference's, with the units of the task (no band statistics: the LR grid is the HR's)."""
    reference, key = reference_of(data)
    size_unit, contrast_unit = units_of(data)
    model = {(r["size"], r["contrast"]): r for r in rows_of(data, method, "cho")}
    ref = {(r["size"], r["contrast"]): r for r in rows_of(data, reference, "cho")}

    def triple(r: dict, name: str = "auc") -> list[float]:
        return [round(r[name], 6), round(r[f"{name}_low"], 6), round(r[f"{name}_high"], 6)]

    auc = [{"size": k[0], "contrast": k[1], "reference": triple(ref[k]), "model": triple(r),
            "difference": triple(r, key)} for k, r in model.items()]
    below = sum(a["difference"][2] < 0 for a in auc)
    above = sum(a["difference"][1] > 0 for a in auc)
    mean, mean_ref = (sum(a[part][0] for a in auc) / len(auc) for part in ("model", "reference"))
    sizes, contrasts = data["task"]["sizes"], data["task"]["contrasts"]
    text = (f"On the test split ({data['images']} slices; faint smooth discs of {min(sizes):g}-{max(sizes):g} "
            f"{size_unit} at {min(contrasts):g}-{max(contrasts):g} {contrast_unit} inserted at known positions inside "
            f"the body), the channelized Hotelling observer finds them in this model's output with mean AUC "
            f"{mean:.3f} over {len(auc)} size x contrast classes, the {reference} input's {mean_ref:.3f}; below "
            f"it beyond the interval of the difference in {below} class(es), above it in {above}.")
    p = data["protocol"]
    crop = "whole slices" if p.get("crop") is None else f"{p['crop']} px centre crops"
    return {"text": text, "observer": "CHO", "reference": reference, "size_unit": size_unit,
            "contrast_unit": contrast_unit,
            "protocol": f"the test split, {p['degradation']} at scale {p['scale']}, {crop}",
            "command": command, "auc": auc}


def main() -> None:
    parser = _bench.parser(__doc__)
    parser.add_argument("json", type=Path)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--methods", help="comma-separated methods for the per-class table and the plot")
    parser.add_argument("--cards", action="store_true", help="write small_findings into the bundled cards")
    parser.add_argument("--command", default="", help="the command that made the JSON, for the cards")
    parser.add_argument("--note", action="append", default=[], metavar="MODEL=TEXT",
                        help="a sentence added to one model's card finding; repeatable")
    args = _bench.parse(parser)
    data = json.loads(args.json.read_text())
    methods = args.methods.split(",") if args.methods else list(data["methods"])
    p = data["protocol"]
    reference, _ = reference_of(data)
    size_unit, contrast_unit = units_of(data)
    described = (f"x{p['scale']} {p['degradation']}, {p['crop']} px centre crops" if reference == REFERENCE else
            f"{p['degradation']} at scale {p['scale']}, "
            f"{'whole slices' if p.get('crop') is None else str(p['crop']) + ' px centre crops'}")
    units = ("diameter HR px, contrast" if reference == REFERENCE
             else f"diameter {size_label(size_unit)}, contrast {contrast_unit}")
    lines = [f"{data['images']} images ({', '.join(f'{k} {v}' for k, v in data['sources'].items())}), "
             f"{described}, seed {p['seed']}; classes ({units}): {data['task']['classes']}", "", *summary(data), "",
             f"CHO AUC [95 % interval] per class; (-) / (+): below / above {reference} beyond the interval of the "
             "difference:", "", *per_class(data, methods)]
    if data["band_above_lr_nyquist"]:
        lines += ["", "Above the LR Nyquist, signal-absent outputs: power / truth's, correlation with truth, per "
                  "source:", "", *band_table(data, methods)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        task = data["task"]
        title = (f"x{p['scale']} {p['degradation']}" if reference == REFERENCE else p["degradation"])
        plot_rows(data["detectability"], args.plot, sizes=task["sizes"], contrasts=task["contrasts"],
                  methods=methods, title=f"{title}, {data['images']} images", size_unit=size_unit,
                  contrast_unit=contrast_unit)
    if args.cards:
        for method in data["methods"]:
            path = WEIGHTS / f"{method}.yaml"
            if path.is_file():
                card = read_card(path)
                findings = card_findings(data, method, args.command)
                notes = [text for name, _, text in (n.partition("=") for n in args.note) if name == method]
                findings["text"] = " ".join([findings["text"], *notes])
                write_card(replace(card, small_findings=findings), path)
                print(f"updated {path.relative_to(ROOT)}")
        write_markdown_cards(ROOT / "docs" / "models")


if __name__ == "__main__":
    main()
