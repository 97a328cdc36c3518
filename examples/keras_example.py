"""Keras 3: a small classifier's energy and CO2 per epoch, in History and a CSV file.

Run: python examples/keras_example.py [--epochs 5] [--location FR] [--out keras_log.csv]

Offline and quick on a CPU (a few seconds): synthetic data, a two-layer MLP, the torch
backend unless KERAS_BACKEND says otherwise. EmissionsCallback comes first in the list, so
the CSVLogger after it writes the carbon/* columns; evaluate() and predict() are measured
too, and resuming this fit later (initial_epoch=...) continues its totals from the sidecar.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "torch")  # before the first `import keras`


def make_data(n: int = 2048, features: int = 20, classes: int = 4, seed: int = 0):
    """Gaussian clusters, one per class: learnable in a few epochs."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = centres[y] + rng.normal(size=(n, features))
    return x.astype("float32"), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--location", default="FR", help='e.g. "FR", "US-CA", "gcp:us-central1"')
    parser.add_argument("--out", default=None, help="CSV file (default: a temporary folder)")
    args = parser.parse_args()

    import keras

    from carbonlog.integrations.keras import EmissionsCallback

    folder = tempfile.mkdtemp(prefix="carbonlog-keras-")
    csv_path = args.out or os.path.join(folder, "keras_log.csv")
    x, y = make_data()
    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    carbon = EmissionsCallback(
        location=args.location,
        state_path=os.path.join(folder, "carbon_state.json"),
        ledger=False,  # keep this example out of your run ledger
        verbose=False,  # the table below prints the figures
    )
    history = model.fit(
        x,
        y,
        epochs=args.epochs,
        batch_size=64,
        validation_split=0.2,
        verbose=0,
        callbacks=[carbon, keras.callbacks.CSVLogger(csv_path)],
    )

    header = ("epoch", "val_acc", "energy_kwh", "co2_mg", "total_co2_mg", "mean_W")
    print(" ".join(f"{name:>12}" for name in header))
    h = history.history
    for epoch in range(len(h["loss"])):
        row = (
            epoch,
            f"{h['val_accuracy'][epoch]:.3f}",
            f"{h['carbon/energy_kwh'][epoch]:.3g}",
            f"{h['carbon/co2_kg'][epoch] * 1e6:.3g}",
            f"{h['carbon/co2_kg_total'][epoch] * 1e6:.3g}",
            f"{h['carbon/power_w'][epoch]:.1f}",
        )
        print(" ".join(f"{value:>12}" for value in row))
    site = carbon.summary.site
    print(f"intensity {site['g_per_kwh']:.0f} g CO2e/kWh ({site['location']}, {site['source']})")

    model.evaluate(x, y, verbose=0, callbacks=[carbon])
    model.predict(x, verbose=0, callbacks=[carbon])
    for stage in ("test", "predict"):
        totals = carbon.totals[stage]
        print(
            f"{stage}: {totals[f'carbon/{stage}/energy_kwh']:.3g} kWh, "
            f"{totals[f'carbon/{stage}/co2_kg'] * 1e6:.3g} mg CO2"
        )

    with open(csv_path, newline="") as file:
        columns = next(csv.reader(file))
    carbon_columns = [c for c in columns if c.startswith("carbon/")]
    print(f"{csv_path}: {len(carbon_columns)} carbon columns, e.g. {', '.join(carbon_columns[:3])}")


if __name__ == "__main__":
    main()
