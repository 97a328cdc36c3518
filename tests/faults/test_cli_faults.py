"""The carbonlog command under hostile input: run names, tags, labels and hardware names that
hold terminal escape sequences, and absurd values for every numeric argument. Each test runs
the command in this process and checks its exit code and every character it wrote."""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
import time
from pathlib import Path

import pytest

from carbonlog.cli import main
from carbonlog.ledger import Ledger
from carbonlog.report.text import UNSAFE_CODEPOINTS
from carbonlog.tracking import Tracker

WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
HOSTILE = (
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b]0;pwned\x07"  # retitle the terminal (OSC, BEL)
    "\x1b]8;;https://evil.example\x1b\\link\x1b]8;;\x1b\\"  # a hyperlink (OSC 8, ST)
    "ok\rFAKE"  # rewrite the line
    "\x9b31m\x9d0;t\x9c"  # 8-bit CSI and OSC
    "\u202eevil\u202c\u2066x\u2069"  # bidi override and isolate
    "\x08\x7f\x00a\nforged\tb\u2028c"  # backspace, DEL, NUL, newline, tab, line separator
)
UNSAFE = {chr(c) for c in UNSAFE_CODEPOINTS} - {"\n"}
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason='plots need matplotlib: pip install "carbonlog[report]"',
)


def record(path: Path, name: str, accuracies: list[float]) -> int:
    tracker = Tracker(location="FR", power_w=WATTS, ledger=str(path), run_name=name).start()
    for accuracy in accuracies:
        time.sleep(0.005)
        tracker.mark("epoch", metrics={"val_accuracy": accuracy})
    return tracker.stop().run_id


