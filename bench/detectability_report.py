"""Markdown tables, plots and model-card sections from `medsr detectability --json` output.

    .venv/bin/python bench/detectability_report.py runs/det-test.json --markdown docs/results/detectability/test.md \
        --plot docs/img/detectability-test.png --methods 'original (HR),bicubic,lanczos,xray-x4,...' --cards

Prints (and with --markdown writes) per method: CHO and NPW mean AUC over the size x contrast classes, how many
classes lie below / above bicubic beyond the 95 % interval of the AUC difference, PSNR/SSIM of the
signal-absent outputs (mean of sources) and the detail above the LR Nyquist (power / truth's, correlation);
then the CHO AUC per class and the band statistics per source. --cards writes each bundled model's
"small_findings" into its card (src/medsr/weights/NAME.yaml) and re-renders docs/models.
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

from medsr.detectability import REFERENCE, TRUTH, plot_rows  # noqa: E402
from medsr.models.cards import read_card, write_card, write_markdown_cards  # noqa: E402

WEIGHTS = ROOT / "src" / "medsr" / "weights"


def rows_of(data: dict, method: str, observer: str) -> list[dict]:
    return [r for r in data["detectability"] if r["method"] == method and r["observer"] == observer]


def summary(data: dict) -> list[str]:
    observers = list(dict.fromkeys(r["observer"] for r in data["detectability"]))
    head = ["method"]
    for o in observers:
        head += [f"{o.upper()} mean AUC", f"{o.upper()} classes below / above bicubic"]
    head += ["PSNR / SSIM (signal-absent, mean of sources)", "above LR Nyquist: power / correlation",
             "first octave above it: power / correlation"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    n = len(data["task"]["classes"])
    for method in data["methods"]:
        cells = [method]
        for o in observers:
            rows = rows_of(data, method, o)
            mean = sum(r["auc"] for r in rows) / len(rows)
            below = sum(r.get("auc_vs_bicubic_high", 0) < 0 for r in rows)
            above = sum(r.get("auc_vs_bicubic_low", 0) > 0 for r in rows)
            cells += [f"{mean:.3f}", "-" if method == REFERENCE else f"{below} / {above} of {n}"]
        quality = data["signal_absent_quality"][method]
        q = quality.get("mean of sources") or next(iter(quality.values()))
        cells.append(f"{q['psnr']:.2f} / {q['ssim']:.4f}" if method != TRUTH else "-")
        band = data["band_above_lr_nyquist"][method]
        b = band.get("all images") or next(iter(band.values()))
        cells.append(f"{b['power_ratio']:.2f} / {b['correlation']:.2f}" if method != TRUTH else "1 / 1")
        octave = (b.get("octave_power_ratio", math.nan), b.get("octave_correlation", math.nan))
        cells.append(f"{octave[0]:.2f} / {octave[1]:.2f}" if method != TRUTH else "1 / 1")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def per_class(data: dict, methods: list[str], observer: str = "cho") -> list[str]:
    lines = ["| method | " + " | ".join(f"{s:g} px / {100 * c:g} %" for s, c in data["task"]["classes"]) + " |",
             "|---" * (1 + len(data["task"]["classes"])) + "|"]
    for method in methods:
        cells = []
        for r in rows_of(data, method, observer):
            mark = ""
            if method != REFERENCE and "auc_vs_bicubic_high" in r:
                mark = " **(-)**" if r["auc_vs_bicubic_high"] < 0 else " (+)" if r["auc_vs_bicubic_low"] > 0 else ""
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
    lines = [f"{data['images']} images ({', '.join(f'{k} {v}' for k, v in data['sources'].items())}), "
             f"x{p['scale']} {p['degradation']}, {p['crop']} px centre crops, seed {p['seed']}; classes "
             f"(diameter HR px, contrast): {data['task']['classes']}", "", *summary(data), "",
             "CHO AUC [95 % interval] per class; (-) / (+): below / above bicubic beyond the interval of the "
             "difference:", "", *per_class(data, methods), "",
             "Above the LR Nyquist, signal-absent outputs: power / truth's, correlation with truth, per source:", "",
             *band_table(data, methods)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        task = data["task"]
        plot_rows(data["detectability"], args.plot, sizes=task["sizes"], contrasts=task["contrasts"],
                  methods=methods, title=f"x{p['scale']} {p['degradation']}, {data['images']} images")
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
