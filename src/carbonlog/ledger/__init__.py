"""The run ledger: every run and its intervals in one SQLite file, the embedded default store.

Each interval is committed when it is marked, so a killed process loses at most its open
epoch. WAL mode and a busy timeout let several processes write at once; a write that cannot be
made now (a lock another process holds, a full disk) raises LedgerBusy, and the tracker keeps
it to retry, so a run is "completed" only when every write was made, else "incomplete" (see
STATUSES). PRAGMA application_id marks the files carbonlog creates and PRAGMA user_version
holds the schema version; older ledgers are migrated on open, and a file carbonlog did not
write is never changed. The file is readable by its user only and never reached through a
link. Totals are summed from the intervals, so a run that was killed before it could end
still counts in "the cost of experimenting".
"""

from carbonlog.ledger.paths import ENV_HOME, FILE_NAME, default_path
from carbonlog.ledger.records import (
    STATUSES,
    GroupTotal,
    IntervalRecord,
    LedgerBusy,
    LedgerError,
    RunInfo,
    RunRecord,
    normalize_tags,
)
from carbonlog.ledger.schema import SCHEMA_VERSION
from carbonlog.ledger.store import BUSY_TIMEOUT_S, Ledger

__all__ = [
    "BUSY_TIMEOUT_S",
    "ENV_HOME",
    "FILE_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "GroupTotal",
    "IntervalRecord",
    "Ledger",
    "LedgerBusy",
    "LedgerError",
    "RunInfo",
    "RunRecord",
    "default_path",
    "normalize_tags",
]
