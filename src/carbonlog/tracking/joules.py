"""Joules per component (gpu, cpu, ram): the value every meter reading and sum is made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from carbonlog.meters.base import COMPONENTS


class Joules(NamedTuple):
    """Energy in joules drawn by the GPUs, the CPU and the RAM (a tuple: cheap per mark)."""

    gpu_j: float = 0.0
    cpu_j: float = 0.0
    ram_j: float = 0.0

    @classmethod
    def of(cls, by_component: dict[str, float]) -> Joules:
        """From {"gpu": J, "cpu": J, "ram": J}; missing components are zero."""
        get = by_component.get
        return cls(float(get("gpu", 0.0)), float(get("cpu", 0.0)), float(get("ram", 0.0)))

    @classmethod
    def from_vector(cls, values: Sequence[float]) -> Joules:
        """From the three floats `vector()` gives, in COMPONENTS order (after a sum over ranks)."""
        gpu_j, cpu_j, ram_j = (float(v) for v in values)
        return cls(gpu_j, cpu_j, ram_j)

    def vector(self) -> list[float]:
        """The three figures in COMPONENTS order, for a sum over ranks."""
        return list(self)

    def by_component(self) -> dict[str, float]:
        return dict(zip(COMPONENTS, self, strict=True))

    @property
    def device_j(self) -> float:
        """All components together, at the devices (before PUE)."""
        return self.gpu_j + self.cpu_j + self.ram_j

    def __add__(self, other: Joules) -> Joules:  # a sum of energies, not tuple concatenation
        return Joules(self.gpu_j + other.gpu_j, self.cpu_j + other.cpu_j, self.ram_j + other.ram_j)
