"""The trainer on tiny synthetic data: outputs of a run, exact resume, NaN stop, GAN stage, DDP on gloo."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from medsr.cli import app
from medsr.errors import ConfigError
from medsr.models import load_model
from medsr.net import free_port
from medsr.train.config import TrainConfig
from medsr.train.trainer import METRIC_COLUMNS, Trainer, TrainingError, train

COLUMNS = ("path", "patient_id", "split", "modality", "width", "height", "channels", "bit_depth")


def _make_manifest(folder: Path, n_train: int = 4, n_val: int = 2, size: int = 48) -> Path:
    """Smooth random 8-bit images (so SR has something to learn) and a manifest naming them."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_train + n_val):
        image = gaussian_filter(rng.random((size, size)), 2.0)
        image = (image - image.min()) / (image.max() - image.min())
        name = f"img{i}.png"
        Image.fromarray(np.uint8(np.rint(image * 255)), "L").save(folder / name)
        split = "train" if i < n_train else "val"
        rows.append([name, f"p{i}", split, "OT", size, size, 1, 8])
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return manifest


def _config(tmp_path: Path, name: str = "run", **overrides) -> TrainConfig:
    manifest = tmp_path / "manifest.csv"
    if not manifest.exists():
        _make_manifest(tmp_path)
    settings = dict(
        manifest=str(manifest), model="swift-srgan", scale=2, global_skip=True, patch_size=16, batch_size=2,
        patches_per_image=2, epochs=2, num_workers=0, val_max_size=None, lr=1e-3, pixel_loss="l1",
        save_every_steps=1, log_every_steps=1, out=str(tmp_path / name), threads=1, tensorboard=False,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["generator"]


def test_a_run_writes_metrics_checkpoints_and_config(tmp_path):
    run_dir = train(_config(tmp_path, tensorboard=True))
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0]) == METRIC_COLUMNS
    for row in rows:
        assert float(row["val_psnr"]) > 10 and 0 < float(row["val_ssim"]) <= 1
        assert float(row["bicubic_psnr"]) > 10
        assert row["stage"] == "pretrain" and float(row["loss_pixel"]) > 0
    assert int(rows[1]["step"]) == 2 * (4 * 2 // 2)  # epochs x (images x patches / batch)
    ckpts = run_dir / "checkpoints"
    for name in ("netG_2x_epoch1.safetensors", "netG_2x_epoch2.safetensors", "best.safetensors",
                 "state_epoch1.pt", "state_epoch2.pt", "last.pt"):
        assert (ckpts / name).is_file(), name
    assert not list(ckpts.glob(".medsr-*")), "temporary files left behind"
    model = load_model(ckpts / "netG_2x_epoch2.safetensors")
    assert model.scale == (2, 2) and model.meta["training"]["epoch"] == 2
    assert TrainConfig.load(run_dir / "config.yaml").to_dict() == _config(tmp_path, tensorboard=True).to_dict()
    assert list((run_dir / "tensorboard").iterdir()), "no TensorBoard events"
    assert not (run_dir / "val_sources.csv").exists()  # the manifest names no sources


def test_resume_after_a_stop_mid_epoch_matches_an_unbroken_run(tmp_path):
    unbroken = train(_config(tmp_path, "unbroken"))
    stopped = train(_config(tmp_path, "stopped", max_steps=3))  # 4 steps per epoch: stops inside epoch 1
    assert torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)["batches_done"] == 3
    train(resume=stopped, max_steps=10**9)
    a, b = _weights(unbroken), _weights(stopped)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    rows_a = list(csv.DictReader((unbroken / "metrics.csv").open()))
    rows_b = list(csv.DictReader((stopped / "metrics.csv").open()))
    assert [r["val_psnr"] for r in rows_a] == [r["val_psnr"] for r in rows_b]
    assert [r["loss_pixel"] for r in rows_a] == [r["loss_pixel"] for r in rows_b]


