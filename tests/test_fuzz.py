"""Coverage-guided fuzzing of everything a file reaches (``tools/fuzz_files.py``): the
inputs it once broke kirinuki with, replayed, and a short run of the fuzzer itself."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = sorted((ROOT / "tests" / "fuzz_regressions").iterdir())
sys.path.insert(0, str(ROOT / "tools"))
import fuzz_files  # noqa: E402


@pytest.mark.parametrize("finding", REGRESSIONS, ids=lambda p: p.name)
def test_each_input_the_fuzzer_found_now_ends_in_one_line(finding):
    ended = fuzz_files.check_one(finding.read_bytes())  # raises on what the invariant forbids
    assert ended == "done" or ("\n" not in ended and not ended.startswith("unexpected error")), ended


@pytest.mark.slow
def test_a_short_fuzzing_run_finds_nothing(tmp_path):
    """45 seconds of atheris from the seed corpus (a 60 s run tried 3,714 inputs here): no crash, no
    hang over 10 s, no process over 3 GB."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "fuzz_files.py"), "--seconds", "45",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert " 0 crashes, 0 hangs over 10 s, 0 over 3072 MB" in r.stdout, r.stdout
    tried = int(r.stdout.split("fuzz_files: ")[1].split(" inputs")[0])
    assert tried >= 200, r.stdout
