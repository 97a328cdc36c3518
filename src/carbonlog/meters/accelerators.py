"""Which accelerators a process's GPU meters read: NVIDIA (NVML), AMD (amdsmi), Intel (Level
Zero), Apple silicon (IOReport).

gpus="auto" with no launcher measures every GPU this process can use: NVIDIA's and AMD's both
where both drivers load; where neither does, Intel's, else a Mac's GPU and Neural Engine.
GPU indices (a list, or the one a launcher's local rank drives) number the devices of the one
runtime the framework drives, so they go to one vendor: the one torch was built for when it
is loaded (ROCm builds number HIP devices, XPU builds Intel's), else the first of NVIDIA, AMD
and Intel that has a driver here.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Sequence
from types import ModuleType

from carbonlog.meters.base import Meter

Opener = Callable[[str | Sequence[int], int | None], Meter | None]


def _nvidia(nvml: ModuleType | None) -> Opener:
    from carbonlog.meters.nvml import open_gpu_meter

    return lambda gpus, local_rank: open_gpu_meter(gpus, nvml=nvml, local_rank=local_rank)


def installed(library: str) -> bool:
    """Whether `library` can be imported, asked without importing it (nor the meter module
    that reads it: a start on a machine without the library pays nothing for its meter)."""
    if library in sys.modules:
        return sys.modules[library] is not None
    return importlib.util.find_spec(library) is not None


def _amd(gpus, local_rank) -> Meter | None:
    if not installed("amdsmi"):
        return None
    from carbonlog.meters.amd import open_amd_meter

    return open_amd_meter(gpus, local_rank=local_rank)


def _intel(gpus, local_rank) -> Meter | None:
    if not installed("pyzes"):
        return None
    from carbonlog.meters.intel import open_intel_meter

    return open_intel_meter(gpus, local_rank=local_rank)


def _apple_gpu() -> Meter | None:
    if not installed("zeus_apple_silicon"):
        return None
    from carbonlog.meters.apple import open_apple_meters

    meters = open_apple_meters()
    for component, meter in meters.items():
        if component != "gpu":
            meter.close()
    return meters.get("gpu")


def torch_runtime() -> str | None:
    """ "hip" or "xpu" when the torch this process loaded drives AMD or Intel GPUs, else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if getattr(getattr(torch, "version", None), "hip", None):
        return "hip"
    xpu = getattr(torch, "xpu", None)
    cuda = getattr(torch, "cuda", None)
    if xpu is not None and xpu.is_available() and not (cuda and cuda.is_available()):
        return "xpu"
    return None


def open_gpu_meters(
    gpus: str | Sequence[int], nvml: ModuleType | None = None, local_rank: int | None = None
) -> list[Meter]:
    """This process's GPU meters (see the module's docstring for which)."""
    nvidia = _nvidia(nvml)
    if gpus == "auto" and local_rank is None:
        found = [meter for meter in (nvidia(gpus, None), _amd(gpus, None)) if meter]
        if not found:
            found = [meter for meter in (_intel(gpus, None) or _apple_gpu(),) if meter]
        return found
    runtime = torch_runtime()
    openers = {"hip": (_amd, nvidia, _intel), "xpu": (_intel, nvidia, _amd)}
    for opener in openers.get(runtime, (nvidia, _amd, _intel)):
        meter = opener(gpus, local_rank)
        if meter is not None:
            return [meter]
    return []
