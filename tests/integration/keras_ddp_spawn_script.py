"""Two Keras processes (torch backend) started with torch.multiprocessing.spawn, a gloo group
initialised in each and no rank variable anywhere: each fits a tiny model with the callback and
the run ledger, and writes what it saw. Started by test_keras_processes.

Usage: python keras_ddp_spawn_script.py OUT_PREFIX PORT
"""

from __future__ import annotations

import json
import os
import sys
import time


def worker(rank: int, out: str, port: int) -> None:
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import numpy as np
    import torch.distributed as dist

    from carbonlog.integrations.keras import EmissionsCallback

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    x = np.random.default_rng(rank).normal(size=(32, 4)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    callback = EmissionsCallback(
        intensity=50.0, verbose=False, power_w={"cpu": 10.0, "ram": 1.0}, metrics="full"
    )
    slow = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: time.sleep(0.1))
    history = model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[callback, slow])
    report = {
        "history": history.history,
        "run_id": callback.summary.run_id,
        "cpu_j": callback.summary.cpu_j,
        "measured_s": sum(iv.duration_s for iv in callback.summary.intervals),
    }
    with open(f"{out}.{rank}.json", "w") as file:
        json.dump(report, file)
    dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    mp.spawn(worker, args=(sys.argv[1], int(sys.argv[2])), nprocs=2)
