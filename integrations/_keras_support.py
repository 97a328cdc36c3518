"""What the Keras callback needs around it: which callbacks listed before it would want its keys,
the processes it runs among and their one float64 sum (torch.distributed or JAX multi-process),
the CUDA devices a model runs on, the samples of an epoch, and the resume sidecar's atomic write.

Imported by carbonlog.integrations.keras once Keras has loaded.
"""

from __future__ import annotations

import dis
import inspect
import json
import os
import sys
import tempfile
from collections.abc import Sequence

import keras

from carbonlog.distributed import Ranks, ReduceFn
from carbonlog.integrations._common import cuda_devices, torch_sum

_ADDS_OR_PRINTS = (keras.callbacks.ProgbarLogger, keras.callbacks.LearningRateScheduler)
"""Callbacks whose on_epoch_end touches `logs` only to print them (last by default) or to add a
key of their own: listed before carbonlog, they miss nothing they log."""

# -- callbacks listed before carbonlog ---------------------------------------------------------


def reads_logs(callback, prefix: str) -> bool:
    """A callback that wants carbonlog's keys in the epoch's `logs`: one that monitors a key
    under `prefix` (EarlyStopping, ModelCheckpoint), or, without a monitor, any whose
    on_epoch_end reads its `logs` (CSVLogger, TensorBoard, History, MLflow's and W&B's
    callbacks, a LambdaCallback that logs)."""
    monitor = getattr(callback, "monitor", None)
    if monitor is not None:
        return str(monitor).startswith(prefix)
    if isinstance(callback, _ADDS_OR_PRINTS):
        return False
    hook = callback.on_epoch_end
    if getattr(hook, "__func__", None) is keras.callbacks.Callback.on_epoch_end:
        return False  # not overridden
    return uses_second_argument(hook)


def uses_second_argument(hook) -> bool:
    """Whether `hook(epoch, logs)` reads `logs`: its code (under any decorator that wraps it)
    loads that parameter, or a nested function captures it. True where that cannot be told (a
    builtin, a callable object, `*args`)."""
    code = getattr(inspect.unwrap(getattr(hook, "__func__", hook)), "__code__", None)
    try:
        parameters = list(inspect.signature(hook).parameters.values())
    except (TypeError, ValueError):
        return True
    if code is None or any(p.kind is p.VAR_POSITIONAL for p in parameters[:2]):
        return True
    if len(parameters) < 2:
        return False  # on_epoch_end(epoch): never sees the logs
    name = parameters[1].name
    if name in code.co_cellvars:
        return True
    return any(
        ins.opname.startswith("LOAD_FAST")
        and name in (ins.argval if isinstance(ins.argval, tuple) else (ins.argval,))
        for ins in dis.get_instructions(code)
    )


# -- the processes and their one sum ---------------------------------------------------------


def process_group() -> tuple[Ranks, ReduceFn | None]:
    """This process's ranks and the one sum over processes, through the backend running them:
    an initialised torch.distributed group (its ranks read by Ranks.from_env), else JAX
    multi-process (its process index and count, the launcher's variables for the rest)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return Ranks.from_env(), torch_sum("cuda" if dist.get_backend() == "nccl" else "cpu")
    jax = sys.modules.get("jax")
    if jax is not None and jax.process_count() > 1:
        env = {**os.environ, "RANK": str(jax.process_index())}
        return Ranks.from_env({**env, "WORLD_SIZE": str(jax.process_count())}), jax_sum
    return Ranks.from_env(), None


def jax_sum(values: Sequence[float]) -> list[float]:
    """The sum over JAX processes in float64 whatever `jax_enable_x64` says: each process's
    float64 bits travel as uint32 pairs (JAX keeps uint32 exact, where it would cast float64
    to float32), and every process adds the gathered rows in process order, so all hold the
    same sum to the last bit."""
    import numpy as np
    from jax.experimental import multihost_utils

    local = np.ascontiguousarray(values, dtype=np.float64)
    gathered = multihost_utils.process_allgather(local.view(np.uint32))
    rows = np.ascontiguousarray(gathered, dtype=np.uint32).view(np.float64)
    return rows.reshape(-1, local.size).sum(axis=0).tolist()


def gpus_driven(model) -> list[int] | None:
    """The CUDA devices the model runs on, for the meters: on torch the device of its weights
    ([] on the CPU); on JAX None where JAX has local GPUs (gpus="auto" then means JAX's local
    devices, one per process under SLURM) and [] where JAX computes on the CPU."""
    if keras.backend.backend() == "jax":
        import jax

        return None if any(d.platform == "gpu" for d in jax.local_devices()) else []
    weights = getattr(model, "weights", None)
    if keras.backend.backend() != "torch" or not weights:
        return None
    return cuda_devices(weights[0].value.device)


def epoch_samples(adapter, steps: int | None) -> int | None:
    """The samples one epoch of `steps` batches trains on, from fit's data adapter (its batch
    size, and the last batch's when it is partial); None where Keras does not know them (a
    generator, a tf.data pipeline, a PyDataset)."""
    batch = getattr(adapter, "batch_size", None)
    if not batch or not steps:
        return None
    samples = steps * batch
    if steps == adapter.num_batches and adapter.has_partial_batch:
        samples -= batch - adapter.partial_batch_size
    return samples


def write_json_atomically(path: str, data: dict) -> None:
    """Write to a temporary file beside `path`, then rename: a crash never leaves half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".carbonlog-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
