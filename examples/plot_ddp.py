"""
Recording a DistributedDataParallel run
=======================================

Record on one rank: DDP averages the gradients, so every rank holds the same weights after
each step and rank 0's recording is the run's. The loss each rank computes is its own
shard's: average it over the ranks with :func:`~dynamics.mean_over_ranks` (a collective,
so every rank calls it) before logging (:doc:`/guide/recording`). Here two CPU processes
train with the gloo backend (the script is what each rank runs; ``torchrun`` would start
it the same way), and the scene draws the whole batch's loss beside rank 0's own.
"""

import subprocess
import sys
import textwrap

TRAIN = textwrap.dedent('''
    import os, socket
    import torch
    import torch.distributed as dist
    import torch.multiprocessing as mp
    from dynamics import Recorder, mean_over_ranks

    def rank_main(rank, world, port):
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
        torch.set_num_threads(1)
        torch.manual_seed(0)  # the same initial weights on every rank
        model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
        shard = torch.Generator().manual_seed(100 + rank)  # each rank its own data
        rec = None
        if rank == 0:  # record on one rank
            rec = Recorder(ddp, opt, schedule=2, path="outputs/ddp.rec", overwrite=True)
        for step in range(150):
            x = torch.randn(32, 4, generator=shard)
            opt.zero_grad()
            loss = ((ddp(x) - x[:, :1] * x[:, 1:2]) ** 2).mean()
            loss.backward()
            opt.step()
            mean = mean_over_ranks(loss)  # every rank
            if rec is not None:
                rec.log(loss=mean, rank0_loss=loss)
        if rec is not None:
            rec.close()
        dist.destroy_process_group()

    if __name__ == "__main__":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mp.spawn(rank_main, args=(2, port), nprocs=2, join=True)
''')

# %%
import os

from dynamics import load
from scenes.curves import CurvesScene

os.makedirs("outputs", exist_ok=True)
with open("outputs/ddp_train.py", "w") as f:
    f.write(TRAIN)
subprocess.run([sys.executable, "outputs/ddp_train.py"], check=True)
recording = load("outputs/ddp.rec")
print(recording.metadata["recorder"]["distributed"])

scene = CurvesScene(recording)
scene.show(quality="final")
