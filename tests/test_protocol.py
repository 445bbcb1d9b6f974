"""One scoring protocol, one image finder, one model getter, one settings object (issue 11)."""

from __future__ import annotations

import ast
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

import medsr
from medsr.cli import app
from medsr.data.manifest import build_manifest
from medsr.degrade import seeded_rng
from medsr.degrade.files import degrade_files
from medsr.errors import ConfigError
from medsr.infer import InferenceSettings
from medsr.infer.files import collect_sources
from medsr.io.find import expand_inputs, find_images, image_key
from medsr.protocol import Protocol
from medsr.scores import ScoreRow, headline
from medsr.train.config import RESUMABLE, TrainConfig
from medsr.train.trainer import train

DATA = Path(__file__).parent / "data"
SRC = Path(medsr.__file__).parent
COLUMNS = ("path", "patient_id", "split", "modality", "width", "height", "channels", "bit_depth", "source")


def _manifest(folder: Path, n_train: int = 4, n_val: int = 3, size: int = 56) -> Path:
    """Smooth 8-bit images in two sub-folders, and a manifest naming them (val images in both sources)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_train + n_val):
        source = "a" if i % 2 else "b"
        (folder / source).mkdir(parents=True, exist_ok=True)
        image = gaussian_filter(rng.random((size, size + 4 * i)), 1.5)
        image = (image - image.min()) / (image.max() - image.min())
        Image.fromarray(np.uint8(np.rint(image * 255)), "L").save(folder / source / f"img{i}.png")
        split = "train" if i < n_train else "val"
        rows.append([f"{source}/img{i}.png", f"p{i}", split, "OT", size + 4 * i, size, 1, 8, source])
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return manifest


@pytest.mark.parametrize(("degradation", "max_size"), [("realistic", None), ("bicubic", 40)])
def test_logged_validation_equals_medsr_evaluate_on_the_val_split(tmp_path, degradation, max_size):
    """The number a run logs and the number `medsr evaluate --split val` prints come from one code path."""
    manifest = _manifest(tmp_path / "data")
    config = TrainConfig(
        manifest=str(manifest), model="plainrep", scale=2, patch_size=16, batch_size=2, patches_per_image=2,
        epochs=1, num_workers=0, lr=1e-3, pixel_loss="l1", degradation=degradation, val_max_size=max_size,
        out=str(tmp_path / "run"), threads=1, tensorboard=False, save_every_steps=100,
    )
    run_dir = train(config)
    logged = list(csv.DictReader((run_dir / "metrics.csv").open()))[-1]
    checkpoint = run_dir / "checkpoints" / "netG_2x_epoch1.safetensors"
    args = ["evaluate", "--model", str(checkpoint), "--manifest", str(manifest), "--split", "val",
            "--degradation", degradation, "--device", "cpu", "--baselines", "bicubic", "--json",
            str(tmp_path / "e.json")]
    result = CliRunner().invoke(app, args + (["--max-size", str(max_size)] if max_size else []))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["methods"][checkpoint.name]["images"] == 3
    # the logged figure is the mean of sources (val holds two images of source b and one of a)
    methods = report["sources"]["mean of sources"]
    per_image = report["methods"][checkpoint.name]["psnr"]
    assert abs(per_image - methods[checkpoint.name]["psnr"]) > 1e-3
    assert methods[checkpoint.name]["psnr"] == pytest.approx(float(logged["val_psnr"]), abs=0.01)
    assert methods[checkpoint.name]["ssim"] == pytest.approx(float(logged["val_ssim"]), abs=1e-4)
    assert methods["bicubic"]["psnr"] == pytest.approx(float(logged["bicubic_psnr"]), abs=0.01)
    # and each source's figures, logged a row per source, are evaluate's rows for that source
    by_source = {row["source"]: row for row in csv.DictReader((run_dir / "val_sources.csv").open())}
    assert set(by_source) == {"a", "b"} and {row["epoch"] for row in by_source.values()} == {"1"}
    for source, row in by_source.items():
        scores = report["sources"][source]
        assert scores[checkpoint.name]["psnr"] == pytest.approx(float(row["val_psnr"]), abs=0.01)
        assert scores[checkpoint.name]["ssim"] == pytest.approx(float(row["val_ssim"]), abs=1e-4)
        assert scores["bicubic"]["psnr"] == pytest.approx(float(row["bicubic_psnr"]), abs=0.01)
    assert by_source["a"]["val_psnr"] != by_source["b"]["val_psnr"]


def test_random_degradations_are_seeded_by_the_path_below_the_root(tmp_path):
    """Moving the data folder, or scoring one file among others, does not change an image's LR."""
    assert image_key(tmp_path / "x" / "a.png", tmp_path) == "x/a.png"
    assert image_key(tmp_path / "a.png", tmp_path / "elsewhere") == "a.png"
    hr = np.random.default_rng(0).random((32, 32, 1)).astype(np.float32)
    image = medsr.MedicalImage(pixels=hr, format="png", bit_depth=8, value_range=(0.0, 255.0))
    protocol = Protocol(scale=4, degradation="realistic")
    np.testing.assert_array_equal(protocol.pair(image, "x/a.png").lr, protocol.pair(image, "x/a.png").lr)
    assert not np.array_equal(protocol.pair(image, "x/a.png").lr, protocol.pair(image, "x/b.png").lr)
    assert seeded_rng(0, "k").random() == seeded_rng(0, "k").random() != seeded_rng(1, "k").random()


