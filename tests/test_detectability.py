"""The detectability task on small synthetic backgrounds: placement, insertion, scoring, determinism, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from medsr import detectability as det
from medsr.cli import app
from medsr.errors import ConfigError
from medsr.io import read_image
from medsr.observers import disc_signal
from medsr.protocol import Item, Protocol

SETTINGS = det.DetectabilitySettings(sizes=(8.0,), contrasts=(0.05, 0.3), crop=128, spacing=32, bootstrap=100)


def backgrounds(folder: Path, count: int = 8) -> list[Item]:
    """``count`` 128x128 8-bit PNGs of smooth random texture around mid-grey (a stand-in for anatomy)."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(count):
        rng = np.random.default_rng(i)
        texture = 0.5 + 0.08 * gaussian_filter(rng.normal(size=(128, 128)), 3.0) / 0.1
        path = folder / f"bg{i}.png"
        Image.fromarray(np.clip(np.rint(texture * 255), 0, 255).astype(np.uint8), "L").save(path)
        items.append(Item(path, path.name, "a" if i % 2 else "b"))
    return items


def test_positions_fit_their_rois_and_classes_are_dealt_evenly():
    settings = det.DetectabilitySettings(sizes=(4.0, 16.0), contrasts=(0.01, 0.02), crop=256, spacing=64)
    signals = det.signal_positions((256, 256), settings, np.random.default_rng(0))
    assert len(signals) == 16 and sorted(np.bincount([s.cls for s in signals])) == [4, 4, 4, 4]
    half = settings.roi_size(16) // 2
    assert all(half <= s.y <= 256 - half and half <= s.x <= 256 - half for s in signals)
    again = det.signal_positions((256, 256), settings, np.random.default_rng(0))
    assert again == signals


def test_inserted_disc_has_the_asked_contrast_of_the_local_mean():
    hr = np.full((64, 64, 1), 0.4, dtype=np.float32)
    settings = det.DetectabilitySettings(sizes=(8.0,), contrasts=(0.05,), crop=128, spacing=32)
    out = det.insert_signals(hr, [det.Signal(30, 33, 0)], settings)
    added = out[..., 0] - hr[..., 0]
    assert added[30, 33] == pytest.approx(0.05 * 0.4, rel=1e-5)
    assert added[30, 50] == 0 and added.sum() == pytest.approx(0.02 * disc_signal(11, 8.0).sum(), rel=1e-4)
    rois = det.cut_rois(out, [det.Signal(30, 33, 0)], 16)
    assert rois.shape == (1, 16, 16) and abs(rois.mean()) < 1e-9 and rois[0, 8, 8] == rois.max()


def test_task_scores_truth_above_a_method_that_erases_signals_and_repeats_exactly(tmp_path):
    items = backgrounds(tmp_path / "hr")
    protocol = Protocol(scale=4, degradation="box-noise", max_size=128)

    def flat(lr, size):  # erases everything: every demeaned ROI is zero
        return np.full((*size, lr.shape[2]), 0.5, dtype=np.float32)

    methods = {"bicubic": "bicubic", "flat": flat}
    variants = {"bicubic@0": ("bicubic", det.blended(0.0))}
    result = det.run_detectability(items, protocol, methods, variants, SETTINGS)
    rows = {(r["method"], r["observer"], r["contrast"]): r for r in result.rows}
    assert rows[(det.TRUTH, "cho", 0.3)]["auc"] > 0.95
    assert rows[("bicubic", "cho", 0.3)]["auc"] > 0.6
    flat_row = rows[("flat", "cho", 0.3)]
    assert flat_row["auc"] == 0.5 and flat_row["auc_vs_bicubic_high"] < 0
    assert rows[("bicubic@0", "npw", 0.05)]["auc"] == rows[("bicubic", "npw", 0.05)]["auc"]
    assert all(r["signals"] == 64 and r["images"] == 8 for r in result.rows)
    assert set(result.band["bicubic"]) == {"a", "b", "all images"}
    assert result.band["flat"]["all images"] == {"power_ratio": 0.0, "correlation": 0.0, "octave_power_ratio": 0.0,
                                                 "octave_correlation": 0.0}  # no detail at all
    again = det.run_detectability(items, protocol, methods, variants, SETTINGS)
    assert json.dumps(again.to_json(), default=str) == json.dumps(result.to_json(), default=str)


