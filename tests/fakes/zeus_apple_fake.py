"""A stand-in for zeus-apple-silicon (1.1.0's documented API), for tests off a Mac.

Built from the package's README: AppleEnergyMonitor() subscribes to IOReport's "Energy Model"
group (RuntimeError "Failed to create IOReport subscription." where it cannot);
begin_window(label, restart=False) refuses a label already open unless restart, end_window(label)
refuses one that is not, and gives the AppleEnergyMetrics of the window;
get_cumulative_energy() gives the counters from a fixed origin. Every field is in whole mJ
(IOReport's resolution), None where the chip does not report it. Each subsystem follows a
power profile in real time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tests.fakes.pynvml_fake import PowerProfile

SCALAR_FIELDS = (
    "cpu_total_mj",
    "efficiency_core_manager_mj",
    "performance_core_manager_mj",
    "dram_mj",
    "gpu_mj",
    "gpu_sram_mj",
    "ane_mj",
)
LIST_FIELDS = (
    "efficiency_cores_mj",
    "performance_cores_mj",
    "efficiency_cluster_mj",
    "performance_cluster_mj",
)


@dataclass
class AppleEnergyMetrics:
    """Energy of each SoC subsystem, mJ; None where not measured."""

    cpu_total_mj: int | None = None
    efficiency_cores_mj: list[int] | None = None
    performance_cores_mj: list[int] | None = None
    efficiency_cluster_mj: list[int] | None = None
    performance_cluster_mj: list[int] | None = None
    efficiency_core_manager_mj: int | None = None
    performance_core_manager_mj: int | None = None
    dram_mj: int | None = None
    gpu_mj: int | None = None
    gpu_sram_mj: int | None = None
    ane_mj: int | None = None


class FakeAppleSilicon:
    """The zeus_apple_silicon module: `AppleEnergyMonitor` over subsystems' power profiles.

    `watts` maps scalar field names to profiles (watts or "w:s,w:s"); fields left out are
    None, as on a chip that lacks them. `available=False`: IOReport cannot be subscribed to.
    """

    AppleEnergyMetrics = AppleEnergyMetrics

    def __init__(
        self,
        watts: Mapping[str, float | str],
        *,
        available: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        unknown = set(watts) - set(SCALAR_FIELDS)
        if unknown:
            raise ValueError(f"no such AppleEnergyMetrics fields: {sorted(unknown)}")
        self.profiles = {name: PowerProfile.of(w) for name, w in watts.items()}
        self.available = available
        self.clock = clock
        self.origin_s = clock()
        fake = self

        class AppleEnergyMonitor:
            def __init__(self):
                if not fake.available:
                    raise RuntimeError("Failed to create IOReport subscription.")
                self._begins: dict[str, AppleEnergyMetrics] = {}

            def begin_window(self, label: str, restart: bool = False) -> None:
                if label in self._begins and not restart:
                    raise RuntimeError("Measurement with specified key already exists.")
                self._begins[label] = fake.cumulative()

            def end_window(self, label: str) -> AppleEnergyMetrics:
                if label not in self._begins:
                    raise RuntimeError("No measurement with provided key had been started.")
                begin, end = self._begins.pop(label), fake.cumulative()
                return AppleEnergyMetrics(
                    **{
                        f: None if getattr(end, f) is None else getattr(end, f) - getattr(begin, f)
                        for f in SCALAR_FIELDS
                    }
                )

            def get_cumulative_energy(self) -> AppleEnergyMetrics:
                return fake.cumulative()

        self.AppleEnergyMonitor = AppleEnergyMonitor

    def now_s(self) -> float:
        return self.clock() - self.origin_s

    def true_energy_j(self, field: str, t0_s: float, t1_s: float) -> float:
        return self.profiles[field].energy_j(t0_s, t1_s)

    def cumulative(self) -> AppleEnergyMetrics:
        """Every counter now, whole mJ from the fake's origin."""
        now_s = self.now_s()
        return AppleEnergyMetrics(
            **{f: math.floor(1000 * p.energy_j(0.0, now_s)) for f, p in self.profiles.items()}
        )
