"""GPU energy from NVML: the total-energy counter where it exists, sampled power where not.

Which GPUs: those this process can use, as CUDA numbers them (CUDA_VISIBLE_DEVICES, index or
UUID form), mapped to NVML handles by UUID, since NVML indices are not CUDA indices.
Energy: nvmlDeviceGetTotalEnergyConsumption (mJ, Volta and newer) read at start() and at each
energy_j(); it is exact, and slow to read (~4 ms), so it is read only at interval edges.
GPUs without the counter (older GPUs, some vGPUs) have their power sampled every 100 ms by
a background thread (the instant-power field, else the 1 s average) and integrated with the
trapezoid rule. See ../shared/measurements/nvml-hopper.md for why, in figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from carbonlog._log import logger, warn_once
from carbonlog.errors import ConfigurationError
from carbonlog.meters.base import ConstantPowerMeter, MeterError
from carbonlog.meters.cuda_devices import driven_by, mig_shares, text, visible_gpus

SAMPLE_S = 0.1  # NVML power readings change every 100 ms
READ_ATTEMPTS = 3
"""A reading is tried this often before the GPU counts as failed: one busy-driver error
(NVML_ERROR_UNKNOWN, a timeout) must not turn a run's GPU energy into an estimate."""
RETRY_PAUSE_S = 0.005

COUNTER = "counter"
POWER_INSTANT = "sampled instant power"
POWER_AVERAGE = "sampled 1 s average power"


@dataclass
class GpuDevice:
    """One GPU as measured: its CUDA index in this process, identity and reading method.

    For a MIG instance, `uuid` is the instance's and `handle` its parent GPU's: NVML has
    power and energy for whole GPUs only.
    """

    index: int
    uuid: str
    name: str
    power_limit_w: float | None
    handle: object
    method: str
    parent_uuid: str | None = None
    share: float = 1.0
    """The part of the GPU's energy this process is billed: its MIG instances of the GPU over
    all of them (NVML has energy per GPU, not per instance), 1 for a whole GPU."""

    def describe(self) -> dict:
        info = {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "power_limit_w": self.power_limit_w,
            "method": self.method,
        }
        if self.parent_uuid:
            info["parent_uuid"] = self.parent_uuid
            info["share"] = self.share
        return info


def _instant_power_mw(nvml: ModuleType, handle) -> float:
    (field,) = nvml.nvmlDeviceGetFieldValues(handle, [nvml.NVML_FI_DEV_POWER_INSTANT])
    if field.nvmlReturn != nvml.NVML_SUCCESS:
        raise nvml.NVMLError(field.nvmlReturn)
    return float(field.value.uiVal)


def _probe(nvml: ModuleType, handle) -> str | None:
    """How this GPU can be measured: the counter, sampled instant or average power, or None."""
    readers = (
        (COUNTER, nvml.nvmlDeviceGetTotalEnergyConsumption),
        (POWER_INSTANT, lambda h: _instant_power_mw(nvml, h)),
        (POWER_AVERAGE, nvml.nvmlDeviceGetPowerUsage),
    )
    for method, read in readers:
        try:
            read(handle)
            return method
        except (nvml.NVMLError, AttributeError) as exc:
            logger.debug("NVML %s unavailable: %s", method, exc)
    return None


def _describe(nvml: ModuleType, index: int, uuid: str, parent_uuid: str) -> GpuDevice | None:
    handle = nvml.nvmlDeviceGetHandleByUUID(parent_uuid)
    method = _probe(nvml, handle)
    if method is None:
        warn_once(
            f"nvml-unreadable:{parent_uuid}",
            f"carbonlog: GPU {parent_uuid} reports neither energy nor power; not measured",
            own=True,
        )
        return None
    try:
        limit_w = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000
    except nvml.NVMLError:
        limit_w = None
    return GpuDevice(
        index,
        uuid,
        text(nvml.nvmlDeviceGetName(handle)),
        limit_w,
        handle,
        method,
        parent_uuid if parent_uuid != uuid else None,
    )


def open_gpu_meter(
    gpus: str | Sequence[int] = "auto",
    nvml: ModuleType | None = None,
    environ: Mapping[str, str] | None = None,
    local_rank: int | None = None,
) -> NvmlMeter | None:
    """The GPU meter of this process, or None where there is no NVML library or no GPU.

    `gpus`: "auto" (every GPU CUDA shows this process; with `local_rank`, the one that process
    of several on the node drives) or CUDA indices within those (a DDP rank passes its own
    device). `nvml`: the pynvml module (injectable for tests).
    Raises ConfigurationError for an index this process cannot see.
    """
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            logger.debug("pynvml is not installed: no GPU meter")
            return None
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        logger.debug("NVML unavailable (%s): no GPU meter", exc)
        return None
    try:
        visible = visible_gpus(nvml, environ)
        if gpus != "auto":
            wanted = list(dict.fromkeys(gpus))
        elif local_rank is None:
            wanted = range(len(visible))
        else:
            wanted = driven_by(local_rank, len(visible))
        outside = [i for i in wanted if not 0 <= i < len(visible)]
        if outside:
            raise ConfigurationError(
                f"gpus={list(gpus)}: this process sees {len(visible)} CUDA "
                f"device(s); {outside} out of range"
            )
        devices, parents = [], set()
        shares = mig_shares(nvml, [visible[i] for i in wanted], environ)
        for index in wanted:
            uuid, parent = visible[index]
            if parent in parents:  # two MIG instances of one GPU: its energy counts once
                continue
            parents.add(parent)
            device = _describe(nvml, index, uuid, parent)
            if device is not None:
                device.share = shares.get(parent, 1.0)
                devices.append(device)
    except nvml.NVMLError as exc:
        nvml.nvmlShutdown()
        warn_once(
            "nvml-open",
            f"carbonlog: NVML failed while listing GPUs ({exc}); GPU energy is not measured",
            own=True,
        )
        return None
    except BaseException:
        nvml.nvmlShutdown()
        raise
    if not devices:
        nvml.nvmlShutdown()
        return None
    return NvmlMeter(nvml, devices)


