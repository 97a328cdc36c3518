"""AMD GPU meter against the amdsmi fake: the accumulator exact, HIP numbering, faults, auto."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from carbonlog.errors import ConfigurationError
from carbonlog.hardware import lookup
from carbonlog.meters import ConstantPowerMeter, Meter, MeterError, build_meters, readings
from carbonlog.meters.amd import open_amd_meter, visible_gpus
from carbonlog.meters.nvml import NvmlMeter
from carbonlog.meters.readings import AcceleratorMeter
from tests.fakes.amdsmi_fake import (
    AMDSMI_STATUS_NOT_INIT,
    METRICS_S,
    RESOLUTION_UJ,
    AmdSmiLibraryException,
    AmdSmiParameterException,
    FakeAmdGpu,
    FakeAmdSmi,
)
from tests.fakes.pynvml_fake import FakeGpu, FakeNvml

SHIM = Path(__file__).resolve().parents[1] / "fakes" / "amdsmi_shim"


def uuids(amdsmi: FakeAmdSmi, environ: dict) -> list[str]:
    amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
    try:
        return [uuid for uuid, _ in visible_gpus(amdsmi, environ)]
    finally:
        amdsmi.amdsmi_shut_down()


def build(tmp_path, **options):
    """build_meters for the GPU alone, no host meters."""
    return build_meters(host=False, powercap_root=tmp_path, hwmon_root=tmp_path, **options)


# -- the fake itself: what amdsmi refuses, and readings in metrics ticks ---------------------


def test_the_fake_refuses_what_amdsmi_refuses():
    amdsmi = FakeAmdSmi([FakeAmdGpu()])
    with pytest.raises(AmdSmiLibraryException) as refused:
        amdsmi.amdsmi_get_processor_handles()
    assert refused.value.get_error_code() == AMDSMI_STATUS_NOT_INIT
    with pytest.raises(AmdSmiParameterException):
        amdsmi.amdsmi_init(2)  # a bare int, not an AmdSmiInitFlags
    amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
    with pytest.raises(AmdSmiParameterException):
        amdsmi.amdsmi_get_energy_count(0)  # not a processor handle


def test_the_accumulator_counts_resolution_units_in_metrics_ticks():
    clock = [0.0]
    amdsmi = FakeAmdSmi([FakeAmdGpu(profile=300)], clock=lambda: clock[0], origin_s=0.0)
    amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
    (handle,) = amdsmi.amdsmi_get_processor_handles()

    def counts_at(t_s):
        clock[0] = t_s
        return amdsmi.amdsmi_get_energy_count(handle)["energy_accumulator"] - 987_654_321

    # 300 W x 1.000 s = 300 J = 300e6 uJ / 15.3 uJ = 19,607,843.1 counts
    assert counts_at(1.0) == 19_607_843
    assert counts_at(1.0 + METRICS_S / 2) == 19_607_843  # the table is not refreshed yet
    # one tick later: 300 W x 1.004 s = 301.2 J / 15.3 uJ = 19,686,274.5
    assert counts_at(1.0 + METRICS_S) == 19_686_274


# -- counters and the band ------------------------------------------------------------------


def test_counter_deltas_are_the_energy_used_to_a_count(monkeypatch):
    clock = [1.0]
    monkeypatch.setattr(readings, "monotonic", lambda: clock[0])  # one clock for both
    gpus = [FakeAmdGpu(profile=300), FakeAmdGpu(profile="600:0.1,100:0.1")]
    amdsmi = FakeAmdSmi(gpus, clock=lambda: clock[0], origin_s=0.0)
    meter = open_amd_meter(amdsmi=amdsmi, environ={})
    assert isinstance(meter, Meter) and meter.method == "counter" and not meter.estimated
    meter.start()
    clock[0] = 3.0
    energy_j = meter.energy_j()
    meter.close()
    # 300 W x 2 s + 10 cycles of (600 W x 0.1 s + 100 W x 0.1 s) = 600 + 700 J
    assert energy_j == pytest.approx(1300.0, abs=2 * 2 * RESOLUTION_UJ / 1e6)
    assert (amdsmi.init_calls, amdsmi.shutdown_calls) == (1, 1)


def test_the_band_is_one_update_period_at_each_edge_plus_two_counts_per_gpu():
    amdsmi = FakeAmdSmi([FakeAmdGpu(), FakeAmdGpu()])
    meter = open_amd_meter(amdsmi=amdsmi, environ={})
    meter.close()
    # 3,600 J over 10 s is 360 W: 2 x 360 W x 10 ms = 7.2 J, + 2 GPUs x 2 x 15.3 uJ
    assert meter.band_j(3600.0, 10.0) == pytest.approx(7.2 + 4 * RESOLUTION_UJ / 1e6)
    assert meter.band_j(0.0, 10.0) == 0.0


def test_a_sampled_gpus_band_adds_half_a_watt_of_rounding_over_the_window():
    meter = open_amd_meter(amdsmi=FakeAmdSmi([FakeAmdGpu(counter=False)]), environ={})
    meter.close()
    # 3,000 J over 10 s is 300 W: 2 x 300 W x 10 ms = 6 J, + 0.5 W x 10 s = 5 J
    assert meter.band_j(3000.0, 10.0) == pytest.approx(11.0)


def test_devices_say_the_market_name_the_hardware_table_matches():
    meter = open_amd_meter(amdsmi=FakeAmdSmi([FakeAmdGpu(power_cap_w=750)]), environ={})
    (device,) = meter.devices()
    meter.close()
    assert lookup(device["name"]).name == "AMD Instinct MI300X"
    assert (device["power_limit_w"], device["method"], device["index"]) == (750.0, "counter", 0)


def test_the_accumulator_under_its_pre_6_2_1_key_is_read_too():
    amdsmi = FakeAmdSmi([FakeAmdGpu(profile=200, counter_key="power")])
    meter = open_amd_meter(amdsmi=amdsmi, environ={})
    meter.start()
    time.sleep(0.2)
    energy_j = meter.energy_j()
    meter.close()
    assert meter.method == "counter" and energy_j == pytest.approx(200 * 0.2, rel=0.25)


# -- sampled power: the MI100 and GPUs without the counter ------------------------------------


def test_an_mi100_and_a_gpu_without_the_counter_have_their_power_sampled():
    mi100 = FakeAmdGpu(
        market_name="AMD Instinct MI100",
        profile=250,
        stuck_counter=True,
        current_power=False,
        average_power=True,
    )
    no_counter = FakeAmdGpu(profile=150, counter=False)
    amdsmi = FakeAmdSmi([mi100, no_counter])
    meter = open_amd_meter(amdsmi=amdsmi, environ={})
    fields = [d["power_field"] for d in meter.devices()]
    assert fields == ["average_socket_power", "current_socket_power"]
    assert meter.method == "sampled" and meter.estimated
    meter.start()
    t0_s = time.monotonic()
    time.sleep(0.6)
    energy_j = meter.energy_j()
    elapsed_s = time.monotonic() - t0_s
    meter.close()
    assert energy_j == pytest.approx(400 * elapsed_s, rel=0.1)


# -- which GPUs: HIP numbering ----------------------------------------------------------------


@pytest.fixture
def four() -> FakeAmdSmi:
    return FakeAmdSmi([FakeAmdGpu() for _ in range(4)])


@pytest.mark.parametrize(
    ("environ", "order"),
    [
        ({}, [0, 1, 2, 3]),
        ({"HIP_VISIBLE_DEVICES": "2,0"}, [2, 0]),
        ({"CUDA_VISIBLE_DEVICES": "3"}, [3]),
        ({"HIP_VISIBLE_DEVICES": "1", "CUDA_VISIBLE_DEVICES": "3"}, [1]),  # HIP's wins
        ({"ROCR_VISIBLE_DEVICES": "1,2,3", "HIP_VISIBLE_DEVICES": "0"}, [1]),  # HIP within ROCr
        ({"ROCR_VISIBLE_DEVICES": "3,1"}, [3, 1]),
        ({"HIP_VISIBLE_DEVICES": "1,7,2"}, [1]),  # stops at the first it cannot use
        ({"HIP_VISIBLE_DEVICES": "1,1"}, [1]),
        ({"HIP_VISIBLE_DEVICES": "-1"}, []),
    ],
)
def test_visible_devices_are_read_as_rocr_then_hip_read_them(four, environ, order):
    assert uuids(four, environ) == [four.gpus[i].hip_uuid for i in order]


def test_rocr_takes_gpu_uuids_in_any_case(four):
    rocr = f"GPU-{four.gpus[2].hip_uuid.upper()},0"
    assert uuids(four, {"ROCR_VISIBLE_DEVICES": rocr}) == [
        four.gpus[2].hip_uuid,
        four.gpus[0].hip_uuid,
    ]


def test_hip_order_is_hip_id_order_else_pci_order():
    gpus = [FakeAmdGpu(bdf="0000:c1:00.0"), FakeAmdGpu(bdf="0000:05:00.0")]
    with_ids = FakeAmdSmi(gpus)
    assert uuids(with_ids, {}) == [gpus[0].hip_uuid, gpus[1].hip_uuid]  # hip_id 0, 1
    before_6_4 = FakeAmdSmi(gpus, enumeration_info=False)
    before_6_4.amdsmi_init(before_6_4.AmdSmiInitFlags.INIT_AMD_GPUS)
    handles = [handle for _, handle in visible_gpus(before_6_4, {})]
    assert [h.gpu for h in handles] == [gpus[1], gpus[0]]  # by PCI address


def test_the_torch_device_index_is_the_index_among_visible_gpus(four):
    meter = open_amd_meter(gpus=[1], amdsmi=four, environ={"HIP_VISIBLE_DEVICES": "3,2"})
    (device,) = meter.devices()
    meter.close()
    assert (device["index"], device["uuid"]) == (1, four.gpus[2].hip_uuid)
    with pytest.raises(ConfigurationError, match="sees 2 AMD GPU"):
        open_amd_meter(gpus=[2], amdsmi=four, environ={"HIP_VISIBLE_DEVICES": "3,2"})
    assert four.init_calls == four.shutdown_calls == 2  # the failed open gave amdsmi back


def test_a_local_rank_measures_the_gpu_it_drives(four):
    meter = open_amd_meter(amdsmi=four, environ={}, local_rank=2)
    assert [d["index"] for d in meter.devices()] == [2]
    meter.close()


def test_no_driver_or_no_gpu_gives_no_meter():
    assert open_amd_meter(amdsmi=FakeAmdSmi([FakeAmdGpu()], driver_missing=True)) is None
    empty = FakeAmdSmi([])
    assert open_amd_meter(amdsmi=empty, environ={}) is None
    assert empty.init_calls == empty.shutdown_calls == 1


# -- faults -----------------------------------------------------------------------------------


def test_a_transient_error_is_retried_and_nothing_is_estimated(monkeypatch):
    clock = [1.0]
    monkeypatch.setattr(readings, "monotonic", lambda: clock[0])
    gpu = FakeAmdGpu(profile=300, flaky_reads=frozenset({3}))  # probe, start, then the edge
    amdsmi = FakeAmdSmi([gpu], clock=lambda: clock[0], origin_s=0.0)
    meter = open_amd_meter(amdsmi=amdsmi, environ={})
    meter.start()
    clock[0] = 2.0
    energy_j = meter.energy_j()  # read 3 is refused (AMDSMI_STATUS_BUSY), read 4 answers
    meter.close()
    assert gpu.reads == 4
    assert energy_j == pytest.approx(300.0, abs=2 * RESOLUTION_UJ / 1e6)
    assert not meter.estimated


def test_a_counter_that_resets_mid_run_is_bridged_and_flagged(carbon_warnings):
    amdsmi = FakeAmdSmi([FakeAmdGpu(profile=300)])
    amdsmi.gpus[0].reset_at_s = amdsmi.now_s() + 0.25  # the accumulator starts again at 0
    meter = open_amd_meter(amdsmi=amdsmi, environ={})
    meter.start()
    t0_s = amdsmi.now_s()
    time.sleep(0.15)
    assert meter.energy_j() == pytest.approx(300 * 0.15, rel=0.2)
    time.sleep(0.35)
    energy_j = meter.energy_j()
    elapsed_s = amdsmi.now_s() - t0_s
    meter.close()
    assert energy_j == pytest.approx(300 * elapsed_s, rel=0.1)  # never negative, never huge
    assert meter.estimated
    assert any("went back or leapt" in r.getMessage() for r in carbon_warnings)


def test_a_gpu_lost_mid_run_raises_meter_error_and_falls_back_to_mean_power():
    amdsmi = FakeAmdSmi([FakeAmdGpu(profile=300, lost_after=3)])  # probe, start, one edge
    meter = open_amd_meter(amdsmi=amdsmi, environ={})
    meter.start()
    time.sleep(0.3)
    assert meter.energy_j() > 0
    with pytest.raises(MeterError, match="amdsmi read failed"):
        meter.energy_j()
    estimate = meter.fallback()
    meter.close()
    assert isinstance(estimate, ConstantPowerMeter)
    assert estimate.power_w == pytest.approx(300, rel=0.1)


def test_a_fault_mid_run_keeps_what_was_measured_and_flags_the_estimate(monkeypatch):
    from carbonlog.tracking import Tracker

    amdsmi = FakeAmdSmi([FakeAmdGpu(profile=300, lost_after=3)])  # probe, start, 1st edge
    monkeypatch.setitem(sys.modules, "amdsmi", amdsmi)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([], library_missing=True))
    tracker = Tracker(intensity=100.0, cpu=None, ram=False, ledger=False).start()
    time.sleep(0.2)
    first = tracker.mark("epoch")
    time.sleep(0.2)
    second = tracker.mark("epoch")
    tracker.stop()
    assert first.estimated == () and first.gpu_j == pytest.approx(300 * first.duration_s, 0.1)
    assert second.estimated == ("gpu",)
    assert second.gpu_j == pytest.approx(300 * second.duration_s, rel=0.15)


# -- gpus="auto": AMD where there is no NVIDIA driver, both where both ------------------------


def test_auto_picks_amd_when_no_nvidia_driver_loads(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdSmi([FakeAmdGpu(), FakeAmdGpu()]))
    meters = build(tmp_path, nvml=FakeNvml([FakeGpu()], library_missing=True))
    assert [type(m) for m in meters] == [AcceleratorMeter]
    assert len(meters[0].devices()) == 2
    meters[0].close()


def test_auto_measures_both_where_both_drivers_load(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdSmi([FakeAmdGpu()]))
    meters = build(tmp_path, nvml=FakeNvml([FakeGpu()]))
    assert [type(m) for m in meters] == [NvmlMeter, AcceleratorMeter]
    assert {m.component for m in meters} == {"gpu"}
    for meter in meters:
        meter.close()


def test_indices_go_to_the_runtime_torch_drives(tmp_path, monkeypatch):
    import torch

    monkeypatch.setitem(sys.modules, "amdsmi", FakeAmdSmi([FakeAmdGpu(), FakeAmdGpu()]))
    nvml = FakeNvml([FakeGpu(), FakeGpu()])
    (cuda,) = build(tmp_path, gpus=[1], nvml=nvml)
    assert isinstance(cuda, NvmlMeter)
    cuda.close()
    monkeypatch.setattr(torch.version, "hip", "6.2.41133", raising=False)
    (hip,) = build(tmp_path, gpus=[1], nvml=nvml)
    assert isinstance(hip, AcceleratorMeter) and hip.devices()[0]["index"] == 1
    hip.close()


# -- the whole path: a real training with the fake library installed by its shim --------------


def test_a_tiny_training_is_measured_through_the_amdsmi_shim(monkeypatch):
    import torch

    import carbonlog

    monkeypatch.setenv("CARBONLOG_FAKE_AMDSMI_GPUS", "2")
    monkeypatch.setenv("CARBONLOG_FAKE_AMDSMI_WATTS", "250")
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([], library_missing=True))
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # so that the shim leaves with the test
    monkeypatch.delitem(sys.modules, "amdsmi")
    monkeypatch.syspath_prepend(str(SHIM))
    model = torch.nn.Linear(16, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 16), torch.randn(64, 1)
    with carbonlog.track(intensity=50.0, cpu=None, ram=False, ledger=False) as tracker:
        for _ in range(2):
            started_s = time.monotonic()
            while time.monotonic() - started_s < 0.2:
                optimizer.zero_grad()
                torch.nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
            tracker.mark("epoch")
    summary = tracker.stop()
    assert sys.modules["amdsmi"].__file__.startswith(str(SHIM))
    assert [d["name"] for d in summary.hardware["gpu"]] == ["AMD Instinct MI300X"] * 2
    assert summary.gpu_j == pytest.approx(2 * 250 * summary.duration_s, rel=0.1)
    assert summary.methods["gpu"] == "counter"
    assert summary.co2_kg == pytest.approx(summary.energy_kwh * 50.0 / 1000)
