"""Model meters (TDP x load of this machine's share, W per GiB allocated) and the CPU table."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from carbonlog.meters import MeterError, cpu_table
from carbonlog.meters.allocation import Allowance
from carbonlog.meters.model import (
    DEFAULT_W_PER_THREAD,
    GIB,
    IDLE_FRACTION,
    RAM_W_PER_GIB,
    CpuInfo,
    CpuModelMeter,
    RamModelMeter,
    cgroup_load,
    cpus_load,
    read_cpuinfo,
)
from carbonlog.meters.uncertainty import MODEL_FRACTION

REPO = Path(__file__).resolve().parents[2]
CpuTimes = namedtuple("CpuTimes", "user nice system idle iowait irq softirq steal guest guest_nice")


class Clock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


class FakePsutil:
    """The psutil calls the CPU model makes, with values a test sets."""

    def __init__(self):
        self.times = CpuTimes(*[0.0] * 10)
        self.per_cpu = [CpuTimes(*[0.0] * 10) for _ in range(4)]
        self.threads = 16

    def cpu_times(self, percpu=False):
        return self.per_cpu if percpu else self.times

    def cpu_count(self, logical=True):
        return self.threads

    def run(self, busy_s: float, idle_s: float, iowait_s: float = 0.0, guest_s: float = 0.0):
        """CPU time passes: busy (user, guest inside it), idle and iowait seconds."""
        t = self.times
        self.times = t._replace(
            user=t.user + busy_s,
            idle=t.idle + idle_s,
            iowait=t.iowait + iowait_s,
            guest=t.guest + guest_s,
        )


WHOLE = Allowance(16.0, "CPU affinity")


def cpuinfo_text(model: str, logical: int, sockets: int, siblings: int, cores: int) -> str:
    """/proc/cpuinfo of `logical` CPUs spread over `sockets`, as Linux writes it."""
    return "".join(
        f"processor\t: {i}\nmodel name\t: {model}\nphysical id\t: {i % sockets}\n"
        f"siblings\t: {siblings}\ncpu cores\t: {cores}\n\n"
        for i in range(logical)
    )


CPUINFO_2S = "".join(
    f"processor\t: {i}\nvendor_id\t: GenuineIntel\n"
    f"model name\t: Intel(R) Xeon(R) Platinum 8480+\nphysical id\t: {i % 2}\n\n"
    for i in range(8)
)


# -- CPU ---------------------------------------------------------------------------------


def test_read_cpuinfo_finds_model_sockets_siblings_and_cores(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO_2S)
    assert read_cpuinfo(path) == ("Intel(R) Xeon(R) Platinum 8480+", 2, 0, 0)
    path.write_text(cpuinfo_text("AMD EPYC 7763 64-Core Processor", 4, 1, 4, 2))
    assert read_cpuinfo(path) == ("AMD EPYC 7763 64-Core Processor", 1, 4, 2)
    assert read_cpuinfo(path).threads_per_core == 2
    assert read_cpuinfo(tmp_path / "absent") == (None, 1, 0, 0)
    assert CpuInfo("x", 1).threads_per_core == 1


def test_known_cpu_on_the_whole_machine_is_table_tdp_times_sockets(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO_2S)
    meter = CpuModelMeter.for_host(path, psutil_module=FakePsutil(), allowed=WHOLE)
    assert meter.tdp_w == 700.0 and meter.estimated and meter.method == "model"
    (device,) = meter.devices()
    assert device["matched"] == "Intel Xeon Platinum 8480+"
    assert device["sockets"] == 2 and device["year"] == 2026 and device["share"] == 1.0


def test_a_2_vcpu_vm_on_an_epyc_7763_is_charged_its_share_and_told_once(tmp_path, caplog):
    # the case: whole sockets charged 280 W; 2 of 64 cores x 2 threads is 4.375 W
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo_text("AMD EPYC 7763 64-Core Processor", 2, 1, 2, 1))
    psutil = FakePsutil()
    psutil.threads = 2
    with caplog.at_level(logging.WARNING, logger="carbonlog"):
        meter = CpuModelMeter.for_host(path, psutil_module=psutil, allowed=Allowance(2.0, "x"))
        CpuModelMeter.for_host(path, psutil_module=psutil, allowed=Allowance(2.0, "x"))
    assert meter.tdp_w == pytest.approx(280 * 2 / 128) == pytest.approx(4.375)
    assert meter.devices()[0]["socket_threads"] == 128
    said = [r.getMessage() for r in caplog.records if "hardware threads" in r.getMessage()]
    assert len(said) == 1 and "2 of the 128" in said[0] and "4.4 W of 280 W" in said[0]


def test_a_container_on_a_two_socket_host_is_charged_its_quota(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo_text("AMD EPYC 7763 64-Core Processor", 256, 2, 128, 64))
    psutil = FakePsutil()
    psutil.threads = 256
    quota = Allowance(4.0, "cgroup /sys/fs/cgroup")
    meter = CpuModelMeter.for_host(path, psutil_module=psutil, allowed=quota)
    assert meter.tdp_w == pytest.approx(2 * 280 * 4 / 256)
    whole = CpuModelMeter.for_host(path, psutil_module=psutil, allowed=Allowance(256.0, "x"))
    assert whole.tdp_w == 560.0


def test_a_known_cpu_without_core_counts_shares_by_the_siblings_it_sees(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo_text("Intel(R) Xeon(R) Platinum 8480+", 224, 2, 112, 56))
    psutil = FakePsutil()
    psutil.threads = 224
    meter = CpuModelMeter.for_host(path, psutil_module=psutil, allowed=Allowance(28.0, "x"))
    assert meter.tdp_w == pytest.approx(700 * 28 / 224)


def test_unknown_cpu_is_the_per_thread_default_of_the_allowed_cpus(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nmodel name\t: QEMU Virtual CPU version 2.5+\n")
    psutil = FakePsutil()
    psutil.threads = 12
    meter = CpuModelMeter.for_host(path, psutil_module=psutil, allowed=Allowance(12.0, "x"))
    assert meter.tdp_w == DEFAULT_W_PER_THREAD * 12
    assert meter.devices()[0]["name"] == "QEMU Virtual CPU version 2.5+"
    quota = Allowance(1.5, "cgroup q")
    limited = CpuModelMeter.for_host(path, psutil_module=psutil, allowed=quota)
    assert limited.tdp_w == DEFAULT_W_PER_THREAD * 1.5
    assert limited.devices()[0]["allowed_by"] == "cgroup q"


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


def test_a_cgroup_slice_is_charged_its_own_cpu_time_over_its_allowed_cpus(tmp_path):
    clock = Clock()
    (tmp_path / "cpu.stat").write_text("usage_usec 5000000\nuser_usec 4000000\n")
    meter = CpuModelMeter(100.0, clock=clock, load=cgroup_load(tmp_path, 2.0, clock))
    meter.start()
    clock.now_s = 1.0
    (tmp_path / "cpu.stat").write_text("usage_usec 6000000\n")  # 1 CPU-s of 2 allowed: u = 0.5
    assert meter.energy_j() == pytest.approx(100 * (0.2 + 0.8 * 0.5))  # 60 J, by hand
    (tmp_path / "cpu.stat").unlink()
    clock.now_s = 2.0
    with pytest.raises(MeterError, match="no longer readable"):
        meter.energy_j()


def test_an_affinity_slice_is_charged_the_load_of_its_own_cpus():
    psutil, clock = FakePsutil(), Clock()
    meter = CpuModelMeter(100.0, clock=clock, load=cpus_load(psutil, {1}))
    meter.start()
    clock.now_s = 1.0
    psutil.per_cpu[0] = psutil.per_cpu[0]._replace(idle=1.0)  # another tenant's CPU, idle
    psutil.per_cpu[1] = psutil.per_cpu[1]._replace(user=1.0)  # ours, busy
    assert meter.energy_j() == pytest.approx(100.0)


def test_for_host_reads_a_slices_load_from_the_cgroup_that_limits_it(tmp_path):
    (tmp_path / "cpu.stat").write_text("usage_usec 0\n")
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo_text("AMD EPYC 7763 64-Core Processor", 16, 1, 16, 8))
    quota = Allowance(2.0, f"cgroup {tmp_path}", tmp_path)
    meter = CpuModelMeter.for_host(path, psutil_module=FakePsutil(), allowed=quota)
    assert meter.devices()[0]["load_of"] == f"cgroup {tmp_path}"
    whole = CpuModelMeter.for_host(path, psutil_module=FakePsutil(), allowed=WHOLE)
    assert whole.devices()[0]["load_of"] == "this machine"


def test_cpu_fallback_is_a_fresh_model():
    meter = CpuModelMeter(100.0, {"name": "x"}, psutil_module=FakePsutil())
    fresh = meter.fallback()
    assert fresh.tdp_w == 100.0 and fresh.energy_j() == 0.0 and fresh.estimated


def test_model_bands_are_fischers_40_percent_whatever_the_window():
    cpu = CpuModelMeter(100.0, psutil_module=FakePsutil())
    ram = RamModelMeter(Allowance(8 * GIB, "installed memory"))
    assert MODEL_FRACTION == 0.40
    for meter in (cpu, ram):
        assert meter.band_j(1000.0, 0.3) == meter.band_j(1000.0, 3600.0) == pytest.approx(400.0)


# -- RAM ---------------------------------------------------------------------------------


def test_ram_is_w_per_gib_of_the_memory_allocated_at_constant_power():
    clock = Clock()
    meter = RamModelMeter(Allowance(16 * GIB, "cgroup /sys/fs/cgroup"), clock=clock)
    assert meter.energy_j() == 0.0
    meter.start()
    clock.now_s = 100.0
    assert meter.energy_j() == pytest.approx(0.3725 * 16 * 100)
    assert RAM_W_PER_GIB == 0.3725 and meter.power_w == pytest.approx(5.96)
    (device,) = meter.devices()
    assert device["bytes_allocated"] == 16 * GIB
    assert device["allocated_by"] == "cgroup /sys/fs/cgroup"
    fresh = meter.fallback()
    assert fresh.power_w == meter.power_w and fresh.energy_j() == 0.0


def test_models_run_on_this_machine():
    cpu, ram = CpuModelMeter.for_host(), RamModelMeter.for_host()
    cpu.start()
    ram.start()
    time.sleep(0.05)
    assert cpu.energy_j() > 0 and ram.energy_j() > 0
    assert ram.power_w > 0.3725 * ram.allocated.amount / GIB * 0.99


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


def test_rows_carry_green_algorithms_core_counts():
    assert cpu_table.lookup("AMD EPYC 7763 64-Core Processor").cores == 64
    assert cpu_table.lookup("Intel(R) Xeon(R) Platinum 8480+").cores == 0  # not in their table


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
    assert sum(int(r["cores"]) > 0 for r in rows) > 80  # Green Algorithms' core counts
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
