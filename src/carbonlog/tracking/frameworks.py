"""What the ML frameworks already loaded in this process say about its devices; never imports one.

Each is read through sys.modules, so a process that never loaded torch or JAX pays nothing.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from carbonlog.distributed import Ranks


def sync_loaded_frameworks() -> None:
    """Wait for the GPU work this process queued, through a framework it already loaded.

    Without it the tail of one epoch's kernels lands in the next epoch's energy. Only devices
    the process already uses are waited for: synchronising any other would create a CUDA
    context there (hundreds of MB of GPU memory per process on a shared node).
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        for index in torch_devices_in_use(torch):
            torch.cuda.synchronize(index)
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available() and xpu.is_initialized():
        xpu.synchronize()  # Intel GPUs: the same wait, on the device torch already uses
    jax = sys.modules.get("jax")
    if jax is not None and hasattr(jax, "live_arrays"):
        jax.block_until_ready(jax.live_arrays())


def torch_devices_in_use(torch) -> list[int]:
    """The current CUDA device and every other one the caching allocator holds memory on."""
    current = torch.cuda.current_device()
    others = (
        index
        for index in range(torch.cuda.device_count())
        if index != current and torch.cuda.memory_reserved(index) > 0
    )
    return [current, *others]


def jax_local_gpus() -> list[int] | None:
    """The local GPU ordinals of this JAX process (one per process under SLURM), else None."""
    jax = sys.modules.get("jax")
    if jax is None or not hasattr(jax, "local_devices"):
        return None
    try:
        devices = [d for d in jax.local_devices() if d.platform == "gpu"]
    except RuntimeError:  # no backend initialised yet
        return None
    return [d.local_hardware_id for d in devices] or None


def meter_options_for(meter_options: Mapping, ranks: Ranks) -> dict:
    """The meter options of this process, gpus="auto" meaning the GPUs it drives: JAX's local
    devices, or under a launcher the one of its local rank (never every GPU it can see)."""
    options = dict(meter_options)
    if options["gpus"] == "auto":
        options["gpus"] = jax_local_gpus() or "auto"
    if options["gpus"] == "auto" and ranks.is_distributed:
        options["local_rank"] = ranks.local_rank
    return options


def wanted_components(meter_options: Mapping, host: bool) -> frozenset[str]:
    """The components this process is asked to measure: its GPUs when it names them, and on
    a node's measuring process the CPU and RAM."""
    forced = meter_options.get("power_w") or {}
    gpus = meter_options.get("gpus")
    wanted = {"gpu"} if "gpu" in forced or (isinstance(gpus, list | tuple) and gpus) else set()
    if host and ("cpu" in forced or meter_options.get("cpu") not in (None, False)):
        wanted.add("cpu")
    if host and ("ram" in forced or meter_options.get("ram")):
        wanted.add("ram")
    return frozenset(wanted)
