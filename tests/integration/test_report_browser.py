"""The HTML report in a real browser: headless Chromium opens it without a console message,
decodes every embedded plot, runs nothing but the report's own script, and renders the plots.

Needs a Chromium binary (Debian: apt-get install -y chromium); skipped when there is none.
"""

from __future__ import annotations

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


def record_run(ledger: Path, name: str, accuracies) -> int:
    tracker = Tracker(
        location="FR",
        power_w={"gpu": 100.0, "cpu": 10.0, "ram": 1.0},
        ledger=str(ledger),
        run_name=name,
        run_info={"framework": "torch", "task": "sst2", "model": INJECTED},
    ).start()
    for accuracy in accuracies:
        time.sleep(0.01)
        tracker.mark("epoch", metrics={"val_accuracy": accuracy})
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


def chromium(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess:
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
            f"--window-size={WIDTH},{HEIGHT}",
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
