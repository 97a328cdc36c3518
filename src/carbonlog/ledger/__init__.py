"""The run ledger: every run and its intervals in one SQLite file, the embedded default store.

Each interval is committed when it is marked, so a killed process loses at most its open
epoch. WAL mode and a busy timeout let several processes write at once; PRAGMA
user_version holds the schema version, and older files are migrated on open. The file is
readable by its user only. Totals are summed from the intervals, so a run that was killed
before it could end still counts in "the cost of experimenting".
"""

from carbonlog.ledger.paths import ENV_HOME, FILE_NAME, default_path
from carbonlog.ledger.records import (
    STATUSES,
    GroupTotal,
    IntervalRecord,
    LedgerError,
    RunInfo,
    RunRecord,
    normalize_tags,
)
from carbonlog.ledger.schema import SCHEMA_VERSION
from carbonlog.ledger.store import Ledger

__all__ = [
    "ENV_HOME",
    "FILE_NAME",
    "SCHEMA_VERSION",
    "STATUSES",
    "GroupTotal",
    "IntervalRecord",
    "Ledger",
    "LedgerError",
    "RunInfo",
    "RunRecord",
    "default_path",
    "normalize_tags",
]