def test_every_command_finds_the_same_images(tmp_path):
    """One image finder: DICOM under .dcm/.dicom/.dic/.ima and without a suffix, for every command."""
    folder = tmp_path / "study"
    (folder / "series").mkdir(parents=True)
    for name in ("a.dcm", "b.dicom", "c.dic", "d.IMA", "series/1.2.840.99"):
        shutil.copy(DATA / "ct_small.dcm", folder / name)
    shutil.copy(DATA / "xray_b343e657.png", folder / "x.png")
    (folder / "notes.txt").write_text("not an image")
    (folder / ".hidden.png").write_bytes((DATA / "xray_b343e657.png").read_bytes())
    expected = {"a.dcm", "b.dicom", "c.dic", "d.IMA", "series/1.2.840.99", "x.png"}

    rows, skipped = build_manifest([folder], tmp_path / "m.csv")
    assert {r.path.relative_to(folder).as_posix() for r in rows} == expected and not skipped
    sources, failures = collect_sources([str(folder)])  # upscale's older name of the one expander
    assert {s.relative.as_posix() for s in sources} == expected and not failures
    items, failures = expand_inputs([folder, str(folder / "*.dcm"), folder / "x.png", tmp_path / "nope.png",
                                     str(tmp_path / "*.tif")])
    # the glob's and the named file's images were found in the folder already: each is kept once, in order
    assert [item.key for item in items] == [p.relative_to(folder).as_posix() for p in find_images(folder)]
    assert failures == [(str(tmp_path / "nope.png"), "no such file or folder"),
                        (str(tmp_path / "*.tif"), "no files match this pattern")]
    written, failures = degrade_files([folder], tmp_path / "lr", "bicubic", 4)
    assert {p.relative_to(tmp_path / "lr").as_posix() for p in written} == expected and not failures
    assert medsr.read_image(tmp_path / "lr" / "series" / "1.2.840.99").format == "dicom"  # DICOM stays DICOM


def test_load_model_is_the_one_getter_and_owns_the_cache(tmp_path):
    default = medsr.load_model()
    assert default is medsr.load_model(medsr.DEFAULT_MODEL) and default.meta["name"] == medsr.DEFAULT_MODEL
    assert medsr.load_model(default) is default  # a module passes through
    assert medsr.load_model(cache=False) is not default
    with pytest.raises(ConfigError):
        medsr.load_model(3.5)


def test_inference_settings_are_validated_once():
    assert InferenceSettings().tile == 512 and InferenceSettings().with_(tile=256).tile == 256
    for bad in ({"tile": 4}, {"overlap": 300}, {"batch_size": 0}, {"backend": "tensorrt"},
                {"precision": "fp8"}, {"backend": "onnxruntime", "precision": "bf16"}):
        with pytest.raises(ConfigError):
            InferenceSettings(**bad)


