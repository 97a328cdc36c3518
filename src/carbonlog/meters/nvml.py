"""GPU energy from NVML: the total-energy counter where it exists, sampled power where not.

Which GPUs: those this process can use, as CUDA numbers them (CUDA_VISIBLE_DEVICES, index or
UUID form), mapped to NVML handles by UUID, since NVML indices are not CUDA indices.
Energy: nvmlDeviceGetTotalEnergyConsumption (mJ, Volta and newer) read at start() and at each
energy_j(); it is exact, and slow to read (~4 ms), so it is read only at interval edges.
GPUs without the counter (older GPUs, some vGPUs) have their power sampled every 100 ms by
a background thread (the instant-power field, else nvmlDeviceGetPowerUsage) and integrated
with the trapezoid rule. On Ampere and newer, except GA100, nvmlDeviceGetPowerUsage is the
mean over the last second (NVML API reference, nvmlDeviceGetPowerUsage); integrated as it is,
it moves a busy epoch's energy into the next (-30 % and +124 % on epochs of 1.4 s and 1.2 s,
on the NVML fake) and loses the run's last half second of energy (8 % of a 3.7 s fit).
LaggedPowerIntegral undoes that lag at every edge (see there; figures in docs/accuracy.md).
See ../shared/measurements/nvml-hopper.md for why counters come first, in figures.
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType

from carbonlog._log import logger, warn_once
from carbonlog.meters.base import ConstantPowerMeter, MeterError
from carbonlog.meters.cuda_devices import mig_shares, text, visible_gpus, wanted_indices
from carbonlog.meters.readings import READ_ATTEMPTS, mean_power_fallback, retried
from carbonlog.meters.uncertainty import NVML_UPDATE_S, counter_band_j, sampled_band_j

SAMPLE_S = 0.1  # NVML power readings change every 100 ms

COUNTER = "counter"
POWER_INSTANT = "sampled instant power"
POWER_AVERAGE = "sampled 1 s average power"
AVERAGE_WINDOW_S = 1.0
"""nvmlDeviceGetPowerUsage on Ampere and newer except GA100: "power averaged over 1 sec
interval"; on GA100 and older, instantaneous (NVML API reference, R590, 2026)."""
NVML_DEVICE_ARCH_AMPERE = 7  # nvmlDeviceArchitecture_t
_GA100_RE = re.compile(r"\bA(?:100|30|800)\b")  # the GA100 parts: A100, A30, A800


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
    lag_s: float = 0.0
    """The averaging window of its sampled power reading: AVERAGE_WINDOW_S where
    nvmlDeviceGetPowerUsage is a 1 s mean, else 0."""

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
        if self.lag_s:
            info["power_window_s"] = self.lag_s
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
    name = text(nvml.nvmlDeviceGetName(handle))
    averaged = method == POWER_AVERAGE and _averages_power(nvml, handle, name)
    return GpuDevice(
        index,
        uuid,
        name,
        limit_w,
        handle,
        method,
        parent_uuid if parent_uuid != uuid else None,
        lag_s=AVERAGE_WINDOW_S if averaged else 0.0,
    )


def _averages_power(nvml: ModuleType, handle, name: str) -> bool:
    """Whether nvmlDeviceGetPowerUsage is a 1 s mean here: Ampere or newer, not GA100. A driver
    too old to name the architecture drives an older GPU, whose reading is instantaneous."""
    try:
        architecture = nvml.nvmlDeviceGetArchitecture(handle)
    except (nvml.NVMLError, AttributeError):
        return False
    return architecture >= NVML_DEVICE_ARCH_AMPERE and not _GA100_RE.search(name)


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
        wanted = wanted_indices(gpus, local_rank, len(visible), "CUDA device")
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


