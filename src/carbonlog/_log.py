"""The "carbonlog" logger, the one warning channel: said once, and said where it belongs.

A warning every rank would give alike (no location set, the budget) is said on global rank
zero alone, so 1,000 GPUs print it once; a fault of this process's own (its meter, its sum)
is said by that process, with its rank.
"""

from __future__ import annotations

import logging
import threading

from carbonlog.distributed import Ranks


class _UnconfiguredHandler(logging.StreamHandler):
    """Prints carbonlog's messages (to stderr) while the application has configured no
    logging at all; once the root logger has a handler, messages go there alone."""

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            super().emit(record)


logger = logging.getLogger("carbonlog")
logger.setLevel(logging.INFO)
logger.addHandler(_UnconfiguredHandler())

_said: set[str] = set()
_said_lock = threading.Lock()
_ranks: Ranks | None = None


def use_ranks(ranks: Ranks) -> None:
    """The ranks a framework gave this process (else they are read from the environment)."""
    global _ranks
    _ranks = ranks


def say(message: str, *, own: bool = False, level: int = logging.WARNING) -> bool:
    """Log `message` on global rank zero, or on this rank with its rank when `own`."""
    ranks = _ranks or Ranks.from_env()
    if not own and not ranks.is_global_zero:
        logger.debug("%s (said on rank 0)", message)
        return False
    if own and ranks.is_distributed:
        message = message.replace("carbonlog:", f"carbonlog (rank {ranks.rank}):", 1)
    logger.log(level, message)
    return True


def warn_once(key: str, message: str, *, own: bool = False) -> bool:
    """`say` the warning the first time `key` is seen in this process; True if it was said."""
    with _said_lock:
        if key in _said:
            return False
        _said.add(key)
    return say(message, own=own)