def test_projection_variant_is_consistent_with_the_noisy_input(tmp_path):
    items = backgrounds(tmp_path / "hr", 1)
    protocol = Protocol(scale=4, degradation="box-noise", max_size=128)
    pair = protocol.pair(read_image(items[0].path), "k")
    bicubic = protocol.baselines(["bicubic"], pair)["bicubic"](pair.lr, (128, 128))
    out = det.projected("box", 4)(bicubic, pair.lr, {})
    blocks = out.reshape(32, 4, 32, 4, 1).mean(axis=(1, 3))
    np.testing.assert_allclose(blocks, pair.lr, atol=1e-5)
    assert det.consistency_kernel("bicubic") == "bicubic"
    with pytest.raises(ConfigError, match="needs a bicubic or box-noise"):
        det.consistency_kernel("realistic")


def test_settings_refuse_overlapping_rois_and_unknown_observers():
    with pytest.raises(ConfigError, match="ROIs would overlap"):
        det.DetectabilitySettings(sizes=(16.0,), spacing=32)
    with pytest.raises(ConfigError, match="unknown observer"):
        det.DetectabilitySettings(observers=("ideal",))
    with pytest.raises(ConfigError, match="include it"):
        det.run_detectability([], Protocol(max_size=512), {"lanczos": "lanczos"})


def test_cli_writes_json_and_plot(tmp_path):
    items = backgrounds(tmp_path / "hr", 6)
    manifest = tmp_path / "m.csv"
    lines = ["path,patient_id,split,modality,width,height,channels,bit_depth,source"]
    lines += [f"hr/{it.path.name},p{i},test,CR,128,128,1,8,{it.source}" for i, it in enumerate(items)]
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "det.json"
    result = CliRunner().invoke(app, [
        "detectability", "--manifest", str(manifest), "--sizes", "8", "--contrasts", "0.3", "--crop", "128",
        "--baselines", "bicubic", "--bootstrap", "100", "--json", str(out), "--plot", str(tmp_path / "det.png")])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["images"] == 6 and data["sources"] == {"a": 3, "b": 3}
    assert {r["method"] for r in data["detectability"]} == {det.TRUTH, "bicubic"}
    assert "CHO AUC" in result.output and (tmp_path / "det.png").read_bytes()[:4] == b"\x89PNG"
    labelled = CliRunner().invoke(app, [
        "detectability", "--manifest", str(manifest), "--sizes", "8", "--contrasts", "0.3", "--crop", "128",
        "--baselines", "", "--bootstrap", "100", "--degradation", "bicubic", "--model", "mine=xray-x4-bicubic",
        "--json", str(out)])
    assert labelled.exit_code == 0, labelled.output
    assert {r["method"] for r in json.loads(out.read_text())["detectability"]} == {det.TRUTH, "bicubic", "mine"}


def test_two_checkpoints_of_one_model_are_two_methods_named_apart(tmp_path):
    import medsr

    earlier = tmp_path / "earlier.safetensors"
    # an earlier version of a bundled model has the same header name
    shutil.copy(Path(medsr.__file__).parent / "weights" / "xray-x4-bicubic.safetensors", earlier)
    protocol = Protocol(scale=4, degradation="bicubic")
    methods, _, descriptions = det.build_methods(["xray-x4-bicubic", str(earlier)], [], protocol)
    assert {"xray-x4-bicubic", "earlier.safetensors"} <= set(methods)
    assert methods["xray-x4-bicubic"] is not methods["earlier.safetensors"]
    assert descriptions["earlier.safetensors"] == f"model {earlier}"
    with pytest.raises(ConfigError, match="already called 'earlier.safetensors'"):
        det.build_methods(["xray-x4-bicubic", str(earlier), str(earlier)], [], protocol)


def test_a_labelled_model_is_named_by_its_label_and_labels_must_differ(tmp_path):
    import medsr

    earlier = tmp_path / "best.safetensors"
    shutil.copy(Path(medsr.__file__).parent / "weights" / "xray-x4-bicubic.safetensors", earlier)
    protocol = Protocol(scale=4, degradation="bicubic")
    methods, _, descriptions = det.build_methods(
        ["v2=xray-x4-bicubic", f"v1={earlier}"], [], protocol, fidelities=[0.5])
    assert list(methods) == ["bicubic", "v2", "v1"]
    assert descriptions["v1"] == f"model {earlier}" and descriptions["v2"] == "model xray-x4-bicubic"
    _, variants, _ = det.build_methods([f"v1={earlier}"], [], protocol, fidelities=[0.5])
    assert variants["v1+project@0.5"][0] == "v1"  # variants follow the label
    assert det.model_spec(f"a=b={earlier}") == ("a=b", str(earlier))  # the last '=' ends the label
    for bad in ([f"v1={earlier}", "v1=xray-x4-bicubic"], ["bicubic=xray-x4-bicubic"], [f"{det.TRUTH}={earlier}"]):
        with pytest.raises(ConfigError, match="already called"):
            det.build_methods(bad, [], protocol)
    with pytest.raises(ConfigError, match="after the '='"):
        det.model_spec("v1=")