@pytest.fixture(scope="module")
def hostile_ledger(tmp_path_factory) -> Path:
    """Two runs whose every stored string is HOSTILE, written behind carbonlog's back (a ledger
    is a file anyone can write), so the CLI cannot count on what the tracker checked."""
    path = tmp_path_factory.mktemp("hostile") / "ledger.sqlite3"
    ids = [record(path, "a", [0.5, 0.7]), record(path, "b", [0.6, 0.8])]
    with sqlite3.connect(path) as db:
        for run_id, (site, hardware) in zip(
            ids, db.execute("SELECT site, hardware FROM runs ORDER BY id"), strict=True
        ):
            site = {**json.loads(site), "name": HOSTILE, "source": HOSTILE}
            devices = {"gpu": [{"name": HOSTILE, "method": "counter"}], **json.loads(hardware)}
            db.execute(
                "UPDATE runs SET name = ?, task = ?, model = ?, base_model = ?, framework = ?, "
                "site = ?, hardware = ? WHERE id = ?",
                (HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE, json.dumps(site), json.dumps(devices))
                + (run_id,),
            )
            db.execute("DELETE FROM run_tags WHERE run_id = ?", (run_id,))
            db.execute("INSERT INTO run_tags (run_id, tag) VALUES (?, ?)", (run_id, HOSTILE))
            db.execute(
                "UPDATE intervals SET label = ? WHERE run_id = ? AND label = 'end'",
                (HOSTILE, run_id),
            )
    with Ledger(path) as ledger:
        assert ledger.run(ids[0]).name == HOSTILE  # what the commands will read
    return path


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `carbonlog ARGS` in this process."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def strings(value):
    """Every string in a parsed JSON value, keys and values."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def assert_terminal_safe(*texts: str) -> None:
    for text in texts:
        found = sorted({f"U+{ord(c):04X}" for c in text if c in UNSAFE})
        assert not found, f"raw {found} in {text!r}"


TEXT_COMMANDS = [
    ("runs",),
    ("runs", "--by", "tag"),
    ("runs", "--by", "task"),
    ("runs", "--by", "model"),
    ("runs", "--by", "framework"),
    ("runs", "show", "1"),
    ("runs", "show", HOSTILE),  # by name
    ("compare", "1", "2"),
    ("compare", "1", "2", "--target", "val_accuracy>=0.6"),
    ("statement", "1"),
    ("statement", "1", "--format", "latex", "--bibtex"),
]


@pytest.mark.parametrize("args", TEXT_COMMANDS, ids=" ".join)
def test_text_output_never_carries_a_raw_control_character(hostile_ledger, capsys, args):
    code, out, err = run_cli(capsys, "--ledger", str(hostile_ledger), *args)
    assert code == 0, err
    assert_terminal_safe(out, err)
    if args[0] == "runs" and len(args) == 1:
        assert "\\x1b[2J" in out  # shown, escaped, not dropped


@pytest.mark.parametrize(
    "args", [("runs", "--json"), ("runs", "show", "1", "--json"), ("compare", "1", "2", "--json")]
)
def test_json_output_escapes_them_and_reads_back_the_same(hostile_ledger, capsys, args):
    code, out, err = run_cli(capsys, "--ledger", str(hostile_ledger), *args)
    assert code == 0, err
    assert_terminal_safe(out, err)
    assert any(HOSTILE in text for text in strings(json.loads(out)))  # the same, once parsed


@needs_matplotlib
def test_report_progress_and_paths_are_terminal_safe(hostile_ledger, capsys, tmp_path):
    out_dir = tmp_path / "report\x1b]0;t\x07"
    args = ("--ledger", str(hostile_ledger), "report", "1", "--compare", "2", "--out")
    code, out, err = run_cli(capsys, *args, str(out_dir), "--metric", "val_accuracy")
    assert code == 0, err
    assert_terminal_safe(out, err)
    assert (out_dir / "report.html").is_file()


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "show", f"no{HOSTILE}"),
        ("runs", "--task", HOSTILE),
        ("intensity", HOSTILE),
        ("estimate", "--hardware", HOSTILE, "--hours", "1"),
        ("regions", "--provider", HOSTILE),
        ("runs", "--by", HOSTILE),
        ("compare", "1", "2", "--target", HOSTILE),
    ],
    ids=lambda args: " ".join(a for a in args if a != HOSTILE),
)
def test_messages_quoting_what_was_typed_are_terminal_safe(hostile_ledger, capsys, args):
    code, out, err = run_cli(capsys, "--ledger", str(hostile_ledger), *args)
    assert code in (0, 1, 2)
    assert_terminal_safe(out, err)
    assert len(err.splitlines()) <= 1


# -- absurd numbers ----------------------------------------------------------------------------

HUGE = "9" * 30
LONGEST = "9" * 5000  # past int()'s 4,300 digits
ABSURD_NUMBERS = [HUGE, LONGEST, "1e308", "1e999", "inf", "nan", "-1", "0", "-0", "1e-400"]


def short(value: str) -> str:
    return value if len(value) <= 12 else f"{value[:6]}...({len(value)} chars)"


NUMERIC_OPTIONS = [
    ("demo", "--epochs"),
    ("estimate", "--count"),
    ("estimate", "--hours"),
    ("estimate", "--pue"),
    ("estimate", "--intensity"),
    ("estimate", "--tdp"),
    ("runs", "--limit"),
]
BASE = {"demo": ["--no-ledger"], "estimate": ["--hardware", "T4", "--hours", "1"], "runs": []}


@pytest.mark.parametrize("value", ABSURD_NUMBERS, ids=short)
@pytest.mark.parametrize("command, option", NUMERIC_OPTIONS, ids=" ".join)
def test_an_absurd_number_is_one_line_and_exit_2(hostile_ledger, capsys, command, option, value):
    if option == "--intensity" and value in ("0", "-0", "1e-400"):
        pytest.skip("no carbon at all is a valid intensity")
    code, out, err = run_cli(
        capsys, "--ledger", str(hostile_ledger), command, *BASE[command], option, value
    )
    assert (code, out) == (2, ""), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize(
    "args",
    [
        ("estimate", "--hardware", "T4", "--hours", "1000000", "--count", "1000000"),
        ("estimate", "--hardware", "T4", "--hours", "1000000", "--count", "1000000", "--json"),
        ("estimate", "--hardware", "T4", "--hours", "1000000", "--count", "1000000", "--pue", "5")
        + ("--intensity", "2000", "--format", "latex", "--compare", "H100,TPU v3"),
        ("estimate", "--hardware", "T4", "--hours", "1e-300"),
    ],
    ids=["largest", "largest as JSON", "largest of all, latex, compared", "smallest"],
)
def test_the_extremes_allowed_give_finite_figures(capsys, args):
    code, out, err = run_cli(capsys, *args)
    assert code == 0, err
    assert not re.search(r"\b(inf|nan|infinity)\b", out, flags=re.IGNORECASE), out


@pytest.mark.parametrize(
    "ref",
    [HUGE, LONGEST, "-1", "0", "1e308", "nan", "1.5"],
    ids=short,
)
@pytest.mark.parametrize(
    "command",
    [("runs", "show"), ("statement",), ("report",), ("compare", "1"), ("report", "1", "--compare")],
    ids=" ".join,
)
def test_a_run_id_out_of_range_is_no_such_run_in_one_line(hostile_ledger, capsys, command, ref):
    code, out, err = run_cli(capsys, "--ledger", str(hostile_ledger), *command, ref)
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1 and "no run" in err, err
