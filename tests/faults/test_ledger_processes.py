"""Runs whose process may be gone: which the next run closes as "interrupted" (killed in this
PID namespace and boot, or from an earlier boot of this host) and which it leaves alone (alive,
in another PID namespace such as a container on this host, on another host, or unknown)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from carbonlog.ledger import Ledger
from carbonlog.ledger.processes import Process
from carbonlog.tracking import Tracker
from tests.unit.ledger_worker import WATTS, record_run, worker


def _dead_pid() -> int:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(gone.stdout)


def test_the_next_run_closes_only_runs_whose_process_is_surely_gone(tmp_path):
    """A PID is checked only in its own namespace and boot; a run of an earlier boot of this
    host is gone whatever its PID; other hosts, namespaces and unknown ones are left alone."""
    me, dead_pid = Process.current(), _dead_pid()
    path = tmp_path / "l.sqlite3"
    cases = {  # name: (host, pid, pid_ns, boot_id), and whether it is closed
        "killed": ((me.host, dead_pid, me.pid_ns, me.boot_id), True),
        "mine": ((me.host, me.pid, me.pid_ns, me.boot_id), False),
        "alive": ((me.host, os.getppid(), me.pid_ns, me.boot_id), False),
        "container": ((me.host, dead_pid, "pid:[1]", me.boot_id), False),
        "before reboot": ((me.host, os.getppid(), me.pid_ns, "an-earlier-boot"), True),
        "older carbonlog": ((me.host, dead_pid, None, None), False),
        "elsewhere": (("another-host", dead_pid, me.pid_ns, me.boot_id), False),
    }
    with Ledger(path) as ledger:
        ids = {name: record_run(ledger, name, [1.0, 1.0], status="running") for name in cases}
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "UPDATE runs SET host = ?, pid = ?, pid_ns = ?, boot_id = ? WHERE id = ?",
            [(*process, ids[name]) for name, (process, _) in cases.items()],
        )
    with Ledger(path) as ledger:
        record_run(ledger, "next", [1.0])
        runs = {run.name: run for run in ledger.runs()}
    assert {name: runs[name].status for name in cases} == {
        name: "interrupted" if closed else "running" for name, (_, closed) in cases.items()
    }
    assert "killed" in runs["killed"].stop_reason and "restarted" in runs["killed"].stop_reason
    assert runs["killed"].epochs == 2 and runs["next"].status == "completed"


def test_a_run_records_the_process_that_runs_it(tmp_path):
    path = tmp_path / "l.sqlite3"
    with Ledger(path) as ledger:
        run_id = record_run(ledger, "here", [1.0], status="interrupted")
        ledger.resume_run(run_id)
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT host, pid, pid_ns, boot_id FROM runs").fetchone()
    assert row == tuple(Process.current().columns().values())
    if sys.platform == "linux":
        assert row[2].startswith("pid:[") and len(row[3]) == 36


def _pid_namespace_available() -> str | None:
    if os.name == "nt" or shutil.which("unshare") is None:
        return "no unshare(1)"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"])
    return None if probe.returncode == 0 else "unshare --pid is not permitted"


def _a_pid_free_here() -> int:
    """A process id no process of this namespace has, so a PID check here says "gone"."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    return next(pid for pid in range(pid_max - 1, 300, -1) if not Path(f"/proc/{pid}").exists())


@pytest.mark.slow
@pytest.mark.skipif(_pid_namespace_available() is not None, reason="needs a PID namespace")
def test_a_live_run_in_another_pid_namespace_is_left_running(tmp_path, carbon_warnings):
    """A container on this host (same hostname) whose PID means nothing here."""
    path = tmp_path / "ledger.sqlite3"
    pid = _a_pid_free_here()
    proc = worker(
        "hold",
        path,
        2,
        prefix=[
            "unshare",
            "--pid",
            "--kill-child",
            "--mount-proc",
            "sh",
            "-c",
            f'echo {pid - 1} > /proc/sys/kernel/ns_last_pid && "$@"',
            "sh",
        ],
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("marked"), proc.stderr.read()
        contained = int(line.split()[1])
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT pid FROM runs").fetchone() == (pid,)
        # the next run on this host closes what it can
        Tracker(intensity=100.0, power_w=WATTS, ledger=str(path)).start().stop()
        with Ledger(path) as ledger:
            run = ledger.run(contained)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert run.status == "running" and run.epochs == 2
    assert carbon_warnings == []
