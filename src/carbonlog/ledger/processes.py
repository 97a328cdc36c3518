"""Which process a run belongs to (host, PID, PID namespace, boot), and the closing of runs
whose process is gone.

A kill -9 leaves no chance to close a run; the next run on the same host closes it as
"interrupted", so the cost of experimenting counts it. A PID means something only in its own
PID namespace and boot: containers on one host share its hostname (and a ledger, through a
mounted folder) but not their PIDs, and a restarted machine runs no process of before. So a run
is closed only when it began on this host in an earlier boot, or in this boot and PID namespace
by a process that is gone. Runs recorded before carbonlog stored the namespace are left alone on
Linux, as is a run whose process id was reused: never closed wrongly.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

ABANDONED = (
    "its process ended without closing the run (killed, crashed hard, or the machine restarted)"
)
_PID_NAMESPACE = Path("/proc/self/ns/pid")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Process:
    """What identifies a process across the runs of a ledger; namespace and boot are None
    where the system does not say (macOS, Windows)."""

    host: str
    pid: int
    pid_ns: str | None
    boot_id: str | None

    @classmethod
    def current(cls) -> Process:
        """This process (read each time: a fork changes the PID)."""
        return cls(socket.gethostname(), os.getpid(), _pid_namespace(), _boot_id())

    def columns(self) -> dict[str, object]:
        """The runs table's columns for this process."""
        return asdict(self)

    def sees_gone(self, pid: int | None, pid_ns: str | None, boot_id: str | None) -> bool:
        """Whether the process of a run of this host, recorded with these, is surely gone."""
        if self.boot_id is not None and boot_id is not None and boot_id != self.boot_id:
            return True  # an earlier boot of this machine
        if (pid_ns, boot_id) != (self.pid_ns, self.boot_id):
            return False  # another PID namespace, or a run of an older carbonlog
        return pid is not None and pid != self.pid and not _alive(pid)


def close_abandoned(conn: sqlite3.Connection) -> None:
    """Runs of this host still "running" whose process is gone become "interrupted"."""
    me = Process.current()
    stale = [
        run_id
        for run_id, pid, pid_ns, boot_id in conn.execute(
            "SELECT id, pid, pid_ns, boot_id FROM runs WHERE status = 'running' AND host = ?",
            (me.host,),
        )
        if me.sees_gone(pid, pid_ns, boot_id)
    ]
    conn.executemany(
        "UPDATE runs SET status = 'interrupted', stop_reason = ? WHERE id = ?",
        [(ABANDONED, run_id) for run_id in stale],
    )


def _alive(pid: int) -> bool:
    """Whether a process of this id runs in this namespace (signal 0 checks without sending).
    On Windows signal 0 is CTRL_C_EVENT, which would interrupt it: every process counts as
    alive there."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _pid_namespace() -> str | None:
    """`pid:[4026531836]`: the inode that names this process's PID namespace (Linux)."""
    try:
        return os.readlink(_PID_NAMESPACE)
    except OSError:
        return None


def _boot_id() -> str | None:
    """The kernel's id of this boot (Linux): a new one at each restart."""
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None
