import csv
import dataclasses
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import tiny_overrides
from kirinuki.errors import DataError
from kirinuki.checkpoint import load_checkpoint, without_training_state
from kirinuki.config import LossConfig, OptimConfig, load_config, parse_override
from kirinuki.train import alpha_loss, lr_at, train


def test_lr_schedule():
    cfg = OptimConfig(lr=1.0, warmup_steps=10, decay_steps=100, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.1)
    assert lr_at(9, cfg) == pytest.approx(1.0)
    assert lr_at(10, cfg) == pytest.approx(1.0)
    assert lr_at(60, cfg) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(110, cfg) == pytest.approx(0.1)
    assert lr_at(10_000, cfg) == pytest.approx(0.1)
    assert lr_at(500, OptimConfig(lr=2e-4)) == 2e-4  # the paper: flat
    # decay over a time budget: the share of it spent replaces the step count
    assert lr_at(5, cfg, progress=0.9) == pytest.approx(0.6)  # still warming up
    assert lr_at(500, cfg, progress=0.5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_at(500, cfg, progress=1.3) == pytest.approx(0.1)


def test_loss_terms():
    t = torch.zeros(1, 1, 16, 16)
    t[..., 4:12, 4:12] = 1
    cfg = LossConfig(mse=1, l1=1, gradient=1, laplacian=1)
    zero, parts = alpha_loss(t.clone(), t, cfg)
    assert float(zero) == 0 and set(parts) == {"mse", "l1", "gradient", "laplacian"}
    p = t.clone()
    p[..., 4:12, 4] = 0.5  # a softened edge column: 8 pixels off by 0.5
    loss, parts = alpha_loss(p, t, LossConfig(mse=1, l1=0))
    assert parts["mse"] == pytest.approx(8 * 0.25 / 256)
    _, parts = alpha_loss(p, t, LossConfig(mse=0, l1=1, gradient=1))
    assert parts["l1"] == pytest.approx(8 * 0.5 / 256) and parts["gradient"] > 0


def test_region_terms_punish_a_lost_region_more_than_a_soft_edge():
    t = torch.zeros(2, 1, 16, 16)
    t[:, :, 4:12, 4:12] = 1
    cfg = LossConfig(mse=0, bce=1, iou=1)
    _, perfect = alpha_loss(t.clone(), t, cfg)
    assert perfect["iou"] == pytest.approx(0, abs=1e-6) and perfect["bce"] < 1e-4
    soft = t.clone()
    soft[:, :, 4:12, 4] = 0.5          # a softened edge: 8 pixels off by 0.5
    lost = t.clone()
    lost[:, :, 4:6, 4:12] = 0.0        # a lost strip: 16 pixels off by 1
    _, s = alpha_loss(soft, t, cfg)
    _, l = alpha_loss(lost, t, cfg)
    _, s1 = alpha_loss(soft, t, LossConfig(mse=0, l1=1))
    _, l1 = alpha_loss(lost, t, LossConfig(mse=0, l1=1))
    # L1 sees the lost strip as 4x the soft edge; the region terms as far more.
    assert l1["l1"] / s1["l1"] == pytest.approx(4)
    assert l["bce"] / s["bce"] > 10 and l["iou"] / s["iou"] > 3.5
    # An empty picture predicted empty costs nothing under the IoU term.
    _, empty = alpha_loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), cfg)
    assert empty["iou"] == pytest.approx(0)


def test_presets_are_the_documented_recipes():
    paper = load_config("paper")
    assert (paper.model.name, paper.batch, paper.sizes, paper.optim.lr, paper.optim.betas) == \
        ("unet-paper", 16, (256,), 2e-4, (0.5, 0.999))
    assert (paper.loss.mse, paper.loss.l1, paper.data.bg_scene, paper.data.p_jpeg) == (1.0, 0.0, 0.0, 0.0)
    assert (paper.data.bg_white, paper.data.bg_light, paper.data.bg_dark, paper.data.bg_black) == (0.4, 0.4, 0.1, 0.1)
    default = load_config("default")
    assert default.model.name == "kirinet" and default.data.bg_scene > 0 and default.loss.l1 > 0
    lite = load_config("lite")
    assert (lite.model.name, lite.model.pretrained, lite.loss.bce, lite.loss.iou) == ("kirilite", True, 1.0, 1.0)
    # the same synthesis plus tiled patterns and one character per picture: otherwise only the
    # network and the loss differ
    assert lite.data.p_pattern > 0 and lite.data.p_two == 0 < default.data.p_two
    # ... and the cartoon characters as a group of their own at painted's weight (docs/ablation.md)
    assert lite.data.groups == {**default.data.groups, "train/cartoon": 1.5}
    assert dataclasses.replace(lite.data, p_pattern=default.data.p_pattern, p_two=default.data.p_two,
                               groups=default.data.groups) == default.data
    with pytest.raises(ValueError, match="unknown key"):
        load_config("default", overrides=[parse_override("optim.nope=1")])


