"""A stand-in for pynvml (nvidia-ml-py) that behaves like the hardware, for tests.

Each FakeGpu follows a power profile in real time (time.monotonic), the way a Hopper GPU
reports it (../shared/measurements/nvml-hopper.md): every reading changes in 100 ms ticks;
the total-energy counter (mJ) is the exact integral of the profile up to the last tick; the
instant field (NVML_FI_DEV_POWER_INSTANT) is the mean power of the last tick, so it tracks;
nvmlDeviceGetPowerUsage is the mean over the last second on Ampere and newer except GA100, so
it lags, and the last tick's mean on GA100 and older (NVML API reference). Failure modes: a GPU
without the counter (NOT_SUPPORTED, as pre-Volta, MIG or vGPU), a GPU lost after N readings
(GPU_IS_LOST), a missing library (nvmlInit raises LIBRARY_NOT_FOUND).

Standalone (standard library only) so that tests/fakes/nvml_shim/pynvml.py can load it in a
subprocess. Put tests/fakes/nvml_shim first on PYTHONPATH and `import pynvml` returns a fake
configured from these environment variables:

    CARBONLOG_FAKE_NVML_GPUS=2             number of GPUs (default 1; 0: a driver, no GPU)
    CARBONLOG_FAKE_NVML_WATTS=300          power profile of every GPU: watts, or repeating
                                           steps "700:0.5,120:0.5" (watts:seconds); ";"
                                           separates one profile per GPU
    CARBONLOG_FAKE_NVML_NAME=...           device name (default "NVIDIA H100 80GB HBM3")
    CARBONLOG_FAKE_NVML_LIMIT_W=700        enforced power limit, W
    CARBONLOG_FAKE_NVML_NO_COUNTER=1       the energy counter is NOT_SUPPORTED
    CARBONLOG_FAKE_NVML_NO_INSTANT=1       the instant-power field is NOT_SUPPORTED
    CARBONLOG_FAKE_NVML_LOST_AFTER=N       each GPU raises GPU_IS_LOST after N readings
    CARBONLOG_FAKE_NVML_MISSING=1          the NVML library is missing

In the shim the profile's time origin is 0 on the machine's monotonic clock, so every process
(DDP ranks, torchrun workers) reads the same counters, as they would read one real GPU.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace

TICK_S = 0.1  # every NVML power and energy reading changes at this period
AVERAGE_S = 1.0  # nvmlDeviceGetPowerUsage: moving-average window

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999
NVML_FI_DEV_POWER_AVERAGE = 185
NVML_FI_DEV_POWER_INSTANT = 186
NVML_VALUE_TYPE_UNSIGNED_INT = 1
NVML_DEVICE_ARCH_VOLTA = 5
NVML_DEVICE_ARCH_AMPERE = 7
NVML_DEVICE_ARCH_HOPPER = 9

_GA100 = re.compile(r"\bA(?:100|30|800)\b")  # A100, A30, A800: GA100, instantaneous power

_ERROR_NAMES = {value: name for name, value in globals().items() if name.startswith("NVML_ERROR_")}


class NVMLError(Exception):
    """pynvml's error: `.value` is the NVML return code."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _ERROR_NAMES.get(self.value, f"NVML error {self.value}")


class PowerProfile:
    """Watts over time: steps of (watts, seconds) repeating forever; one step is a constant."""

    def __init__(self, steps: Sequence[tuple[float, float]]):
        if not steps or any(s <= 0 for _, s in steps):
            raise ValueError(f"a profile needs steps of positive duration, got {steps!r}")
        self.steps = [(float(w), float(s)) for w, s in steps]
        self.cycle_s = sum(s for _, s in self.steps)
        self.cycle_j = sum(w * s for w, s in self.steps)

    @classmethod
    def of(cls, spec: PowerProfile | float | str) -> PowerProfile:
        """A profile from itself, a wattage, or text: "300" or "700:0.5,120:0.5"."""
        if isinstance(spec, PowerProfile):
            return spec
        if isinstance(spec, int | float):
            return cls([(spec, 1.0)])
        steps = [part.split(":") for part in spec.split(",")]
        return cls([(float(p[0]), float(p[1]) if len(p) > 1 else 1.0) for p in steps])

    def _energy_from_zero_j(self, t_s: float) -> float:
        cycles, rest = divmod(t_s, self.cycle_s)
        energy = cycles * self.cycle_j
        for watts, seconds in self.steps:
            if rest <= 0:
                break
            energy += watts * min(seconds, rest)
            rest -= seconds
        return energy

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        """Exact energy between two instants, J."""
        return self._energy_from_zero_j(t1_s) - self._energy_from_zero_j(t0_s)


