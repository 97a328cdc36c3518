"""What the Keras callback costs: fit time with and without it, as a ratio and ms per epoch.

A small Dense model fits random data on the torch backend; runs with and without the callback
alternate so that drift of the machine hits both alike. The callback runs with its default
meters (on a CPU-only machine: the CPU and RAM models), with and without the run ledger.
The resolution is the spread of the baseline itself (interquartile range of its per-epoch
time over the repeats): an overhead below it is not distinguishable from noise. The time
spent inside the callback's hooks is also timed directly, which resolves microseconds.

Run: python benchmarks/bench_keras.py [--epochs 20] [--repeats 5] [--steps 8] [--threads 1].
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from timing import quartiles, time_methods

os.environ.setdefault("KERAS_BACKEND", "torch")

BATCH = 64


def build(keras):
    model = keras.Sequential(
        [
            keras.Input((32,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def fit_seconds(keras, x, y, epochs: int, callbacks: list) -> float:
    model = build(keras)
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=callbacks)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8, help="batches per epoch")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()

    import keras
    import numpy as np
    import torch

    from carbonlog.integrations.keras import EmissionsCallback

    torch.set_num_threads(args.threads)
    hooks = ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end")
    hooks_ms: dict[str, list[float]] = {}

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.steps * BATCH, 32)).astype("float32")
    y = rng.normal(size=(args.steps * BATCH, 1)).astype("float32")
    home = tempfile.mkdtemp(prefix="carbonlog-bench-")
    variants = {
        "without": lambda: [],
        "callback, ledger off": lambda: [
            EmissionsCallback(intensity=50.0, ledger=False, verbose=False)
        ],
        "callback, ledger on": lambda: [
            EmissionsCallback(intensity=50.0, ledger=os.path.join(home, "ledger.db"), verbose=False)
        ],
    }
    for make in variants.values():  # warm-up: torch kernels, Keras tracing, carbonlog tables
        fit_seconds(keras, x, y, 2, make())

    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, make in variants.items():
            callbacks = make()
            spent = [time_methods(callback, hooks) for callback in callbacks]
            times[name].append(fit_seconds(keras, x, y, args.epochs, callbacks))
            for seconds in spent:
                hooks_ms.setdefault(name, []).append(sum(seconds) / args.epochs * 1000)

    print(
        f"keras {keras.__version__} ({keras.backend.backend()} backend, CPU), "
        f"{args.epochs} epochs x {args.steps} batches of {BATCH}, {args.repeats} repeats, "
        f"{os.cpu_count()} cores, {args.threads} torch thread(s)"
    )
    base_q1, base_s, base_q3 = quartiles(times["without"])
    resolution_ms = (base_q3 - base_q1) / args.epochs * 1000
    print(
        f"  without: median {base_s:.3f} s per fit, {base_s / args.epochs * 1000:.2f} ms per epoch"
    )
    for name in list(variants)[1:]:
        _, median_s, _ = quartiles(times[name])
        overhead_ms = (median_s - base_s) / args.epochs * 1000
        print(
            f"  {name}: median {median_s:.3f} s, ratio {median_s / base_s:.3f}, "
            f"overhead {overhead_ms:+.2f} ms per epoch; "
            f"inside its hooks {statistics.median(hooks_ms[name]):.3f} ms per epoch"
        )
    print(f"  resolution (IQR of the baseline per epoch): {resolution_ms:.2f} ms")


if __name__ == "__main__":
    main()
