"""Apple silicon meters against the zeus-apple-silicon fake: CPU, GPU with the ANE, DRAM."""

from __future__ import annotations

import sys

import pytest

from carbonlog.meters import build_meters, readings
from carbonlog.meters.apple import open_apple_meters
from carbonlog.meters.readings import AcceleratorMeter
from tests.fakes.pynvml_fake import FakeNvml
from tests.fakes.zeus_apple_fake import FakeAppleSilicon

M2 = {"cpu_total_mj": 14, "gpu_mj": 18, "gpu_sram_mj": 1, "ane_mj": 4, "dram_mj": 2}


def test_the_fake_refuses_what_the_library_refuses():
    monitor = FakeAppleSilicon(M2).AppleEnergyMonitor()
    monitor.begin_window("epoch")
    with pytest.raises(RuntimeError, match="already exists"):
        monitor.begin_window("epoch")
    monitor.begin_window("epoch", restart=True)
    with pytest.raises(RuntimeError, match="had been started"):
        monitor.end_window("other")
    window = monitor.end_window("epoch")
    assert isinstance(window.gpu_mj, int) and window.efficiency_cores_mj is None
    with pytest.raises(RuntimeError, match="IOReport subscription"):
        FakeAppleSilicon(M2, available=False).AppleEnergyMonitor()


def test_cumulative_counters_are_whole_millijoules():
    clock = [0.0]
    apple = FakeAppleSilicon({"gpu_mj": 18}, clock=lambda: clock[0])
    clock[0] = 0.0123
    assert apple.cumulative().gpu_mj == 221  # 18 W x 12.3 ms = 221.4 mJ
    assert apple.cumulative().dram_mj is None


def test_each_component_reads_its_fields_the_ane_with_the_gpu(monkeypatch):
    clock = [10.0]
    monkeypatch.setattr(readings, "monotonic", lambda: clock[0])  # one clock for both
    meters = open_apple_meters(FakeAppleSilicon(M2, clock=lambda: clock[0]))
    assert {c: m.devices()[0]["fields"] for c, m in meters.items()} == {
        "cpu": ["cpu_total_mj"],
        "gpu": ["gpu_mj", "gpu_sram_mj", "ane_mj"],
        "ram": ["dram_mj"],
    }
    for meter in meters.values():
        meter.start()
    clock[0] = 12.5
    energy_j = {c: m.energy_j() for c, m in meters.items()}
    for meter in meters.values():
        meter.close()
    # over 2.5 s: CPU 14 W, GPU 18 + 1 + 4 W, DRAM 2 W; each field within its 1 mJ count
    assert energy_j["cpu"] == pytest.approx(35.0, abs=0.001)
    assert energy_j["gpu"] == pytest.approx(57.5, abs=0.003)
    assert energy_j["ram"] == pytest.approx(5.0, abs=0.001)
    assert all(m.method == "counter" and not m.estimated for m in meters.values())


def test_a_chip_without_dram_figures_has_no_ram_meter():
    meters = open_apple_meters(FakeAppleSilicon({"cpu_total_mj": 5, "gpu_mj": 3}))
    assert sorted(meters) == ["cpu", "gpu"]


def test_the_band_is_a_millijoule_at_each_edge_per_field():
    gpu = open_apple_meters(FakeAppleSilicon(M2))["gpu"]
    # three fields, each rounded to 1 mJ at both edges; reads are taken when asked (no lag)
    assert gpu.band_j(50.0, 2.0) == pytest.approx(3 * 2 * 0.001)


def test_no_ioreport_or_no_library_gives_no_meters(monkeypatch):
    assert open_apple_meters(FakeAppleSilicon(M2, available=False)) == {}
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", None)
    assert open_apple_meters() == {}


def test_auto_measures_a_macs_gpu_where_there_is_no_other(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", FakeAppleSilicon(M2))
    for missing in ("amdsmi", "pyzes"):
        monkeypatch.setitem(sys.modules, missing, None)
    (gpu,) = build_meters(
        nvml=FakeNvml([], library_missing=True),
        host=False,
        powercap_root=tmp_path,
        hwmon_root=tmp_path,
    )
    assert isinstance(gpu, AcceleratorMeter) and gpu.component == "gpu"
    assert gpu.devices()[0]["fields"] == ["gpu_mj", "gpu_sram_mj", "ane_mj"]
    gpu.close()


def test_auto_measures_a_macs_cpu_and_dram_from_its_counters_not_the_models(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "zeus_apple_silicon", FakeAppleSilicon(M2))
    for missing in ("amdsmi", "pyzes"):
        monkeypatch.setitem(sys.modules, missing, None)
    meters = build_meters(
        nvml=FakeNvml([], library_missing=True),
        gpus=None,
        ram=True,
        powercap_root=tmp_path,  # no RAPL here
        hwmon_root=tmp_path,
    )
    by_component = {m.component: m for m in meters}
    assert set(by_component) == {"cpu", "ram"}
    assert all(isinstance(m, AcceleratorMeter) for m in meters)
    assert by_component["cpu"].devices()[0]["fields"] == ["cpu_total_mj"]
    assert by_component["ram"].devices()[0]["fields"] == ["dram_mj"]
    for meter in meters:
        meter.close()
