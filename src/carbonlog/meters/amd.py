"""AMD GPU energy from AMD SMI: the energy accumulator where it counts, sampled power where not.

Which GPUs: those HIP shows this process, numbered as torch numbers them on ROCm (torch.cuda
indices are HIP indices). ROCR_VISIBLE_DEVICES (indices or GPU UUIDs) filters first, then
HIP_VISIBLE_DEVICES, else CUDA_VISIBLE_DEVICES, indexes what ROCr left; like CUDA, the runtime
stops at the first entry it cannot use. GPUs are put in HIP order by the `hip_id` of
amdsmi_get_gpu_enumeration_info (amdsmi 6.4 and newer), else by PCI address.
Energy: amdsmi_get_energy_count's accumulator (key "energy_accumulator" since ROCm 6.2.1,
"power" before) times its counter_resolution (uJ), read at edges and polled in between. The
MI100's accumulator is known not to move until a reboot (ROCm/amdsmi#38), and some GPUs have
none (AMDSMI_STATUS_NOT_SUPPORTED): their power is sampled, current_socket_power (MI300 and
newer) else average_socket_power (MI200 and earlier), whole watts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from types import ModuleType

from carbonlog._log import logger, warn_once
from carbonlog.meters.cuda_devices import wanted_indices
from carbonlog.meters.readings import AcceleratorMeter, Device

UPDATE_S = 0.01
"""How stale a reading can be: amdgpu refreshes the SMU metrics table when it is older than
msecs_to_jiffies(1) (Linux, drivers/gpu/drm/amd/pm/swsmu), one jiffy, 10 ms at HZ=100."""
POWER_STEP_W = 1.0  # amdsmi_power_info_t's socket powers are whole watts
NO_COUNTER_MODELS = ("MI100",)  # accumulator stuck until a reboot: ROCm/amdsmi#38 (2024)
POWER_KEYS = ("current_socket_power", "average_socket_power")


def _key(uuid: str) -> str:
    """A GPU UUID compared as ROCr compares it: case, the GPU- prefix and dashes aside."""
    return re.sub(r"^gpu-|-", "", uuid.strip().lower())


def _select(gpus: list[tuple[str, object]], spec: str | None) -> list[tuple[str, object]]:
    """The (UUID, handle) pairs a visible-devices list shows, in its order; unset: all."""
    if spec is None:
        return gpus
    chosen: list[tuple[str, object]] = []
    for entry in (e.strip() for e in spec.split(",")):
        if re.fullmatch(r"\d+", entry):
            gpu = gpus[int(entry)] if int(entry) < len(gpus) else None
        else:
            gpu = next((g for g in gpus if entry and _key(g[0]) == _key(entry)), None)
        if gpu is None or gpu in chosen:
            break
        chosen.append(gpu)
    return chosen


def hip_order(amdsmi: ModuleType) -> list[tuple[str, object]]:
    """(UUID, handle) of every AMD GPU in the order HIP numbers them with no visibility list."""
    handles = amdsmi.amdsmi_get_processor_handles()
    enumeration = getattr(amdsmi, "amdsmi_get_gpu_enumeration_info", None)
    if enumeration is None:
        logger.debug("amdsmi has no enumeration info: AMD GPUs ordered by PCI address")
        keyed = [(amdsmi.amdsmi_get_gpu_device_bdf(h), "", h) for h in handles]
    else:
        infos = [enumeration(h) for h in handles]
        pairs = zip(infos, handles, strict=True)
        keyed = [(info["hip_id"], info["hip_uuid"], handle) for info, handle in pairs]
    return [(uuid, handle) for _, uuid, handle in sorted(keyed, key=lambda k: k[0])]


def visible_gpus(
    amdsmi: ModuleType, environ: Mapping[str, str] | None = None
) -> list[tuple[str, object]]:
    """(UUID, handle) of the GPUs HIP shows this process, in HIP (torch) index order."""
    env = os.environ if environ is None else environ
    shown = _select(hip_order(amdsmi), env.get("ROCR_VISIBLE_DEVICES"))
    return _select(shown, env.get("HIP_VISIBLE_DEVICES", env.get("CUDA_VISIBLE_DEVICES")))


def _energy_j(reading: dict) -> float:
    """Joules of an amdsmi_get_energy_count reading, under either key the bindings used."""
    counts = reading["energy_accumulator"] if "energy_accumulator" in reading else reading["power"]
    return counts * reading["counter_resolution"] / 1e6


def _power_w(amdsmi: ModuleType, handle, key: str) -> float:
    return float(amdsmi.amdsmi_get_power_info(handle)[key])  # "N/A": ValueError


def _device(amdsmi: ModuleType, index: int, uuid: str, handle, errors) -> Device | None:
    """How one GPU is read: its counter, else a power field; None where neither answers."""
    name = amdsmi.amdsmi_get_gpu_asic_info(handle)["market_name"]
    try:
        limit_w = amdsmi.amdsmi_get_power_cap_info(handle)["power_cap"] / 1e6
    except errors:
        limit_w = None
    info = {"index": index, "name": name, "uuid": uuid}
    if not any(model in name for model in NO_COUNTER_MODELS):
        try:
            reading = amdsmi.amdsmi_get_energy_count(handle)
            _energy_j(reading)
            return Device(
                info,
                limit_w,
                read_j=lambda: _energy_j(amdsmi.amdsmi_get_energy_count(handle)),
                update_s=UPDATE_S,
                step_j=reading["counter_resolution"] / 1e6,
            )
        except errors as exc:
            logger.debug("AMD GPU %s has no energy counter: %s", uuid, exc)
    for key in POWER_KEYS:
        try:
            _power_w(amdsmi, handle, key)
        except errors as exc:
            logger.debug("AMD GPU %s has no %s: %s", uuid, key, exc)
            continue
        return Device(
            {**info, "power_field": key},
            limit_w,
            read_w=lambda key=key: _power_w(amdsmi, handle, key),
            update_s=UPDATE_S,
            step_w=POWER_STEP_W,
        )
    return None


def open_amd_meter(
    gpus: str | Sequence[int] = "auto",
    amdsmi: ModuleType | None = None,
    environ: Mapping[str, str] | None = None,
    local_rank: int | None = None,
) -> AcceleratorMeter | None:
    """The AMD GPU meter of this process, or None where there is no amdsmi, driver or GPU.

    `gpus`: "auto" (every GPU HIP shows; with `local_rank`, the one that rank drives) or HIP
    indices within those. Raises ConfigurationError for an index this process cannot see.
    """
    if amdsmi is None:
        try:
            import amdsmi
        except Exception as exc:  # ImportError, or the library failing to load
            logger.debug("amdsmi is not usable (%s): no AMD GPU meter", exc)
            return None
    errors = (amdsmi.AmdSmiException, KeyError, ValueError)
    try:
        amdsmi.amdsmi_init(amdsmi.AmdSmiInitFlags.INIT_AMD_GPUS)
    except amdsmi.AmdSmiException as exc:
        logger.debug("AMD SMI unavailable (%s): no AMD GPU meter", exc)
        return None
    try:
        visible = visible_gpus(amdsmi, environ)
        wanted = wanted_indices(gpus, local_rank, len(visible), "AMD GPU")
        devices = [_device(amdsmi, i, *visible[i], errors) for i in wanted]
        devices = [d for d in devices if d is not None]
    except (amdsmi.AmdSmiException, KeyError) as exc:  # not ConfigurationError, a ValueError
        amdsmi.amdsmi_shut_down()
        warn_once(
            "amdsmi-open",
            f"carbonlog: AMD SMI failed while listing GPUs ({exc}); AMD GPU energy is not measured",
            own=True,
        )
        return None
    except BaseException:
        amdsmi.amdsmi_shut_down()
        raise
    if not devices:
        amdsmi.amdsmi_shut_down()
        return None
    return AcceleratorMeter("gpu", devices, errors, "amdsmi", release=amdsmi.amdsmi_shut_down)