class NvmlMeter:
    """Joules of the selected GPUs since start(), summed; `estimated` if any GPU is sampled.

    Owns one nvmlInit (made by open_gpu_meter) and releases it in close().
    """

    component = "gpu"

    def __init__(self, nvml: ModuleType, devices: list[GpuDevice], sample_s: float = SAMPLE_S):
        self._nvml = nvml
        self._devices = devices
        self._counted = [d for d in devices if d.method == COUNTER]
        self._sampled = [d for d in devices if d.method != COUNTER]
        self.estimated = bool(self._sampled)
        self._sample_s = sample_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base_mj: list[int] = []
        self._sampled_j: list[float] = []
        self._last_sample: list[tuple[float, float]] = []
        self._misses: list[int] = []
        self._fault: Exception | None = None
        self._t0_s: float | None = None
        self._good = (0.0, 0.0)  # (joules, seconds since start) at the last good reading
        self._closed = False

    def start(self) -> None:
        self._stop_sampler()
        self._fault = None
        try:
            self._base_mj = [
                self._retried(self._nvml.nvmlDeviceGetTotalEnergyConsumption, d.handle)
                for d in self._counted
            ]
            now_s = time.monotonic()
            self._sampled_j = [0.0] * len(self._sampled)
            self._last_sample = [(now_s, self._retried(self._power_w, d)) for d in self._sampled]
            self._misses = [0] * len(self._sampled)
        except self._nvml.NVMLError as exc:
            raise MeterError(f"NVML failed at start: {exc}") from exc
        self._t0_s = now_s
        self._good = (0.0, 0.0)
        if self._sampled:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run_sampler, daemon=True, name="carbonlog-nvml-sampler"
            )
            self._thread.start()

    def energy_j(self) -> float:
        if self._t0_s is None:
            return 0.0
        try:
            counted_mj = sum(
                (self._retried(self._nvml.nvmlDeviceGetTotalEnergyConsumption, d.handle) - base)
                * d.share
                for d, base in zip(self._counted, self._base_mj, strict=True)
            )
            with self._lock:
                if self._fault is None and self._sampled:
                    self._sample()
                if self._fault is not None:
                    raise self._fault
                sampled_j = sum(
                    j * d.share for j, d in zip(self._sampled_j, self._sampled, strict=True)
                )
        except self._nvml.NVMLError as exc:
            raise MeterError(f"NVML read failed: {exc}") from exc
        energy_j = counted_mj / 1000 + sampled_j
        self._good = (energy_j, time.monotonic() - self._t0_s)
        return energy_j

    def devices(self) -> list[dict]:
        return [d.describe() for d in self._devices]

    def fallback(self) -> ConstantPowerMeter:
        """Constant power at the mean measured so far, else the sum of the power limits."""
        energy_j, elapsed_s = self._good
        if elapsed_s > 0 and energy_j > 0:
            return ConstantPowerMeter(
                "gpu", energy_j / elapsed_s, "GPU estimate after an NVML fault: mean power so far"
            )
        limit_w = sum(d.power_limit_w or 0.0 for d in self._devices)
        return ConstantPowerMeter(
            "gpu", limit_w, "GPU estimate after an NVML fault: sum of power limits"
        )

    def close(self) -> None:
        self._stop_sampler()
        if not self._closed:
            self._closed = True
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as exc:
                logger.debug("nvmlShutdown failed: %s", exc)

    # -- sampling, for GPUs without the counter -----------------------------------------

    def _power_w(self, device: GpuDevice) -> float:
        if device.method == POWER_INSTANT:
            return _instant_power_mw(self._nvml, device.handle) / 1000
        return self._nvml.nvmlDeviceGetPowerUsage(device.handle) / 1000

    def _retried(self, read, *args):
        """`read(*args)`, tried READ_ATTEMPTS times before its NVMLError counts."""
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return read(*args)
            except self._nvml.NVMLError:
                if attempt == READ_ATTEMPTS:
                    raise
                time.sleep(RETRY_PAUSE_S)

    def _sample(self) -> None:
        """One reading of every sampled GPU, integrated since the last (trapezoid); under lock.

        A missed reading is bridged by the next good one (the trapezoid spans the gap); only
        READ_ATTEMPTS misses in a row make the GPU count as failed.
        """
        for i, device in enumerate(self._sampled):
            try:
                power_w = self._power_w(device)
            except self._nvml.NVMLError as exc:
                self._misses[i] += 1
                if self._misses[i] >= READ_ATTEMPTS:
                    self._fault = exc
                    return
                continue
            self._misses[i] = 0
            now_s = time.monotonic()
            last_s, last_w = self._last_sample[i]
            self._sampled_j[i] += (last_w + power_w) / 2 * (now_s - last_s)
            self._last_sample[i] = (now_s, power_w)

    def _run_sampler(self) -> None:
        while not self._stop.wait(self._sample_s):
            with self._lock:
                if self._fault is not None:
                    return
                self._sample()

    def _stop_sampler(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=2.0)
            self._thread = None
