"""The "carbonlog" logger and say-it-once warnings, so a long run never repeats a complaint."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("carbonlog")
logger.setLevel(logging.INFO)
if not logging.getLogger().hasHandlers():  # as Lightning does: visible without logging set-up
    logger.addHandler(logging.StreamHandler())
    logger.propagate = False

_said: set[str] = set()
_said_lock = threading.Lock()


def warn_once(key: str, message: str) -> bool:
    """Log `message` at WARNING the first time `key` is seen in this process; True if logged."""
    with _said_lock:
        if key in _said:
            return False
        _said.add(key)
    logger.warning(message)
    return True
