"""One rank of a plain-torch.distributed run of the core Tracker, for test_tracker_ddp.py.

Usage: python tracker_ddp_script.py OUT_DIR RANK WORLD INIT_FILE [MODE]
Each rank measures a constant GPU power of its own, rank 1 is told another intensity and
(on rank 1 only) a GPU that cannot be measured; collectives are counted by wrapping
torch.distributed.all_reduce. MODE "die": rank 1 exits after the first epoch; "stall": rank 1
stops answering after it (the group's timeout is 5 s); "nodes": WORLD processes on two
simulated nodes, ranks read from the launcher's variables, every rank measuring its GPU and
its node's host. Writes OUT_DIR/rank<R>.json.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from carbonlog.distributed import Ranks
from carbonlog.tracking import Tracker

out_dir, rank, world, init_file = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
mode = sys.argv[5] if len(sys.argv) > 5 else "steady"
dist.init_process_group(
    "gloo",
    init_method=f"file://{init_file}",
    rank=rank,
    world_size=world,
    timeout=datetime.timedelta(seconds=5),
)
calls = []
real_all_reduce = dist.all_reduce


def counted_all_reduce(tensor, *args, **kwargs):
    calls.append(tensor.numel())
    return real_all_reduce(tensor, *args, **kwargs)


dist.all_reduce = counted_all_reduce


def sum_over_ranks(values):
    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


power_w = {"gpu": 100.0 * (rank + 1), "cpu": 10.0, "ram": 1.0}
if mode == "nodes":  # every GPU measured; ranks from torchrun's variables (2 per node)
    options = {"power_w": power_w}
    ranks = Ranks.from_env(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": "2",
         "GROUP_RANK": str(rank // 2)}
    )  # fmt: skip
else:  # rank 1's GPU has no meter (no NVML here)
    options = {"power_w": power_w if rank == 0 else {"cpu": 10.0, "ram": 1.0}}
    ranks = Ranks(rank=rank, local_rank=rank, world_size=world)
tracker = Tracker(
    intensity=100.0 if rank == 0 else 900.0,  # a rank whose own figure differs
    gpus=[0],  # every rank drives one GPU
    pue=1.2,
    ledger=str(out_dir / "ledger.sqlite3") if rank == 0 else False,
    ranks=ranks,
    reduce=sum_over_ranks,
    **options,
).start()
marks = []
for epoch in range(3):
    if rank == 1 and epoch == 1 and mode == "die":
        os._exit(0)
    if rank == 1 and epoch == 1 and mode == "stall":
        time.sleep(8)  # past the group timeout
        os._exit(0)
    time.sleep(0.05)
    tracker.peek()  # step pieces are local: no collective
    calls_before = len(calls)
    iv = tracker.mark("epoch")
    marks.append(
        {
            "calls": len(calls) - calls_before,
            "co2_kg": iv.co2_kg,
            "co2_kg_total": iv.co2_kg_total,
            "energy_kwh_total": iv.energy_kwh_total,
            "gpu_j": iv.gpu_j,
            "cpu_j": iv.cpu_j,
            "ram_j": iv.ram_j,
            "duration_s": iv.duration_s,
            "intensity": iv.intensity_g_per_kwh,
            "estimated": list(iv.estimated),
        }
    )
summary = tracker.stop()
(out_dir / f"rank{rank}.json").write_text(
    json.dumps({"marks": marks, "sizes": calls, "co2_kg": summary.co2_kg, "run_id": summary.run_id})
)
dist.destroy_process_group()
