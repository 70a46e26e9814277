"""Two CPU processes with the gloo backend train the same weights."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from conftest import tiny_overrides


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    from kirinuki.config import load_config
    from kirinuki.train import train

    cfg = load_config("default", overrides=tiny_overrides(steps=3, device="cpu"))
    result = train(cfg, data, f"{out}/run", progress=False)
    torch.save(result.model.state_dict(), f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_ranks_end_with_identical_weights(tiny_data, tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tiny_data), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # only rank 0 writes the checkpoint, and it is the 3-step one
    ckpt = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert ckpt["step"] == 3 and ckpt["world_size"] == 2
    # the weights moved away from their initialisation
    from kirinuki.models import create_model
    torch.manual_seed(0)
    init = create_model("kirinet", **ckpt["arch_args"]).state_dict()
    assert any(not torch.equal(init[k], a[k]) for k in init if init[k].is_floating_point())
