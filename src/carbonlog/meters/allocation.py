"""What this machine, container or job may use: logical CPUs and memory bytes, with the limit
that sets each (CPU affinity, cgroup v1 or v2, a SLURM allocation, else the whole machine).

cgroup limits are hierarchical, so every directory from the process's own cgroup (as
/proc/self/cgroup names it) up to the hierarchy's root is read and the smallest limit wins.
v2: cpu.max ("quota period", "max" for none), cpuset.cpus.effective, memory.max.
v1: cpu.cfs_quota_us / cpu.cfs_period_us (-1 for none), cpuset.effective_cpus or cpuset.cpus,
memory.limit_in_bytes (a huge number for none). SLURM: SLURM_CPUS_ON_NODE, and
SLURM_MEM_PER_NODE or SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE, in MiB (Slurm's "MB").
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
MIB = 2**20


class Allowance(NamedTuple):
    """An amount this process may use (CPUs, or bytes), what sets it, and the cgroup directory
    that sets it (None for affinity, SLURM or the machine)."""

    amount: float
    source: str
    cgroup: Path | None = None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _memberships(proc_cgroup: Path) -> list[tuple[list[str], str]]:
    """(controllers, path) per line of /proc/self/cgroup; [] controllers for the v2 line."""
    found = []
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            found.append(([c for c in parts[1].split(",") if c], parts[2]))
    return found


def _up_from(mount: Path, path: str) -> Iterator[Path]:
    """The process's cgroup directory under `mount` and each parent up to `mount` itself."""
    here = mount / path.lstrip("/")
    if not here.is_dir():  # a container that sees the host's path but mounts its own cgroup
        here = mount
    while True:
        yield here
        if here == mount or mount not in here.parents:
            return
        here = here.parent


def _cgroup_dirs(root: Path, proc_cgroup: Path, controller: str) -> Iterator[Path]:
    """The directories holding `controller`'s files for this process, v1 and v2 alike."""
    for controllers, path in _memberships(proc_cgroup):
        if not controllers:
            yield from _up_from(root / "unified" if (root / "unified").is_dir() else root, path)
        elif controller in controllers:
            yield from _up_from(root / ",".join(controllers), path)


def _cpu_list_count(text: str) -> int:
    """Number of CPUs in a list such as "0-3,8,10-11"."""
    count = 0
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first:
            count += int(last or first) - int(first) + 1
    return count


def _quota_cpus(directory: Path) -> float | None:
    """CPUs a cgroup's CFS quota allows (v2 cpu.max, v1 cfs_quota_us), None if unlimited."""
    text = _read(directory / "cpu.max")
    if text is not None:
        quota, _, period = text.partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100_000)
    quota, period = _read(directory / "cpu.cfs_quota_us"), _read(directory / "cpu.cfs_period_us")
    if quota is None or period is None or int(quota) < 0:
        return None
    return int(quota) / int(period)


def _cpuset_cpus(directory: Path) -> int | None:
    for name in ("cpuset.cpus.effective", "cpuset.effective_cpus", "cpuset.cpus"):
        text = _read(directory / name)
        if text:
            return _cpu_list_count(text)
    return None


def _memory_limit_bytes(directory: Path) -> int | None:
    for name in ("memory.max", "memory.limit_in_bytes"):
        text = _read(directory / name)
        if text and text != "max":
            return int(text)
    return None


def _smallest(candidates: list[Allowance]) -> Allowance:
    return min(candidates, key=lambda a: a.amount)


def _from_cgroups(
    root: Path, proc_cgroup: Path, controller: str, read: Callable[[Path], float | None]
) -> list[Allowance]:
    found = []
    for directory in _cgroup_dirs(root, proc_cgroup, controller):
        try:
            amount = read(directory)
        except ValueError:  # a file this reader does not understand: no limit from it
            continue
        if amount is not None:
            found.append(Allowance(amount, f"cgroup {directory}", directory))
    return found


def cgroup_cpu_s(directory: Path) -> float | None:
    """CPU seconds the processes of a cgroup have used (v2 cpu.stat usage_usec, v1
    cpuacct.usage in ns), None where the directory does not count them."""
    for line in (_read(directory / "cpu.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec" and value.strip().isdigit():
            return int(value) / 1e6
    text = _read(directory / "cpuacct.usage")
    return int(text) / 1e9 if text and text.isdigit() else None


def allowed_cpus(
    root: Path | str = CGROUP_ROOT,
    environ: Mapping[str, str] | None = None,
    proc_cgroup: Path | str = PROC_CGROUP,
    affinity: Collection[int] | None = None,
) -> Allowance:
    """Logical CPUs this process may use: the smallest of its affinity, its cgroups' CFS quota
    and cpuset, and SLURM_CPUS_ON_NODE."""
    env = os.environ if environ is None else environ
    if affinity is None:  # macOS and Windows have no affinity call: every CPU
        getaffinity = getattr(os, "sched_getaffinity", None)
        affinity = getaffinity(0) if getaffinity else range(os.cpu_count() or 1)
    candidates = [Allowance(float(len(affinity)), "CPU affinity")]
    root, proc_cgroup = Path(root), Path(proc_cgroup)
    candidates += _from_cgroups(root, proc_cgroup, "cpu", _quota_cpus)
    candidates += _from_cgroups(root, proc_cgroup, "cpuset", _cpuset_cpus)
    if env.get("SLURM_CPUS_ON_NODE", "").isdigit():
        candidates.append(Allowance(float(env["SLURM_CPUS_ON_NODE"]), "SLURM_CPUS_ON_NODE"))
    return _smallest(candidates)


def installed_memory_bytes() -> int:
    """The machine's physical memory."""
    import psutil

    return psutil.virtual_memory().total


def _mib(environ: Mapping[str, str], name: str) -> float:
    """A SLURM memory variable in bytes; 0 where unset or 0 (Slurm's "all the node's memory")."""
    text = environ.get(name, "")
    return float(text) * MIB if text.isdigit() else 0.0


def allowed_memory_bytes(
    root: Path | str = CGROUP_ROOT,
    environ: Mapping[str, str] | None = None,
    proc_cgroup: Path | str = PROC_CGROUP,
    installed_bytes: int | None = None,
) -> Allowance:
    """Memory allocated to this job: the smallest of its cgroups' limits, its SLURM allocation
    and the installed memory."""
    env = os.environ if environ is None else environ
    installed = installed_memory_bytes() if installed_bytes is None else installed_bytes
    candidates = [Allowance(float(installed), "installed memory")]
    candidates += _from_cgroups(Path(root), Path(proc_cgroup), "memory", _memory_limit_bytes)
    per_node, per_cpu = _mib(env, "SLURM_MEM_PER_NODE"), _mib(env, "SLURM_MEM_PER_CPU")
    cpus = env.get("SLURM_CPUS_ON_NODE", "")
    if per_node:
        candidates.append(Allowance(per_node, "SLURM_MEM_PER_NODE"))
    elif per_cpu and cpus.isdigit():
        candidates.append(Allowance(per_cpu * int(cpus), "SLURM_MEM_PER_CPU x SLURM_CPUS_ON_NODE"))
    return _smallest(candidates)
