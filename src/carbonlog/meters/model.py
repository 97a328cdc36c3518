"""Estimates where no counter can be read: CPU from rated TDP and load, RAM from W per GiB.

CPU power, linear in the machine's CPU utilisation u (0..1) between idle and full load:

    P(u) = TDP x sockets x (IDLE_FRACTION + (1 - IDLE_FRACTION) x u)

Recent servers idle at roughly 10-30 % of their full-load power (published SPECpower_ssj2008
results); we take 20 %, and TDP as full load. The curve is the linear model of Fan, Weber &
Barroso ("Power provisioning for a warehouse-sized computer", ISCA 2007). Being linear, the
energy of an interval depends only on the mean utilisation over it, so reading CPU times at
interval edges (psutil.cpu_percent(interval=None) semantics, with the meter's own state) is
exact for the model, with no sampling thread. u is the whole machine's busy / total CPU time,
not this process's: the package powers every process, DataLoader workers included, and RAPL,
which this model stands in for, is machine-wide too.

Unknown CPU model: DEFAULT_W_PER_THREAD x logical CPUs as TDP, the figure CodeCarbon 3.x uses
(4 W per thread); Green Algorithms' generic 12 W per core (~6 W per thread with SMT) reads
higher than current server parts (EPYC 7763: 280 W / 128 threads = 2.2 W).
On a VM or container that sees a slice of a host socket, the model charges whole sockets:
pass power_w={"cpu": ...} where that matters.

RAM: RAM_W_PER_GIB x memory in use, integrated with the trapezoid rule between reads.
0.3725 W/GB is Green Algorithms' figure (referenceValues.csv, from
doi:10.1145/3076113.3076117 and Tom's Hardware's Haswell-E review); a DIMM's "GB" is a GiB.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

IDLE_FRACTION = 0.2
DEFAULT_W_PER_THREAD = 4.0
RAM_W_PER_GIB = 0.3725
GIB = 2**30
RAM_SCOPES = ("process", "node")


def read_cpuinfo(path: Path | str = "/proc/cpuinfo") -> tuple[str | None, int]:
    """(the first "model name", number of physical sockets) from /proc/cpuinfo."""
    model, sockets = None, set()
    try:
        text = Path(path).read_text()
    except OSError:
        return None, 1
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key == "physical id":
            sockets.add(value.strip())
    return model, max(len(sockets), 1)


def _psutil(module: ModuleType | None) -> ModuleType:
    if module is not None:
        return module
    import psutil

    return psutil


def _busy_total_s(times) -> tuple[float, float]:
    """(busy, total) CPU seconds, as psutil.cpu_percent counts them (guest is inside user)."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


