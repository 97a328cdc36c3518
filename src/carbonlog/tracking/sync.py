"""Between the tracker and the processes around it: waiting for the device, and the one sum.

Neither imports a framework: the device wait goes through one that is already loaded, and the
sum through the `reduce` callable the adapter passes (its framework's all-reduce).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from carbonlog._log import warn_once
from carbonlog.distributed import ReduceFn
from carbonlog.tracking.joules import Joules

SyncFn = Callable[[], None]


def sync_loaded_frameworks() -> None:
    """Wait for queued GPU work, through a framework that is already loaded (never import one).

    Without it the tail of one epoch's kernels lands in the next epoch's energy.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        for index in range(torch.cuda.device_count()):
            torch.cuda.synchronize(index)
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "live_arrays"):
        jax.block_until_ready(jax.live_arrays())


def wait_for_devices(sync: SyncFn | None) -> None:
    """Run `sync`; a failure costs the edge's precision, never the training (said once)."""
    if sync is None:
        return
    try:
        sync()
    except Exception as exc:
        warn_once(
            "sync",
            f"carbonlog: waiting for the device failed ({exc}); "
            "epoch edges may be off by the queued work",
        )


def sum_over_ranks(reduce: ReduceFn | None, *parts: Joules) -> tuple[Joules, ...]:
    """Every part summed over all processes in one call of `reduce`.

    On failure each process keeps its own figures (said once), so training goes on.
    """
    if reduce is None:  # a single process: its figures are the sum
        return parts
    local = [value for part in parts for value in part.vector()]
    try:
        summed = [float(v) for v in reduce(local)]
    except Exception as exc:
        warn_once(
            "reduce",
            f"carbonlog: summing over processes failed ({exc}); "
            "this process logs its own energy only",
        )
        summed = local
    width = len(Joules._fields)
    return tuple(Joules.from_vector(summed[i * width : (i + 1) * width]) for i in range(len(parts)))
