"""The HTML report in a real browser: headless Chromium opens it without a console message,
decodes every embedded plot, runs nothing but the report's own script, renders the plots, and
lays the page out within the window at 1280 px and at a phone's 390 px.

Needs a Chromium binary (Debian: apt-get install -y chromium); skipped when there is none.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from carbonlog.compare import compare
from carbonlog.ledger import Ledger
from carbonlog.report import write_report
from carbonlog.report.plots import COLORS
from carbonlog.tracking import Tracker

pytest.importorskip("matplotlib", reason='plots need matplotlib: pip install "carbonlog[report]"')

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((found for name in BROWSERS if (found := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium binary (Debian: apt-get install -y chromium)"
)
INJECTED = '<b id="injected">x</b><script>document.title="pwned"</script>'
WIDTH, HEIGHT = 1200, 1600
DESKTOP, PHONE = 1280, 390
EVAL_METRICS = ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
EVAL_METRICS += ("train_loss",)


def record_run(ledger: Path, name: str, accuracies, sleep_s: float = 0.01) -> int:
    tracker = Tracker(
        location="FR",
        power_w={"gpu": 100.0, "cpu": 10.0, "ram": 1.0},
        ledger=str(ledger),
        run_name=name,
        run_info={"framework": "torch", "task": "sst2", "model": INJECTED},
    ).start()
    for accuracy in accuracies:
        time.sleep(sleep_s)
        metrics = {"val_accuracy": accuracy, **{k: 1234.5678 * accuracy for k in EVAL_METRICS}}
        tracker.mark("epoch", metrics=metrics)  # the columns of a Trainer's evaluation
    return tracker.stop().run_id


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    ledger_path = folder / "ledger.sqlite3"
    a = record_run(ledger_path, INJECTED, [0.6, 0.85, 0.93])
    b = record_run(ledger_path, "scratch", [0.3, 0.5, 0.7])
    with Ledger(ledger_path) as ledger:
        comparison = compare(a, b, target="val_accuracy>=0.9", ledger=ledger)
        files = write_report(ledger.run(a), folder / "out", ledger.run(b), comparison)
    return files.html


@pytest.fixture(scope="module")
def long_report(tmp_path_factory) -> Path:
    """A run of more interval rows than the page lists: label totals, first and last rows."""
    folder = tmp_path_factory.mktemp("long")
    run_id = record_run(folder / "ledger.sqlite3", "long", [0.5] * 150, sleep_s=0.0)
    with Ledger(folder / "ledger.sqlite3") as ledger:
        return write_report(ledger.run(run_id), folder / "out").html


def chromium(
    page: Path, profile: Path, *mode: str, size: tuple[int, int] = (WIDTH, HEIGHT)
) -> subprocess.CompletedProcess:
    """Headless Chromium on `page`, console messages logged to stderr."""
    return subprocess.run(
        [
            BROWSER,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            *mode,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_plot_decodes_and_nothing_else_runs(report, tmp_path):
    done = chromium(report, tmp_path / "profile", "--dump-dom")
    assert done.returncode == 0, done.stderr
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no CSP violation, no script error, no failed load
    dom = done.stdout
    assert 'data-images-checked="3"' in dom  # the report's own script ran, after load
    widths = re.findall(r'<img [^>]*data-natural-width="(\d+)"', dom)
    assert widths == ["800", "800", "800"]
    assert 'class="broken"' not in dom
    assert '<b id="injected">' not in dom  # the run and model names stayed text
    assert "<title>pwned</title>" not in dom
    assert '&lt;b id="injected"&gt;' in dom


def test_screenshot_shows_the_plots(report, tmp_path):
    from matplotlib.image import imread

    shot = tmp_path / "report.png"
    done = chromium(report, tmp_path / "profile", f"--screenshot={shot}")
    assert done.returncode == 0, done.stderr
    pixels = imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    gpu = tuple(int(COLORS["gpu"][i : i + 2], 16) / 255 for i in (1, 3, 5))
    near_gpu = (abs(pixels - gpu) < 0.02).all(axis=2)
    assert near_gpu.sum() > 5000  # the GPU bars of the first plot are on screen


def layout_at(report: Path, width: int, tmp_path: Path) -> dict[str, str]:
    """What the report's script records of its layout in a window `width` px wide: a frame of
    that width in a page of its own (headless Chromium keeps its windows 500 px wide or more);
    the file:// frame is readable by its parent with --allow-file-access-from-files."""
    frame = tmp_path / f"at-{width}.html"
    frame.write_text(
        f'<!DOCTYPE html><body style="margin:0"><iframe src="{html.escape(report.as_uri())}" '
        f'style="width:{width}px;height:{HEIGHT}px;border:0"></iframe><script>'
        'document.querySelector("iframe").addEventListener("load",()=>{document.body.dataset'
        ".seen=JSON.stringify(frames[0].document.body.dataset)})</script></body>",
        encoding="utf-8",
    )
    size = (max(width, 500) + 40, HEIGHT + 100)
    done = chromium(
        frame, tmp_path / "profile", "--allow-file-access-from-files", "--dump-dom", size=size
    )
    assert done.returncode == 0, done.stderr
    seen = re.search(r'data-seen="([^"]*)"', done.stdout)
    assert seen, done.stdout[-2000:]
    return json.loads(html.unescape(seen.group(1)))


@pytest.mark.parametrize("width", [DESKTOP, PHONE])
@pytest.mark.parametrize("which", ["report", "long_report"])
def test_the_page_fits_the_window_at_desktop_and_phone_width(request, tmp_path, which, width):
    layout = layout_at(request.getfixturevalue(which), width, tmp_path)
    assert int(layout["windowWidth"]) == width
    assert int(layout["pageWidth"]) <= width, layout  # nothing scrolls the page sideways
    if width == DESKTOP:  # the tables fit too, the interval table's metric columns included
        assert layout["tablesScrolled"] == "0", layout
