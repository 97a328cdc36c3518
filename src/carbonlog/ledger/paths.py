"""Where the ledger lives ($CARBONLOG_HOME or the platform's data directory), and files that
only their user can read, never reached through a link.

CARBONLOG_HOME may be a shared, world-writable folder, where anyone can plant a symbolic link
named like the ledger (or its -wal and -shm files) before carbonlog creates it: SQLite would
write through it, and a chmod would go to its target. So a ledger file that is a link, is not a
regular file, or belongs to another user is refused (LedgerError), and modes are changed without
following links.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

from carbonlog.ledger.records import LedgerError

ENV_HOME = "CARBONLOG_HOME"
FILE_NAME = "ledger.sqlite3"
SIDECARS = ("-wal", "-shm")
"""SQLite's files next to a WAL-mode database, created with the database file's mode."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_PRIVATE = 0o600


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


def ledger_files(path: Path) -> list[Path]:
    """The ledger file and its -wal and -shm files."""
    return [path, *(path.with_name(path.name + suffix) for suffix in SIDECARS)]


def prepare_file(path: Path) -> os.stat_result:
    """Create `path` 0600 in a 0700 folder before SQLite does (its -wal and -shm files copy
    the mode), and check it and its -wal and -shm; its lstat, to check it again once open.

    Nothing is opened on an existing file: closing a descriptor of a file that a connection
    of this process holds would drop its POSIX locks, and another process could then delete
    the WAL under it (a lost-writes corruption SQLite documents).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):  # O_EXCL never follows a link: checked below
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, _PRIVATE))
    found = [_checked(file) for file in ledger_files(path)]
    return found[0]


def check_unchanged(path: Path, found: os.stat_result) -> None:
    """LedgerError if `path` is no longer the file `prepare_file` checked (a swap while
    SQLite opened it, which follows links)."""
    now = _checked(path)
    if now is None or not os.path.samestat(now, found):
        raise LedgerError(f"{path} changed while it was being opened; it is left alone")


def make_private(path: Path) -> None:
    """Make the ledger and its -wal and -shm files 0600 where they are open to others; called
    once the file is known to be a carbonlog ledger, so another application's is never
    changed."""
    if os.name == "nt":
        return
    for file in ledger_files(path):
        found = _checked(file)
        if found is not None and stat.S_IMODE(found.st_mode) != _PRIVATE:
            _chmod_private(file, found)


def _checked(path: Path) -> os.stat_result | None:
    """The lstat of `path` (None if absent); LedgerError for a link, a file that is not a
    regular file, or one of another user."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(found.st_mode):
        raise LedgerError(
            f"{path} is a symbolic link; carbonlog never follows one to its ledger (in a "
            "shared folder anyone could plant it): remove it, or set CARBONLOG_HOME to a folder "
            "of your own"
        )
    if not stat.S_ISREG(found.st_mode):
        raise LedgerError(f"{path} is not a regular file")
    if os.name != "nt" and found.st_uid != os.geteuid():
        raise LedgerError(
            f"{path} belongs to another user (uid {found.st_uid}); carbonlog uses only a ledger "
            "of its own user: set CARBONLOG_HOME to a folder of your own"
        )
    return found


def _chmod_private(path: Path, found: os.stat_result) -> None:
    """chmod 0600 without following a link and without a descriptor whose close would drop
    SQLite's locks: by path where the C library can (glibc 2.32+, macOS), else through an
    O_PATH descriptor (Linux), as newer glibc does itself."""
    try:
        os.chmod(path, _PRIVATE, follow_symlinks=False)
    except NotImplementedError:
        fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if not os.path.samestat(os.fstat(fd), found):
                raise LedgerError(f"{path} changed while it was being made private") from None
            os.chmod(f"/proc/self/fd/{fd}", _PRIVATE)
        finally:
            os.close(fd)
