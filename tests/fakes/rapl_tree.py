"""A fake /sys/class/powercap (and amd_energy hwmon) tree under a test directory.

Zones are flat directories as in /sys/class/powercap (intel-rapl:0, intel-rapl:0:0, ...), each
with name, energy_uj and max_energy_range_uj. A test advances counters in joules; counters
wrap at max_energy_range_uj like the hardware's, and mirrors (intel-rapl-mmio, per-die copies
of one package counter) move with their source. Files are replaced atomically, so a meter's
watch thread never reads a half-written number.

Unreadable counters: since CVE-2020-8694 energy_uj is mode 0400, root only. Tests run as root,
where chmod 000 changes nothing, so deny() both chmods the file (effective for a non-root
run) and records it; `tree.read_text` raises PermissionError for recorded files, and tests
install it as the meter's one sysfs reader (monkeypatch carbonlog.meters.rapl._read_text).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_RANGE_UJ = 262_143_328_850  # a common package range: 2^32 units of 61 uJ


class FakeRaplTree:
    """Build RAPL zones under `root`; advance them; deny reads."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._energy_uj: dict[str, int] = {}
        self._range_uj: dict[str, int] = {}
        self._mirrors: dict[str, list[str]] = {}
        self._denied: set[Path] = set()

    @classmethod
    def intel(
        cls,
        root: Path,
        sockets: int = 2,
        dram: bool = True,
        core: bool = True,
        psys: bool = False,
        mmio_mirror: bool = False,
        max_range_uj: int = DEFAULT_RANGE_UJ,
    ) -> FakeRaplTree:
        """A server's tree: package-N (with core and dram subzones) per socket, options."""
        tree = cls(root)
        for s in range(sockets):
            tree.add(f"intel-rapl:{s}", f"package-{s}", 1_000_000 * (s + 1), max_range_uj)
            subzones = (["core"] if core else []) + (["dram"] if dram else [])
            for i, name in enumerate(subzones):
                tree.add(f"intel-rapl:{s}:{i}", name, 500_000 * (s + 1), max_range_uj)
        if psys:
            tree.add(f"intel-rapl:{sockets}", "psys", 7_000_000, max_range_uj)
        if mmio_mirror:
            tree.mirror("intel-rapl:0", "intel-rapl-mmio:0")
        return tree

    def add(self, zone: str, name: str, energy_uj: int = 0, max_range_uj: int = DEFAULT_RANGE_UJ):
        """One zone directory with its three files."""
        path = self.root / zone
        path.mkdir()
        (path / "name").write_text(f"{name}\n")
        (path / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
        self._range_uj[zone] = max_range_uj
        self.set_uj(zone, energy_uj)

    def mirror(self, source: str, zone: str, name: str | None = None) -> None:
        """A zone exposing `source`'s counter (same name unless given), e.g. intel-rapl-mmio:0."""
        if name is None:
            name = (self.root / source / "name").read_text().strip()
        self.add(zone, name, self._energy_uj[source], self._range_uj[source])
        self._mirrors.setdefault(source, []).append(zone)

    def set_uj(self, zone: str, energy_uj: int) -> None:
        """Set a counter (and its mirrors) to a raw value, written atomically."""
        self._energy_uj[zone] = energy_uj
        for target in [zone, *self._mirrors.get(zone, [])]:
            path = self.root / target / "energy_uj"
            tmp = path.with_name("energy_uj.tmp")
            tmp.write_text(f"{energy_uj}\n")
            os.replace(tmp, path)

    def advance(self, zone: str, joules: float) -> None:
        """Add energy to a counter, wrapping at its max_energy_range_uj."""
        new_uj = self._energy_uj[zone] + round(joules * 1e6)
        self.set_uj(zone, new_uj % self._range_uj[zone])

    def energy_uj(self, zone: str) -> int:
        return self._energy_uj[zone]

    def deny(self, zone: str) -> None:
        """Make a zone's energy_uj unreadable, as it is for non-root users (see module doc)."""
        path = self.root / zone / "energy_uj"
        path.chmod(0)
        self._denied.add(path)

    def read_text(self, path: Path) -> str:
        """Stand-in for carbonlog.meters.rapl._read_text that honours deny()."""
        if Path(path) in self._denied:
            raise PermissionError(13, "Permission denied", str(path))
        return Path(path).read_text()


def amd_energy_hwmon(root: Path, sockets: int = 1, cores: int = 4) -> dict[str, Path]:
    """An amd_energy hwmon device (Ecore* and Esocket* counters); label -> energy file."""
    device = Path(root) / "hwmon3"
    device.mkdir(parents=True)
    (device / "name").write_text("amd_energy\n")
    labels = [f"Ecore{c:03d}" for c in range(cores)] + [f"Esocket{s}" for s in range(sockets)]
    files = {}
    for i, label in enumerate(labels, start=1):
        (device / f"energy{i}_label").write_text(f"{label}\n")
        files[label] = device / f"energy{i}_input"
        files[label].write_text(f"{1_000_000 * i}\n")  # distinct, as real counters are
    return files
