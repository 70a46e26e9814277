"""Bulk cutouts split across processes (as torchrun starts them): each input exactly once."""

import csv
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from kirinuki.batch import Job, shard


def test_shards_cover_every_job_once():
    jobs = [Job(source=f"{i}.png", target=None) for i in range(11)]
    parts = [shard(jobs, r, 3) for r in range(3)]
    names = sorted(j.source for p in parts for j in p)
    assert names == sorted(j.source for j in jobs)
    assert [len(p) for p in parts] == [4, 4, 3]
    with pytest.raises(ValueError):
        shard(jobs, 3, 3)


@pytest.mark.slow
def test_torchrun_two_processes_do_every_input_exactly_once(tmp_path, tiny_onnx):
    from kirinuki.batch import plan_jobs

    onnx_path = tiny_onnx
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"sub/p{i}.jpg" if i % 3 == 0 else f"p{i}.jpg" for i in range(9)]
    (src / "broken.jpg").write_bytes(b"nope")
    for rel in names:
        (src / rel).write_bytes(b"")
    out = tmp_path / "out"
    # The rank with the broken file gets small pictures and the other rank large ones, so the
    # failing rank always finishes first: its error exit must not stop the other rank's share.
    failing = [str(j.source) for j in shard(plan_jobs([src], out, ".png"), 0, 2)]
    assert str(src / "broken.jpg") in failing
    for rel in names:
        side = 40 if str(src / rel) in failing else 1200
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(src / rel)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "kirinuki", "cutout", str(src), "-o", str(out), "--model", str(onnx_path), "--distributed", "-q"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0  # one input is broken: its rank exits 1, after doing the rest

    def manifest_rows():
        rows = []
        for rank in (0, 1):
            with open(out / f"manifest-rank{rank}.csv", newline="") as fh:
                rows += [dict(r, rank=rank) for r in csv.DictReader(fh)]
        return rows
    rows = manifest_rows()
    done = sorted(r["input"] for r in rows if r["status"] == "done")
    assert done == sorted(str(src / n) for n in names)
    assert len(rows) == 10 and len({r["input"] for r in rows}) == 10  # every input exactly once
    assert {r["rank"] for r in rows} == {0, 1}
    assert [r for r in rows if r["status"] == "failed"][0]["input"].endswith("broken.jpg")
    assert all((out / n).with_suffix(".png").exists() for n in names)
    # a restart skips what is finished
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode != 0
    statuses = sorted(r["status"] for r in manifest_rows())
    assert statuses == ["failed"] + ["skipped"] * 9


def test_each_rank_gets_a_device_its_runtime_can_use():
    from kirinuki.ranks import plan_rank

    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    # GPU machine, bundled ONNX model, ONNX Runtime without CUDA: the CPU with a note, not a failure.
    plan = plan_rank(None, "auto", None, env, cuda=True, onnx_cuda=False)
    assert (plan.rank, plan.world, plan.device) == (3, 4, "cpu") and "no CUDA provider" in plan.note
    assert plan.threads == max(1, (os.cpu_count() or 1) // 2)
    # A checkpoint runs through PyTorch on this rank's own GPU; so does an ONNX Runtime with CUDA.
    assert plan_rank("model.pt", "auto", None, env, cuda=True, onnx_cuda=False).device == "cuda:1"
    assert plan_rank("m.onnx", "auto", None, env, cuda=True, onnx_cuda=True).device == "cuda:1"
    # No GPU: each rank takes its share of the cores, or the threads it was given.
    assert plan_rank(None, "auto", None, env, cuda=False).threads == max(1, (os.cpu_count() or 1) // 2)
    assert plan_rank(None, "auto", 3, env, cuda=False).threads == 3
    assert plan_rank(None, "cpu", None, {}, cuda=True).device == "cpu"


def test_the_refinement_stays_within_its_thread_limit():
    import threading

    from kirinuki.threads import on_threads, set_thread_limit

    def threads_used() -> set:
        seen = set()
        on_threads(lambda _: (seen.add(threading.get_ident()), time.sleep(0.01)), range(16))
        return seen
    import cv2

    default = cv2.getNumThreads()
    try:
        set_thread_limit(1)
        assert threads_used() == {threading.get_ident()}
        assert cv2.getNumThreads() == 1  # OpenCV's pool too
        set_thread_limit(2)
        assert len(threads_used()) <= 2
        assert cv2.getNumThreads() == 2
    finally:
        set_thread_limit(None)
    assert cv2.getNumThreads() == default


def test_a_failing_rank_waits_until_every_rank_has_finished():
    import threading
    from datetime import timedelta

    from torch.distributed import TCPStore

    from kirinuki.ranks import finish_rank

    agent = TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=30))  # as torchrun's agent
    env = {"WORLD_SIZE": "3", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(agent.port)}
    assert finish_rank(False, env) is True  # a rank without failures only counts itself
    waiting = threading.Thread(target=finish_rank, args=(True, env), kwargs={"poll": 0.01}, daemon=True)
    waiting.start()
    waiting.join(0.5)
    assert waiting.is_alive()  # two of three ranks have finished
    assert finish_rank(False, env) is True
    waiting.join(5)
    assert not waiting.is_alive()
    # Outside torchrun, or with a port the workers were not told, nothing waits.
    assert finish_rank(True, {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0"}) is False
    assert finish_rank(True, {}) is False
