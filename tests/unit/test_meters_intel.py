"""Intel GPU meter against the pyzes fake: the card's counter, torch.xpu numbering, glitches."""

from __future__ import annotations

import ctypes
import sys
import time

import pytest

from carbonlog.hardware import lookup
from carbonlog.meters import ConstantPowerMeter, MeterError, build_meters, readings
from carbonlog.meters.intel import open_intel_meter
from carbonlog.meters.readings import AcceleratorMeter, Device, _Track
from tests.fakes.pynvml_fake import FakeGpu, FakeNvml
from tests.fakes.pyzes_fake import (
    UPDATE_S,
    ZE_RESULT_ERROR_INVALID_ARGUMENT,
    ZE_RESULT_ERROR_INVALID_NULL_HANDLE,
    ZE_RESULT_ERROR_UNINITIALIZED,
    ZE_RESULT_SUCCESS,
    ZES_POWER_DOMAIN_PACKAGE,
    FakeXpu,
    FakeZes,
    zes_device_properties_t,
    zes_driver_handle_t,
    zes_power_energy_counter_t,
)


def first_card(zes: FakeZes):
    count = ctypes.c_uint32(1)
    drivers = (zes_driver_handle_t * 1)()
    assert zes.zesDriverGet(ctypes.byref(count), drivers) == ZE_RESULT_SUCCESS
    devices = (zes.zes_device_handle_t * 1)()
    assert zes.zesDeviceGet(drivers[0], ctypes.byref(count), devices) == ZE_RESULT_SUCCESS
    return devices[0]


# -- the fake itself ----------------------------------------------------------------------


def test_the_fake_refuses_what_level_zero_refuses():
    zes = FakeZes([FakeXpu()])
    count = ctypes.c_uint32(0)
    assert zes.zesDriverGet(ctypes.byref(count), None) == ZE_RESULT_ERROR_UNINITIALIZED
    zes.zesInit(0)
    device = first_card(zes)
    props = zes_device_properties_t()  # stype left 0: not a zes_device_properties_t
    assert zes.zesDeviceGetProperties(device, ctypes.byref(props)) == (
        ZE_RESULT_ERROR_INVALID_ARGUMENT
    )
    counter = zes_power_energy_counter_t()
    assert zes.zesPowerGetEnergyCounter(device, ctypes.byref(counter)) == (
        ZE_RESULT_ERROR_INVALID_NULL_HANDLE  # a device handle is not a power handle
    )


def test_the_counter_counts_microjoules_in_update_ticks():
    clock = [0.0]
    zes = FakeZes([FakeXpu(profile=400, offset_uj=0)], clock=lambda: clock[0], origin_s=0.0)
    zes.zesInit(0)
    count = ctypes.c_uint32(0)
    device = first_card(zes)
    zes.zesDeviceEnumPowerDomains(device, ctypes.byref(count), None)
    domains = (zes.zes_pwr_handle_t * count.value)()
    zes.zesDeviceEnumPowerDomains(device, ctypes.byref(count), domains)
    counter = zes_power_energy_counter_t()

    def energy_at(t_s):
        clock[0] = t_s
        zes.zesPowerGetEnergyCounter(domains[0], ctypes.byref(counter))
        return counter.energy, counter.timestamp

    assert energy_at(1.0) == (400_000_000, 1_000_000)  # 400 W x 1 s, in uJ; us
    assert energy_at(1.0 + UPDATE_S / 2) == (400_000_000, 1_000_000)  # not updated yet
    assert energy_at(1.0 + UPDATE_S) == (400_400_000, 1_001_000)


# -- counters -------------------------------------------------------------------------------


def test_the_card_domain_is_read_once_per_card_not_its_stacks(monkeypatch):
    clock = [1.0]
    monkeypatch.setattr(readings, "monotonic", lambda: clock[0])  # one clock for both
    xpus = [FakeXpu(profile=400), FakeXpu(profile=100, stacks=0)]
    zes = FakeZes(xpus, clock=lambda: clock[0], origin_s=0.0)
    meter = open_intel_meter(zes=zes, environ={})
    assert [d["card"] for d in meter.devices()] == [0, 1]
    assert lookup(meter.devices()[0]["name"]).name == "Intel Data Center GPU Max 1550"
    meter.start()
    clock[0] = 3.0
    energy_j = meter.energy_j()
    meter.close()
    assert energy_j == pytest.approx(400 * 2 + 100 * 2, abs=2 * 2e-6)  # 1 uJ counts
    assert meter.method == "counter" and not meter.estimated


def test_the_package_domain_stands_in_where_there_is_no_card_domain():
    zes = FakeZes([FakeXpu(profile=300, domains=(ZES_POWER_DOMAIN_PACKAGE,))])
    meter = open_intel_meter(zes=zes, environ={})
    meter.start()
    time.sleep(0.2)
    assert meter.energy_j() == pytest.approx(300 * 0.2, rel=0.15)
    assert meter.devices()[0]["power_limit_w"] is None  # the package carries no default limit
    meter.close()


def test_the_band_is_one_update_period_at_each_edge_plus_two_microjoules():
    meter = open_intel_meter(zes=FakeZes([FakeXpu()]), environ={})
    # 1,000 J over 2 s is 500 W: 2 x 500 W x 1 ms = 1 J, + 2 x 1 uJ
    assert meter.band_j(1000.0, 2.0) == pytest.approx(1.0 + 2e-6)