@dataclass
class FakeGpu:
    """One GPU: identity, power profile and failure mode."""

    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""
    pci_bus: int | None = None
    power_limit_w: float = 700.0
    profile: PowerProfile | float | str = 300.0
    counter: bool = True
    instant: bool = True
    architecture: int = NVML_DEVICE_ARCH_HOPPER
    lost_after: int | None = None
    flaky_reads: frozenset[int] = frozenset()
    """Reads (numbered from 1) that fail once with NVML_ERROR_UNKNOWN, as a busy driver does."""
    counter_offset_mj: int = 123_456_789
    mig_uuids: tuple[str, ...] = ()
    reads: int = field(default=0, compare=False)

    def __post_init__(self):
        self.profile = PowerProfile.of(self.profile)


class _Handle:
    """An nvmlDevice_t: a GPU, or one MIG instance of it."""

    def __init__(self, gpu: FakeGpu, mig: int | None = None):
        self.gpu = gpu
        self.mig = mig

    def __eq__(self, other):
        return isinstance(other, _Handle) and (self.gpu, self.mig) == (other.gpu, other.mig)

    def __hash__(self):
        return hash((id(self.gpu), self.mig))


def fake_uuid(index: int) -> str:
    """A stable, realistic GPU UUID for the index-th fake GPU."""
    return f"GPU-{uuidlib.uuid5(uuidlib.NAMESPACE_OID, f'carbonlog-fake-gpu-{index}')}"


