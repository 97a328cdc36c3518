"""One process of a 2-process Accelerate loop on gloo (torchrun), for test_accelerate.py.

Usage: torchrun --nproc-per-node 2 accelerate_ddp_script.py OUT_DIR BUDGET_KWH
Each rank drives one "GPU" of a constant power of its own (100 W on rank 0, 200 W on rank 1;
no GPU here), rank 1's epochs last longer; local rank 0 measures the host. Calls of
accelerator.reduce are counted; a Prometheus endpoint is asked of every process and scraped
where it is served. The loop stops when carbonlog says so. Writes
OUT_DIR/rank<R>.json: every mark's dict, this rank's epoch seconds, reduce calls per mark.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

import torch
from accelerate import Accelerator

from carbonlog.export import PrometheusExporter
from carbonlog.integrations.accelerate import track

out_dir, budget_kwh = Path(sys.argv[1]), float(sys.argv[2])
accelerator = Accelerator(cpu=True, log_with="tensorboard", project_dir=str(out_dir / "tb"))
accelerator.init_trackers("ddp")
rank = accelerator.process_index
calls = []
reduce = accelerator.reduce


def counted_reduce(tensor, *args, **kwargs):
    calls.append(tensor.numel())
    return reduce(tensor, *args, **kwargs)


accelerator.reduce = counted_reduce
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
loader = torch.utils.data.DataLoader(data, batch_size=8)
model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

marks, made, scraped = [], [], {}
prometheus = PrometheusExporter(port=0, addr="127.0.0.1")  # built on every process alike
with track(
    accelerator,
    location="FR",
    intensity=100.0,
    pue=1.0,
    gpus=[0],
    power_w={"gpu": 100.0 * (rank + 1), "cpu": 10.0, "ram": 1.0},
    ledger=str(out_dir / "ledger.sqlite3"),
    budget_kwh=budget_kwh,
    on_budget="stop",
    metrics="full",
    verbose=False,
    exporters=[prometheus],
) as t:
    for _ in range(8):
        started = time.perf_counter()
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        time.sleep(0.1 * (rank + 1))
        before = len(calls)
        marks.append(t.mark("epoch", metrics={"loss": loss.detach()}))
        made.append({"seconds": time.perf_counter() - started, "calls": len(calls) - before})
        if prometheus.port:  # bound on the main process alone
            url = f"http://127.0.0.1:{prometheus.port}/metrics"
            scraped = {"port": prometheus.port, "page": urllib.request.urlopen(url).read().decode()}
        if t.should_stop:
            break
accelerator.end_training()
result = {"marks": marks, "made": made, "run_id": t.summary.run_id, "sizes": calls}
result["scraped"] = scraped
result["energy_kwh"] = t.summary.energy_kwh
(out_dir / f"rank{rank}.json").write_text(json.dumps(result))
