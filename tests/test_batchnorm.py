"""BatchNorm statistics recomputed from training composites, alone and inside a run."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_overrides
from kirinuki.batchnorm import refresh_batchnorm, statistics_pictures
from kirinuki.checkpoint import load_checkpoint, model_from_checkpoint
from kirinuki.config import load_config
from kirinuki.cutouts import CutoutLibrary
from kirinuki.data import CompositeDataset, SampleMaker
from kirinuki.train import train


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Dropout(0.5),
                              torch.nn.BatchNorm2d(4, momentum=0.01), torch.nn.ReLU(), torch.nn.Conv2d(4, 1, 1))
    net[2].running_mean.fill_(5.0)  # statistics that describe other weights
    net[2].running_var.fill_(9.0)
    return net


def test_refresh_takes_the_plain_average_over_the_pictures():
    net = _net().train()
    batches = [torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(i)) * (i + 1) for i in range(3)]
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert refresh_batchnorm(net, batches) == 1
    with torch.no_grad():
        conv = [net[0](x) for x in batches]
    mean = torch.stack([c.mean((0, 2, 3)) for c in conv]).mean(0)
    var = torch.stack([c.transpose(0, 1).flatten(1).var(1) for c in conv]).mean(0)
    assert torch.allclose(net[2].running_mean, mean, atol=1e-5)
    assert torch.allclose(net[2].running_var, var, atol=1e-5)
    # (dropout in front of the layer stayed off) the weights, the layer's momentum and every
    # module's mode are as they were
    assert all(torch.equal(net.state_dict()[k], v) for k, v in weights.items())
    assert net[2].momentum == 0.01 and all(m.training for m in net.modules())


def test_refreshed_statistics_give_the_batch_normalisation_in_inference():
    """After a refresh from one batch, inference on that batch matches training mode's
    normalisation: the lagging statistics did not."""
    net = _net()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))

    def batch_normalised() -> torch.Tensor:
        net.eval()
        net[2].train()
        with torch.no_grad():
            out = net(x)
        net.eval()
        return out

    want = batch_normalised()
    net.eval()
    with torch.no_grad():
        before = net(x)
    refresh_batchnorm(net, [x])
    assert not net[2].training  # eval mode kept
    with torch.no_grad():
        after = net(x)
    assert (before - want).abs().max() > 0.1
    assert (after - want).abs().max() < 0.02  # unbiased against biased variance over 1,024 values


def test_refresh_leaves_a_network_without_batchnorm_alone_and_needs_pictures():
    plain = torch.nn.Conv2d(3, 1, 1)
    state = copy.deepcopy(plain.state_dict())
    assert refresh_batchnorm(plain, [torch.rand(1, 3, 4, 4)]) == 0
    assert all(torch.equal(state[k], v) for k, v in plain.state_dict().items())
    net = _net()
    with pytest.raises(ValueError, match="no pictures"):
        refresh_batchnorm(net, [])
    assert net[2].momentum == 0.01


def test_statistics_pictures_are_fixed_and_not_the_runs_samples(tiny_data):
    undegraded = {"groups": {"train/a": 2.0, "train/b": 1.0}, "cache_side": 128,
                  "p_blur": 0.0, "p_rescale": 0.0, "p_noise": 0.0, "p_jpeg": 0.0}
    cfg = load_config("default", overrides=tiny_overrides(data=undegraded))
    library = CutoutLibrary.load(tiny_data, cfg.data)
    first = list(statistics_pictures(cfg, library, 5, 64, torch.device("cpu"), batch=2))
    again = list(statistics_pictures(cfg, library, 5, 64, torch.device("cpu"), batch=2))
    assert [tuple(x.shape) for x in first] == [(2, 3, 64, 64), (2, 3, 64, 64), (1, 3, 64, 64)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert 0.0 <= float(first[0].min()) and float(first[0].max()) <= 1.0
    fp, alpha, bg = CompositeDataset(SampleMaker(library, cfg.data), cfg.seed)[(0, 64)]
    run_sample = (fp.float() + (255 - alpha.float()) * bg.float() / 255) / 255
    assert (first[0][0] - run_sample).abs().mean() > 0.01


def test_a_run_saves_the_refreshed_statistics_it_validated(tiny_data, tmp_path):
    """With val_bn_refresh the weights validated and saved carry the statistics of the fixed
    composites at the training canvas (raw and averaged weights both); the learned weights
    are the same as without."""
    def run(out, refresh):
        cfg = load_config("default", overrides=tiny_overrides(
            steps=2, val_every=2, val_bn_refresh=refresh, sizes=[48], optim={"lr": 1e-2, "ema": 0.5}))
        train(cfg, tiny_data, tmp_path / out, val_root=tiny_data / "val", progress=False)
        return cfg, load_checkpoint(tmp_path / out / "best.pt")

    cfg, on = run("on", 6)
    _, off = run("off", 0)
    library = CutoutLibrary.load(tiny_data, cfg.data)
    for key in ("model", "train_model"):
        expected = model_from_checkpoint({**off, "model": off[key]})
        # at the training canvas (48), not the working size (64)
        refresh_batchnorm(expected, statistics_pictures(cfg, library, 6, 48, torch.device("cpu")))
        stats = [k for k in on[key] if "running" in k]
        assert stats
        for k, v in on[key].items():
            if "running" in k:
                assert torch.allclose(v, expected.state_dict()[k], atol=1e-5), (key, k)
                assert not torch.allclose(v, off[key][k], atol=1e-3), (key, k)
            elif "num_batches" not in k:
                assert torch.equal(v, off[key][k]), (key, k)


def test_refresh_and_held_statistics_exclude_each_other():
    with pytest.raises(ValueError, match="freeze_pretrained_bn"):
        load_config("lite", overrides=[{"val_bn_refresh": 8, "optim": {"freeze_pretrained_bn": True}}])
    with pytest.raises(ValueError, match="val_bn_refresh"):
        load_config("default", overrides=[{"val_bn_refresh": -1}])


def test_the_tool_refreshes_a_copy_of_a_checkpoint(tiny_data, tmp_path):
    cfg = load_config("default", overrides=tiny_overrides(steps=2, sizes=[48]))
    train(cfg, tiny_data, tmp_path, progress=False)
    source = tmp_path / "last.pt"
    before = source.read_bytes()
    tool = [sys.executable, str(Path(__file__).resolve().parents[1] / "tools" / "refresh_batchnorm.py")]
    done = subprocess.run([*tool, str(source), str(tmp_path / "out.pt"), "--data", str(tiny_data), "--samples", "6"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert source.read_bytes() == before
    state, out = load_checkpoint(source), load_checkpoint(tmp_path / "out.pt")
    assert "optimizer" not in out and out["batchnorm_refresh"] == {"samples": 6, "size": 48, "seed": cfg.seed}
    expected = model_from_checkpoint(state)
    refresh_batchnorm(expected, statistics_pictures(cfg, CutoutLibrary.load(tiny_data, cfg.data), 6, 48,
                                                    torch.device("cpu")))
    for k, v in out["model"].items():
        assert torch.allclose(v.float(), expected.state_dict()[k].float(), atol=1e-5), k
    assert any(not torch.allclose(v.float(), state["model"][k].float())  # the copy's statistics moved
               for k, v in out["model"].items() if k.endswith("running_mean"))
    refused = subprocess.run([*tool, str(source), str(source), "--data", str(tiny_data)], capture_output=True, text=True)
    assert refused.returncode != 0 and "overwrite" in refused.stderr
    assert source.read_bytes() == before
