"""A stand-in for amdsmi (AMD SMI's Python bindings, 7.0.2's API) that behaves like the hardware.

Built from the bindings' amdsmi_interface.py and AMD SMI's documentation: calls before
amdsmi_init, or with anything but a processor handle, are refused as the real module refuses
them (AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT), AmdSmiParameterException). Each FakeAmdGpu
follows a power profile in real time (time.monotonic). amdgpu refreshes the SMU metrics table
when it is older than msecs_to_jiffies(1) (drivers/gpu/drm/amd/pm/swsmu), one jiffy: 4 ms at
the common HZ=250, so every reading changes in METRICS_S ticks. The energy accumulator counts
in units of counter_resolution, 15.3 uJ (ROCm/amdsmi#38: 1,004,108.41 uJ over 65,628 counts);
before ROCm 6.2.1 its key was "power", since then "energy_accumulator". current_socket_power
(MI300 and newer) and average_socket_power (MI200 and earlier) are whole watts, "N/A" where a
card lacks them. Failure modes: a missing driver (amdsmi_init raises DRIVER_NOT_LOADED), a GPU
lost after N readings (AMDSMI_STATUS_NOT_FOUND), reads that fail once (AMDSMI_STATUS_BUSY), a
counter that goes back to zero at a given time (a reset, amdsmi#115), an MI100 whose counter
does not move (amdsmi#38).

Put tests/fakes/amdsmi_shim first on PYTHONPATH and `import amdsmi` returns a fake configured
from CARBONLOG_FAKE_AMDSMI_GPUS (number, default 1) and CARBONLOG_FAKE_AMDSMI_WATTS (a profile
as pynvml_fake reads it, default 300).
"""

from __future__ import annotations

import enum
import math
import os
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.fakes.pynvml_fake import PowerProfile

METRICS_S = 0.004
RESOLUTION_UJ = 15.3

AMDSMI_STATUS_SUCCESS = 0
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_TIMEOUT = 8
AMDSMI_STATUS_RETRY = 9
AMDSMI_STATUS_BUSY = 30
AMDSMI_STATUS_NOT_FOUND = 31
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34


class AmdSmiException(Exception):
    """The bindings' base exception."""


class AmdSmiLibraryException(AmdSmiException):
    """A status the library returned: `err_code`, as get_error_code() gives it."""

    def __init__(self, err_code: int):
        super().__init__(err_code)
        self.err_code = abs(err_code)

    def get_error_code(self) -> int:
        return self.err_code

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code}"


class AmdSmiRetryException(AmdSmiLibraryException):
    def __init__(self):
        super().__init__(AMDSMI_STATUS_RETRY)


class AmdSmiTimeoutException(AmdSmiLibraryException):
    def __init__(self):
        super().__init__(AMDSMI_STATUS_TIMEOUT)


class AmdSmiParameterException(AmdSmiException):
    """An argument of the wrong type, refused before the library is called."""

    def __init__(self, received, expected):
        super().__init__(f"Invalid parameter: {type(received)}, expected {expected}")


