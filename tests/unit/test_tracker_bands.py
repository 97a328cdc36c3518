"""The band, method, work, embodied and water of a tracker's intervals and Summary: a fallback
mid-interval, the sum over ranks, the ledger's round trip, and what runs show, the report and
the statement say of them."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import pytest

from carbonlog import embodied, water
from carbonlog.cli import views
from carbonlog.interval import RunSums
from carbonlog.ledger import Ledger
from carbonlog.report import statement
from carbonlog.report.html import render
from carbonlog.report.rows import run_band
from carbonlog.report.text import format_summary
from carbonlog.tracking import Tracker
from carbonlog.tracking.edges import Edges, Window
from carbonlog.tracking.joules import Joules
from carbonlog.tracking.sync import Contribution, share_interval
from tests.fakes.pynvml_fake import FakeGpu, FakeNvml


class Clock:
    """time.monotonic, moved by hand."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


class Meter:
    """A meter of constant power whose band is `fraction` of its energy: a counter that fails
    on read `fail_at`, or the model it falls back to."""

    estimated = False

    def __init__(self, clock, power_w, method, fraction, fail_at=None, fallback=None):
        self.component, self.method = "gpu", method
        self.estimated = method == "model"
        self._clock, self.power_w, self.fraction = clock, power_w, fraction
        self._fail_at, self._fallback, self.reads = fail_at, fallback, 0

    def start(self) -> None:
        self._t0_s = self._clock()

    def energy_j(self) -> float:
        self.reads += 1
        if self._fail_at is not None and self.reads >= self._fail_at:
            raise RuntimeError("GPU is lost")
        return self.power_w * (self._clock() - self._t0_s)

    def band_j(self, energy_j: float, window_s: float) -> float:
        return self.fraction * energy_j

    def devices(self) -> list[dict]:
        return [{"name": f"{self.method} gpu"}]

    def fallback(self):
        return self._fallback

    def close(self) -> None:
        pass


def test_a_fallback_mid_interval_has_the_band_of_both_parts(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    model = Meter(clock, 50.0, "model", 0.4)
    counter = Meter(clock, 100.0, "counter", 0.01, fail_at=3, fallback=model)
    edges = Edges([counter], sync=None)
    edges.open()
    clock.now_s += 10
    first = edges.close()  # 1,000 J by the counter: band 10 J
    assert first.band_j["gpu"] == pytest.approx(10.0) and first.methods == {"gpu": "counter"}
    clock.now_s += 5
    edges.peek()  # a good read at 15 s: 500 J since the edge
    clock.now_s += 5
    second = edges.close()  # the read fails: 500 J measured, 5 s x 100 W estimated
    assert second.joules.gpu_j == pytest.approx(1000.0)
    # the counter's 500 J (band 5 J) and the gap's 500 J by the model (band 200 J)
    assert second.band_j["gpu"] == pytest.approx(math.hypot(5.0, 200.0))
    assert second.methods == {"gpu": "counter+model"}
    clock.now_s += 10
    third = edges.close()  # the model alone: 500 J, band 200 J
    assert third.band_j["gpu"] == pytest.approx(200.0) and third.methods == {"gpu": "model"}

    class Closed:  # what RunSums reads of an interval
        def __init__(self, window: Window):
            self.band_j, self.methods = window.band_j, window.methods
            self.samples = self.tokens = self.embodied_kg = self.water_l = None

    sums = RunSums.of(Closed(w) for w in (first, second, third))
    # counter in quadrature (10 J); mixed and model add up (200.06 + 200 J)
    assert sums.band_j["gpu"] == pytest.approx(math.hypot(10.0, math.hypot(5.0, 200.0) + 200.0))
    assert sums.methods["gpu"] == "counter+model"


def contribution(gpu_j, band_j, method, samples, embodied_kg=None) -> Contribution:
    window = Window(0.0, 10.0, Joules(gpu_j), frozenset(), {"gpu": band_j}, {"gpu": method})
    return Contribution(window, 100.0, frozenset({"gpu"}), frozenset(), samples, None, embodied_kg)


def test_the_sum_over_ranks_adds_bands_joins_methods_and_keeps_unknown_work_unknown():
    def two_ranks(mine: Contribution, theirs: Contribution):
        vectors = []
        share_interval(lambda v: vectors.append(list(v)) or v, theirs)
        return share_interval(lambda v: [a + b for a, b in zip(v, vectors[0], strict=True)], mine)

    shared = two_ranks(
        contribution(100.0, 1.0, "counter", 32.0, 0.001), contribution(50.0, 20.0, "model", 16.0)
    )
    assert shared.joules.gpu_j == 150.0 and shared.window.band_j == {"gpu": 21.0}
    assert shared.window.methods == {"gpu": "counter+model"}
    assert shared.samples == 48.0 and shared.tokens is None
    assert shared.embodied_kg is None  # one rank knows no embodied figure: none is said
    alike = two_ranks(contribution(1, 1, "counter", 32.0), contribution(1, 1, "counter", None))
    assert alike.window.methods == {"gpu": "counter"} and alike.samples is None


@pytest.fixture
def fake_gpu(monkeypatch):
    """One H100 behind the NVML fake: a counter, and a row in the embodied table."""
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([FakeGpu(profile=300.0)]))


def tracked_run(ledger, **options):
    tracker = Tracker(location="gcp:us-central1", ledger=str(ledger), run_name="bands", **options)
    tracker.start()
    for samples in (64, 36):
        time.sleep(0.25)
        tracker.mark("epoch", samples=samples, tokens=10 * samples)
    return tracker.stop()