class LaggedPowerIntegral:
    """Energy since t0 from power readings that each average the last `window_s` seconds, W.

    A reading is P(t) = (E(t) - E(t - W)) / W, so each edge's reading closes its interval:
    nothing waits for the lag to pass. With e = T - t0 and the second before t0 taken to run at
    P(t0) (the reading at start averages it):

        e < W:      E(T) - E(t0) = W P(T) - (W - e) P(t0)
        e < 2W:     E(T) - E(t0) = W P(T) + W P(T - W) - (2W - e) P(t0)
        otherwise:  E(T) - E(t0) = W P(T) + W P(t0 + W) + int_{t0+3W/2}^{T-W/2} P(t) dt

    The first two are exact; the integral is E(T - W) - E(t0 + W), the readings taken W/2 after
    the energy they average, exact but for power steps within W/2 of t0 + W or of T - W (off
    by at most a step's watts x W/8 each). W = 0: the plain trapezoid integral.
    """

    def __init__(self, t0_s: float, power_w: float, window_s: float = 0.0):
        self.window_s = window_s
        self._t0_s = t0_s
        self._early = [(t0_s, power_w)]  # the readings of the first W seconds
        self._recent = deque([(t0_s, power_w, 0.0)])  # (s, W, trapezoid J since t0)
        self._origin_j: float | None = None  # the trapezoid integral at t0 + 3W/2

    def add(self, t_s: float, power_w: float) -> None:
        """One reading taken at t_s; readings no formula needs any more are let go."""
        last_s, last_w, last_j = self._recent[-1]
        if t_s <= last_s:
            return
        self._recent.append((t_s, power_w, last_j + (last_w + power_w) / 2 * (t_s - last_s)))
        window_s = self.window_s
        if self._early[-1][0] < self._t0_s + window_s:
            self._early.append((t_s, power_w))
        if self._origin_j is None and t_s >= self._t0_s + 1.5 * window_s:
            self._origin_j = self._integral_at(self._t0_s + 1.5 * window_s)
        while len(self._recent) > 2 and self._recent[1][0] <= t_s - window_s / 2:
            self._recent.popleft()

    def energy_j(self) -> float:
        """Joules from t0 to the last reading."""
        t_s, power_w, trapezoid_j = self._recent[-1]
        window_s, p0_w = self.window_s, self._early[0][1]
        if not window_s:
            return trapezoid_j
        elapsed_s = t_s - self._t0_s
        if elapsed_s < window_s:
            return window_s * power_w - (window_s - elapsed_s) * p0_w
        if elapsed_s < 2 * window_s or self._origin_j is None:
            lagged_w = self._early_power_w(t_s - window_s)
            return window_s * (power_w + lagged_w) - (2 * window_s - elapsed_s) * p0_w
        shifted_j = self._integral_at(t_s - window_s / 2) - self._origin_j
        return window_s * (power_w + self._early_power_w(self._t0_s + window_s)) + shifted_j

    def _early_power_w(self, t_s: float) -> float:
        """The reading at t_s within the first W seconds, linear between readings."""
        early = self._early
        i = bisect.bisect_right([r[0] for r in early], t_s) - 1
        if i >= len(early) - 1:
            return early[-1][1]
        (t0_s, p0_w), (t1_s, p1_w) = early[max(i, 0)], early[max(i, 0) + 1]
        return p0_w + (p1_w - p0_w) * (t_s - t0_s) / (t1_s - t0_s)

    def _integral_at(self, t_s: float) -> float:
        """The trapezoid integral at t_s, within the readings kept (power linear between)."""
        i = bisect.bisect_right([r[0] for r in self._recent], t_s) - 1
        if i < 0:
            return self._recent[0][2]
        if i >= len(self._recent) - 1:
            return self._recent[-1][2]
        (t0_s, p0_w, j0), (t1_s, p1_w, _) = self._recent[i], self._recent[i + 1]
        dt_s = t_s - t0_s
        return j0 + p0_w * dt_s + (p1_w - p0_w) * dt_s * dt_s / (2 * (t1_s - t0_s))


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
        self.method = "sampled" if self._sampled else "counter"
        self._sample_s = sample_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._base_mj: list[int] = []
        self._integrals: list[LaggedPowerIntegral] = []
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
            self._integrals = [
                LaggedPowerIntegral(now_s, self._retried(self._power_w, d), d.lag_s)
                for d in self._sampled
            ]
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
                    i.energy_j() * d.share
                    for i, d in zip(self._integrals, self._sampled, strict=True)
                )
        except self._nvml.NVMLError as exc:
            raise MeterError(f"NVML read failed: {exc}") from exc
        # a lag-corrected estimate may dip by a joule where power steps; the total never does
        energy_j = max(counted_mj / 1000 + sampled_j, self._good[0])
        self._good = (energy_j, time.monotonic() - self._t0_s)
        return energy_j

    def band_j(self, energy_j: float, window_s: float) -> float:
        """The widest band of its GPUs' methods (a sampled GPU's, if any), on the whole sum."""
        band = sampled_band_j if self._sampled else counter_band_j
        return band(energy_j, window_s, NVML_UPDATE_S)

    def devices(self) -> list[dict]:
        return [d.describe() for d in self._devices]

    def fallback(self) -> ConstantPowerMeter:
        """Constant power at the mean measured so far, else the sum of the power limits."""
        energy_j, elapsed_s = self._good
        limit_w = sum(d.power_limit_w or 0.0 for d in self._devices)
        return mean_power_fallback("gpu", energy_j, elapsed_s, limit_w, "NVML")

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
        return retried(lambda: read(*args), (self._nvml.NVMLError,))

    def _sample(self) -> None:
        """One reading of every sampled GPU, added to its integral; under lock.

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
            self._integrals[i].add(time.monotonic(), power_w)

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
