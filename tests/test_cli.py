import json
import subprocess
import sys

import pytest
import torch

from conftest import TINY_KIRINET
from kirinuki.checkpoint import save_checkpoint
from kirinuki.cli import main
from kirinuki.models import create_model


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kirinuki", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("kirinet", **TINY_KIRINET)
    path = tmp_path_factory.mktemp("cli") / "tiny.pt"
    save_checkpoint({"name": "tiny", "arch": "kirinet", "arch_args": model.config, "work_size": 64,
                     "step": 0, "model": model.state_dict()}, path)
    return path


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("kirinuki ")
    assert "default model" in out.stdout


def test_usage_error_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate"])
    assert exc.value.code == 2


def test_train_then_evaluate_then_export(tiny_data, tmp_path, checkpoint):
    out = run_cli("train", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--steps", "2", "-q",
                  "--set", "sizes=[64]", "--set", "batch=2", "--set", "workers=0",
                  "--set", "model.args={widths=[8,16], blocks=[1,1], head=4}",
                  "--set", 'data.groups={"train/a"=1.0}', "--set", "model.work_size=64")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "run" / "last.pt").exists()
    ev = run_cli("evaluate", "--model", str(tmp_path / "run" / "last.pt"), "--data", str(tiny_data / "val"),
                 "--backgrounds", str(tiny_data / "backgrounds"), "--sizes", "48", "native",
                 "--out", str(tmp_path / "eval"))
    assert ev.returncode == 0, ev.stderr
    assert "| 48 | paper |" in ev.stdout and "| native | scene |" in ev.stdout
    assert json.loads((tmp_path / "eval" / "report.json").read_text())["rows"]
    ex = run_cli("export", "--checkpoint", str(checkpoint), "--onnx", str(tmp_path / "m.onnx"))
    assert ex.returncode == 0, ex.stderr
    assert "max |difference|" in ex.stdout and (tmp_path / "m.onnx").exists()


def test_errors_are_one_line_with_the_path(tmp_path):
    out = run_cli("evaluate", "--model", str(tmp_path / "missing.onnx"), "--data", str(tmp_path))
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0
    assert out.stderr.startswith("kirinuki: error: ") and "missing.onnx" in out.stderr


@pytest.mark.parametrize("value", ["abc", "0", "-5", "12.5"])
def test_a_bad_work_size_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cutout", "x.jpg", "-o", "out", "--work-size", value])
    assert exc.value.code == 2
    assert "--work-size" in capsys.readouterr().err


def test_one_work_size_parser_for_cli_config_and_predictor(tiny_onnx):
    from kirinuki.config import ModelConfig, load_config, parse_override, parse_work_size
    from kirinuki.inference import Matter

    assert parse_work_size("native") is None and parse_work_size(" 384 ") == 384 and parse_work_size(512) == 512
    with pytest.raises(ValueError, match="too small"):
        ModelConfig(work_size=0)
    with pytest.raises(ValueError, match="not a size"):
        load_config("default", overrides=[parse_override("model.work_size=abc")])
    assert load_config("paper").model.work_size is None
    with pytest.raises(ValueError, match="too small"):
        Matter(tiny_onnx, work_size=-1)
    assert Matter(tiny_onnx, work_size="native").info.work_size is None


@pytest.mark.parametrize("args", [["train", "--data", "d"], ["export", "--checkpoint", "c.pt", "--onnx", "m.onnx"],
                                  ["cutout", "a.jpg", "-o", "out", "--model", "model.pt"],
                                  ["evaluate", "--data", "d", "--model", "model.pt"]])
def test_without_pytorch_one_line_names_the_extra(tmp_path, args):
    """On the core install (PyTorch absent: an import of it fails) no traceback, exit 2."""
    fake = tmp_path / "no-torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(fake.parent)}
    r = subprocess.run([sys.executable, "-m", "kirinuki", *args], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "pip install 'kirinuki[train]'" in r.stderr
    assert "Traceback" not in r.stderr