def test_resuming_with_more_epochs_stretches_the_schedule_to_the_new_end(tmp_path):
    run_dir = train(_config(tmp_path, epochs=1, lr=1e-3, max_steps=2))  # stopped half-way through a 4-step plan
    train(resume=run_dir, epochs=3, max_steps=10**9)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3 * 4 and state["sched_g"]["T_max"] == 3 * 4
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-5)  # the cosine floor, 1% of lr
    rates = [float(r["lr"]) for r in csv.DictReader((run_dir / "metrics.csv").open())]
    assert len(rates) == 3 and rates[0] > rates[1] > rates[2], f"the rate did not decay to the new end: {rates}"


@pytest.mark.slow
def test_resume_after_the_process_was_killed(tmp_path):
    config = _config(tmp_path, "killed", epochs=3)
    unbroken = train(_config(tmp_path, "unbroken", epochs=3))
    config.save(tmp_path / "killed.yaml")
    proc = subprocess.Popen([sys.executable, "-m", "medsr", "train", "--config", str(tmp_path / "killed.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if last.exists() and torch.load(last, weights_only=True)["step"] >= 5:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the training process never wrote a step-5 checkpoint")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert torch.load(last, weights_only=True)["step"] < 12, "the run finished before it was killed"
    train(resume=tmp_path / "killed")
    a, b = _weights(unbroken), _weights(tmp_path / "killed")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_without_a_validation_split_best_is_the_latest_epoch(tmp_path):
    _make_manifest(tmp_path, n_train=4, n_val=0)
    run_dir = train(_config(tmp_path, epochs=2))
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert len(rows) == 2 and rows[1]["val_psnr"] == ""
    assert load_model(run_dir / "checkpoints" / "best.safetensors").meta["training"]["epoch"] == 2


def test_a_new_run_refuses_a_folder_that_already_holds_one(tmp_path):
    config = _config(tmp_path, epochs=1)
    run_dir = train(config)
    before = (run_dir / "metrics.csv").read_text()
    with pytest.raises(ConfigError, match="--resume"):
        train(config)
    assert (run_dir / "metrics.csv").read_text() == before


def test_a_nan_loss_stops_with_the_step_and_term_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import medsr.train.steps as steps_module

    real = steps_module.pixel_loss
    calls = {"n": 0}

    def flaky(sr, hr, kind):
        calls["n"] += 1
        loss = real(sr, hr, kind)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(steps_module, "pixel_loss", flaky)
    config = _config(tmp_path)
    with pytest.raises(TrainingError, match=r"'pixel'.*step 3"):
        train(config)
    state = torch.load(Path(config.out) / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["generator"].values() if t.is_floating_point())


def _content_weights(tmp_path: Path) -> Path:
    from torchvision.models import mobilenet_v2

    torch.manual_seed(0)
    path = tmp_path / "mobilenet_v2_random.pt"
    torch.save(mobilenet_v2(weights=None).state_dict(), path)
    return path


def test_gan_stage_trains_generator_and_discriminator_from_a_pretrained_generator(tmp_path):
    pretrain = train(_config(tmp_path, "pre", epochs=1))
    init = pretrain / "checkpoints" / "best.safetensors"
    config = _config(tmp_path, "gan", stage="gan", epochs=1, init_from=str(init),
                     content_weights=str(_content_weights(tmp_path)), pixel_loss="mse", patch_size=32)
    run_dir = train(config)
    row = next(csv.DictReader((run_dir / "metrics.csv").open()))
    assert row["stage"] == "gan"
    for key in ("loss_d", "d_real", "d_fake", "loss_content", "loss_adversarial", "loss_tv"):
        assert row[key] != "" and np.isfinite(float(row[key])), key
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["discriminator"] is not None and state["opt_d"] is not None
    start = load_model(init).state_dict()
    moved = [k for k, v in state["generator"].items() if v.is_floating_point() and not torch.equal(v, start[k])]
    assert moved, "the gan stage did not change the generator"


def test_discriminator_stage_trains_only_the_discriminator_and_the_gan_stage_starts_from_it(tmp_path):
    pretrain = train(_config(tmp_path, "pre", epochs=1))
    init = pretrain / "checkpoints" / "best.safetensors"
    run_dir = train(_config(tmp_path, "disc", stage="discriminator", epochs=2, init_from=str(init), patch_size=32))
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [r["stage"] for r in rows] == ["discriminator", "discriminator"]
    for row in rows:
        assert 0 < float(row["d_real"]) < 1 and 0 < float(row["d_fake"]) < 1 and np.isfinite(float(row["loss_d"]))
        assert row["loss_g"] == ""  # the generator is not trained
    assert rows[0]["val_psnr"] == rows[1]["val_psnr"]  # a frozen generator scores the same every epoch
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    start = load_model(init).state_dict()
    assert all(torch.equal(v, start[k]) for k, v in state["generator"].items()), "the generator moved"
    assert state["opt_g"] is None and state["opt_d"] is not None and state["step"] == 2 * 4
    first = torch.load(run_dir / "checkpoints" / "state_epoch1.pt", weights_only=True)["discriminator"]
    assert any(not torch.equal(first[k], v) for k, v in state["discriminator"].items() if v.is_floating_point())
    saved = torch.load(run_dir / "checkpoints" / "discriminator.pt", weights_only=True)["discriminator"]
    assert all(torch.equal(saved[k], v) for k, v in state["discriminator"].items())
    gan = Trainer(_config(tmp_path, "gan", stage="gan", epochs=1, init_from=str(init), patch_size=32,
                          content_weights=str(_content_weights(tmp_path)),
                          init_discriminator_from=str(run_dir / "checkpoints" / "discriminator.pt")))
    gan._setup_stage("gan", 1)
    assert all(torch.equal(gan.discriminator.state_dict()[k], v) for k, v in saved.items())


def test_both_stages_can_put_a_discriminator_stage_between_pretrain_and_gan(tmp_path):
    config = _config(tmp_path, stage="both", epochs=1, discriminator_epochs=2, gan_epochs=1)
    assert config.stages == [("pretrain", 1), ("discriminator", 2), ("gan", 1)]
    assert _config(tmp_path, stage="both").stages == [("pretrain", 2), ("gan", 5)]  # as before: no such stage
    with pytest.raises(ConfigError, match="--init-from"):
        _config(tmp_path, stage="discriminator").validate()


def test_the_gan_stage_refuses_to_start_without_feature_weights(tmp_path, monkeypatch):
    import medsr.losses as losses

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(losses, "_torchvision_model", offline, raising=False)
    config = _config(tmp_path, stage="both", allow_download=False)
    with pytest.raises(ConfigError, match="content-weights"):
        train(config)
    assert not (Path(config.out) / "checkpoints" / "last.pt").exists(), "it trained before refusing"


def test_cli_train_applies_flags_over_the_yaml_config_and_reports_errors_in_one_line(tmp_path):
    _make_manifest(tmp_path)
    (tmp_path / "base.yaml").write_text(
        f"manifest: {tmp_path / 'manifest.csv'}\nmodel: swift-srgan\nscale: 2\nglobal_skip: true\n"
        "patch_size: 16\nbatch_size: 2\npatches_per_image: 1\nepochs: 5\nnum_workers: 0\nval_max_size: null\n"
        "tensorboard: false\nthreads: 1\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["train", "-c", str(tmp_path / "base.yaml"), "--epochs", "1",
                                 "--out", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    saved = TrainConfig.load(tmp_path / "cli" / "config.yaml")
    assert saved.epochs == 1 and saved.scale == 2 and saved.batch_size == 2
    bad = runner.invoke(app, ["train", "--manifest", str(tmp_path / "missing.csv")])
    assert bad.exit_code != 0
    with pytest.raises(ConfigError, match="unknown setting"):
        TrainConfig.load(None, manifest="x", nonsense=1)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["pretrain", "discriminator", "gan"])
def test_torchrun_with_two_cpu_processes_keeps_identical_weights(tmp_path, stage):
    config = _config(tmp_path, "ddp", epochs=1, max_steps=3, patches_per_image=4)
    if stage == "discriminator":
        pretrained = train(_config(tmp_path, "pre", epochs=1)) / "checkpoints" / "best.safetensors"
        config = _config(tmp_path, "ddp", stage="discriminator", epochs=1, max_steps=3, patches_per_image=4,
                         init_from=str(pretrained), patch_size=32)
    if stage == "gan":
        pretrained = train(_config(tmp_path, "pre", epochs=1)) / "checkpoints" / "best.safetensors"
        config = _config(tmp_path, "ddp", stage="gan", epochs=1, max_steps=3, patches_per_image=4,
                         init_from=str(pretrained), content_weights=str(_content_weights(tmp_path)),
                         patch_size=32)
    config.save(tmp_path / "ddp.yaml")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "medsr", "train", "--config", str(tmp_path / "ddp.yaml")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ranks = json.loads((tmp_path / "ddp" / "ranks.json").read_text())
    for digests in ranks.values():
        assert len(digests) == 2 and digests[0] == digests[1]
    assert ("discriminator_digest" in ranks) == (stage != "pretrain")
    state = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3


def test_the_network_scale_follows_the_degradation_ultrasound_widens_x_only(tmp_path):
    run_dir = train(_config(tmp_path, "us", model="plainrep", degradation="ultrasound", scale=2, epochs=1))
    model = load_model(run_dir / "checkpoints" / "best.safetensors")
    assert tuple(model.scale) == (1, 2)
    assert model(torch.rand(1, 1, 8, 5)).shape == (1, 1, 8, 10)


def test_a_ct_run_learns_on_the_fixed_hu_range_and_records_it_in_the_header(tmp_path):
    hu = gaussian_filter(np.random.default_rng(1).random((40, 40)), 3.0) * 2000 - 1000
    rows = []
    for i in range(3):
        Image.fromarray(np.uint16(np.rint(hu + 1024 + 10 * i))).save(tmp_path / f"ct{i}.png")
        rows.append([f"ct{i}.png", f"p{i}", "val" if i == 2 else "train", "CT", 40, 40, 1, 16])
    with (tmp_path / "ct.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([COLUMNS, *rows])
    config = _config(tmp_path, "ct", manifest=str(tmp_path / "ct.csv"), model="plainrep",
                     degradation="ct-sparse-view", degradation_params={"n_angles": 36}, scale=4, patch_size=24,
                     epochs=1, value_range=[-1024.0, 3071.0], raster_offset=1024.0, modality="CT")
    run_dir = train(config)
    model = load_model(run_dir / "checkpoints" / "best.safetensors")
    assert tuple(model.scale) == (1, 1)
    assert model.meta["value_range"] == [-1024.0, 3071.0] and model.meta["raster_offset"] == 1024.0
    assert model.meta["modality"] == "CT"
    with (run_dir / "metrics.csv").open() as handle:
        row = list(csv.DictReader(handle))[-1]
    # validation scores the sparse-view FBP itself as "bicubic" (scale 1): far from perfect, not NaN
    assert 10.0 < float(row["bicubic_psnr"]) < 60.0


def test_a_larger_plainrep_grows_from_a_smaller_checkpoint_and_records_its_size(tmp_path):
    small = train(_config(tmp_path, "small", model="plainrep", epochs=1,
                          model_args={"num_channels": 8, "num_convs": 3}))
    init = small / "checkpoints" / "best.safetensors"
    config = _config(tmp_path, "large", model="plainrep", epochs=1, init_from=str(init),
                     model_args={"num_channels": 12, "num_convs": 5})
    trainer = Trainer(config)
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():  # it starts with the small model's function
        torch.testing.assert_close(trainer.generator.eval()(x), load_model(init)(x), rtol=0, atol=1e-5)
    run_dir = train(config)
    grown = load_model(run_dir / "checkpoints" / "best.safetensors")
    assert grown.meta["arch_args"]["num_channels"] == 12 and len(grown.convs) == 5


def _make_manifest_with_sources(folder: Path) -> Path:
    """The usual manifest with a source column: training images 0-2 of hospital 'big', 3 of 'small'."""
    manifest = _make_manifest(folder)
    rows = list(csv.reader(manifest.open()))
    rows[0].append("source")
    for index, row in enumerate(rows[1:]):
        row.append("small" if index == 3 else "big")
    with manifest.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return manifest


def test_balance_sources_draws_the_images_of_a_small_source_more_often(tmp_path):
    """Three training images of one hospital and one of another: balanced, the lone image is drawn 3 times."""
    _make_manifest_with_sources(tmp_path)
    plain = Trainer(_config(tmp_path, "plain", model="plainrep"))
    balanced = Trainer(_config(tmp_path, "balanced", model="plainrep", balance_sources=True))
    assert len(plain.train_set) == 4 * 2 and len(balanced.train_set) == 6 * 2
    assert [str(balanced.train_set.store.paths[i]) for i in balanced.train_set._order].count(
        str(tmp_path / "img3.png")) == 3


def test_oversample_draws_images_matching_a_glob_n_times_on_top_of_balancing(tmp_path):
    _make_manifest_with_sources(tmp_path)
    trainer = Trainer(_config(tmp_path, "over", model="plainrep", balance_sources=True,
                              oversample="*/img0.png=2,*/img3.png=2"))
    drawn = [Path(trainer.train_set.store.paths[i]).name for i in trainer.train_set._order]
    # balanced: the lone 'small' image 3x; oversampled: img0 and img3 twice that
    assert {name: drawn.count(name) for name in set(drawn)} == {"img0.png": 2, "img1.png": 1, "img2.png": 1,
                                                               "img3.png": 3 * 2}
    with pytest.raises(ConfigError, match="'\\*/img9.png' matches none of the 4 training images"):
        Trainer(_config(tmp_path, "typo", model="plainrep", oversample="*/img9.png=2"))


@pytest.mark.parametrize(("settings", "message"), [
    ({"oversample": "*/hannover-640/*"}, "oversample must be GLOB=N"),
    ({"oversample": "*.png=0"}, "oversample must be GLOB=N"),
    ({"overlay_prob": 1.2}, "overlay_prob must lie"),
    ({"overlay_prob": 0.3, "degradation": "ct-sparse-view", "scale": 1}, "whole slices"),
    ({"hard_edge_fraction": -0.1}, "hard_edge_fraction"),
])
def test_sampling_settings_out_of_range_are_refused_by_name(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, **settings).validate()


def test_amp_on_the_cpu_runs_convolutions_in_bf16_and_keeps_fp32_weights(tmp_path, monkeypatch):
    import medsr.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: True)
    trainer = Trainer(_config(tmp_path, "amp", model="plainrep", epochs=1, amp=True))
    dtypes = []
    trainer.generator.convs[0].register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    run_dir = trainer.run()
    assert torch.bfloat16 in dtypes  # training steps ran under autocast (validation runs fp32)
    weights = _weights(run_dir)
    assert all(t.dtype == torch.float32 for t in weights.values())
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert np.isfinite(float(rows[-1]["val_psnr"])) and float(rows[-1]["val_psnr"]) > 10


def test_amp_on_a_cpu_without_native_bf16_says_it_will_be_slow(tmp_path, monkeypatch, capsys):
    import medsr.train.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "cpu_has_native_bf16", lambda: False)
    Trainer(_config(tmp_path, "emulated", model="plainrep", amp=True))
    assert "no AVX512-BF16 or AMX" in capsys.readouterr().out
    Trainer(_config(tmp_path, "fp32", model="plainrep"))
    assert "AVX512-BF16" not in capsys.readouterr().out
