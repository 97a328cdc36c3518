"""CPU package and DRAM energy from the RAPL counters Linux exposes under /sys/class/powercap.

Domains counted: each socket's package ("package-N", or "package-N-die-M") for "cpu", and
its "dram" subdomain for "ram". Never counted: "core" and "uncore" (parts of the package),
"psys" (the whole platform, package included; used for "cpu" only when no package exists),
and mirrors: a domain whose name another domain already has (intel-rapl-mmio repeats
intel-rapl's package) or whose counter reads the same as another's (a package counter shown
once per die). AMD Zen shows its packages the same way (intel-rapl:N, "package-N"); without
powercap, the amd_energy hwmon driver's socket counters ("Esocket*", never "Ecore*") are used.

Counters wrap at max_energy_range_uj; a wrap is undone when a read is lower than the one
before, which is right only if reads come less than one wrap period apart (the range over the
power: 262 kJ lasts ~12 min at 350 W, but ranges of ~65 kJ and less exist). The tracker reads
at interval edges, possibly hours apart, so each meter runs a daemon thread that reads every
half the shortest wrap period at 1 kW, kept within 0.5-5 s: a few sysfs reads, nothing else.

energy_uj has been readable by root only since CVE-2020-8694 (Platypus); open_rapl_meters
raises PermissionError then, and the factory falls back to the models with a hint.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from carbonlog.meters.base import ConstantPowerMeter, Meter, MeterError
from carbonlog.meters.uncertainty import RAPL_UPDATE_S, counter_band_j

POWERCAP_ROOT = Path("/sys/class/powercap")
HWMON_ROOT = Path("/sys/class/hwmon")
ASSUMED_MAX_W = 1000.0  # per domain, to size the wrap watch
MAX_WATCH_S = 5.0
MIN_WATCH_S = 0.5
PERMISSION_HINT = (
    "grant read access with `sudo chmod -R a+r /sys/class/powercap/intel-rapl` (until reboot) "
    'or a udev rule: SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod a+r '
    '/sys%p/energy_uj"'
)

_ZONE_RE = re.compile(r"(intel-rapl(?:-mmio)?):(\d+)(?::(\d+))?")
_PACKAGE_RE = re.compile(r"package-\d+(?:-die-\d+)?")


def _read_text(path: Path) -> str:
    """The one place that reads sysfs (tests replace it to simulate a non-root reader)."""
    return path.read_text()


def _read_int(path: Path) -> int:
    return int(_read_text(path).strip())


@dataclass(frozen=True)
class RaplDomain:
    """One energy counter: its file, a readable label, and its wrap range (None: 64-bit)."""

    label: str
    energy_file: Path
    max_range_uj: int | None

    def read_uj(self) -> int:
        return _read_int(self.energy_file)


def _powercap_domains(root: Path) -> tuple[list[RaplDomain], list[RaplDomain]]:
    """(package or psys domains, dram domains) under a powercap root, mirrors by name removed."""
    zones = []
    for entry in root.iterdir() if root.is_dir() else ():
        match = _ZONE_RE.fullmatch(entry.name)
        if match:  # intel-rapl before intel-rapl-mmio, then by number
            iface, top, sub = match.groups()
            zones.append(
                ((iface != "intel-rapl", int(top), -1 if sub is None else int(sub)), entry)
            )
    names: dict[tuple[str, int], str] = {}
    packages, psys, drams, seen = [], [], [], set()
    for (mmio, top, sub), entry in sorted(zones):
        name = _read_text(entry / "name").strip()
        if sub < 0:
            names[(mmio, top)] = name
            kind = "package" if _PACKAGE_RE.fullmatch(name) else name
            label, target = name, {"package": packages, "psys": psys, "dram": drams}.get(kind)
        else:
            parent = names.get((mmio, top), f"zone-{top}")
            label, target = f"{parent}/{name}", drams if name == "dram" else None
        if target is None or label in seen:  # core, uncore, unknown; or a mirror by name
            continue
        seen.add(label)
        target.append(
            RaplDomain(label, entry / "energy_uj", _read_int(entry / "max_energy_range_uj"))
        )
    return packages or psys, drams


def _amd_energy_domains(root: Path) -> list[RaplDomain]:
    """Socket counters of the amd_energy hwmon driver (64-bit, accumulated by the driver)."""
    domains = []
    for hwmon in sorted(root.iterdir()) if root.is_dir() else ():
        name_file = hwmon / "name"
        if not name_file.is_file() or _read_text(name_file).strip() != "amd_energy":
            continue
        for label_file in sorted(hwmon.glob("energy*_label")):
            label = _read_text(label_file).strip()
            if label.startswith("Esocket"):
                energy = label_file.with_name(label_file.name.replace("_label", "_input"))
                domains.append(RaplDomain(f"amd_energy/{label}", energy, None))
    return domains


def _without_mirrors(domains: list[RaplDomain]) -> list[RaplDomain]:
    """Drop counters that read exactly like one already kept (one counter shown per die)."""
    kept, readings = [], set()
    for domain in domains:
        reading = domain.read_uj()  # PermissionError here when energy_uj is root-only
        if reading and reading in readings:
            continue
        readings.add(reading)
        kept.append(domain)
    return kept


def open_rapl_meters(
    powercap_root: Path | str = POWERCAP_ROOT, hwmon_root: Path | str = HWMON_ROOT
) -> dict[str, RaplMeter]:
    """RAPL meters by component ("cpu": packages, "ram": DRAM); empty where there is no RAPL.

    Raises PermissionError when the counters exist but cannot be read.
    """
    packages, drams = _powercap_domains(Path(powercap_root))
    if not packages:
        packages = _amd_energy_domains(Path(hwmon_root))
    meters = {}
    for component, domains in (("cpu", packages), ("ram", drams)):
        domains = _without_mirrors(domains)
        if domains:
            meters[component] = RaplMeter(component, domains)
    return meters


def watch_period_s(domains: list[RaplDomain]) -> float:
    """How often to read so that no counter wraps twice between reads, even at 1 kW."""
    ranges_j = [d.max_range_uj / 1e6 for d in domains if d.max_range_uj]
    shortest_s = min(ranges_j, default=float("inf")) / ASSUMED_MAX_W
    return min(MAX_WATCH_S, max(MIN_WATCH_S, shortest_s / 2))


class RaplMeter:
    """Joules of some RAPL domains since start(), wraps undone; a hardware counter, exact to
    one update (RAPL_UPDATE_S) at each edge."""

    estimated = False
    method = "counter"

    def __init__(self, component: str, domains: list[RaplDomain], watch_s: float | None = None):
        self.component = component
        self.domains = domains
        self.watch_s = watch_period_s(domains) if watch_s is None else watch_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_uj: list[int] = []
        self._total_uj = 0
        self._t0_s: float | None = None
        self._good = (0.0, 0.0)  # (joules, seconds since start) at the last good read

    def start(self) -> None:
        self._stop_watch()
        try:
            self._last_uj = [d.read_uj() for d in self.domains]
        except (OSError, ValueError) as exc:
            raise MeterError(f"RAPL read failed at start: {exc}") from exc
        self._total_uj = 0
        self._t0_s = time.monotonic()
        self._good = (0.0, 0.0)
        if self.watch_s > 0:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._watch, daemon=True, name=f"carbonlog-rapl-{self.component}"
            )
            self._thread.start()

    def energy_j(self) -> float:
        if self._t0_s is None:
            return 0.0
        try:
            self._poll()
        except (OSError, ValueError) as exc:
            raise MeterError(f"RAPL read failed: {exc}") from exc
        energy_j = self._total_uj / 1e6
        self._good = (energy_j, time.monotonic() - self._t0_s)
        return energy_j

    def band_j(self, energy_j: float, window_s: float) -> float:
        return counter_band_j(energy_j, window_s, RAPL_UPDATE_S)

    def devices(self) -> list[dict]:
        return [
            {
                "name": d.label,
                "path": str(d.energy_file),
                "method": "rapl",
                "max_energy_range_uj": d.max_range_uj,
            }
            for d in self.domains
        ]

    def fallback(self) -> Meter:
        """Constant power at the mean measured so far, else the component's model."""
        energy_j, elapsed_s = self._good
        if elapsed_s > 0 and energy_j > 0:
            return ConstantPowerMeter(
                self.component,
                energy_j / elapsed_s,
                f"{self.component} estimate after a RAPL fault: mean power so far",
            )
        from carbonlog.meters.model import CpuModelMeter, RamModelMeter

        return CpuModelMeter.for_host() if self.component == "cpu" else RamModelMeter.for_host()

    def close(self) -> None:
        self._stop_watch()

    def _poll(self) -> None:
        """Read every counter and add what it moved since the last read (one wrap at most)."""
        with self._lock:
            for i, domain in enumerate(self.domains):
                now_uj = domain.read_uj()
                delta_uj = now_uj - self._last_uj[i]
                if delta_uj < 0:  # wrapped; a 64-bit counter that goes back was reset to zero
                    delta_uj = delta_uj + domain.max_range_uj if domain.max_range_uj else now_uj
                self._total_uj += delta_uj
                self._last_uj[i] = now_uj

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_s):
            try:
                self._poll()
            except (OSError, ValueError):
                return  # energy_j() will meet the same fault and report it

    def _stop_watch(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2.0)
            self._thread = None
