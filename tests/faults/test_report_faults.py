"""Reports of long runs: a 20,000-interval run written through the Ledger gives a report with a
bounded page (first and last rows, totals per label) and plots that group the intervals, and
`runs show` a bounded table. Its report took 39 s (here 112 s) and a 5.8 MB page of 20,012 rows."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import struct
from pathlib import Path

import pytest

from carbonlog.cli import main, views
from carbonlog.interval import Interval
from carbonlog.ledger import Ledger, RunInfo
from carbonlog.report import html, plots, write_report
from carbonlog.report.rows import label_totals

INTERVALS = 20_000
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason='plots need matplotlib: pip install "carbonlog[report]"',
)


def interval(index: int, label: str) -> Interval:
    gpu_j = 3.6e5 * (1 + index % 7 / 10)
    return Interval(
        label=label,
        index=index,
        started_at_s=index * 60.0,
        duration_s=60.0,
        gpu_j=gpu_j,
        cpu_j=gpu_j / 10,
        ram_j=gpu_j / 100,
        pue=1.1,
        intensity_g_per_kwh=50.0 + index % 11,
        intensity_source="test",
        energy_kwh_total=0.0,
        co2_kg_total=0.0,
    )


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    """(ledger path, the run as the ledger reads it back): epochs, evaluations, and the end."""
    path = tmp_path_factory.mktemp("long") / "ledger.sqlite3"
    site = {"location": "FR", "name": "France", "kind": "country", "g_per_kwh": 56.0}
    with Ledger(path) as ledger:
        run_id = ledger.begin_run(RunInfo(name="long", framework="torch", site=site))
        for index in range(INTERVALS):
            label = "end" if index == INTERVALS - 1 else ("eval" if index % 10 == 9 else "epoch")
            metrics = {"val_accuracy": index / INTERVALS} if label == "epoch" else None
            ledger.add_interval(run_id, interval(index, label), metrics)
        ledger.end_run(run_id, "completed", None, INTERVALS * 60.0)
        run = ledger.run(run_id)
    assert len(run.intervals) == INTERVALS
    return path, run


def table_rows(page: str, heading: str) -> list[str]:
    """The <tr> rows of the table that follows `heading`."""
    section = page.split(f"<h2>{heading}</h2>", 1)[1].split("<h2>", 1)[0]
    return re.findall(r"<tr>.*?</tr>", section)


def test_a_long_runs_page_shows_its_first_and_last_rows_and_its_totals(long_run):
    _, run = long_run
    page = html.render(run, [], {})
    rows = table_rows(page, "Intervals")
    totals = label_totals(run.intervals)
    # the label totals' header and rows, the interval header, 100 intervals and the note
    assert len(rows) == 1 + len(totals) + 1 + html.MOST_ROWS + 1
    assert f"{INTERVALS - html.MOST_ROWS:,} intervals not shown" in page
    assert f"carbonlog runs show {run.id} --json" in page
    assert "<td>epoch 1</td>" in page and "<td>end</td>" in page  # first and last
    assert [(t.label, t.count) for t in totals] == [("epoch", 18_000), ("eval", 1_999), ("end", 1)]
    assert sum(t.co2_kg for t in totals) == pytest.approx(run.co2_kg, rel=1e-9)
    assert sum(t.energy_kwh for t in totals) == pytest.approx(run.energy_kwh, rel=1e-9)
    assert len(page) < 200_000


def test_a_short_runs_page_lists_every_interval_and_no_totals(long_run):
    _, run = long_run
    short = dataclasses.replace(run, intervals=run.intervals[: html.MOST_ROWS])
    page = html.render(short, [], {})
    assert len(table_rows(page, "Intervals")) == 1 + html.MOST_ROWS
    assert "not shown" not in page


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


@needs_matplotlib
def test_a_long_runs_report_is_written_with_grouped_bars(long_run, tmp_path):
    _, run = long_run
    files = write_report(run, tmp_path / "report")
    assert png_size(files.plots["energy"]) == (800, 560)
    assert png_size(files.plots["cumulative"]) == (800, 360)
    page = files.html.read_text(encoding="utf-8")
    assert len(table_rows(page, "Intervals")) < 2 * html.MOST_ROWS
    assert page.count('src="data:image/png;base64,') == 2


def test_the_bars_are_the_mean_of_each_group_of_intervals(long_run):
    _, run = long_run
    bins = plots._bins(INTERVALS, plots.MOST_BARS)
    assert len(bins) <= plots.MOST_BARS and sum(map(len, bins)) == INTERVALS
    assert [b.start for b in bins[1:]] == [b.stop for b in bins[:-1]]  # tiled, in order
    kwh = [iv.energy_kwh for iv in run.intervals]
    means = plots._per_bin(kwh, bins)
    assert sum(m * len(b) for m, b in zip(means, bins, strict=True)) == pytest.approx(sum(kwh))


def test_runs_show_prints_a_bounded_table(long_run, capsys):
    path, run = long_run
    assert main(["--ledger", str(path), "runs", "show", str(run.id)]) == 0
    out = capsys.readouterr().out
    assert f"... {INTERVALS - views.MOST_ROWS:,} more" in out
    assert len(out.splitlines()) < 2 * views.MOST_ROWS
    assert f"(every interval: carbonlog runs show {run.id} --json)" in out