# -- which devices: torch.xpu numbering ---------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "used"),
    [
        ({}, [(0, 1.0), (1, 1.0)]),
        ({"ZE_AFFINITY_MASK": "1"}, [(0, 0.5)]),  # FLAT: device 1 is card 0's second stack
        ({"ZE_AFFINITY_MASK": "2,3"}, [(1, 1.0)]),  # both stacks of card 1
        ({"ZE_FLAT_DEVICE_HIERARCHY": "COMPOSITE", "ZE_AFFINITY_MASK": "1"}, [(1, 1.0)]),
        ({"ZE_FLAT_DEVICE_HIERARCHY": "COMPOSITE", "ZE_AFFINITY_MASK": "0.1"}, [(0, 1.0)]),
        ({"ZE_AFFINITY_MASK": "3,9,0"}, [(1, 0.5)]),  # stops at the first it cannot use
    ],
)
def test_devices_are_numbered_as_torch_xpu_numbers_them(environ, used):
    meter = open_intel_meter(zes=FakeZes([FakeXpu(), FakeXpu()]), environ=environ)
    assert [(d["card"], d["share"]) for d in meter.devices()] == used


def test_a_local_rank_on_one_stack_is_billed_half_its_card():
    zes = FakeZes([FakeXpu(profile=400)])
    meter = open_intel_meter(zes=zes, environ={}, local_rank=1)
    meter.start()
    time.sleep(0.2)
    energy_j = meter.energy_j()
    meter.close()
    assert meter.devices()[0]["share"] == 0.5
    assert energy_j == pytest.approx(200 * 0.2, rel=0.15)


# -- faults -----------------------------------------------------------------------------------


def test_a_fall_and_a_leap_are_each_bridged_at_the_mean_power_so_far():
    card = Device({"name": "card"}, 500.0, read_j=lambda: 0.0, update_s=0.001)
    track = _Track(card, last=22e6, last_s=0.0, t0_s=0.0)
    track.count(22e6 + 400, 1.0)  # 400 J in 1 s: counted
    track.count(200.0, 2.0)  # fell to 200 J (compute-runtime#938): 1 s at 400 W
    track.count(22e6 + 1200, 3.0)  # back: 22 MJ in 1 s, over 2 x 500 W: 1 s at 400 W
    track.count(22e6 + 1600, 4.0)  # 400 J: counted
    assert (track.total_j, track.bridged) == (1600.0, [1.0, 1.0])


def test_sampled_power_is_integrated_with_the_trapezoid_rule():
    device = Device({"name": "gpu"}, None, read_w=lambda: 0.0)
    track = _Track(device, last=100.0, last_s=0.0, t0_s=0.0)
    track.count(300.0, 2.0)  # (100 + 300) / 2 W x 2 s
    assert track.total_j == 400.0 and track.bridged == []


def test_a_near_zero_read_and_the_counter_coming_back_are_bridged(carbon_warnings):
    xpu = FakeXpu(profile=400, glitch_reads=frozenset({4}))  # probe, start, edge, glitch
    zes = FakeZes([xpu])
    meter = open_intel_meter(zes=zes, environ={})
    meter.start()
    t0_s = zes.now_s()
    readings = []
    for _ in range(3):
        time.sleep(0.15)
        readings.append(meter.energy_j())
    elapsed_s = zes.now_s() - t0_s
    meter.close()
    assert readings == sorted(readings)  # never backwards, never the ~22 MJ leap
    assert readings[-1] == pytest.approx(400 * elapsed_s, rel=0.1)
    assert meter.estimated
    assert any("went back or leapt" in r.getMessage() for r in carbon_warnings)


def test_a_transient_error_is_retried_and_nothing_is_estimated():
    zes = FakeZes([FakeXpu(profile=400, flaky_reads=frozenset({3}))])
    meter = open_intel_meter(zes=zes, environ={})
    meter.start()
    time.sleep(0.2)
    assert meter.energy_j() == pytest.approx(400 * 0.2, rel=0.15)
    assert not meter.estimated
    meter.close()


def test_a_device_lost_mid_run_raises_meter_error_and_falls_back_to_mean_power():
    zes = FakeZes([FakeXpu(profile=400, lost_after=3)])
    meter = open_intel_meter(zes=zes, environ={})
    meter.start()
    time.sleep(0.2)
    meter.energy_j()
    with pytest.raises(MeterError, match="0x70000001"):  # ZE_RESULT_ERROR_DEVICE_LOST
        meter.energy_j()
    estimate = meter.fallback()
    assert isinstance(estimate, ConstantPowerMeter)
    assert estimate.power_w == pytest.approx(400, rel=0.1)


def test_a_counter_that_needs_privileges_is_said_and_not_measured(carbon_warnings):
    assert open_intel_meter(zes=FakeZes([FakeXpu(no_permission=True)]), environ={}) is None
    assert any("elevated privileges" in r.getMessage() for r in carbon_warnings)


# -- gpus="auto" --------------------------------------------------------------------------------


def test_auto_picks_intel_where_there_is_no_nvidia_or_amd_gpu(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyzes", FakeZes([FakeXpu()]))
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # not installed
    options = {"host": False, "powercap_root": tmp_path, "hwmon_root": tmp_path}
    (intel,) = build_meters(nvml=FakeNvml([], library_missing=True), **options)
    assert isinstance(intel, AcceleratorMeter) and intel.devices()[0]["card"] == 0
    intel.close()
    (nvidia,) = build_meters(nvml=FakeNvml([FakeGpu()]), **options)
    assert nvidia.devices()[0]["name"].startswith("NVIDIA")
    nvidia.close()
