"""Where the ledger lives ($CARBONLOG_HOME or the platform's data directory), and a file
that only its user can read."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

ENV_HOME = "CARBONLOG_HOME"
FILE_NAME = "ledger.sqlite3"


def default_path() -> Path:
    """$CARBONLOG_HOME/ledger.sqlite3, else the user's data directory for carbonlog."""
    home = os.environ.get(ENV_HOME, "").strip()
    if home:
        return Path(home).expanduser() / FILE_NAME
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "carbonlog" / FILE_NAME


def create_private_file(path: Path) -> None:
    """Create `path` 0600 in a 0700 directory before SQLite does (its -wal and -shm files
    copy the mode); an existing file of this user open to others is made private.

    An existing file is changed by path only: closing a descriptor of a file that a
    connection of this process holds would drop its POSIX locks, and another process
    could then delete the WAL under it (a lost-writes corruption SQLite documents).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        found = path.stat()
        if (
            os.name != "nt"
            and stat.S_ISREG(found.st_mode)
            and found.st_uid == os.getuid()
            and stat.S_IMODE(found.st_mode) != 0o600
        ):
            os.chmod(path, 0o600)
