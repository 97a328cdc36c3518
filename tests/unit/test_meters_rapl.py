"""RAPL meters against fake powercap trees: domains, wraps, mirrors, AMD, permissions, faults."""

from __future__ import annotations

import time

import pytest

from carbonlog.meters import ConstantPowerMeter, MeterError, rapl
from carbonlog.meters.model import CpuModelMeter
from carbonlog.meters.rapl import RaplMeter, open_rapl_meters, watch_period_s
from tests.fakes.rapl_tree import FakeRaplTree, amd_energy_hwmon


def labels(meter: RaplMeter) -> list[str]:
    return [d["name"] for d in meter.devices()]


def opened(tree: FakeRaplTree, tmp_path) -> dict[str, RaplMeter]:
    return open_rapl_meters(tree.root, tmp_path / "no-hwmon")


def test_packages_go_to_cpu_dram_to_ram_core_never_counted(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=2, dram=True, core=True)
    meters = opened(tree, tmp_path)
    assert labels(meters["cpu"]) == ["package-0", "package-1"]
    assert labels(meters["ram"]) == ["package-0/dram", "package-1/dram"]
    for meter in meters.values():
        meter.start()
    tree.advance("intel-rapl:0", 10.0)
    tree.advance("intel-rapl:1", 5.5)
    tree.advance("intel-rapl:0:0", 3.0)  # core: already inside package-0
    tree.advance("intel-rapl:0:1", 1.25)
    tree.advance("intel-rapl:1:1", 0.75)
    assert meters["cpu"].energy_j() == pytest.approx(15.5, abs=1e-9)
    assert meters["ram"].energy_j() == pytest.approx(2.0, abs=1e-9)
    assert not meters["cpu"].estimated
    for meter in meters.values():
        meter.close()


def test_energy_is_cumulative_since_start(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1, dram=False)
    tree.advance("intel-rapl:0", 100.0)  # before start: not counted
    meter = opened(tree, tmp_path)["cpu"]
    assert meter.energy_j() == 0.0
    meter.start()
    tree.advance("intel-rapl:0", 2.0)
    assert meter.energy_j() == pytest.approx(2.0)
    tree.advance("intel-rapl:0", 3.0)
    assert meter.energy_j() == pytest.approx(5.0)
    meter.close()


def test_a_wrap_between_reads_is_undone(tmp_path):
    tree = FakeRaplTree(tmp_path / "powercap")
    tree.add("intel-rapl:0", "package-0", energy_uj=900_000, max_range_uj=1_000_000)
    meter = opened(tree, tmp_path)["cpu"]
    meter.start()
    tree.advance("intel-rapl:0", 0.3)
    assert tree.energy_uj("intel-rapl:0") == 200_000  # wrapped
    assert meter.energy_j() == pytest.approx(0.3, abs=1e-9)
    tree.advance("intel-rapl:0", 0.95)
    assert meter.energy_j() == pytest.approx(1.25, abs=1e-9)
    meter.close()


def test_the_watch_thread_catches_wraps_between_distant_reads(tmp_path):
    tree = FakeRaplTree(tmp_path / "powercap")
    tree.add("intel-rapl:0", "package-0", energy_uj=0, max_range_uj=1_000_000)
    (domain,) = opened(tree, tmp_path)["cpu"].domains
    meter = RaplMeter("cpu", [domain], watch_s=0.02)
    meter.start()
    for _ in range(3):  # 2.1 J through a 1 J counter: two wraps before energy_j() reads
        tree.advance("intel-rapl:0", 0.7)
        time.sleep(0.15)
    assert meter.energy_j() == pytest.approx(2.1, abs=1e-9)
    meter.close()
    assert meter._thread is None


def test_watch_period_follows_the_shortest_wrap_at_one_kilowatt(tmp_path):
    tree = FakeRaplTree(tmp_path / "powercap")
    tree.add("intel-rapl:0", "package-0", max_range_uj=262_143_328_850)
    tree.add("intel-rapl:0:0", "dram", max_range_uj=4_294_967_295)  # 4.3 kJ: 4.3 s at 1 kW
    domains = [m.domains[0] for m in opened(tree, tmp_path).values()]
    assert watch_period_s(domains[:1]) == 5.0
    assert watch_period_s(domains) == pytest.approx(4_294.967295 / 1000 / 2)


def test_mmio_mirror_of_a_package_is_counted_once(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1, dram=False, mmio_mirror=True)
    meter = opened(tree, tmp_path)["cpu"]
    assert [d["path"].split("/")[-2] for d in meter.devices()] == ["intel-rapl:0"]
    meter.start()
    tree.advance("intel-rapl:0", 4.0)  # moves intel-rapl-mmio:0 too
    assert meter.energy_j() == pytest.approx(4.0)
    meter.close()