class FakeNvml:
    """The pynvml functions carbonlog uses, over a list of FakeGpu, in NVML index order."""

    NVMLError = NVMLError

    def __init__(
        self,
        gpus: Sequence[FakeGpu] = (),
        *,
        library_missing: bool = False,
        clock: Callable[[], float] = time.monotonic,
        origin_s: float | None = None,
    ):
        self.gpus = list(gpus)
        for index, gpu in enumerate(self.gpus):
            gpu.uuid = gpu.uuid or fake_uuid(index)
            gpu.pci_bus = 0x18 + 0x20 * index if gpu.pci_bus is None else gpu.pci_bus
        self.library_missing = library_missing
        self.clock = clock
        self.origin_s = clock() if origin_s is None else origin_s
        self.init_calls = 0
        self.shutdown_calls = 0
        self.counter_reads: list[tuple[int, int]] = []  # (GPU index, mJ) as returned
        self._refcount = 0
        self._lock = threading.Lock()
        for name, value in globals().items():
            if (
                name.startswith(("NVML_ERROR_", "NVML_FI_", "NVML_VALUE_", "NVML_DEVICE_ARCH_"))
                or name == "NVML_SUCCESS"
            ):
                setattr(self, name, value)

    # -- truth, for assertions ----------------------------------------------------------

    def now_s(self) -> float:
        """Seconds on the profiles' time axis."""
        return self.clock() - self.origin_s

    def counter_mj(self, index: int, t_s: float | None = None) -> int:
        """The total-energy counter of GPU `index` at time t_s (default now)."""
        gpu = self.gpus[index]
        tick_s = math.floor((self.now_s() if t_s is None else t_s) / TICK_S) * TICK_S
        return gpu.counter_offset_mj + math.floor(1000 * gpu.profile.energy_j(0.0, tick_s))

    def true_energy_j(self, index: int, t0_s: float, t1_s: float) -> float:
        """Energy GPU `index` really used between two instants of now_s()."""
        return self.gpus[index].profile.energy_j(t0_s, t1_s)

    # -- library ------------------------------------------------------------------------

    def _check_init(self) -> None:
        if self._refcount <= 0:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.library_missing:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        self._refcount += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        self.shutdown_calls += 1
        self._refcount -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.gpus)

    # -- identity -----------------------------------------------------------------------

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._check_init()
        if not 0 <= index < len(self.gpus):
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(self.gpus[index])

    def nvmlDeviceGetHandleByUUID(self, uuid: str | bytes) -> _Handle:
        self._check_init()
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return _Handle(gpu)
            if uuid in gpu.mig_uuids:
                return _Handle(gpu, gpu.mig_uuids.index(uuid))
        raise NVMLError(NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        self._check_init()
        return handle.gpu.uuid if handle.mig is None else handle.gpu.mig_uuids[handle.mig]

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        self._check_init()
        return handle.gpu.name if handle.mig is None else f"{handle.gpu.name} MIG 1g.10gb"

    def nvmlDeviceGetPciInfo(self, handle: _Handle) -> SimpleNamespace:
        self._check_init()
        bus = handle.gpu.pci_bus
        return SimpleNamespace(
            domain=0, bus=bus, device=0, busId=f"00000000:{bus:02X}:00.0".encode()
        )

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:
        self._check_init()
        return 7 if handle.gpu.mig_uuids else 0

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:
        self._check_init()
        if not 0 <= index < len(handle.gpu.mig_uuids):
            raise NVMLError(NVML_ERROR_NOT_FOUND)
        return _Handle(handle.gpu, index)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: _Handle) -> _Handle:
        self._check_init()
        if handle.mig is None:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(handle.gpu)

    def nvmlDeviceGetArchitecture(self, handle: _Handle) -> int:
        self._check_init()
        return handle.gpu.architecture

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        self._check_init()
        if handle.mig is not None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return round(handle.gpu.power_limit_w * 1000)

    # -- readings -----------------------------------------------------------------------

    def _reading(self, handle: _Handle) -> float:
        """Count one reading (GPU lost after N) and return the time of the last 100 ms tick."""
        self._check_init()
        gpu = handle.gpu
        with self._lock:
            gpu.reads += 1
            if gpu.lost_after is not None and gpu.reads > gpu.lost_after:
                raise NVMLError(NVML_ERROR_GPU_IS_LOST)
            if gpu.reads in gpu.flaky_reads:
                raise NVMLError(NVML_ERROR_UNKNOWN)
        if handle.mig is not None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)  # power and energy are the parent GPU's
        return math.floor(self.now_s() / TICK_S) * TICK_S

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        tick_s = self._reading(handle)
        if not handle.gpu.counter:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        index = self.gpus.index(handle.gpu)
        value = self.counter_mj(index, tick_s)
        self.counter_reads.append((index, value))
        return value

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        tick_s = self._reading(handle)
        gpu = handle.gpu
        averaged = gpu.architecture >= NVML_DEVICE_ARCH_AMPERE and not _GA100.search(gpu.name)
        window_s = AVERAGE_S if averaged else TICK_S
        return round(1000 * gpu.profile.energy_j(tick_s - window_s, tick_s) / window_s)

    def nvmlDeviceGetFieldValues(self, handle: _Handle, field_ids: Sequence[int]) -> list:
        tick_s = self._reading(handle)
        values = []
        for field_id in field_ids:
            value = SimpleNamespace(
                fieldId=field_id,
                scopeId=0,
                timestamp=int(tick_s * 1e6),
                latencyUsec=0,
                valueType=NVML_VALUE_TYPE_UNSIGNED_INT,
                nvmlReturn=NVML_ERROR_NOT_SUPPORTED,
                value=SimpleNamespace(uiVal=0),
            )
            if field_id == NVML_FI_DEV_POWER_INSTANT and handle.gpu.instant:
                value.nvmlReturn = NVML_SUCCESS
                value.value.uiVal = round(
                    1000 * handle.gpu.profile.energy_j(tick_s - TICK_S, tick_s) / TICK_S
                )
            values.append(value)
        return values


def from_env(environ: dict[str, str] | None = None) -> FakeNvml:
    """A FakeNvml from the CARBONLOG_FAKE_NVML_* variables (see the module docstring)."""
    env = os.environ if environ is None else environ
    count = int(env.get("CARBONLOG_FAKE_NVML_GPUS", "1"))
    profiles = env.get("CARBONLOG_FAKE_NVML_WATTS", "300").split(";")
    lost_after = env.get("CARBONLOG_FAKE_NVML_LOST_AFTER")
    gpus = [
        FakeGpu(
            name=env.get("CARBONLOG_FAKE_NVML_NAME", "NVIDIA H100 80GB HBM3"),
            power_limit_w=float(env.get("CARBONLOG_FAKE_NVML_LIMIT_W", "700")),
            profile=profiles[min(i, len(profiles) - 1)],
            counter=env.get("CARBONLOG_FAKE_NVML_NO_COUNTER", "") in ("", "0"),
            instant=env.get("CARBONLOG_FAKE_NVML_NO_INSTANT", "") in ("", "0"),
            lost_after=int(lost_after) if lost_after else None,
        )
        for i in range(count)
    ]
    missing = env.get("CARBONLOG_FAKE_NVML_MISSING", "") not in ("", "0")
    return FakeNvml(gpus, library_missing=missing, origin_s=0.0)
