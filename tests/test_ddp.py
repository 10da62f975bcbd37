"""DDP with the gloo backend on two CPU processes: rank 0 records, and the recording equals
the weights every rank holds at every step; ``mean_over_ranks`` gives the whole batch's loss."""

import os
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from dynamics import Recorder, load, mean_over_ranks

STEPS = 5


def _worker(rank: int, world: int, root: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts them)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        ddp = nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        data = torch.Generator().manual_seed(100 + rank)  # each rank its own shard
        # the few lines of the README: record on rank 0, reduce the loss on every rank
        rec = Recorder(ddp, opt, path=os.path.join(root, "ddp.rec")) if rank == 0 else None
        weights = [[p.detach().clone() for p in model.parameters()]]
        losses = []
        for _ in range(STEPS):
            x = torch.randn(16, 4, generator=data)
            opt.zero_grad()
            loss = ((ddp(x) - x[:, :1] * x[:, 1:2]) ** 2).mean()
            loss.backward()
            opt.step()
            mean = mean_over_ranks(loss)  # a collective: every rank calls it
            if rec is not None:
                rec.log(loss=mean, rank0_loss=loss)
            weights.append([p.detach().clone() for p in model.parameters()])
            losses.append(loss.item())
        if rec is not None:
            rec.close()
        torch.save({"weights": weights, "losses": losses}, os.path.join(root, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_rank0_recording_equals_every_ranks_weights_and_the_mean_loss(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path), _free_port()), nprocs=2, join=True)
    rec = load(tmp_path / "ddp.rec")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    names = ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert rec["0.weight"].steps.tolist() == list(range(STEPS + 1))
    for r in ranks:
        for step in range(STEPS + 1):
            for name, w in zip(names, r["weights"][step]):
                np.testing.assert_array_equal(rec[name].values[step], w.numpy(), err_msg=name)
    local = np.array([r["losses"] for r in ranks])
    assert not np.allclose(local[0], local[1])  # the shards differ: the mean is not one rank's
    np.testing.assert_allclose(rec["loss"].values, local.mean(0), rtol=1e-6)
    np.testing.assert_allclose(rec["rank0_loss"].values, local[0], rtol=1e-6)
    info = rec.metadata["recorder"]["distributed"]
    assert info["world_size"] == 2 and info["rank"] == 0 and info["backend"] == "gloo"
