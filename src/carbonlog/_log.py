"""The "carbonlog" logger and say-it-once warnings, so a long run never repeats a complaint."""

from __future__ import annotations

import logging
import threading


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


def warn_once(key: str, message: str) -> bool:
    """Log `message` at WARNING the first time `key` is seen in this process; True if logged."""
    with _said_lock:
        if key in _said:
            return False
        _said.add(key)
    logger.warning(message)
    return True