def test_train_options_are_the_config_settings(tmp_path):
    """Each `medsr train` flag lands in the saved config under its TrainConfig name."""
    manifest = _manifest(tmp_path / "data")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "train", "--manifest", str(manifest), "--model", "plainrep", "--scale", "2", "--patch-size", "16",
        "--batch-size", "2", "--patches-per-image", "1", "--patch-candidates", "3", "--epochs", "1",
        "--num-workers", "0", "--max-steps", "1", "--threads", "1", "--pixel-loss", "l1", "--lr", "0.002",
        "--no-global-skip", "--val-max-size", "32", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    saved = TrainConfig.load(out / "config.yaml")
    assert (saved.model, saved.scale, saved.patch_candidates, saved.lr, saved.global_skip, saved.val_max_size) == (
        "plainrep", 2, 3, 0.002, False, 32)
    resumed = CliRunner().invoke(app, ["train", "--resume", str(out), "--lr", "0.1"])
    assert isinstance(resumed.exception, ConfigError) and "(got lr)" in str(resumed.exception)
    assert set(RESUMABLE) <= {f.name for f in TrainConfig.cli_fields()}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_lower_layers_never_import_evaluate_cli_or_app():
    for package in ("io", "data", "models", "infer", "degrade"):
        for path in (SRC / package).rglob("*.py"):
            upward = {m for m in _imports(path) if m.split(".")[:2] in (["medsr", "evaluate"], ["medsr", "cli"],
                                                                         ["medsr", "app"])}
            assert not upward, f"{path.relative_to(SRC)} imports {upward}"


def _folder_graph() -> dict[str, set[str]]:
    """Top-level module or package of medsr -> those it imports (any depth, at import time or lazily)."""
    graph: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        unit = path.relative_to(SRC).parts[0].removesuffix(".py")
        targets = {m.split(".")[1] for m in _imports(path) if m.startswith("medsr.")}
        graph.setdefault(unit, set()).update(targets - {unit})
    return graph


def test_no_import_cycles_between_folders():
    """The arrows point one way: no package or module of medsr reaches itself through another."""
    graph = _folder_graph()

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return [*path, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [" -> ".join(found) for unit in sorted(graph) if (found := cycle_from(unit))]
    assert not cycles, cycles
    assert "protocol" not in graph["degrade"] and "data" not in graph["protocol"]


def test_protocol_from_config_is_training_validation_and_for_model_checks_the_scale(tmp_path):
    config = TrainConfig(manifest=str(_manifest(tmp_path)), scale=2, degradation="ct-sparse-view", patch_size=32,
                         degradation_params={"n_angles": 90}, value_range=[-1024.0, 3071.0], seed=7,
                         val_max_size=48)
    protocol = Protocol.from_config(config, max_size=config.val_max_size)
    assert protocol == Protocol(scale=2, degradation="ct-sparse-view", degradation_params={"n_angles": 90},
                                value_range=[-1024.0, 3071.0], max_size=48)  # seed 0 as evaluate, not 7
    assert Protocol(scale=None).for_model((4, 4)).scale == 4
    assert Protocol(scale=None).for_model((4, 4), {"value_range": [-1024, 3071]}).value_range == (-1024.0, 3071.0)
    with pytest.raises(ConfigError, match="needs x2x2"):
        Protocol(scale=2).for_model((4, 4))
    with pytest.raises(ConfigError, match="pass --scale"):
        Protocol(scale=None, degradation="ct-sparse-view").for_model((1, 1))
    with pytest.raises(ConfigError, match="sinogram"):
        Protocol(scale=4, degradation="ct-sinogram").for_model((1, 4))


def test_score_rows_and_headline_weigh_every_source_alike():
    rows = [ScoreRow("m", 4, psnr, 0.5, image=f"{i}", source=source)
            for i, (psnr, source) in enumerate([(30.0, "a"), (32.0, "a"), (40.0, "b")])]
    assert headline(rows, "m") == (pytest.approx((31.0 + 40.0) / 2), pytest.approx(0.5))
    assert headline([ScoreRow("m", 4, 30.0, 0.4), ScoreRow("m", 4, 40.0, 0.6)], "m") == (35.0, 0.5)
    line = {"image": "x.png", "source": "", "method": "bicubic", "scale": "4", "psnr": "31.5", "ssim": "0.9"}
    assert ScoreRow.from_dict(line) == ScoreRow("bicubic", 4, 31.5, 0.9, image="x.png")


def test_cli_commands_stay_thin():
    tree = ast.parse((SRC / "cli.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command" for d in node.decorator_list):
            body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body  # past the docstring
            lines = body[-1].end_lineno - body[0].lineno + 1
            assert lines <= 40, f"medsr {node.name} has {lines} lines of body"
