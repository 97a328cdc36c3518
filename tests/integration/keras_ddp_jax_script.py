"""One of several JAX processes on the CPU (gloo collectives), started by test_keras_processes:
it sums a float64 vector float32 cannot hold through the Keras adapter's JAX sum, then fits a
tiny Keras model (JAX backend) with the callback and the run ledger, and writes what it saw.

Usage: python keras_ddp_jax_script.py OUT_PREFIX PROCESS_ID NUM_PROCESSES COORDINATOR_PORT
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
out, process_id, processes, port = sys.argv[1], *(int(a) for a in sys.argv[2:])
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=processes, process_id=process_id)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from carbonlog.integrations._keras_support import jax_sum  # noqa: E402
from carbonlog.integrations.keras import EmissionsCallback  # noqa: E402

PROBE = [1.0 + 2.0**-40, 3e-12, 1e9 + 0.5]
"""Each process adds (rank + 1) x these: in float32 the small parts vanish."""

summed = jax_sum([(process_id + 1) * v for v in PROBE])
x = np.random.default_rng(process_id).normal(size=(32, 4)).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
model.compile(optimizer="sgd", loss="mse")
callback = EmissionsCallback(
    intensity=50.0, verbose=False, power_w={"cpu": 10.0, "ram": 1.0}, metrics="full"
)
# each epoch outlasts two 100 ms ticks of the fake NVML, so a counted GPU would show
slow = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: time.sleep(0.25))
history = model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[callback, slow])
report = {
    "summed": summed,
    "history": history.history,
    "run_id": callback.summary.run_id,
    "cpu_j": callback.summary.cpu_j,
    "measured_s": sum(iv.duration_s for iv in callback.summary.intervals),
}
with open(f"{out}.{process_id}.json", "w") as file:
    json.dump(report, file)
