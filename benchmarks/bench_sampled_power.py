"""Per-epoch error and whole-fit loss of the NVML meter on a GPU without an energy counter,
whose power reading is a 1 s moving average (Ampere and newer, GA100 aside), on the NVML fake.

The fit is the shape of nvml-hopper.md's Lightning run: ten epochs of 0.6 to 9.1 s alternating
690 W (heavy) and 175 W (light), idle at 120 W after. Truth is the fake's exact integral of its
power profile; the meter sees only the lagging average, as a real card shows it.

Run: python benchmarks/bench_sampled_power.py [--scale 0.3] [--epochs 3]. Prints figures;
asserts nothing. It runs in real time (the fake's clock is the wall clock): 31 s at scale 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.fakes, from a checkout

from carbonlog.meters.nvml import open_gpu_meter  # noqa: E402
from tests.fakes.pynvml_fake import FakeGpu, FakeNvml  # noqa: E402

EPOCHS_S = [
    ("heavy", 1.4),
    ("light", 1.2),
    ("heavy", 3.4),
    ("light", 2.0),
    ("heavy", 1.1),
    ("heavy", 9.1),
    ("light", 4.0),
    ("heavy", 5.0),
    ("light", 0.6),
    ("light", 2.8),
]
POWER_W = {"heavy": 690.0, "light": 175.0, "idle": 120.0}


def measure(scale: float, epochs: int) -> list[tuple[str, float, float, float]]:
    """(load, seconds, true J, measured J) per epoch of the fit at `scale` x the lengths."""
    fit = [(load, seconds * scale) for load, seconds in EPOCHS_S[:epochs]]
    profile = ",".join(f"{POWER_W[load]:g}:{s:g}" for load, s in fit) + f",{POWER_W['idle']:g}:100"
    nvml = FakeNvml([FakeGpu(profile=profile, counter=False, instant=False)])
    meter = open_gpu_meter(nvml=nvml, environ={})
    meter.start()
    rows, edge_s, last_s, last_j = [], 0.0, nvml.now_s(), 0.0
    try:
        for load, seconds in fit:
            edge_s += seconds
            time.sleep(max(0.0, edge_s - nvml.now_s()))
            energy_j, now_s = meter.energy_j(), nvml.now_s()
            truth_j = nvml.true_energy_j(0, last_s, now_s)
            rows.append((load, now_s - last_s, truth_j, energy_j - last_j))
            last_s, last_j = now_s, energy_j
    finally:
        meter.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="x the epochs' lengths")
    parser.add_argument("--epochs", type=int, default=len(EPOCHS_S), help="the first N epochs")
    args = parser.parse_args()
    rows = measure(args.scale, args.epochs)
    errors = [abs(measured - truth) / truth for _, _, truth, measured in rows]
    for load, seconds, truth, measured in rows:
        print(
            f"{load:5s} {seconds:5.2f} s  truth {truth:8.1f} J  measured {measured:8.1f} J  "
            f"error {100 * (measured - truth) / truth:+6.1f} %"
        )
    truth_j = sum(row[2] for row in rows)
    measured_j = sum(row[3] for row in rows)
    print(
        f"per-epoch error: mean {100 * sum(errors) / len(errors):.1f} %, worst "
        f"{100 * max(errors):.1f} %; the fit: truth {truth_j:.0f} J, measured {measured_j:.0f} J, "
        f"lost {100 * (truth_j - measured_j) / truth_j:.1f} %"
    )


if __name__ == "__main__":
    main()
