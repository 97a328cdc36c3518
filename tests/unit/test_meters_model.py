"""Model meters (TDP x load, W per GiB) and the CPU TDP table they read."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace

import pytest

from carbonlog.meters import cpu_table
from carbonlog.meters.model import (
    CHILDREN_RESCAN_S,
    DEFAULT_W_PER_THREAD,
    GIB,
    IDLE_FRACTION,
    RAM_W_PER_GIB,
    CpuModelMeter,
    RamModelMeter,
    read_cpuinfo,
)

REPO = Path(__file__).resolve().parents[2]
CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


class Clock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class FakePsutil:
    """The psutil calls the models make, with values a test sets."""

    Error = type("Error", (Exception,), {})

    def __init__(self):
        self.times = CpuTimes(*[0.0] * 10)
        self.threads = 16
        self.rss = [0]  # this process, then its children
        self.children_listed = 0
        self.memory = SimpleNamespace(total=64 * GIB, available=48 * GIB)

    def cpu_times(self):
        return self.times

    def cpu_count(self, logical=True):
        return self.threads

    def virtual_memory(self):
        return self.memory

    def Process(self):  # noqa: N802 - psutil's name
        fake = self

        class Proc:
            """Process `index` of `fake.rss` (0: this one), read live like psutil does."""

            def __init__(self, index):
                self._index = index

            def memory_info(self):
                rss = fake.rss[self._index] if self._index < len(fake.rss) else None
                if rss is None:
                    raise fake.Error("gone")
                return SimpleNamespace(rss=rss)

            def children(self, recursive=False):
                fake.children_listed += 1
                return [Proc(i) for i in range(1, len(fake.rss))]

        return Proc(0)

    def run(self, busy_s: float, idle_s: float, iowait_s: float = 0.0, guest_s: float = 0.0):
        """CPU time passes: busy (user, guest inside it), idle and iowait seconds."""
        t = self.times
        self.times = t._replace(
            user=t.user + busy_s,
            idle=t.idle + idle_s,
            iowait=t.iowait + iowait_s,
            guest=t.guest + guest_s,
        )


CPUINFO_2S = "".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\n"
    f"model name\t: Intel(R) Xeon(R) Platinum 8480+\nphysical id\t: {i % 2}\n\n"
    for i in range(8)
)


# -- CPU ---------------------------------------------------------------------------------


def test_read_cpuinfo_finds_model_and_sockets(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO_2S)
    assert read_cpuinfo(path) == ("Intel(R) Xeon(R) Platinum 8480+", 2)
    assert read_cpuinfo(tmp_path / "absent") == (None, 1)


def test_known_cpu_is_table_tdp_times_sockets(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO_2S)
    meter = CpuModelMeter.for_host(path, psutil_module=FakePsutil())
    assert meter.tdp_w == 700.0 and meter.estimated
    (device,) = meter.devices()
    assert device["matched"] == "Intel Xeon Platinum 8480+"
    assert device["sockets"] == 2 and device["year"] == 2026


def test_unknown_cpu_is_the_per_thread_default(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: QEMU Virtual CPU version 2.5+\n")
    psutil = FakePsutil()
    psutil.threads = 12
    meter = CpuModelMeter.for_host(path, psutil_module=psutil)
    assert meter.tdp_w == DEFAULT_W_PER_THREAD * 12
    assert meter.devices()[0]["name"] == "QEMU Virtual CPU version 2.5+"


def test_load_curve_is_linear_from_idle_fraction_to_tdp():
    meter = CpuModelMeter(100.0, psutil_module=FakePsutil())
    assert meter.power_w(0.0) == pytest.approx(100 * IDLE_FRACTION)
    assert meter.power_w(1.0) == pytest.approx(100.0)
    assert meter.power_w(0.5) == pytest.approx(100 * (IDLE_FRACTION + (1 - IDLE_FRACTION) / 2))
    assert meter.power_w(1.7) == pytest.approx(100.0)


def test_cpu_energy_integrates_the_load_between_reads():
    psutil, clock = FakePsutil(), Clock()
    meter = CpuModelMeter(100.0, psutil_module=psutil, clock=clock)
    assert meter.energy_j() == 0.0
    meter.start()
    clock.now_s = 10.0
    psutil.run(busy_s=40.0, idle_s=30.0, iowait_s=10.0)  # 80 CPU-s on 8 CPUs: u = 0.5
    assert meter.energy_j() == pytest.approx(meter.power_w(0.5) * 10)
    clock.now_s = 15.0
    psutil.run(busy_s=40.0, idle_s=0.0, guest_s=5.0)  # guest time is inside user: u = 1
    assert meter.energy_j() == pytest.approx(meter.power_w(0.5) * 10 + 100.0 * 5)
    clock.now_s = 16.0  # no CPU time moved: counted as idle
    assert meter.energy_j() == pytest.approx(meter.power_w(0.5) * 10 + 500 + 20.0)


def test_cpu_fallback_is_a_fresh_model():
    meter = CpuModelMeter(100.0, {"name": "x"}, psutil_module=FakePsutil())
    fresh = meter.fallback()
    assert fresh.tdp_w == 100.0 and fresh.energy_j() == 0.0 and fresh.estimated


# -- RAM ---------------------------------------------------------------------------------


def test_ram_process_scope_counts_this_process_and_its_children():
    psutil, clock = FakePsutil(), Clock()
    psutil.rss = [2 * GIB, 1 * GIB, None]  # the second child ends while being read
    meter = RamModelMeter(psutil_module=psutil, clock=clock)
    assert meter.used_bytes() == 3 * GIB
    meter.start()
    clock.now_s = 10.0
    psutil.rss = [4 * GIB, 1 * GIB]
    # trapezoid between 3 and 5 GiB over 10 s
    assert meter.energy_j() == pytest.approx(RAM_W_PER_GIB * 4 * 10)
    assert meter.estimated and meter.devices()[0]["bytes_in_use"] == 5 * GIB
    assert psutil.children_listed == 2  # listed again once CHILDREN_RESCAN_S passed


def test_ram_children_are_listed_again_only_every_few_seconds():
    psutil, clock = FakePsutil(), Clock()
    psutil.rss = [1 * GIB, 1 * GIB]
    meter = RamModelMeter(psutil_module=psutil, clock=clock)
    meter.start()
    clock.now_s = 1.0
    psutil.rss = [1 * GIB, 2 * GIB, 5 * GIB]  # the known child grew; a new one started
    assert meter.used_bytes() == 3 * GIB and psutil.children_listed == 1
    clock.now_s = 1.0 + CHILDREN_RESCAN_S
    assert meter.used_bytes() == 8 * GIB and psutil.children_listed == 2


def test_ram_node_scope_counts_memory_in_use():
    psutil, clock = FakePsutil(), Clock()
    meter = RamModelMeter("node", psutil_module=psutil, clock=clock)
    meter.start()
    clock.now_s = 100.0
    assert meter.energy_j() == pytest.approx(0.3725 * 16 * 100)


def test_ram_scope_is_checked():
    with pytest.raises(ValueError, match="scope"):
        RamModelMeter("gpu")


def test_models_run_on_the_real_psutil():
    cpu, ram = CpuModelMeter.for_host(), RamModelMeter()
    cpu.start()
    ram.start()
    time.sleep(0.05)
    assert cpu.energy_j() > 0 and ram.energy_j() > 0


# -- the CPU table -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpuinfo_name", "tdp_w", "matched"),
    [
        ("Intel(R) Xeon(R) Platinum 8480+", 350, "Intel Xeon Platinum 8480+"),
        ("AMD EPYC 7763 64-Core Processor", 280, "AMD EPYC 7763"),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", 120, "Intel Xeon E5-2680 v4"),
        ("Intel(R) Xeon(R) Gold 6248R CPU @ 3.00GHz", 205, "Intel Xeon Gold 6248R"),
        ("11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz", 28, "Intel Core i7-1165G7"),
        ("Intel(R) Core(TM)2 Duo CPU     E6305  @ 1.86GHz", 65, "Intel Core 2 Duo E6305"),
        ("AMD Ryzen 5 PRO 4650G with Radeon Graphics", 65, "AMD Ryzen 5 PRO 4650G"),
        ("AMD Ryzen Threadripper PRO 5995WX 64-Cores", 280, "AMD Ryzen Threadripper PRO 5995WX"),
        ("AMD Phenom(tm) II X6 1075T Processor", 125, "AMD Phenom II X6 1075T"),
    ],
)
def test_cpuinfo_names_match_the_table(cpuinfo_name, tdp_w, matched):
    assert cpu_table.cpu_tdp_w(cpuinfo_name) == (tdp_w, matched)


@pytest.mark.parametrize(
    "cpuinfo_name",
    ["Intel Xeon Processor (Icelake)", "QEMU Virtual CPU version 2.5+", "", "Xeon E5-2680 v9"],
)
def test_unknown_or_generic_names_do_not_match(cpuinfo_name):
    assert cpu_table.cpu_tdp_w(cpuinfo_name) is None


def test_table_has_thousands_of_models_each_with_source_and_year():
    with open(REPO / "src/carbonlog/data/cpu_tdp.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) > 4000
    assert {r["source"].split(":")[0] for r in rows} == {"codecarbon-3.3.2", "green-algorithms-v3"}
    assert all(r["year"].isdigit() and float(r["tdp_w"]) > 0 for r in rows)
    assert all(cpu_table.normalize(r["name"]) == r["key"] for r in rows)


def test_the_script_rebuilds_the_shipped_table(tmp_path):
    reference = REPO.parent / "shared" / "reference-data"
    if not reference.is_dir():
        pytest.skip("reference data not present")
    out = tmp_path / "cpu_tdp.csv"
    script = REPO / "scripts" / "build_cpu_table.py"
    subprocess.run(
        [sys.executable, script, str(reference), "--out", str(out)], check=True, capture_output=True
    )
    assert out.read_text() == (REPO / "src/carbonlog/data/cpu_tdp.csv").read_text()


def test_table_loads_lazily_and_matches_in_milliseconds():
    code = (
        "import sys, time\n"
        "import carbonlog.meters\n"
        "assert 'carbonlog.meters.cpu_table' not in sys.modules\n"
        "assert 'pynvml' not in sys.modules\n"
        "from carbonlog.meters.cpu_table import cpu_tdp_w\n"
        "t = time.perf_counter()\n"
        "assert cpu_tdp_w('AMD EPYC 9654 96-Core Processor')[0] == 360\n"
        "assert cpu_tdp_w('Intel(R) Xeon(R) w9-9999X') is None\n"
        "print(time.perf_counter() - t)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "src")},
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 0.05  # first load and two lookups; ~3 ms on a laptop
