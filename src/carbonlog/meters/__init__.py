"""Hardware -> joules: NVML, AMD SMI, Level Zero or IOReport for GPUs (accelerators.py picks),
RAPL for CPU and DRAM, models where no counter exists.

build_meters() picks one meter per component; importing this package loads no hardware
library (pynvml, psutil and the CPU table load when a meter is built).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType

from carbonlog.errors import ConfigurationError
from carbonlog.meters.base import COMPONENTS, ConstantPowerMeter, Meter, MeterError

__all__ = [
    "COMPONENTS",
    "CPU_MODES",
    "ConstantPowerMeter",
    "Meter",
    "MeterError",
    "build_meters",
    "check_meter_options",
]

CPU_MODES = ("auto", "rapl", "model")


def check_meter_options(
    gpus: str | Sequence[int] | None = "auto",
    cpu: str | None = "auto",
    ram: bool = True,
    power_w: Mapping[str, float] | None = None,
) -> None:
    """A ConfigurationError (a ValueError) saying what is allowed, for an unusable option."""
    if not (
        gpus in ("auto", None, False)
        or (
            isinstance(gpus, Sequence)
            and not isinstance(gpus, str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in gpus)
        )
    ):
        raise ConfigurationError(
            'gpus must be "auto", None, or a list of device indices (CUDA, HIP or XPU) >= 0, '
            f"got {gpus!r}"
        )
    if cpu not in (*CPU_MODES, None, False):
        raise ConfigurationError(f"cpu must be one of {CPU_MODES} or None, got {cpu!r}")
    if not isinstance(ram, bool):
        raise ConfigurationError(f"ram must be True or False, got {ram!r}")
    if power_w is None:
        return
    if not isinstance(power_w, Mapping):
        raise ConfigurationError(
            f"power_w must map components {COMPONENTS} to watts, got {power_w!r}"
        )
    for component, watts in power_w.items():
        if component not in COMPONENTS:
            raise ConfigurationError(f"power_w: unknown component {component!r}; use {COMPONENTS}")
        if (
            isinstance(watts, bool)
            or not isinstance(watts, numbers.Real)
            or not math.isfinite(watts)
            or watts < 0
        ):
            raise ConfigurationError(
                f"power_w[{component!r}] must be a finite number of watts >= 0, got {watts!r}"
            )


def _rapl_meters(
    required: bool, powercap_root: Path | str, hwmon_root: Path | str
) -> dict[str, Meter]:
    """RAPL meters by component; an empty dict (and one hint) when unreadable, unless required."""
    from carbonlog._log import warn_once
    from carbonlog.meters.rapl import PERMISSION_HINT, open_rapl_meters

    try:
        meters = open_rapl_meters(powercap_root, hwmon_root)
    except PermissionError as exc:
        if required:
            raise ConfigurationError(
                f'cpu="rapl": RAPL counters are not readable ({exc}); {PERMISSION_HINT}'
            ) from exc
        warn_once(
            f"rapl-permission:{powercap_root}",
            "carbonlog: RAPL energy counters are not readable by this user, so CPU and "
            f"RAM energy are estimated from models; {PERMISSION_HINT}",
            own=True,
        )
        return {}
    if required and "cpu" not in meters:
        raise ConfigurationError(f'cpu="rapl": no RAPL package counter under {powercap_root}')
    return meters


def build_meters(
    gpus: str | Sequence[int] | None = "auto",
    cpu: str | None = "auto",
    ram: bool = True,
    power_w: Mapping[str, float] | None = None,
    host: bool = True,
    powercap_root: Path | str = "/sys/class/powercap",
    nvml: ModuleType | None = None,
    hwmon_root: Path | str = "/sys/class/hwmon",
    local_rank: int | None = None,
) -> list[Meter]:
    """One meter per measured component, in the order gpu, cpu, ram.

    gpus: "auto" (every GPU this process can use, NVIDIA and AMD alike, else Intel's or a
    Mac's; with `local_rank`, one process of several on the node, the one it drives), the
    framework's device indices (CUDA, HIP or XPU: see meters/accelerators.py), or None/False.
    cpu: "auto" (RAPL if readable, else a Mac's IOReport counters, else the TDP model),
    "rapl", "model", or None/False.
    ram: RAPL DRAM (or a Mac's DRAM counter) where cpu uses those counters, else the W/GiB
    model of the memory allocated to the job (cgroup limit, SLURM allocation, else installed).
    power_w: {component: watts} forces that component to a constant power, whatever the
    other options say. host=False leaves CPU and RAM out (a rank that is not its node's local
    rank 0: one process per node measures the host).

    Options that cannot work here (a GPU index this process cannot see, cpu="rapl" without
    readable counters) raise ConfigurationError. A component whose hardware fails to open is
    left out, said once; the others are still measured.
    """
    check_meter_options(gpus, cpu, ram, power_w)
    forced = dict(power_w or {})
    meters: list[Meter] = []
    try:
        meters.extend(_open_one("gpu", lambda: _gpu_meters(gpus, forced, nvml, local_rank)))
        if host:
            counters = _host_counters(cpu, ram, forced, powercap_root, hwmon_root)
            meters.extend(_open_one("cpu", lambda: _cpu_meters(cpu, forced, counters)))
            meters.extend(_open_one("ram", lambda: _ram_meters(ram, forced, counters)))
    except BaseException:
        for meter in meters:
            meter.close()
        raise
    return meters


def _open_one(component: str, opener: Callable[[], list[Meter]]) -> list[Meter]:
    """The component's meters; a hardware failure loses this component alone (said once)."""
    from carbonlog._log import warn_once

    try:
        return opener()
    except ConfigurationError:
        raise
    except Exception as exc:
        warn_once(
            f"meter-open:{component}",
            f"carbonlog: the {component} meter could not be opened ({exc}); "
            f"{component} energy is not measured in this run",
            own=True,
        )
        return []


def _constant(component: str, forced: dict[str, float]) -> list[Meter]:
    return [ConstantPowerMeter(component, forced[component], "constant power (power_w)")]


def _gpu_meters(
    gpus, forced: dict[str, float], nvml: ModuleType | None, local_rank: int | None
) -> list[Meter]:
    if "gpu" in forced:
        return _constant("gpu", forced)
    if gpus in (None, False):
        return []
    from carbonlog.meters.accelerators import open_gpu_meters

    return open_gpu_meters(gpus, nvml=nvml, local_rank=local_rank)


def _host_counters(
    cpu: str | None,
    ram: bool,
    forced: dict[str, float],
    powercap_root: Path | str,
    hwmon_root: Path | str,
) -> dict[str, Meter]:
    """The host's energy counters where the options want them: RAPL, else (cpu="auto") a
    Mac's IOReport through zeus-apple-silicon; an empty dict where neither opens."""
    want_cpu = "cpu" not in forced and cpu not in (None, False)
    want_ram = "ram" not in forced and ram
    if not (want_cpu or want_ram) or cpu not in ("auto", "rapl"):
        return {}
    required = want_cpu and cpu == "rapl"
    try:
        counters = _rapl_meters(required, powercap_root, hwmon_root)
    except ConfigurationError:
        raise
    except Exception as exc:  # unreadable sysfs of another kind: the models take over
        from carbonlog._log import logger

        logger.debug("RAPL could not be opened (%s); CPU and RAM use their models", exc)
        counters = {}
    from carbonlog.meters.accelerators import installed

    if counters or cpu != "auto" or not installed("zeus_apple_silicon"):
        return counters
    from carbonlog.meters.apple import open_apple_meters

    apple = open_apple_meters()
    gpu = apple.pop("gpu", None)
    if gpu is not None:
        gpu.close()  # the GPU meters open their own
    return apple


def _cpu_meters(cpu: str | None, forced: dict[str, float], rapl: dict[str, Meter]) -> list[Meter]:
    if "cpu" in forced:
        return _constant("cpu", forced)
    if cpu in (None, False):
        return []
    if "cpu" in rapl:
        return [rapl["cpu"]]
    from carbonlog.meters.model import CpuModelMeter

    return [CpuModelMeter.for_host()]


def _ram_meters(ram: bool, forced: dict[str, float], rapl: dict[str, Meter]) -> list[Meter]:
    if "ram" in forced:
        return _constant("ram", forced)
    if not ram:
        return []
    if "ram" in rapl:
        return [rapl["ram"]]
    from carbonlog.meters.model import RamModelMeter

    return [RamModelMeter.for_host()]
