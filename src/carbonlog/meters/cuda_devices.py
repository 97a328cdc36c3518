"""Which GPUs a process uses, as CUDA numbers them, mapped to NVML's physical GPUs.

CUDA_VISIBLE_DEVICES (index or UUID form, MIG instances included) is read as CUDA reads it;
NVML indices are not CUDA indices, so GPUs are matched by UUID. A MIG instance is measured on
its parent GPU, billed its share of it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from types import ModuleType

from carbonlog._log import warn_once
from carbonlog.errors import ConfigurationError


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def physical_gpus(nvml: ModuleType, env: Mapping[str, str]) -> list[tuple[str, object]]:
    """(UUID, handle) of every GPU, in PCI bus order: the order CUDA numbers them by.

    CUDA_DEVICE_ORDER=PCI_BUS_ID makes CUDA number GPUs by PCI bus id. CUDA's own default,
    FASTEST_FIRST, puts the fastest first and breaks ties by PCI bus id: the same order when
    all GPUs are the same model, which is the case we map; on a mixed machine we say once that
    CUDA_DEVICE_ORDER=PCI_BUS_ID (or UUIDs in CUDA_VISIBLE_DEVICES) makes the mapping certain.
    """
    gpus = []
    names = set()
    for nvml_index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(nvml_index)
        pci = nvml.nvmlDeviceGetPciInfo(handle)
        gpus.append(
            ((pci.domain, pci.bus, pci.device), text(nvml.nvmlDeviceGetUUID(handle)), handle)
        )
        names.add(text(nvml.nvmlDeviceGetName(handle)))
    if len(names) > 1 and env.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        warn_once(
            "cuda-device-order",
            "carbonlog: GPUs of different models and "
            "CUDA_DEVICE_ORDER is not PCI_BUS_ID; CUDA may number them fastest first. "
            "Set CUDA_DEVICE_ORDER=PCI_BUS_ID or list UUIDs in CUDA_VISIBLE_DEVICES "
            "so that carbonlog measures the GPUs CUDA uses",
            own=True,
        )
    return [(uuid, handle) for _, uuid, handle in sorted(gpus, key=lambda g: g[0])]


def _mig_instances(nvml: ModuleType, gpus: list[tuple[str, object]]) -> list[tuple[str, str]]:
    """(MIG instance UUID, parent GPU UUID) of every MIG instance NVML shows."""
    found = []
    for parent_uuid, handle in gpus:
        try:
            count = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
        except (nvml.NVMLError, AttributeError):
            continue
        for slot in range(count):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except nvml.NVMLError:
                continue
            found.append((text(nvml.nvmlDeviceGetUUID(mig)), parent_uuid))
    return found


def _unique_prefix(prefix: str, uuids: Sequence[str]) -> str | None:
    hits = [u for u in uuids if u.lower().startswith(prefix.lower())]
    return hits[0] if len(hits) == 1 else None


def visible_gpus(
    nvml: ModuleType, environ: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """(UUID, parent GPU UUID) of the devices CUDA shows this process, in CUDA index order.

    CUDA_VISIBLE_DEVICES as CUDA reads it: indices ("0,2"), GPU UUIDs ("GPU-8932f937-..."),
    MIG UUIDs ("MIG-..." or the older "MIG-GPU-<uuid>/<gi>/<ci>"), any UUID shortened to a
    unique prefix. CUDA stops at the first entry it cannot use (out of range, unknown,
    ambiguous or repeated), so "-1" or "" hides every GPU. Unset: all GPUs.
    """
    env = os.environ if environ is None else environ
    gpus = physical_gpus(nvml, env)
    uuids = [uuid for uuid, _ in gpus]
    spec = env.get("CUDA_VISIBLE_DEVICES")
    if spec is None:
        return [(uuid, uuid) for uuid in uuids]
    migs: list[tuple[str, str]] | None = None
    visible: list[tuple[str, str]] = []
    for entry in (e.strip() for e in spec.split(",")):
        device = None
        if re.fullmatch(r"\d+", entry):
            if int(entry) < len(uuids):
                device = (uuids[int(entry)], uuids[int(entry)])
        elif entry[:8].upper() == "MIG-GPU-":  # MIG-GPU-<parent uuid>/<gi>/<ci>
            parent = _unique_prefix(entry[4:].split("/")[0], uuids)
            device = (entry, parent) if parent and entry.count("/") == 2 else None
        elif entry[:4].upper() == "MIG-":
            migs = _mig_instances(nvml, gpus) if migs is None else migs
            uuid = _unique_prefix(entry, [m for m, _ in migs])
            device = next((m for m in migs if m[0] == uuid), None)
        elif entry[:4].upper() == "GPU-":
            uuid = _unique_prefix(entry, uuids)
            device = (uuid, uuid) if uuid else None
        if device is None or device in visible:
            break
        visible.append(device)
    return visible


def mig_shares(
    nvml: ModuleType, used: list[tuple[str, str]], environ: Mapping[str, str] | None
) -> dict[str, float]:
    """For each GPU in MIG mode that this process uses: its instances of it over all the GPU's
    instances, so that processes on the instances of one GPU are not each billed all of it."""
    parents = {parent for uuid, parent in used if uuid != parent}
    if not parents:
        return {}
    env = os.environ if environ is None else environ
    instances = _mig_instances(nvml, physical_gpus(nvml, env))
    shares = {}
    for parent in parents:
        total = sum(1 for _, p in instances if p == parent)
        mine = sum(1 for uuid, p in used if p == parent and uuid != parent)
        shares[parent] = mine / total if total else 1.0
        warn_once(
            f"mig-share:{parent}",
            f"carbonlog: GPU {parent} is in MIG mode with {total} instances and this process "
            f"uses {mine}: it is billed {mine}/{total} of the GPU's energy, as NVML reports "
            "energy per GPU, not per instance (idle instances' share is not billed here)",
            own=True,
        )
    return shares


def driven_by(local_rank: int, visible: int) -> list[int]:
    """The CUDA index that local rank drives: the only GPU it sees (one GPU per process, as
    SLURM's --gpus-per-task gives), else the one at its local rank."""
    if visible == 1:
        return [0]
    if local_rank < visible:
        return [local_rank]
    warn_once(
        "gpu-local-rank",
        f"carbonlog: local rank {local_rank} sees {visible} GPUs, none of them its own; "
        "its GPU energy is not measured: pass gpus=[index of the GPU it drives]",
        own=True,
    )
    return []


def wanted_indices(
    gpus: str | Sequence[int], local_rank: int | None, visible: int, kind: str
) -> list[int]:
    """The indices a process measures among the `visible` GPUs of one `kind` ("CUDA device",
    "AMD GPU"): `gpus` as given, else all, else the one its local rank drives.

    Raises ConfigurationError for an index this process cannot see.
    """
    if gpus != "auto":
        wanted = list(dict.fromkeys(gpus))
    elif local_rank is None:
        wanted = list(range(visible))
    else:
        wanted = driven_by(local_rank, visible)
    outside = [i for i in wanted if not 0 <= i < visible]
    if outside:
        raise ConfigurationError(
            f"gpus={list(gpus)}: this process sees {visible} {kind}(s); {outside} out of range"
        )
    return wanted
