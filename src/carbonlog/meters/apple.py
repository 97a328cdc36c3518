"""Apple silicon energy from zeus-apple-silicon: CPU, GPU with the Neural Engine, and DRAM, no sudo.

The library reads IOReport's "Energy Model" channels, cumulative counters in mJ per subsystem
(AppleEnergyMonitor.get_cumulative_energy(), fixed origin over the monitor's life), which we
read at edges like any counter. Components: "cpu" is cpu_total_mj; "gpu" is gpu_mj plus
gpu_sram_mj and ane_mj (the Neural Engine is the SoC's other accelerator); "ram" is dram_mj.
A field the chip does not report is None and its part is left out. Resolution is 1 mJ; the
library's README says the values are believed to be Apple's model-based estimates, not
sensor readings, and powermetrics' man page calls them "estimated and may be inaccurate".
"""

from __future__ import annotations

import platform
import subprocess
from types import ModuleType

from carbonlog._log import logger
from carbonlog.meters.readings import AcceleratorMeter, Device

FIELDS_MJ = {
    "cpu": ("cpu_total_mj",),
    "gpu": ("gpu_mj", "gpu_sram_mj", "ane_mj"),
    "ram": ("dram_mj",),
}
STEP_J = 1e-3  # IOReport's energy channels count millijoules


def chip_name() -> str:
    """The chip's name as macOS gives it ("Apple M2 Max"), else "Apple silicon"."""
    if platform.system() == "Darwin":
        try:
            found = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=2,
                check=True,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError) as exc:
            logger.debug("sysctl gave no chip name: %s", exc)
        else:
            return found or "Apple silicon"
    return "Apple silicon"


def open_apple_meters(module: ModuleType | None = None) -> dict[str, AcceleratorMeter]:
    """Meters by component ("cpu", "gpu", "ram") of this Mac; empty where the library is
    missing or IOReport cannot be subscribed to. `module`: zeus_apple_silicon (injectable)."""
    if module is None:
        try:
            import zeus_apple_silicon as module
        except Exception as exc:  # not installed, or not a Mac
            logger.debug("zeus-apple-silicon is not usable (%s): no Apple meters", exc)
            return {}
    try:
        monitor = module.AppleEnergyMonitor()
        first = monitor.get_cumulative_energy()
    except RuntimeError as exc:
        logger.debug("IOReport is not available (%s): no Apple meters", exc)
        return {}
    name = chip_name()
    meters = {}
    for component, fields in FIELDS_MJ.items():
        present = tuple(f for f in fields if getattr(first, f) is not None)
        if not present:
            continue

        def read_j(present=present) -> float:
            metrics = monitor.get_cumulative_energy()
            return sum(getattr(metrics, f) for f in present) / 1000

        device = Device(
            {"name": name, "fields": list(present)},
            None,
            read_j=read_j,
            step_j=STEP_J * len(present),
        )
        meters[component] = AcceleratorMeter(
            component, [device], (RuntimeError, TypeError), "ioreport", watch_s=None
        )
    return meters
