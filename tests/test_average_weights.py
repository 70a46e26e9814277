"""The weight-average tool: a point on the line between two checkpoints of one architecture."""

import subprocess
import sys
from pathlib import Path

import torch

from conftest import TINY_KIRINET, tiny_overrides
from kirinuki.checkpoint import load_checkpoint, model_from_checkpoint
from kirinuki.config import load_config
from kirinuki.train import train

TOOL = [sys.executable, str(Path(__file__).resolve().parents[1] / "tools" / "average_weights.py")]


def _run(tiny_data: Path, out: Path, seed: int, **extra) -> Path:
    cfg = load_config("default", overrides=tiny_overrides(steps=2, sizes=[48], seed=seed, **extra))
    train(cfg, tiny_data, out, progress=False)
    return out / "last.pt"


def test_the_tool_writes_the_weighted_average_and_leaves_the_inputs(tiny_data, tmp_path):
    first, second = _run(tiny_data, tmp_path / "a", 1), _run(tiny_data, tmp_path / "b", 2)
    before = first.read_bytes(), second.read_bytes()
    done = subprocess.run([*TOOL, str(first), str(second), str(tmp_path / "avg.pt"), "--share", "0.25"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (first.read_bytes(), second.read_bytes()) == before
    a, b, out = load_checkpoint(first), load_checkpoint(second), load_checkpoint(tmp_path / "avg.pt")
    moved = 0
    for key, value in out["model"].items():
        if value.is_floating_point():
            assert torch.allclose(value, 0.75 * a["model"][key] + 0.25 * b["model"][key], atol=1e-6), key
            moved += not torch.equal(value, a["model"][key])
        else:  # BatchNorm's batch counters are the first's
            assert torch.equal(value, a["model"][key]), key
    assert moved > 10  # the two runs differ, so the average is neither
    assert "optimizer" not in out and "train_model" not in out
    assert out["config"] == a["config"] and out["weight_average"]["share_of_second"] == 0.25
    with torch.no_grad():  # and it is a network that runs
        assert model_from_checkpoint(out).eval()(torch.rand(1, 3, 64, 64)).shape[-2:] == (64, 64)


def test_the_tool_refuses_to_overwrite_or_mix_architectures(tiny_data, tmp_path):
    first = _run(tiny_data, tmp_path / "a", 1)
    wider = dict(TINY_KIRINET, **{k: [c * 2 for c in v] for k, v in TINY_KIRINET.items() if isinstance(v, list)})
    assert wider != TINY_KIRINET
    other = _run(tiny_data, tmp_path / "c", 1, model={"args": wider, "work_size": 64})
    before = first.read_bytes()
    for args, reason in (([first, other, tmp_path / "x.pt"], "different architectures"),
                         ([first, first, first], "overwrite"),
                         ([first, first, tmp_path / "y.pt", "--share", "1.5"], "share")):
        done = subprocess.run([*TOOL, *map(str, args)], capture_output=True, text=True)
        assert done.returncode != 0 and reason in done.stderr, done.stderr
    assert first.read_bytes() == before
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "y.pt").exists()

