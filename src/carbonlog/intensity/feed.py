"""A live intensity source as the training loop sees it: asked in the background, read from memory.

An interval edge never waits on the network (DESIGN.md). `LiveFeed.read()` returns what the
asks completed so far gave, at once, and starts the next ask in a daemon thread when none is
in flight: at most one request at a time, whatever the source. A figure outside
PLAUSIBLE_G_PER_KWH counts as a failure, so one wild answer cannot price a whole run.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

PLAUSIBLE_G_PER_KWH = (0.0, 2000.0)
"""Live figures outside this range are refused: the dirtiest grids average about 1,300 g/kWh
(lignite plants emit about 1,200 at the stack), so 2,000 leaves headroom for a bad hour."""
MAX_AGE_S = 2 * 3600.0
"""How long the last good answer stands in while the source fails (its figures are hourly)."""
ASK_GAP_S = 0.25
"""The least time between two asks' starts, so per-step peeks do not start a thread each."""

Answer = tuple[float, str]  # (g CO2e/kWh, source)


def plausible(g_per_kwh: float) -> bool:
    """True for a finite figure within PLAUSIBLE_G_PER_KWH."""
    low, high = PLAUSIBLE_G_PER_KWH
    return math.isfinite(g_per_kwh) and low <= g_per_kwh <= high


def checked(value) -> float:
    """A live source's figure as g/kWh; a ValueError unless it is a plausible number."""
    try:
        g_per_kwh = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        g_per_kwh = math.nan
    if not plausible(g_per_kwh):
        low, high = PLAUSIBLE_G_PER_KWH
        raise ValueError(
            f"implausible live carbon intensity {value!r} g/kWh (plausible: {low:g} to {high:g})"
        )
    return g_per_kwh


class LiveFeed:
    """The answers of `source.latest(zone)`, asked from a daemon thread, one ask at a time.

    `read()` gives (answer, failure): the last good answer while it is under MAX_AGE_S old
    (None before the first), and the exception of the newest completed ask if it failed.
    """

    def __init__(self, source, zone: str | None, clock: Callable[[], float] = time.monotonic):
        self._source, self._zone, self._clock = source, zone, clock
        self._lock = threading.Lock()
        self._good: tuple[float, Answer] | None = None  # (received at, answer)
        self._failure: Exception | None = None
        self._asking = False
        self._asked_at_s = -math.inf

    def ask(self) -> None:
        """Start an ask in a daemon thread, unless one is in flight or began ASK_GAP_S ago."""
        with self._lock:
            now_s = self._clock()
            if self._asking or now_s - self._asked_at_s < ASK_GAP_S:
                return
            self._asking, self._asked_at_s = True, now_s
        threading.Thread(target=self._ask, name="carbonlog-live", daemon=True).start()

    def read(self) -> tuple[Answer | None, Exception | None]:
        """What is in memory now, never waiting; then asks again for the next read."""
        with self._lock:
            now_s = self._clock()
            good, failure = self._good, self._failure
        self.ask()
        if good is None or now_s - good[0] > MAX_AGE_S:
            return None, failure
        return good[1], failure

    def _ask(self) -> None:
        """One ask of the source; its answer or its failure lands in memory."""
        answer = failure = None
        try:
            value, source = self._source.latest(self._zone)
            answer = (checked(value), str(source))
        except Exception as exc:  # the tracker never breaks training: the Site reports it
            failure = exc
        with self._lock:
            if answer is not None:
                self._good = (self._clock(), answer)
            self._failure = failure
            self._asking = False