class AmdSmiInitFlags(enum.IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1
    INIT_AMD_GPUS = 2
    INIT_AMD_APUS = 3


@dataclass
class FakeAmdGpu:
    """One GPU: identity, power profile and failure modes."""

    market_name: str = "AMD Instinct MI300X"
    hip_uuid: str = ""
    bdf: str = ""
    power_cap_w: float = 750.0
    profile: PowerProfile | float | str = 300.0
    counter: bool = True
    counter_key: str = "energy_accumulator"
    current_power: bool = True
    average_power: bool = False
    stuck_counter: bool = False
    lost_after: int | None = None
    flaky_reads: frozenset[int] = frozenset()
    reset_at_s: float | None = None
    offset_counts: int = 987_654_321
    reads: int = field(default=0, compare=False)

    def __post_init__(self):
        self.profile = PowerProfile.of(self.profile)


class amdsmi_processor_handle:  # noqa: N801 - the bindings' own name
    """A processor handle: the only argument type the device functions accept."""

    def __init__(self, gpu: FakeAmdGpu):
        self.gpu = gpu


class FakeAmdSmi:
    """The amdsmi functions carbonlog uses, over FakeAmdGpus listed in HIP order."""

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiRetryException = AmdSmiRetryException
    AmdSmiTimeoutException = AmdSmiTimeoutException
    AmdSmiParameterException = AmdSmiParameterException
    AmdSmiInitFlags = AmdSmiInitFlags
    amdsmi_processor_handle = amdsmi_processor_handle

    def __init__(
        self,
        gpus: Sequence[FakeAmdGpu] = (),
        *,
        driver_missing: bool = False,
        clock: Callable[[], float] = time.monotonic,
        origin_s: float | None = None,
        enumeration_info: bool = True,
    ):
        self.gpus = list(gpus)
        for index, gpu in enumerate(self.gpus):
            gpu.hip_uuid = gpu.hip_uuid or str(
                uuidlib.uuid5(uuidlib.NAMESPACE_OID, f"carbonlog-fake-amd-{index}")
            )
            gpu.bdf = gpu.bdf or f"0000:{0x05 + 0x20 * index:02x}:00.0"
        self.driver_missing = driver_missing
        self.clock = clock
        self.origin_s = clock() if origin_s is None else origin_s
        self.init_calls = self.shutdown_calls = 0
        self._initialised = 0
        self._lock = threading.Lock()
        if not enumeration_info:  # before amdsmi 6.4 there is no amdsmi_get_gpu_enumeration_info
            self.amdsmi_get_gpu_enumeration_info = None

    # -- truth, for assertions ----------------------------------------------------------

    def now_s(self) -> float:
        return self.clock() - self.origin_s

    def true_energy_j(self, index: int, t0_s: float, t1_s: float) -> float:
        return self.gpus[index].profile.energy_j(t0_s, t1_s)

    # -- library ------------------------------------------------------------------------

    def amdsmi_init(self, flag=AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag, AmdSmiInitFlags)
        self.init_calls += 1
        if self.driver_missing:
            raise AmdSmiLibraryException(AMDSMI_STATUS_DRIVER_NOT_LOADED)
        self._initialised += 1

    def amdsmi_shut_down(self) -> None:
        self._check_init()
        self.shutdown_calls += 1
        self._initialised -= 1

    def amdsmi_get_processor_handles(self) -> list[amdsmi_processor_handle]:
        self._check_init()
        return [amdsmi_processor_handle(gpu) for gpu in self.gpus]

    def amdsmi_get_gpu_enumeration_info(self, handle) -> dict:
        gpu = self._gpu(handle)
        index = self.gpus.index(gpu)
        return {
            "drm_render": 128 + index,
            "drm_card": index,
            "hsa_id": index + 1,
            "hip_id": index,
            "hip_uuid": gpu.hip_uuid,
        }

    def amdsmi_get_gpu_device_bdf(self, handle) -> str:
        return self._gpu(handle).bdf

    def amdsmi_get_gpu_asic_info(self, handle) -> dict:
        gpu = self._gpu(handle)
        return {
            "market_name": gpu.market_name,
            "vendor_id": "0x1002",
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "device_id": "0x74a1",
            "asic_serial": "0x" + gpu.hip_uuid.replace("-", "")[:16].upper(),
            "target_graphics_version": "gfx942",
        }

    def amdsmi_get_power_cap_info(self, handle) -> dict:
        cap_uw = round(self._gpu(handle).power_cap_w * 1e6)
        return {"power_cap": cap_uw, "default_power_cap": cap_uw, "dpm_cap": 0}

    # -- readings -----------------------------------------------------------------------

    def amdsmi_get_energy_count(self, handle) -> dict:
        gpu = self._gpu(handle)
        tick_s = self._reading(gpu)
        if not gpu.counter:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        since_s = 0.0 if gpu.reset_at_s is None or tick_s < gpu.reset_at_s else gpu.reset_at_s
        offset = gpu.offset_counts if since_s == 0.0 else 0
        energy_uj = 0.0 if gpu.stuck_counter else 1e6 * gpu.profile.energy_j(since_s, tick_s)
        return {
            gpu.counter_key: offset + math.floor(energy_uj / RESOLUTION_UJ),
            "counter_resolution": RESOLUTION_UJ,
            "timestamp": int(tick_s * 1e9),
        }

    def amdsmi_get_power_info(self, handle) -> dict:
        gpu = self._gpu(handle)
        tick_s = self._reading(gpu)
        watts = round(gpu.profile.energy_j(tick_s - METRICS_S, tick_s) / METRICS_S)
        return {
            "socket_power": watts,
            "current_socket_power": watts if gpu.current_power else "N/A",
            "average_socket_power": watts if gpu.average_power else "N/A",
            "power_limit": round(gpu.power_cap_w),
        }

    # -- refusals, as the bindings make them ----------------------------------------------

    def _check_init(self) -> None:
        if self._initialised <= 0:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)

    def _gpu(self, handle) -> FakeAmdGpu:
        if not isinstance(handle, amdsmi_processor_handle):
            raise AmdSmiParameterException(handle, amdsmi_processor_handle)
        self._check_init()
        return handle.gpu

    def _reading(self, gpu: FakeAmdGpu) -> float:
        """Count one reading (lost after N, flaky reads) and give the last metrics tick."""
        with self._lock:
            gpu.reads += 1
            if gpu.lost_after is not None and gpu.reads > gpu.lost_after:
                raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_FOUND)
            if gpu.reads in gpu.flaky_reads:
                raise AmdSmiLibraryException(AMDSMI_STATUS_BUSY)
        return math.floor(self.now_s() / METRICS_S + 1e-9) * METRICS_S  # float-safe tick


def from_env(environ: dict[str, str] | None = None) -> FakeAmdSmi:
    """A FakeAmdSmi from the CARBONLOG_FAKE_AMDSMI_* variables, its clock's origin at 0."""
    env = os.environ if environ is None else environ
    count = int(env.get("CARBONLOG_FAKE_AMDSMI_GPUS", "1"))
    watts = env.get("CARBONLOG_FAKE_AMDSMI_WATTS", "300")
    return FakeAmdSmi([FakeAmdGpu(profile=watts) for _ in range(count)], origin_s=0.0)
