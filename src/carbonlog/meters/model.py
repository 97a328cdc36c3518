"""Estimates where no counter can be read: CPU from rated TDP and load, RAM from W per GiB.

CPU power, linear in the machine's CPU utilisation u (0..1) between idle and full load:

    P(u) = TDP x sockets x (IDLE_FRACTION + (1 - IDLE_FRACTION) x u)

Recent servers idle at roughly 10-30 % of their full-load power (published SPECpower_ssj2008
results); we take 20 %, and TDP as full load. The curve is the linear model of Fan, Weber &
Barroso ("Power provisioning for a warehouse-sized computer", ISCA 2007). Being linear, the
energy of an interval depends only on the mean utilisation over it, so reading CPU times at
interval edges (psutil.cpu_percent(interval=None) semantics, with the meter's own state) is
exact for the model, with no sampling thread. u is the load of what the model charges: the
whole machine's busy / total CPU time when it charges whole sockets (the package powers every
process, DataLoader workers included, and RAPL, which this model stands in for, is machine-wide
too); a slice's own when it charges a slice: the CPU time of the cgroup that sets the limit
over its allowed CPUs x time, else the busy time of the CPUs its affinity allows.

A VM or container that may use a slice of the sockets is charged that slice: TDP x sockets x
allowed / threads, where allowed is the logical CPUs its affinity, cgroups or SLURM allow
(meters/allocation.py) and threads the sockets' hardware threads: the table's cores (Green
Algorithms v3) x threads per core as /proc/cpuinfo shows them (siblings / cpu cores; a
guest's vCPUs map to host threads the same way), else the siblings this machine sees.
A 2-vCPU VM on an EPYC 7763 (280 W, 64 cores, 128 threads) is charged 4.4 W, not 280 W.

Unknown CPU model: DEFAULT_W_PER_THREAD x allowed logical CPUs as TDP, the figure CodeCarbon
3.x uses (4 W per thread); Green Algorithms' generic 12 W per core (~6 W per thread with SMT)
reads higher than current server parts (EPYC 7763: 280 W / 128 threads = 2.2 W).

RAM: RAM_W_PER_GIB x the memory allocated to the job (cgroup limit, SLURM allocation, else
installed), a constant power. DRAM power follows capacity more than use (refresh and
background power are paid per DIMM whatever the occupancy), and Green Algorithms applies its
figure to the memory allocated; charging resident memory alone reads ~60x low (0.15 W against
8.8 W on a 23.5 GiB machine). 0.3725 W/GB is Green Algorithms' figure (referenceValues.csv,
from doi:10.1145/3076113.3076117 and Tom's Hardware's Haswell-E review, 2017 and 2014); a
DIMM's "GB" is a GiB.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from carbonlog.meters.allocation import (
    Allowance,
    allowed_cpus,
    allowed_memory_bytes,
    cgroup_cpu_s,
)
from carbonlog.meters.base import MeterError
from carbonlog.meters.uncertainty import model_band_j

IDLE_FRACTION = 0.2
DEFAULT_W_PER_THREAD = 4.0
RAM_W_PER_GIB = 0.3725
GIB = 2**30


class CpuInfo(NamedTuple):
    """What /proc/cpuinfo says: the first "model name", the physical sockets, and the first
    socket's logical CPUs ("siblings") and cores ("cpu cores"), 0 where not given."""

    model: str | None
    sockets: int
    siblings: int = 0
    cores: int = 0

    @property
    def threads_per_core(self) -> int:
        """Hardware threads per core (SMT), 1 where /proc/cpuinfo does not say."""
        return max(self.siblings // self.cores, 1) if self.cores else 1


def read_cpuinfo(path: Path | str = "/proc/cpuinfo") -> CpuInfo:
    """The model, sockets, siblings and cores /proc/cpuinfo gives (None, 1, 0, 0 unreadable)."""
    fields: dict[str, str] = {}
    sockets = set()
    try:
        text = Path(path).read_text()
    except OSError:
        return CpuInfo(None, 1)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "physical id":
            sockets.add(value)
        elif key in ("model name", "siblings", "cpu cores"):
            fields.setdefault(key, value)

    def number(key: str) -> int:
        return int(fields[key]) if fields.get(key, "").isdigit() else 0

    return CpuInfo(
        fields.get("model name"), max(len(sockets), 1), number("siblings"), number("cpu cores")
    )


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


LoadFn = Callable[[], tuple[float, float]]
"""(busy, total) CPU seconds so far; the load between two reads is the ratio of their moves."""


def machine_load(psutil: ModuleType) -> LoadFn:
    """The whole machine's CPU times."""
    return lambda: _busy_total_s(psutil.cpu_times())


def cpus_load(psutil: ModuleType, cpus: set[int]) -> LoadFn:
    """The CPU times of some logical CPUs (those an affinity allows)."""

    def read() -> tuple[float, float]:
        per_cpu = psutil.cpu_times(percpu=True)
        pairs = [_busy_total_s(per_cpu[i]) for i in sorted(cpus) if i < len(per_cpu)]
        return sum(b for b, _ in pairs), sum(t for _, t in pairs)

    return read


def cgroup_load(directory: Path, cpus: float, clock: Callable[[], float]) -> LoadFn:
    """A cgroup's CPU time, against its allowed CPUs x the time passing."""

    def read() -> tuple[float, float]:
        used_s = cgroup_cpu_s(directory)
        if used_s is None:
            raise MeterError(f"the CPU time of cgroup {directory} is no longer readable")
        return used_s, cpus * clock()

    return read


def _slice_load(psutil: ModuleType, allowed: Allowance) -> tuple[LoadFn, str]:
    """The load of a slice of the machine, and what it is read from."""
    if allowed.cgroup is not None and cgroup_cpu_s(allowed.cgroup) is not None:
        return cgroup_load(allowed.cgroup, allowed.amount, time.monotonic), allowed.source
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        return cpus_load(psutil, getaffinity(0)), "CPU affinity"
    return machine_load(psutil), "this machine"


def _say_share(info: dict, full_w: float, tdp_w: float) -> None:
    """Once per run: this machine is charged a share of its sockets, and why."""
    from carbonlog._log import warn_once

    warn_once(
        "cpu-share",
        f"carbonlog: this process may use {info['allowed_cpus']:g} of the "
        f"{info['socket_threads']} hardware threads of {info['name']} ({info['allowed_by']}), "
        f"so the CPU model charges that share of its TDP: {tdp_w:.1f} W of {full_w:.0f} W",
    )


class CpuModelMeter:
    """CPU energy estimated as TDP x a linear load curve, load read between energy_j() calls."""

    component = "cpu"
    estimated = True
    method = "model"

    def __init__(
        self,
        tdp_w: float,
        info: dict | None = None,
        *,
        idle_fraction: float = IDLE_FRACTION,
        psutil_module: ModuleType | None = None,
        clock: Callable[[], float] = time.monotonic,
        load: LoadFn | None = None,
    ):
        self.tdp_w = float(tdp_w)
        self._clock = clock
        self.idle_fraction = idle_fraction
        self.info = {"tdp_w": self.tdp_w, "method": "model: TDP x load", **(info or {})}
        self._psutil = _psutil(psutil_module)
        self._load = machine_load(self._psutil) if load is None else load
        self._last: tuple[float, float, float] | None = None  # (time, busy, total) in s
        self._energy_j = 0.0

    @classmethod
    def for_host(
        cls,
        cpuinfo_path: Path | str = "/proc/cpuinfo",
        psutil_module: ModuleType | None = None,
        allowed: Allowance | None = None,
    ) -> CpuModelMeter:
        """The model of this machine's share of its sockets: table TDP x sockets x allowed /
        threads, else DEFAULT_W_PER_THREAD x allowed logical CPUs. `allowed`: the logical CPUs
        this process may use (default: read from affinity, cgroups and SLURM). A slice of the
        machine's CPUs is charged its own load, the whole machine the machine's."""
        from carbonlog.meters.cpu_table import lookup

        psutil = _psutil(psutil_module)
        cpuinfo = read_cpuinfo(cpuinfo_path)
        allowed = allowed_cpus() if allowed is None else allowed
        logical = psutil.cpu_count(logical=True) or 1
        load, load_from = machine_load(psutil), "this machine"
        if allowed.amount < logical:
            load, load_from = _slice_load(psutil, allowed)
        row = lookup(cpuinfo.model) if cpuinfo.model else None
        if row is None:
            threads = min(allowed.amount, logical)
            info = {
                "name": cpuinfo.model or "unknown CPU",
                "threads": threads,
                "allowed_by": allowed.source if allowed.amount < logical else "this machine",
                "load_of": load_from,
                "source": f"default {DEFAULT_W_PER_THREAD:g} W per thread",
            }
            return cls(DEFAULT_W_PER_THREAD * threads, info, psutil_module=psutil, load=load)
        per_socket = row.cores * cpuinfo.threads_per_core or cpuinfo.siblings
        socket_threads = per_socket * cpuinfo.sockets if per_socket else logical
        share = min(allowed.amount / socket_threads, 1.0)
        full_w = row.tdp_w * cpuinfo.sockets
        info = {
            "name": cpuinfo.model,
            "matched": row.name,
            "sockets": cpuinfo.sockets,
            "socket_threads": socket_threads,
            "allowed_cpus": allowed.amount,
            "allowed_by": allowed.source,
            "share": share,
            "load_of": load_from,
            "source": row.source,
            "year": row.year,
        }
        if share < 1.0:
            _say_share(info, full_w, full_w * share)
        return cls(full_w * share, info, psutil_module=psutil, load=load)

    def power_w(self, utilisation: float) -> float:
        """Modelled power at a utilisation between 0 and 1."""
        u = min(max(utilisation, 0.0), 1.0)
        return self.tdp_w * (self.idle_fraction + (1 - self.idle_fraction) * u)

    def band_j(self, energy_j: float, window_s: float) -> float:
        return model_band_j(energy_j)

    def _read(self) -> tuple[float, float, float]:
        busy_s, total_s = self._load()
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
        """The same model on the machine's load (a slice's cgroup may be what failed)."""
        return CpuModelMeter(
            self.tdp_w,
            self.info,
            idle_fraction=self.idle_fraction,
            psutil_module=self._psutil,
            clock=self._clock,
        )

    def close(self) -> None:
        pass


class RamModelMeter:
    """RAM energy estimated as W per GiB x the memory allocated to the job, a constant power."""

    component = "ram"
    estimated = True
    method = "model"

    def __init__(
        self,
        allocated: Allowance,
        w_per_gib: float = RAM_W_PER_GIB,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.allocated = allocated
        self.w_per_gib = w_per_gib
        self.power_w = w_per_gib * allocated.amount / GIB
        self._clock = clock
        self._t0_s: float | None = None

    @classmethod
    def for_host(cls) -> RamModelMeter:
        """The model of the memory this process's cgroups, SLURM job or machine allocate."""
        return cls(allowed_memory_bytes())

    def band_j(self, energy_j: float, window_s: float) -> float:
        return model_band_j(energy_j)

    def start(self) -> None:
        self._t0_s = self._clock()

    def energy_j(self) -> float:
        if self._t0_s is None:
            return 0.0
        return self.power_w * (self._clock() - self._t0_s)

    def devices(self) -> list[dict]:
        return [
            {
                "name": "RAM (allocated)",
                "method": "model: W per GiB",
                "w_per_gib": self.w_per_gib,
                "bytes_allocated": self.allocated.amount,
                "allocated_by": self.allocated.source,
                "power_w": self.power_w,
            }
        ]

    def fallback(self) -> RamModelMeter:
        return RamModelMeter(self.allocated, self.w_per_gib, clock=self._clock)

    def close(self) -> None:
        pass