def test_a_gpu_run_has_its_band_embodied_water_and_work_and_the_ledger_keeps_them(
    fake_gpu, tmp_path
):
    summary = tracked_run(tmp_path / "ledger.sqlite3")
    assert summary.methods == {"gpu": "counter", "cpu": "model", "ram": "model"}
    assert set(summary.band_j) == {"gpu", "cpu", "ram"} and summary.band.energy_kwh > 0
    assert (summary.samples, summary.tokens) == (100.0, 1000.0)
    assert summary.energy_per_sample_j == pytest.approx(summary.energy_kwh * 3.6e6 / 100)
    hours = sum(iv.duration_s for iv in summary.intervals) / 3600
    assert summary.embodied_kg == pytest.approx(embodied.amortised_kg("H100 SXM", hours))
    it_kwh = summary.device_j / 3.6e6
    expected_l = water.water_l(it_kwh, summary.energy_kwh, "gcp:us-central1")
    assert expected_l is not None and summary.water_l == pytest.approx(expected_l)

    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        record = ledger.run(summary.run_id)
    stored = RunSums.of(record.intervals)
    assert stored.band_j == pytest.approx(summary.band_j) and stored.methods == summary.methods
    assert (record.samples, record.tokens) == (100.0, 1000.0)
    assert record.embodied_kg == pytest.approx(summary.embodied_kg)
    assert record.water_l == pytest.approx(summary.water_l)
    assert run_band(record) == pytest.approx(summary.band)


def test_a_cpu_run_says_no_embodied_figure_and_a_user_intensity_no_water(tmp_path):
    tracker = Tracker(intensity=100.0, gpus=None, ledger=False).start()
    time.sleep(0.02)
    summary = tracker.stop()
    assert summary.embodied_kg is None and summary.water_l is None
    assert summary.samples is None and summary.energy_per_sample_j is None
    assert summary.methods["cpu"] in ("counter", "model")
    line = format_summary(summary, "fit")
    assert "embodied" not in line and "water" not in line and "per sample" not in line


def test_runs_show_the_report_and_the_statement_say_x_plus_minus_y_and_what_dominates(
    fake_gpu, tmp_path, capsys
):
    path = tmp_path / "ledger.sqlite3"
    summary = tracked_run(path)
    with Ledger(path) as ledger:
        record = ledger.run(summary.run_id)
    band = run_band(record)
    who = f"mostly the {band.component.upper()}'s {band.method}"

    views.runs_show(record, argparse.Namespace(json=False))
    shown = capsys.readouterr().out
    assert f"{who} (" in shown and " ± " in shown
    assert "GPU counter, CPU model, RAM model" in shown
    assert "J per sample" in shown and "J per token" in shown
    assert "embodied" in shown and "water" in shown
    views.runs_show(record, argparse.Namespace(json=True))
    facts = json.loads(capsys.readouterr().out)
    assert facts["band"]["energy_kwh"] == pytest.approx(band.energy_kwh)
    assert facts["intervals"][0]["methods"] == {"gpu": "counter", "cpu": "model", "ram": "model"}

    text = statement(record)
    assert "kgCO₂eq" in text and f"the uncertainty is {who}" in text
    assert " ± " in text.split("Total emissions are ", 1)[1]
    assert "Manufacturing the hardware adds " in text and "not included in this total" in text

    page = render(record, [], {"markdown": text})
    assert "±" in page and "embodied CO2e, amortised" in page
    assert "± " in format_summary(summary, "fit") and who in format_summary(summary, "fit")


def test_a_resumed_run_carries_its_band_and_work_and_a_bad_part_starts_them_over():
    first = Tracker(intensity=100.0, power_w={"gpu": 100.0}, ledger=False).start()
    time.sleep(0.02)
    first.mark("epoch", samples=10)
    summary = first.stop()
    state = first.state_dict()

    resumed = Tracker(intensity=100.0, power_w={"gpu": 100.0}, ledger=False)
    resumed.load_state_dict(state)
    resumed.start()
    time.sleep(0.02)
    resumed.mark("epoch", samples=5)
    after = resumed.stop()
    assert after.samples == 15.0
    # model bands add up: the resumed run's band is more than the first part's
    assert after.band_j["gpu"] > summary.band_j["gpu"] > 0

    damaged = Tracker(intensity=100.0, power_w={"gpu": 100.0}, ledger=False)
    damaged.load_state_dict({**state, "sums": {"linear_j": "not a mapping"}})
    damaged.start()
    assert damaged.stop().samples is None  # the totals continue; the sums start over


def test_a_run_resumed_from_a_checkpoint_older_than_its_ledger_takes_the_ledgers_sums(tmp_path):
    path = str(tmp_path / "ledger.sqlite3")
    first = Tracker(intensity=100.0, power_w={"gpu": 100.0}, ledger=path).start()
    first.mark("epoch", samples=10)
    checkpoint = first.state_dict()  # taken before the second epoch, which the ledger keeps
    time.sleep(0.02)
    first.mark("epoch", samples=5)
    whole = first.stop()

    resumed = Tracker(intensity=100.0, power_w={"gpu": 100.0}, ledger=path)
    resumed.load_state_dict(checkpoint)
    resumed.start()
    resumed.mark("epoch", samples=1)
    after = resumed.stop()
    assert after.run_id == whole.run_id and after.samples == 16.0
    assert after.band_j["gpu"] >= whole.band_j["gpu"]
