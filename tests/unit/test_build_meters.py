"""build_meters: which meter each component gets, validation, and the RAPL permission hint."""

from __future__ import annotations

import math
import sys

import pytest

from carbonlog.errors import ConfigurationError
from carbonlog.meters import (
    ConstantPowerMeter,
    Meter,
    build_meters,
    check_meter_options,
    rapl,
)
from carbonlog.meters.base import METHODS
from carbonlog.meters.model import CpuModelMeter, RamModelMeter
from carbonlog.meters.nvml import NvmlMeter
from carbonlog.meters.rapl import RaplMeter
from tests.fakes.pynvml_fake import FakeGpu, FakeNvml
from tests.fakes.rapl_tree import FakeRaplTree


def build(tmp_path, **options):
    """build_meters with no real hardware in reach unless a test passes it."""
    options.setdefault("gpus", None)
    options.setdefault("powercap_root", tmp_path / "no-powercap")
    options.setdefault("hwmon_root", tmp_path / "no-hwmon")
    return build_meters(**options)


def kinds(meters) -> list[tuple[str, type]]:
    return [(m.component, type(m)) for m in meters]


def close(meters) -> None:
    for meter in meters:
        meter.close()


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"power_w": {"disk": 5.0}}, "unknown component 'disk'"),
        ({"power_w": {"cpu": -1.0}}, r"power_w\['cpu'\] must be a finite number"),
        ({"power_w": {"gpu": math.nan}}, r"power_w\['gpu'\]"),
        ({"power_w": {"ram": math.inf}}, r"power_w\['ram'\]"),
        ({"power_w": {"cpu": "100"}}, r"power_w\['cpu'\]"),
        ({"power_w": {"cpu": True}}, r"power_w\['cpu'\]"),
        ({"power_w": [("cpu", 1.0)]}, "power_w must map"),
        ({"cpu": "powergadget"}, "cpu must be one of"),
        ({"gpus": "all"}, "gpus must be"),
        ({"gpus": [0, -1]}, "gpus must be"),
        ({"ram": "yes"}, "ram must be"),
    ],
)
def test_bad_options_fail_at_construction_with_a_clear_message(tmp_path, options, message):
    with pytest.raises(ValueError, match=message):
        check_meter_options(**options)
    with pytest.raises(ValueError, match=message):
        build(tmp_path, **options)


def test_good_options_pass():
    check_meter_options("auto", "auto", True, {"gpu": 0, "cpu": 65.5})
    check_meter_options([0, 3], "model", False, None)
    check_meter_options(None, None, False, {})


# -- constant power ----------------------------------------------------------------------


def test_power_w_forces_constant_power_whatever_else_is_asked(tmp_path):
    nvml = FakeNvml([FakeGpu()])
    meters = build(tmp_path, gpus="auto", nvml=nvml, power_w={"gpu": 250, "cpu": 40.5, "ram": 3})
    assert kinds(meters) == [("gpu", ConstantPowerMeter)] + [
        (c, ConstantPowerMeter) for c in ("cpu", "ram")
    ]
    assert [m.power_w for m in meters] == [250.0, 40.5, 3.0]
    assert nvml.init_calls == 0  # the GPU was never opened
    meters[1].start()
    assert meters[1].energy_j() >= 0 and meters[1].estimated


# -- GPU ---------------------------------------------------------------------------------


def test_gpu_meter_when_nvml_has_gpus_and_none_when_it_has_no_library(tmp_path):
    meters = build(tmp_path, gpus="auto", nvml=FakeNvml([FakeGpu()]), cpu=None, ram=False)
    assert kinds(meters) == [("gpu", NvmlMeter)]
    close(meters)
    missing = FakeNvml([FakeGpu()], library_missing=True)
    assert build(tmp_path, gpus="auto", nvml=missing, cpu=None, ram=False) == []


def test_gpus_none_never_touches_nvml(tmp_path):
    nvml = FakeNvml([FakeGpu()])
    build(tmp_path, gpus=None, nvml=nvml, cpu=None, ram=False)
    assert nvml.init_calls == 0


