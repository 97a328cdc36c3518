"""Intel GPU energy from Level Zero Sysman (pyzes): each card's energy counter, wraps bridged.

Which GPUs: those torch.xpu numbers, which itself reads them through pyzes. Under the default
ZE_FLAT_DEVICE_HIERARCHY=FLAT each stack (tile) of a card is a device of its own; COMPOSITE
shows whole cards. ZE_AFFINITY_MASK lists the devices shown ("0,1", "0.1" for a card's
stack). A card is measured once, through its card-level power domain (ZES_POWER_DOMAIN_CARD,
else PACKAGE; never a stack's, which the card's includes), and a process using some of its
stacks is billed that share of it, as NVML's MIG instances are.
Energy: zesPowerGetEnergyCounter (zes_power_energy_counter_t.energy, uJ), read at edges and
polled in between: the counter can drop to a few hundred joules and come back
(intel/compute-runtime#938), so a fall or a leap is bridged, not counted. Reading it can
need privileges (ZE_RESULT_ERROR_INSUFFICIENT_PERMISSIONS): the card is then not measured.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping, Sequence
from types import ModuleType

from carbonlog._log import logger, warn_once
from carbonlog.meters.cuda_devices import wanted_indices
from carbonlog.meters.readings import AcceleratorMeter, Device

UPDATE_S = 0.001
"""The energy counter's update period: Intel GPUs report energy through their power unit's
RAPL-format energy status register (i915 and xe hwmon), which Intel documents as updated
about every 1 ms (Intel SDM vol. 3B, 15.10.3)."""
STEP_J = 1e-6  # the counter counts microjoules
CARD_DOMAINS = ("ZES_POWER_DOMAIN_CARD", "ZES_POWER_DOMAIN_PACKAGE")


class ZesError(RuntimeError):
    """A Level Zero call returned something other than ZE_RESULT_SUCCESS."""

    def __init__(self, call: str, result: int):
        super().__init__(f"{call} returned {result:#x}")
        self.result = result


def _call(zes: ModuleType, name: str, *args) -> None:
    result = getattr(zes, name)(*args)
    if result != zes.ZE_RESULT_SUCCESS:
        raise ZesError(name, result)


def _handles(zes: ModuleType, name: str, handle_type, *args) -> list:
    """An enumeration: its count first, then its handles."""
    count = ctypes.c_uint32(0)
    _call(zes, name, *args, ctypes.byref(count), None)
    handles = (handle_type * count.value)()
    _call(zes, name, *args, ctypes.byref(count), handles)
    return list(handles[: count.value])


def _card_domain(zes: ModuleType, device) -> tuple[object, float | None] | None:
    """(power handle, default limit W) of the card-level domain, else None."""
    found = {}
    for power in _handles(zes, "zesDeviceEnumPowerDomains", zes.zes_pwr_handle_t, device):
        props = zes.zes_power_properties_t()
        props.stype = zes.ZES_STRUCTURE_TYPE_POWER_PROPERTIES
        ext = zes.zes_power_ext_properties_t()
        ext.stype = zes.ZES_STRUCTURE_TYPE_POWER_EXT_PROPERTIES
        props.pNext = ctypes.cast(ctypes.pointer(ext), ctypes.c_void_p)
        _call(zes, "zesPowerGetProperties", power, ctypes.byref(props))
        if not props.onSubdevice:
            limit_w = props.defaultLimit / 1000 if props.defaultLimit > 0 else None
            found.setdefault(ext.domain, (power, limit_w))
    for name in CARD_DOMAINS:
        if getattr(zes, name) in found:
            return found[getattr(zes, name)]
    return None


def _energy_j(zes: ModuleType, power) -> float:
    counter = zes.zes_power_energy_counter_t()
    _call(zes, "zesPowerGetEnergyCounter", power, ctypes.byref(counter))
    return counter.energy / 1e6


def _cards(zes: ModuleType) -> list[tuple[object, object]]:
    """(device handle, its Sysman properties) of every GPU of every Level Zero driver."""
    cards = []
    for driver in _handles(zes, "zesDriverGet", zes.zes_driver_handle_t):
        for device in _handles(zes, "zesDeviceGet", zes.zes_device_handle_t, driver):
            props = zes.zes_device_properties_t()
            props.stype = zes.ZES_STRUCTURE_TYPE_DEVICE_PROPERTIES
            _call(zes, "zesDeviceGetProperties", device, ctypes.byref(props))
            if props.core.type == zes.ZE_DEVICE_TYPE_GPU:
                cards.append((device, props))
    return cards


def visible_devices(cards: list, environ: Mapping[str, str]) -> list[tuple[int, int | None]]:
    """(card number, stack or None) of each device torch.xpu shows, in its index order."""
    flat = environ.get("ZE_FLAT_DEVICE_HIERARCHY", "FLAT") != "COMPOSITE"
    devices = [
        (card, stack)
        for card, (_, props) in enumerate(cards)
        for stack in (range(props.numSubdevices) if flat and props.numSubdevices else [None])
    ]
    mask = environ.get("ZE_AFFINITY_MASK")
    if mask is None:
        return devices
    shown: list[tuple[int, int | None]] = []
    for entry in (e.strip() for e in mask.split(",")):
        first, _, rest = entry.partition(".")
        if not first.isdigit() or (rest and not rest.isdigit()):
            break
        if flat:
            device = devices[int(first)] if int(first) < len(devices) else None
        else:  # COMPOSITE numbers cards; "card.stack" is that stack of it, measured as its card
            device = (int(first), None) if int(first) < len(cards) else None
        if device is None or device in shown:
            break
        shown.append(device)
    return shown


def open_intel_meter(
    gpus: str | Sequence[int] = "auto",
    zes: ModuleType | None = None,
    environ: Mapping[str, str] | None = None,
    local_rank: int | None = None,
) -> AcceleratorMeter | None:
    """The Intel GPU meter of this process, or None where there is no pyzes, driver or GPU.

    `gpus`: "auto" (every device torch.xpu shows; with `local_rank`, the one that rank drives)
    or torch.xpu indices. Raises ConfigurationError for an index this process cannot see.
    """
    if zes is None:
        try:
            import pyzes as zes
        except Exception as exc:  # ImportError, or OSError: no Level Zero loader
            logger.debug("pyzes is not usable (%s): no Intel GPU meter", exc)
            return None
    env = os.environ if environ is None else environ
    if zes.zesInit(0) != zes.ZE_RESULT_SUCCESS:
        logger.debug("Level Zero Sysman did not initialise: no Intel GPU meter")
        return None
    try:
        cards = _cards(zes)
        visible = visible_devices(cards, env)
        used = [visible[i] for i in wanted_indices(gpus, local_rank, len(visible), "XPU device")]
        devices = []
        for card in dict.fromkeys(c for c, _ in used):
            device = _device(zes, card, *cards[card], used)
            if device is not None:
                devices.append(device)
    except ZesError as exc:
        warn_once(
            "zes-open",
            f"carbonlog: Level Zero Sysman failed while listing GPUs ({exc}); "
            "Intel GPU energy is not measured",
            own=True,
        )
        return None
    return AcceleratorMeter("gpu", devices, (ZesError,), "level-zero") if devices else None


def _device(zes: ModuleType, card: int, handle, props, used: list) -> Device | None:
    """One card as measured: its card-level counter, billed the share of it this process uses."""
    name = props.modelName.decode(errors="replace") or props.core.name.decode(errors="replace")
    domain = _card_domain(zes, handle)
    if domain is None:
        warn_once(f"zes-no-domain:{card}", f"carbonlog: {name} has no card power domain")
        return None
    power, limit_w = domain
    try:
        _energy_j(zes, power)
    except ZesError as exc:
        warn_once(
            f"zes-energy:{card}",
            f"carbonlog: the energy counter of {name} cannot be read ({exc}); its energy is "
            "not measured (Level Zero Sysman may need elevated privileges)",
            own=True,
        )
        return None
    stacks = [stack for c, stack in used if c == card]
    share = 1.0 if None in stacks else len(stacks) / props.numSubdevices
    return Device(
        {"card": card, "name": name, "uuid": bytes(props.core.uuid.id).hex(), "share": share},
        limit_w,
        read_j=lambda: _energy_j(zes, power),
        update_s=UPDATE_S,
        step_j=STEP_J,
        share=share,
    )
