"""Hardware -> joules: NVML for GPUs, RAPL for CPU and DRAM, models where no counter exists.

build_meters() picks one meter per component; importing this package loads no hardware
library (pynvml, psutil and the CPU table load when a meter is built).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

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
    """Raise ValueError, with what is allowed, for a meter option that cannot work."""
    if not (
        gpus in ("auto", None, False)
        or (
            isinstance(gpus, Sequence)
            and not isinstance(gpus, str)
            and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in gpus)
        )
    ):
        raise ValueError(f'gpus must be "auto", None, or a list of CUDA indices >= 0, got {gpus!r}')
    if cpu not in (*CPU_MODES, None, False):
        raise ValueError(f"cpu must be one of {CPU_MODES} or None, got {cpu!r}")
    if not isinstance(ram, bool):
        raise ValueError(f"ram must be True or False, got {ram!r}")
    if power_w is None:
        return
    if not isinstance(power_w, Mapping):
        raise ValueError(f"power_w must map components {COMPONENTS} to watts, got {power_w!r}")
    for component, watts in power_w.items():
        if component not in COMPONENTS:
            raise ValueError(f"power_w: unknown component {component!r}; use {COMPONENTS}")
        if (
            isinstance(watts, bool)
            or not isinstance(watts, numbers.Real)
            or not math.isfinite(watts)
            or watts < 0
        ):
            raise ValueError(
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
            raise MeterError(
                f'cpu="rapl": RAPL counters are not readable ({exc}); {PERMISSION_HINT}'
            ) from exc
        warn_once(
            f"rapl-permission:{powercap_root}",
            "carbonlog: RAPL energy counters are not readable by this user, so CPU and "
            f"RAM energy are estimated from models; {PERMISSION_HINT}",
        )
        return {}
    if required and "cpu" not in meters:
        raise MeterError(f'cpu="rapl": no RAPL package counter under {powercap_root}')
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
) -> list[Meter]:
    """One meter per measured component, in the order gpu, cpu, ram.

    gpus: "auto" (every GPU CUDA shows this process), CUDA indices, or None/False for none.
    cpu: "auto" (RAPL if readable, else the TDP model), "rapl", "model", or None/False.
    ram: RAPL DRAM where cpu RAPL is in use and readable, else the W/GiB model.
    power_w: {component: watts} forces that component to a constant power, whatever the
    other options say. host=False leaves CPU and RAM out (a rank that is not its node's local
    rank 0: one process per node measures the host). Bad options raise ValueError; cpu="rapl"
    without readable counters raises MeterError.
    """
    check_meter_options(gpus, cpu, ram, power_w)
    forced = dict(power_w or {})
    meters: list[Meter] = []
    try:
        if "gpu" in forced:
            meters.append(ConstantPowerMeter("gpu", forced["gpu"], "constant power (power_w)"))
        elif gpus not in (None, False):
            from carbonlog.meters.nvml import open_gpu_meter

            gpu = open_gpu_meter(gpus, nvml=nvml)
            meters.extend([gpu] if gpu is not None else [])
        if host:
            meters.extend(_host_meters(cpu, ram, forced, powercap_root, hwmon_root))
    except BaseException:
        for meter in meters:
            meter.close()
        raise
    return meters


def _host_meters(
    cpu: str | None,
    ram: bool,
    forced: dict[str, float],
    powercap_root: Path | str,
    hwmon_root: Path | str,
) -> list[Meter]:
    want_cpu = "cpu" not in forced and cpu not in (None, False)
    want_ram = "ram" not in forced and ram
    rapl: dict[str, Meter] = {}
    if (want_cpu or want_ram) and cpu in ("auto", "rapl"):
        rapl = _rapl_meters(want_cpu and cpu == "rapl", powercap_root, hwmon_root)
    meters: list[Meter] = []
    if "cpu" in forced:
        meters.append(ConstantPowerMeter("cpu", forced["cpu"], "constant power (power_w)"))
    elif want_cpu:
        if "cpu" in rapl:
            meters.append(rapl["cpu"])
        else:
            from carbonlog.meters.model import CpuModelMeter

            meters.append(CpuModelMeter.for_host())
    if "ram" in forced:
        meters.append(ConstantPowerMeter("ram", forced["ram"], "constant power (power_w)"))
    elif want_ram:
        if "ram" in rapl:
            meters.append(rapl["ram"])
        else:
            from carbonlog.meters.model import RamModelMeter

            meters.append(RamModelMeter())
    return meters
