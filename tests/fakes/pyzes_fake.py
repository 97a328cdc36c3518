"""A stand-in for pyzes (Level Zero Sysman bindings, 0.1.3's API) that behaves like the driver.

pyzes wraps the C API one to one: every function returns a ze_result_t and fills the ctypes
structures passed by reference (byref) or the handle arrays passed in. The fake does the same
over FakeXpus, with the same structure layouts (Level Zero Sysman spec): zesInit first (else
ZE_RESULT_ERROR_UNINITIALIZED), counts then arrays for the enumerations, a structure's stype
checked (ZE_RESULT_ERROR_INVALID_ARGUMENT), unknown handles refused
(ZE_RESULT_ERROR_INVALID_NULL_HANDLE). Each FakeXpu follows a power profile in real time; its
energy counter (zes_power_energy_counter_t: energy in uJ, timestamp in us) changes in
UPDATE_S ticks. Failure modes: no permission (ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS), a
device lost after N readings (ZE_RESULT_ERROR_DEVICE_LOST), reads that fail once
(ZE_RESULT_NOT_READY), and reads that return near-zero energy while the hardware's counter is
intact, as Arc Pro B60/B70 do (intel/compute-runtime#938: ~200 J read after ~22 MJ).
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tests.fakes.pynvml_fake import PowerProfile

UPDATE_S = 0.001  # the energy status register's update period, as RAPL's (~1 ms)
GLITCH_J = 200.0  # what a glitching read returns (compute-runtime#938: ~100-300 J)

ZE_RESULT_SUCCESS = 0
ZE_RESULT_NOT_READY = 1
ZE_RESULT_ERROR_DEVICE_LOST = 0x70000001
ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS = 0x70010000
ZE_RESULT_ERROR_UNINITIALIZED = 0x78000001
ZE_RESULT_ERROR_INVALID_ARGUMENT = 0x78000004
ZE_RESULT_ERROR_INVALID_NULL_HANDLE = 0x78000005
ZE_RESULT_ERROR_INVALID_NULL_POINTER = 0x78000007
ZE_DEVICE_TYPE_GPU = 1
ZES_STRUCTURE_TYPE_DEVICE_PROPERTIES = 0x1
ZES_STRUCTURE_TYPE_POWER_PROPERTIES = 0xD
ZES_STRUCTURE_TYPE_POWER_EXT_PROPERTIES = 0x28
ZES_POWER_DOMAIN_CARD = 1
ZES_POWER_DOMAIN_PACKAGE = 2
ZES_POWER_DOMAIN_STACK = 3


class zes_driver_handle_t(ctypes.c_void_p):  # noqa: N801 - the bindings' names
    pass


class zes_device_handle_t(ctypes.c_void_p):  # noqa: N801
    pass


class zes_pwr_handle_t(ctypes.c_void_p):  # noqa: N801
    pass


class ze_device_uuid_t(ctypes.Structure):  # noqa: N801
    _fields_ = [("id", ctypes.c_ubyte * 16)]


class ze_device_properties_t(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("stype", ctypes.c_int32),
        ("pNext", ctypes.c_void_p),
        ("type", ctypes.c_int32),
        ("vendorId", ctypes.c_uint32),
        ("deviceId", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("subdeviceId", ctypes.c_uint32),
        ("coreClockRate", ctypes.c_uint32),
        ("maxMemAllocSize", ctypes.c_uint64),
        ("maxHardwareContexts", ctypes.c_uint32),
        ("maxCommandQueuePriority", ctypes.c_uint32),
        ("numThreadsPerEU", ctypes.c_uint32),
        ("physicalEUSimdWidth", ctypes.c_uint32),
        ("numEUsPerSubslice", ctypes.c_uint32),
        ("numSubslicesPerSlice", ctypes.c_uint32),
        ("numSlices", ctypes.c_uint32),
        ("timerResolution", ctypes.c_uint64),
        ("timestampValidBits", ctypes.c_uint32),
        ("kernelTimestampValidBits", ctypes.c_uint32),
        ("uuid", ze_device_uuid_t),
        ("name", ctypes.c_char * 256),
    ]


class zes_device_properties_t(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("stype", ctypes.c_int32),
        ("pNext", ctypes.c_void_p),
        ("core", ze_device_properties_t),
        ("numSubdevices", ctypes.c_uint32),
        ("serialNumber", ctypes.c_char * 64),
        ("boardNumber", ctypes.c_char * 64),
        ("brandName", ctypes.c_char * 64),
        ("modelName", ctypes.c_char * 64),
        ("vendorName", ctypes.c_char * 64),
        ("driverVersion", ctypes.c_char * 64),
    ]


class zes_power_properties_t(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("stype", ctypes.c_int32),
        ("pNext", ctypes.c_void_p),
        ("onSubdevice", ctypes.c_uint8),
        ("subdeviceId", ctypes.c_uint32),
        ("canControl", ctypes.c_uint8),
        ("isEnergyThresholdSupported", ctypes.c_uint8),
        ("defaultLimit", ctypes.c_int32),
        ("minLimit", ctypes.c_int32),
        ("maxLimit", ctypes.c_int32),
    ]


class zes_power_ext_properties_t(ctypes.Structure):  # noqa: N801
    _fields_ = [
        ("stype", ctypes.c_int32),
        ("pNext", ctypes.c_void_p),
        ("domain", ctypes.c_int32),
        ("defaultLimit", ctypes.c_void_p),
    ]


class zes_power_energy_counter_t(ctypes.Structure):  # noqa: N801
    _fields_ = [("energy", ctypes.c_uint64), ("timestamp", ctypes.c_uint64)]


@dataclass
class FakeXpu:
    """One Intel GPU card: identity, power domains, power profile and failure modes."""

    model: str = "Intel(R) Data Center GPU Max 1550"
    stacks: int = 2
    tdp_w: float = 600.0
    profile: PowerProfile | float | str = 400.0
    domains: tuple[int, ...] = (ZES_POWER_DOMAIN_CARD, ZES_POWER_DOMAIN_PACKAGE)
    no_permission: bool = False
    lost_after: int | None = None
    flaky_reads: frozenset[int] = frozenset()
    glitch_reads: frozenset[int] = frozenset()
    offset_uj: int = 22_000_000_000_000  # ~22 MJ since boot, as in compute-runtime#938
    uuid: bytes = b""
    reads: int = field(default=0, compare=False)

    def __post_init__(self):
        self.profile = PowerProfile.of(self.profile)


def _target(pointer):
    """The structure behind byref(structure), as the C library would write through it."""
    return getattr(pointer, "_obj", pointer)


class FakeZes:
    """The pyzes functions carbonlog uses, over FakeXpus of one Level Zero driver."""

    def __init__(
        self,
        xpus: Sequence[FakeXpu] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        origin_s: float | None = None,
    ):
        self.xpus = list(xpus)
        for index, xpu in enumerate(self.xpus):
            xpu.uuid = xpu.uuid or uuidlib.uuid5(uuidlib.NAMESPACE_OID, f"xpu-{index}").bytes
        self.clock = clock
        self.origin_s = clock() if origin_s is None else origin_s
        self.initialised = False
        self._lock = threading.Lock()
        self._objects: dict[int, object] = {}  # handle value -> self, a FakeXpu or a domain
        self._driver = self._handle(self)
        self._devices = [self._handle(x) for x in self.xpus]
        self._domains = {
            device: [self._handle((x, d, None)) for d in x.domains]
            + [self._handle((x, ZES_POWER_DOMAIN_STACK, s)) for s in range(x.stacks)]
            for device, x in zip(self._devices, self.xpus, strict=True)
        }
        for name, value in globals().items():
            if name.startswith(("ZE_", "ZES_", "ze_", "zes_")):
                setattr(self, name, value)

    def now_s(self) -> float:
        return self.clock() - self.origin_s

    def true_energy_j(self, index: int, t0_s: float, t1_s: float) -> float:
        return self.xpus[index].profile.energy_j(t0_s, t1_s)

    def _handle(self, obj) -> int:
        value = 0x1000 + 0x10 * len(self._objects)
        self._objects[value] = obj
        return value

    def _object(self, handle):
        """What a handle stands for; None before zesInit, as no handle is valid then."""
        return self._objects.get(getattr(handle, "value", handle)) if self.initialised else None

    @staticmethod
    def _fill(array, count, values: list[int]) -> int:
        """The enumeration protocol: no array, the count; an array, up to *count handles."""
        count = _target(count)
        if array is None:
            count.value = len(values)
            return ZE_RESULT_SUCCESS
        count.value = min(count.value, len(values))
        for i in range(count.value):
            array[i] = values[i]
        return ZE_RESULT_SUCCESS

    # -- the API --------------------------------------------------------------------------

    def zesInit(self, flags: int) -> int:  # noqa: N802
        self.initialised = True
        return ZE_RESULT_SUCCESS

    def zesDriverGet(self, pCount, phDrivers) -> int:  # noqa: N802, N803
        if not self.initialised:
            return ZE_RESULT_ERROR_UNINITIALIZED
        return self._fill(phDrivers, pCount, [self._driver])

    def zesDeviceGet(self, hDriver, pCount, phDevices) -> int:  # noqa: N802, N803
        if self._object(hDriver) is not self:
            return ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        return self._fill(phDevices, pCount, self._devices)

    def zesDeviceGetProperties(self, hDevice, pProperties) -> int:  # noqa: N802, N803
        xpu = self._object(hDevice)
        if not isinstance(xpu, FakeXpu):
            return ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        props = _target(pProperties)
        if props.stype != ZES_STRUCTURE_TYPE_DEVICE_PROPERTIES:
            return ZE_RESULT_ERROR_INVALID_ARGUMENT
        props.core.type = ZE_DEVICE_TYPE_GPU
        props.core.vendorId = 0x8086
        props.core.name = xpu.model.encode()
        ctypes.memmove(props.core.uuid.id, xpu.uuid, 16)
        props.numSubdevices = xpu.stacks
        props.modelName = xpu.model.encode()
        props.vendorName = b"Intel(R) Corporation"
        return ZE_RESULT_SUCCESS

    def zesDeviceEnumPowerDomains(self, hDevice, pCount, phPower) -> int:  # noqa: N802, N803
        if not isinstance(self._object(hDevice), FakeXpu):
            return ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        return self._fill(phPower, pCount, self._domains[getattr(hDevice, "value", hDevice)])

    def zesPowerGetProperties(self, hPower, pProperties) -> int:  # noqa: N802, N803
        domain = self._object(hPower)
        if not isinstance(domain, tuple):
            return ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        props = _target(pProperties)
        if props.stype != ZES_STRUCTURE_TYPE_POWER_PROPERTIES:
            return ZE_RESULT_ERROR_INVALID_ARGUMENT
        xpu, kind, stack = domain
        props.onSubdevice = stack is not None
        props.subdeviceId = stack or 0
        props.defaultLimit = round(xpu.tdp_w * 1000) if kind == ZES_POWER_DOMAIN_CARD else -1
        props.maxLimit = props.defaultLimit
        if props.pNext:
            ext = ctypes.cast(props.pNext, ctypes.POINTER(zes_power_ext_properties_t)).contents
            if ext.stype != ZES_STRUCTURE_TYPE_POWER_EXT_PROPERTIES:
                return ZE_RESULT_ERROR_INVALID_ARGUMENT
            ext.domain = kind
        return ZE_RESULT_SUCCESS

    def zesPowerGetEnergyCounter(self, hPower, pEnergy) -> int:  # noqa: N802, N803
        domain = self._object(hPower)
        if not isinstance(domain, tuple):
            return ZE_RESULT_ERROR_INVALID_NULL_HANDLE
        if pEnergy is None:
            return ZE_RESULT_ERROR_INVALID_NULL_POINTER
        xpu, kind, stack = domain
        if xpu.no_permission:
            return ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS
        with self._lock:
            xpu.reads += 1
            if xpu.lost_after is not None and xpu.reads > xpu.lost_after:
                return ZE_RESULT_ERROR_DEVICE_LOST
            if xpu.reads in xpu.flaky_reads:
                return ZE_RESULT_NOT_READY
        tick_s = math.floor(self.now_s() / UPDATE_S + 1e-9) * UPDATE_S  # float-safe tick
        part = 1.0 if stack is None else 1 / xpu.stacks
        counter = _target(pEnergy)
        energy_uj = xpu.offset_uj + math.floor(1e6 * part * xpu.profile.energy_j(0.0, tick_s))
        counter.energy = round(GLITCH_J * 1e6) if xpu.reads in xpu.glitch_reads else energy_uj
        counter.timestamp = round(tick_s * 1e6)
        return ZE_RESULT_SUCCESS