class CpuModelMeter:
    """CPU energy estimated as TDP x a linear load curve, load read between energy_j() calls."""

    component = "cpu"
    estimated = True

    def __init__(
        self,
        tdp_w: float,
        info: dict | None = None,
        *,
        idle_fraction: float = IDLE_FRACTION,
        psutil_module: ModuleType | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.tdp_w = float(tdp_w)
        self._clock = clock
        self.idle_fraction = idle_fraction
        self.info = {"tdp_w": self.tdp_w, "method": "model: TDP x load", **(info or {})}
        self._psutil = _psutil(psutil_module)
        self._last: tuple[float, float, float] | None = None  # (time, busy, total) in s
        self._energy_j = 0.0

    @classmethod
    def for_host(
        cls, cpuinfo_path: Path | str = "/proc/cpuinfo", psutil_module: ModuleType | None = None
    ) -> CpuModelMeter:
        """The model of this machine: table TDP x sockets, else DEFAULT_W_PER_THREAD x threads."""
        from carbonlog.meters.cpu_table import lookup

        psutil = _psutil(psutil_module)
        model, sockets = read_cpuinfo(cpuinfo_path)
        row = lookup(model) if model else None
        if row is not None:
            info = {
                "name": model,
                "matched": row.name,
                "sockets": sockets,
                "source": row.source,
                "year": row.year,
            }
            return cls(row.tdp_w * sockets, info, psutil_module=psutil)
        threads = psutil.cpu_count(logical=True) or 1
        info = {
            "name": model or "unknown CPU",
            "threads": threads,
            "source": f"default {DEFAULT_W_PER_THREAD:g} W per thread",
        }
        return cls(DEFAULT_W_PER_THREAD * threads, info, psutil_module=psutil)

    def power_w(self, utilisation: float) -> float:
        """Modelled power at a utilisation between 0 and 1."""
        u = min(max(utilisation, 0.0), 1.0)
        return self.tdp_w * (self.idle_fraction + (1 - self.idle_fraction) * u)

    def _read(self) -> tuple[float, float, float]:
        busy_s, total_s = _busy_total_s(self._psutil.cpu_times())
        return self._clock(), busy_s, total_s

    def start(self) -> None:
        self._last = self._read()
        self._energy_j = 0.0

    def energy_j(self) -> float:
        if self._last is None:
            return 0.0
        now = self._read()
        (t0_s, busy0_s, total0_s), (t1_s, busy1_s, total1_s) = self._last, now
        cpu_s = total1_s - total0_s
        utilisation = (busy1_s - busy0_s) / cpu_s if cpu_s > 0 else 0.0
        self._energy_j += self.power_w(utilisation) * (t1_s - t0_s)
        self._last = now
        return self._energy_j

    def devices(self) -> list[dict]:
        return [dict(self.info)]

    def fallback(self) -> CpuModelMeter:
        return CpuModelMeter(
            self.tdp_w,
            self.info,
            idle_fraction=self.idle_fraction,
            psutil_module=self._psutil,
            clock=self._clock,
        )

    def close(self) -> None:
        pass


CHILDREN_RESCAN_S = 10.0


class RamModelMeter:
    """RAM energy estimated as W per GiB x memory in use: this process and its children's
    resident memory (scope="process"; pages shared after fork count once per process, so an
    upper bound), or the node's memory in use, total - available (scope="node")."""

    component = "ram"
    estimated = True

    def __init__(
        self,
        scope: str = "process",
        w_per_gib: float = RAM_W_PER_GIB,
        *,
        psutil_module: ModuleType | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if scope not in RAM_SCOPES:
            raise ValueError(f"scope must be one of {RAM_SCOPES}, got {scope!r}")
        self.scope = scope
        self.w_per_gib = w_per_gib
        self._psutil = _psutil(psutil_module)
        self._clock = clock
        self._last: tuple[float, int] | None = None  # (time in s, bytes in use)
        self._energy_j = 0.0
        self._process = self._psutil.Process() if scope == "process" else None
        self._children_cache: list = []
        self._children_at_s: float | None = None

    def used_bytes(self) -> int:
        """Memory in use now, in the meter's scope."""
        psutil = self._psutil
        if self.scope == "node":
            memory = psutil.virtual_memory()
            return memory.total - memory.available
        used = self._process.memory_info().rss
        for child in self._children():
            try:
                used += child.memory_info().rss
            except psutil.Error:  # a worker that ended meanwhile
                continue
        return used

    def _children(self) -> list:
        """This process's descendants (data-loader workers), listed again every few seconds:
        listing walks all of /proc (~3 ms), reading a known child's memory does not."""
        now_s = self._clock()
        if self._children_at_s is None or now_s - self._children_at_s >= CHILDREN_RESCAN_S:
            self._children_cache = self._process.children(recursive=True)
            self._children_at_s = now_s
        return self._children_cache

    def start(self) -> None:
        self._last = (self._clock(), self.used_bytes())
        self._energy_j = 0.0

    def energy_j(self) -> float:
        if self._last is None:
            return 0.0
        now = (self._clock(), self.used_bytes())
        (t0_s, bytes0), (t1_s, bytes1) = self._last, now
        self._energy_j += self.w_per_gib * (bytes0 + bytes1) / 2 / GIB * (t1_s - t0_s)
        self._last = now
        return self._energy_j

    def devices(self) -> list[dict]:
        return [
            {
                "name": f"RAM ({self.scope})",
                "method": "model: W per GiB",
                "w_per_gib": self.w_per_gib,
                "bytes_in_use": self._last[1] if self._last else None,
            }
        ]

    def fallback(self) -> RamModelMeter:
        return RamModelMeter(
            self.scope, self.w_per_gib, psutil_module=self._psutil, clock=self._clock
        )

    def close(self) -> None:
        pass