def test_per_die_copies_of_one_package_counter_are_counted_once(tmp_path):
    tree = FakeRaplTree(tmp_path / "powercap")
    tree.add("intel-rapl:0", "package-0-die-0", energy_uj=5_000_000)
    tree.mirror("intel-rapl:0", "intel-rapl:1", name="package-0-die-1")
    tree.add("intel-rapl:2", "package-1-die-0", energy_uj=7_000_000)
    meter = opened(tree, tmp_path)["cpu"]
    assert labels(meter) == ["package-0-die-0", "package-1-die-0"]
    meter.start()
    tree.advance("intel-rapl:0", 1.0)
    tree.advance("intel-rapl:2", 2.0)
    assert meter.energy_j() == pytest.approx(3.0)
    meter.close()


def test_psys_is_not_added_to_packages_but_stands_in_when_alone(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "with-package", sockets=1, dram=False, psys=True)
    assert labels(opened(tree, tmp_path)["cpu"]) == ["package-0"]
    alone = FakeRaplTree(tmp_path / "psys-only")
    alone.add("intel-rapl:0", "psys", energy_uj=1)
    assert labels(opened(alone, tmp_path)["cpu"]) == ["psys"]


def test_amd_zen_powercap_layout_counts_packages_not_cores(tmp_path):
    tree = FakeRaplTree(tmp_path / "powercap")
    for s in range(2):
        tree.add(f"intel-rapl:{s}", f"package-{s}", energy_uj=10_000 * (s + 1))
        tree.add(f"intel-rapl:{s}:0", "core", energy_uj=5_000 * (s + 1))
    meters = opened(tree, tmp_path)
    assert set(meters) == {"cpu"}  # AMD has no DRAM domain
    assert labels(meters["cpu"]) == ["package-0", "package-1"]


def test_amd_energy_hwmon_counts_sockets_only(tmp_path):
    files = amd_energy_hwmon(tmp_path / "hwmon", sockets=2, cores=4)
    meters = open_rapl_meters(tmp_path / "no-powercap", tmp_path / "hwmon")
    meter = meters["cpu"]
    assert labels(meter) == ["amd_energy/Esocket0", "amd_energy/Esocket1"]
    meter.start()
    files["Esocket0"].write_text("7000000\n")  # +2 J from 5 J
    files["Esocket1"].write_text("6500000\n")  # +0.5 J from 6 J
    files["Ecore000"].write_text("9000000\n")  # core: inside its socket
    assert meter.energy_j() == pytest.approx(2.5)
    meter.close()


def test_no_rapl_gives_no_meters(tmp_path):
    assert open_rapl_meters(tmp_path / "absent", tmp_path / "absent") == {}


def test_unreadable_counters_raise_permission_error(tmp_path, monkeypatch):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1)
    tree.deny("intel-rapl:0")
    monkeypatch.setattr(rapl, "_read_text", tree.read_text)
    with pytest.raises(PermissionError):
        opened(tree, tmp_path)


def test_a_fault_mid_run_raises_meter_error_and_falls_back_to_mean_power(tmp_path, monkeypatch):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1, dram=False)
    meter = opened(tree, tmp_path)["cpu"]
    monkeypatch.setattr(rapl, "_read_text", tree.read_text)
    meter.start()
    time.sleep(0.05)
    tree.advance("intel-rapl:0", 5.0)
    assert meter.energy_j() == pytest.approx(5.0)
    tree.deny("intel-rapl:0")
    with pytest.raises(MeterError, match="RAPL read failed"):
        meter.energy_j()
    estimate = meter.fallback()
    meter.close()
    assert isinstance(estimate, ConstantPowerMeter) and estimate.component == "cpu"
    assert estimate.power_w > 5.0  # 5 J over a little more than 0.05 s


def test_fallback_before_any_reading_is_the_model(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1, dram=False)
    assert isinstance(opened(tree, tmp_path)["cpu"].fallback(), CpuModelMeter)


def test_rapl_is_a_counter_with_one_millisecond_update_of_band(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1, dram=True)
    meters = opened(tree, tmp_path)
    assert {m.method for m in meters.values()} == {"counter"}
    assert meters["cpu"].band_j(500.0, 2.0) == pytest.approx(500.0 * 0.001 / 1.999)
    assert meters["ram"].band_j(500.0, 0.0) == 0.0