def test_short_run_writes_checkpoint_and_logs(tiny_data, tmp_path):
    cfg = load_config("default", overrides=tiny_overrides(steps=3, val_every=3))
    result = train(cfg, tiny_data, tmp_path, val_root=tiny_data / "val", progress=False)
    assert result.step == 3
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 3 and state["arch"] == "kirinet" and "optimizer" in state
    assert state["config"]["model"]["args"]["widths"] == [8, 16]
    assert "psnr" in state["metrics"]
    rows = list(csv.DictReader(open(tmp_path / "train_log.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3] and all(math.isfinite(float(r["loss"])) for r in rows)
    assert (tmp_path / "val_log.csv").exists() and (tmp_path / "best.pt").exists()


def test_validation_scenes_come_from_their_own_folder(tiny_data, tmp_path):
    """Scene validation composites on the validation backgrounds, never the training ones."""
    from conftest import synthetic_background

    val_bg = tmp_path / "val-backgrounds"
    val_bg.mkdir()
    synthetic_background(np.random.default_rng(9)).save(val_bg / "v.jpg")
    cfg = load_config("default", overrides=tiny_overrides(steps=1, val_every=1))
    train(cfg, tiny_data, tmp_path / "a", val_root=tiny_data / "val", val_backgrounds=val_bg,
          progress=False)
    header = open(tmp_path / "a" / "val_log.csv").readline()
    assert "64/scene/psnr" in header
    with pytest.raises(DataError, match="validation backgrounds"):
        train(cfg, tiny_data, tmp_path / "b", val_root=tiny_data / "val", val_backgrounds=tmp_path / "none",
              progress=False)


def test_decay_over_a_time_budget(tiny_data, tmp_path):
    """Each step's rate is the cosine at the share of the budget spent when it began: between
    the cosine at the time it was logged and at the time the step before it was logged."""
    cfg = load_config("default", overrides=tiny_overrides(
        minutes=0.05, optim={"lr": 1e-3, "warmup_steps": 0, "min_lr_ratio": 0.1, "decay_over_minutes": True}))
    train(cfg, tiny_data, tmp_path, progress=False)
    rows = list(csv.DictReader(open(tmp_path / "train_log.csv")))
    lrs, seconds = [float(r["lr"]) for r in rows], [float(r["seconds"]) for r in rows]
    assert len(lrs) >= 2 and lrs[-1] < lrs[0] and seconds[-1] >= 0.9 * 3  # the budget was spent
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # falls with the time spent, never rises
    for lr, begun, logged in zip(lrs, [0.0, *seconds], seconds):
        assert lr_at(0, cfg.optim, (logged + 0.01) / 3) <= lr <= lr_at(0, cfg.optim, max(0.0, begun - 0.01) / 3)


def test_resume_continues_bit_for_bit(tiny_data, tmp_path):
    straight = train(load_config("default", overrides=tiny_overrides(steps=4)), tiny_data, tmp_path / "a",
                     progress=False)
    train(load_config("default", overrides=tiny_overrides(steps=2)), tiny_data, tmp_path / "b", progress=False)
    resumed = train(load_config("default", overrides=tiny_overrides(steps=4)), tiny_data, tmp_path / "b",
                    resume=tmp_path / "b" / "last.pt", progress=False)
    assert resumed.step == 4
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and resuming really continued: different from the 2-step weights
    two = load_checkpoint(tmp_path / "b" / "last.pt")
    assert two["step"] == 4


def test_weight_average_is_scored_saved_and_resumed(tiny_data, tmp_path):
    """optim.ema: the checkpoint's model is the moving average of the raw weights training
    goes on from, it moves by the configured decay each step, a resumed run continues it
    bit for bit, and validation logs the raw weights' scores beside the average's."""
    cfg = lambda steps, **extra: load_config("default", overrides=tiny_overrides(
        steps=steps, optim={"lr": 1e-2, "ema": 0.75}, **extra))
    train(cfg(1), tiny_data, tmp_path / "b", progress=False)
    s1 = load_checkpoint(tmp_path / "b" / "last.pt")
    for k in s1["model"]:  # the first step starts the average at the weights themselves
        assert torch.equal(s1["model"][k], s1["train_model"][k]), k
    resumed = train(cfg(2), tiny_data, tmp_path / "b", resume=tmp_path / "b" / "last.pt", progress=False)
    s2 = load_checkpoint(tmp_path / "b" / "last.pt")
    moved = 0
    for k, v in s2["model"].items():
        if v.is_floating_point():
            expected = 0.75 * s1["model"][k] + 0.25 * s2["train_model"][k]
            assert torch.allclose(v, expected, atol=1e-6), k
            moved += int(not torch.equal(v, s2["train_model"][k]))
    assert moved > 0  # the average is not the raw weights
    straight = train(cfg(2), tiny_data, tmp_path / "a", progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k

    train(cfg(2, val_every=2), tiny_data, tmp_path / "v", val_root=tiny_data / "val", progress=False)
    row = next(csv.DictReader(open(tmp_path / "v" / "val_log.csv")))
    assert "raw/64/paper/iou" in row
    best = load_checkpoint(tmp_path / "v" / "best.pt")
    last = load_checkpoint(tmp_path / "v" / "last.pt")
    assert all(torch.equal(best["model"][k], last["model"][k]) for k in best["model"])
    # The logged scores are those of the weights they name: the average, then the raw ones.
    from kirinuki.checkpoint import model_from_checkpoint
    from kirinuki.evaluate import make_cases, score_cases, summarise
    from kirinuki.inference import Matter

    def mean_psnr(state: dict) -> float:
        matter = Matter.from_module(model_from_checkpoint(state), 64, device="cpu")
        records, _ = score_cases(matter, make_cases(tiny_data / "val", tiny_data / "backgrounds", [64],
                                                    ("paper", "scene"), seed=cfg(2).val_seed, limit=cfg(2).val_images))
        return float(np.mean([r["psnr"] for r in summarise(records)]))
    average, raw = mean_psnr(best), mean_psnr({**last, "model": last["train_model"]})
    assert abs(average - raw) > 1e-3
    assert float(row["psnr"]) == pytest.approx(average, abs=1e-4)
    assert float(row["raw/psnr"]) == pytest.approx(raw, abs=1e-4)
    with pytest.raises(ValueError, match="optim.ema"):
        OptimConfig(ema=1.0)


def test_anchor_pulls_each_step_back_towards_the_start(tiny_data, tmp_path):
    """optim.anchor: after the optimiser's step each weight moves lr * anchor of the way back
    to the weights --init-from gave; the start is kept in the checkpoint, a resumed run pulls
    to it bit for bit, and a run with nothing to pull to is refused."""
    cfg = lambda steps, anchor: load_config("default", overrides=tiny_overrides(
        steps=steps, optim={"lr": 1e-2, "warmup_steps": 0, "anchor": anchor}))
    train(cfg(1, 0.0), tiny_data, tmp_path / "start", progress=False)
    start = load_checkpoint(tmp_path / "start" / "last.pt")["model"]
    free = train(cfg(1, 0.0), tiny_data, tmp_path / "free", init_from=tmp_path / "start" / "last.pt",
                 progress=False).model.state_dict()
    pulled = train(cfg(1, 20.0), tiny_data, tmp_path / "pulled", init_from=tmp_path / "start" / "last.pt",
                   progress=False).model.state_dict()
    moved = 0
    for name in pulled:
        if name.endswith(("weight", "bias")):  # parameters; BatchNorm statistics are not pulled
            expected = free[name] + 0.2 * (start[name] - free[name])
            assert torch.allclose(pulled[name], expected, atol=1e-6), name
            moved += int(not torch.equal(free[name], start[name]))
    assert moved > 0
    saved = load_checkpoint(tmp_path / "pulled" / "last.pt")
    assert all(torch.equal(saved["anchor"][k], start[k]) for k in saved["anchor"])
    assert "anchor" not in without_training_state(saved)  # not shipped with derived weights

    straight = train(cfg(3, 20.0), tiny_data, tmp_path / "a", init_from=tmp_path / "start" / "last.pt",
                     progress=False)
    resumed = train(cfg(3, 20.0), tiny_data, tmp_path / "pulled", resume=tmp_path / "pulled" / "last.pt",
                    progress=False)
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    with pytest.raises(ValueError, match="--init-from"):
        train(cfg(1, 1.0), tiny_data, tmp_path / "b", progress=False)
    with pytest.raises(ValueError, match="holds no start"):
        train(cfg(2, 1.0), tiny_data, tmp_path / "c", resume=tmp_path / "start" / "last.pt", progress=False)
    with pytest.raises(ValueError, match="optim.anchor"):
        OptimConfig(anchor=-1.0)


def test_device_placement_trains_and_resumes_bit_for_bit(tiny_data, tmp_path):
    """Cutouts placed on the training device (a worker process sends layer tables): the run
    trains (finite losses), and a resumed run sees the same samples."""
    cfg = lambda steps, workers: load_config("default", overrides=tiny_overrides(
        steps=steps, workers=workers, data={"groups": {"train/a": 2.0, "train/b": 1.0}, "cache_side": 128,
                                            "placement": "device", "p_shadow": 0.5, "p_two": 0.5}))
    straight = train(cfg(4, 1), tiny_data, tmp_path / "a", progress=False)
    rows = list(csv.DictReader(open(tmp_path / "a" / "train_log.csv")))
    assert len(rows) == 4 and all(math.isfinite(float(r["loss"])) for r in rows)
    train(cfg(2, 0), tiny_data, tmp_path / "b", progress=False)
    resumed = train(cfg(4, 0), tiny_data, tmp_path / "b", resume=tmp_path / "b" / "last.pt", progress=False)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_really_starts_from_the_checkpoint(tiny_data, tmp_path):
    """Weights edited in the checkpoint must be the ones the resumed run continues from (a
    run that ignored --resume and retrained from the seed would not see the edit)."""
    cfg = lambda steps: load_config("default", overrides=tiny_overrides(steps=steps))
    train(cfg(2), tiny_data, tmp_path / "a", progress=False)
    state = load_checkpoint(tmp_path / "a" / "last.pt")
    key = next(k for k in state["model"] if k.endswith("weight"))
    state["model"][key] = state["model"][key] + 0.5
    torch.save(state, tmp_path / "edited.pt")
    same = train(cfg(2), tiny_data, tmp_path / "b", resume=tmp_path / "edited.pt", progress=False)
    assert same.step == 2 and torch.equal(same.model.state_dict()[key], state["model"][key])
    on = train(cfg(3), tiny_data, tmp_path / "c", resume=tmp_path / "edited.pt", progress=False)
    plain = train(cfg(3), tiny_data, tmp_path / "d", resume=tmp_path / "a" / "last.pt", progress=False)
    assert (on.model.state_dict()[key] - plain.model.state_dict()[key]).abs().min() > 0.3


def test_resume_keeps_the_best_score_and_the_time_budget(tiny_data, tmp_path):
    cfg = load_config("default", overrides=tiny_overrides(steps=2, val_every=1))
    train(cfg, tiny_data, tmp_path, val_root=tiny_data / "val", progress=False)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["best_psnr"] == load_checkpoint(tmp_path / "best.pt")["metrics"]["psnr"]
    # The latest score was dreadful but the best so far unbeatable: best.pt must stay.
    state["metrics"]["psnr"], state["best_psnr"] = -1000.0, 1000.0
    torch.save(state, tmp_path / "last.pt")
    best_before = (tmp_path / "best.pt").read_bytes()
    train(load_config("default", overrides=tiny_overrides(steps=3, val_every=1)), tiny_data, tmp_path,
          resume=tmp_path / "last.pt", val_root=tiny_data / "val", progress=False)
    assert (tmp_path / "best.pt").read_bytes() == best_before
    # --minutes is the whole run's budget: one already spent trains no further step.
    state = load_checkpoint(tmp_path / "last.pt")
    state["train_seconds"] = 60.0
    torch.save(state, tmp_path / "spent.pt")
    again = train(load_config("default", overrides=tiny_overrides(minutes=0.5)), tiny_data, tmp_path / "e",
                  resume=tmp_path / "spent.pt", progress=False)
    assert again.step == 3


def test_init_from_checks_the_architecture(tiny_data, tmp_path):
    train(load_config("default", overrides=tiny_overrides(steps=1)), tiny_data, tmp_path / "a", progress=False)
    other = tiny_overrides(steps=1)
    other[0]["model"] = {"args": {"widths": [8, 12], "blocks": [1, 1], "head": 4}, "work_size": 64}
    with pytest.raises(ValueError, match="weights are a kirinet"):
        train(load_config("default", overrides=other), tiny_data, tmp_path / "b",
              init_from=tmp_path / "a" / "last.pt", progress=False)
    # The bundled model is a kirilite: from another recipe, the error names the preset that fits.
    with pytest.raises(ValueError, match=r"weights are a kirilite .*--preset lite"):
        train(load_config("default", overrides=tiny_overrides(steps=1)), tiny_data, tmp_path / "c",
              init_from="default", progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("whole_group", [False, True])
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tiny_data, tmp_path, whole_group):
    """To the trainer alone, or to its whole process group as a job scheduler sends it (the
    DataLoader workers too): either way the run saves and exits 0."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "kirinuki", "train", "--data", str(tiny_data), "--out", str(out), "-q",
           "--steps", "100000", "--set", "sizes=[64]", "--set", "batch=4", "--set", "workers=1",
           "--set", 'model.args={widths=[8,16], blocks=[1,1], head=4}',
           "--set", 'data.groups={"train/a"=1.0}', "--set", "data.cache_side=128", "--set", "log_every=1",
           "--set", "ckpt_every=0", "--set", "val_every=0"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=whole_group)
    deadline = time.time() + 120
    while not (out / "train_log.csv").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.2)
    if whole_group:
        os.killpg(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "SIGTERM" in err
    state = load_checkpoint(out / "last.pt")
    assert state["step"] >= 1