def test_host_false_leaves_cpu_and_ram_to_the_local_rank_zero(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap")
    meters = build(
        tmp_path,
        gpus=[0],
        nvml=FakeNvml([FakeGpu()]),
        host=False,
        powercap_root=tree.root,
        power_w={"cpu": 10},
    )
    assert kinds(meters) == [("gpu", NvmlMeter)]
    close(meters)


# -- CPU and RAM -------------------------------------------------------------------------


def test_readable_rapl_measures_cpu_and_its_dram_replaces_the_ram_model(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=2, dram=True)
    meters = build(tmp_path, powercap_root=tree.root)
    assert kinds(meters) == [("cpu", RaplMeter), ("ram", RaplMeter)]
    assert not any(m.estimated for m in meters)


def test_rapl_without_dram_keeps_the_ram_model(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1, dram=False)
    assert kinds(build(tmp_path, powercap_root=tree.root)) == [
        ("cpu", RaplMeter),
        ("ram", RamModelMeter),
    ]


def test_no_rapl_means_models_without_a_rapl_warning(tmp_path, carbon_warnings):
    meters = build(tmp_path)
    assert kinds(meters) == [("cpu", CpuModelMeter), ("ram", RamModelMeter)]
    assert all(m.estimated and m.method == "model" for m in meters)
    # a VM's or container's share of its sockets may be said; nothing about RAPL is
    assert not [w for w in carbon_warnings if "RAPL" in w.getMessage()]


def test_every_meter_built_has_a_method_and_a_band(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1, dram=False)
    nvml = FakeNvml([FakeGpu()])
    meters = build(tmp_path, gpus="auto", nvml=nvml, powercap_root=tree.root)
    forced = build(tmp_path, power_w={"gpu": 300.0, "cpu": 50.0, "ram": 5.0})
    methods = [(m.component, m.method) for m in meters + forced]
    assert methods == [
        ("gpu", "counter"),
        ("cpu", "counter"),
        ("ram", "model"),
        ("gpu", "model"),
        ("cpu", "model"),
        ("ram", "model"),
    ]
    assert all(m.method in METHODS for m in meters + forced)
    bands = [m.band_j(1000.0, 10.0) for m in meters + forced]
    one_update = [1000 * 0.1 / 9.9, 1000 * 0.001 / 9.999]  # NVML, RAPL
    assert bands == pytest.approx([*one_update, 400.0, 400.0, 400.0, 400.0])
    close(meters + forced)


def test_cpu_model_is_used_even_where_rapl_is_readable(tmp_path):
    tree = FakeRaplTree.intel(tmp_path / "powercap")
    assert kinds(build(tmp_path, cpu="model", powercap_root=tree.root)) == [
        ("cpu", CpuModelMeter),
        ("ram", RamModelMeter),
    ]


def test_unreadable_rapl_falls_back_to_models_with_exactly_one_hint(
    tmp_path, monkeypatch, carbon_warnings
):
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=2)
    for zone in ("intel-rapl:0", "intel-rapl:1", "intel-rapl:0:1", "intel-rapl:1:1"):
        tree.deny(zone)
    monkeypatch.setattr(rapl, "_read_text", tree.read_text)
    for _ in range(2):  # a second tracker in the same process says nothing new
        meters = build(tmp_path, powercap_root=tree.root)
        assert kinds(meters) == [("cpu", CpuModelMeter), ("ram", RamModelMeter)]
    assert len(carbon_warnings) == 1
    message = carbon_warnings[0].getMessage()
    assert "sudo chmod -R a+r /sys/class/powercap/intel-rapl" in message
    assert "udev" in message


def test_cpu_rapl_insists(tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError, match="no RAPL package counter"):
        build(tmp_path, cpu="rapl")
    tree = FakeRaplTree.intel(tmp_path / "powercap", sockets=1)
    tree.deny("intel-rapl:0")
    monkeypatch.setattr(rapl, "_read_text", tree.read_text)
    with pytest.raises(ConfigurationError, match="chmod -R a\\+r"):
        build(tmp_path, cpu="rapl", powercap_root=tree.root)


def test_a_failed_build_closes_what_it_opened(tmp_path):
    nvml = FakeNvml([FakeGpu()])
    with pytest.raises(ConfigurationError):
        build(tmp_path, gpus="auto", nvml=nvml, cpu="rapl")
    assert nvml.init_calls == nvml.shutdown_calls == 1


def test_order_is_gpu_cpu_ram(tmp_path):
    meters = build(tmp_path, gpus="auto", nvml=FakeNvml([FakeGpu()]))
    assert [m.component for m in meters] == ["gpu", "cpu", "ram"]
    assert all(isinstance(m, Meter) for m in meters)
    close(meters)


def test_a_gpu_index_this_process_cannot_see_fails_at_start_not_silently(tmp_path, monkeypatch):
    from carbonlog.tracking import Tracker

    nvml = FakeNvml([FakeGpu()])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    with pytest.raises(ConfigurationError, match="sees 1 CUDA device"):
        build(tmp_path, gpus=[3], nvml=nvml)
    assert nvml.init_calls == nvml.shutdown_calls == 1
    tracker = Tracker(intensity=100.0, gpus=[3], cpu=None, ram=False, ledger=False)
    with pytest.raises(ConfigurationError, match="gpus=\\[3\\]"):
        tracker.start()


def test_cpu_rapl_without_rapl_fails_at_start(tmp_path, monkeypatch):
    from carbonlog.meters import build_meters as real_build
    from carbonlog.tracking import Tracker

    monkeypatch.setattr(
        "carbonlog.meters.build_meters",
        lambda **kw: real_build(**kw, powercap_root=tmp_path / "none", hwmon_root=tmp_path / "h"),
    )
    with pytest.raises(ConfigurationError, match='cpu="rapl"'):
        Tracker(intensity=100.0, gpus=None, cpu="rapl", ledger=False).start()


def test_a_component_whose_hardware_fails_to_open_is_the_only_one_lost(
    tmp_path, monkeypatch, carbon_warnings
):
    def broken(*_, **__):
        raise OSError("/proc/cpuinfo: input/output error")

    monkeypatch.setattr(CpuModelMeter, "for_host", broken)
    meters = build(tmp_path, gpus="auto", nvml=FakeNvml([FakeGpu()]))
    assert [m.component for m in meters] == ["gpu", "ram"]
    close(meters)
    assert [w.getMessage() for w in carbon_warnings] == [
        "carbonlog: the cpu meter could not be opened (/proc/cpuinfo: input/output error); "
        "cpu energy is not measured in this run"
    ]
