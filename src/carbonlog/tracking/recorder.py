"""Observes a run's intervals and writes them to the ledger, on global rank zero only.

The ledger is given a frozen RunInfo and Intervals, never the tracker. The training loop never
waits on it: a write gives up after WRITE_TIMEOUT_S when another process holds the ledger
locked, and a write that cannot be made now (the lock, a full disk) is kept, in order, in a
bounded queue that the next mark and stop flush; the run's beginning is retried the same way.
A run whose writes could not all be made is closed "incomplete", never "completed". A ledger
that cannot be used at all never stops training: the run goes on with its totals in memory.
Whatever a run loses is said once per run, so a second lost run in a notebook is told too.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from carbonlog._log import logger, warn_once
from carbonlog.interval import Interval
from carbonlog.tracking.budget import Budget

WRITE_TIMEOUT_S = 0.05
"""How long one training-loop write waits for another process's lock (readers wait longer)."""
QUEUE_MAX = 1000
"""Writes kept while the ledger cannot take them (about a kilobyte each); later ones are lost."""

_runs = itertools.count(1)


def describe_run(
    name: str | None,
    tags,
    run_info: Mapping[str, object],
    hardware: Mapping[str, list[dict]],
    site: Mapping[str, object],
    budget: Budget,
    launch: Mapping[str, object],
):
    """The frozen description of a run the ledger stores."""
    from carbonlog.ledger import RunInfo, normalize_tags

    pretrained = run_info.get("pretrained")
    return RunInfo(
        name=name,
        framework=run_info.get("framework"),
        stage=run_info.get("stage"),
        model=run_info.get("model") or run_info.get("model_name"),
        base_model=run_info.get("base_model"),
        pretrained=None if pretrained is None else bool(pretrained),
        task=run_info.get("task"),
        tags=normalize_tags(tags),
        hardware=hardware,
        site=site,
        budget_kg=budget.kg,
        budget_kwh=budget.kwh,
        on_budget=budget.action,
        launch=launch,
        search_id=run_info.get("search_id"),
        trial=run_info.get("trial"),
        trial_params=run_info.get("trial_params") or {},
    )


class Recorder:
    """One run's rows in the ledger: begun (or resumed), one per interval, then closed."""

    def __init__(self, ledger: bool | str | os.PathLike):
        self._wanted = ledger
        self.ledger = None
        self.run_id: int | None = None
        self._begin: tuple | None = None  # (info, resume_run_id) from begin() to end()
        self._pending: deque[Callable] = deque()  # write(ledger, run_id), oldest first
        self._lost = 0
        self._busy: Exception | None = None  # why the last flush stopped
        self._unusable = False
        self._said = f"ledger-run-{next(_runs)}"  # say-once key of this run
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether this process writes the ledger (global rank zero, ledger not turned off)."""
        return bool(self._wanted)

    def begin(self, info, resume_run_id: int | None) -> None:
        """Open the ledger and begin the run, or reopen `resume_run_id` when it exists; when
        the ledger cannot take it now, at a later mark."""
        with self._lock:
            if info.started_at is None:
                info = dataclasses.replace(info, started_at=time.time())
            self._begin = (info, resume_run_id)
            self._flush()

    def interval(self, interval: Interval, metrics: Mapping[str, float] | None) -> None:
        """Store a closed interval with the framework's metrics for it."""
        values = dict(metrics or {})
        self._keep(lambda ledger, run_id: ledger.add_interval(run_id, interval, values))

    def annotate(self, interval: Interval, metrics: Mapping[str, float]) -> None:
        """Add metrics the framework reported after `interval` closed (its evaluation)."""
        if metrics:
            values = dict(metrics)
            self._keep(lambda ledger, run_id: ledger.add_metrics(run_id, interval, values))

    def reopened_run(self, run_id: int):
        """What the ledger holds of `run_id` when this recorder reopened it, else None."""
        if self.ledger is None or self.run_id != run_id:
            return None
        try:
            return self.ledger.run(run_id)
        except Exception as exc:
            warn_once("ledger-resume", f"carbonlog: reading the resumed run failed ({exc})")
            return None

    def end(self, status: str, stop_reason: str | None, duration_s: float) -> None:
        """Close the run with the status the tracker decided ("incomplete" for a completed
        run that lost writes), and the ledger with it."""
        with self._lock:
            if self._begin is None or self._unusable:
                return
            self._flush()
            if self.run_id is None:
                self._say(
                    f"carbonlog: the run ledger could not be written during the run "
                    f"({self._busy}); this run is not recorded, its totals are in its summary"
                )
            else:
                self._close(status, stop_reason, duration_s)
            self._shut()
            self._begin = None  # the run is over: nothing after it is recorded

    # -- internals ---------------------------------------------------------------------------

    def _keep(self, write: Callable) -> None:
        """Queue `write` behind the writes still waiting, then make what can be made now."""
        with self._lock:
            if self._begin is None or self._unusable:
                return
            self._pending.append(write)
            self._flush()
            if len(self._pending) > QUEUE_MAX:
                self._pending.pop()  # the newest: what is stored stays the run's beginning
                self._lose(f"{QUEUE_MAX} writes are waiting ({self._busy})")

    def _flush(self) -> None:
        """Open, begin, then the queued writes in order, up to the first the ledger cannot
        take now; the rest waits for the next call."""
        try:
            if self.ledger is None:
                from carbonlog.ledger import Ledger

                path = None if self._wanted is True else self._wanted
                self.ledger = Ledger(path, busy_timeout_s=WRITE_TIMEOUT_S)
            if self.run_id is None:
                self.run_id = self._begin_run()
            while self._pending:
                self._write(self._pending[0])
                self._pending.popleft()
        except Exception as exc:
            from carbonlog.ledger import LedgerBusy

            if not isinstance(exc, LedgerBusy):  # the ledger cannot be opened or begun at all
                self._unusable = True
                self._shut()
                self._say(
                    f"carbonlog: the run ledger is unavailable ({exc}); "
                    "training goes on and totals are kept in memory"
                )
                return
            self._busy = exc
            logger.debug("carbonlog: %d ledger writes wait: %s", len(self._pending), exc)

    def _begin_run(self) -> int:
        info, resume_run_id = self._begin
        if resume_run_id is not None and self.ledger.resume_run(resume_run_id):
            return resume_run_id
        return self.ledger.begin_run(info)

    def _write(self, write: Callable) -> None:
        """One queued write; LedgerBusy goes up (retry it later), any other failure loses it."""
        from carbonlog.ledger import LedgerBusy

        try:
            write(self.ledger, self.run_id)
        except LedgerBusy:
            raise
        except Exception as exc:
            self._lose(str(exc))

    def _close(self, status: str, stop_reason: str | None, duration_s: float) -> None:
        """End the begun run; writes still waiting are lost, so it is not "completed"."""
        waiting = len(self._pending)
        self._pending.clear()
        self._lost += waiting
        if self._lost:
            status = "incomplete" if status == "completed" else status
            note = f"{self._lost} writes to the ledger could not be made"
            stop_reason = f"{stop_reason}; {note}" if stop_reason else note
        try:
            self.ledger.end_run(self.run_id, status, stop_reason, duration_s)
        except Exception as exc:
            lacking = f", without {self._lost} of its writes" if self._lost else ""
            self._say(
                f"carbonlog: the run ledger could not take the end of run {self.run_id} "
                f'({exc}); it stays "running" there{lacking}'
            )
            return
        if waiting:
            self._say(
                f"carbonlog: the run ledger could not take {waiting} writes by the end of run "
                f'{self.run_id} ({self._busy}); it is stored as "{status}"'
            )

    def _lose(self, why: str) -> None:
        self._lost += 1
        run = "this run" if self.run_id is None else f"run {self.run_id}"
        self._say(
            f"carbonlog: a write to the run ledger was lost ({why}); training goes on, and "
            f"{run} will not be stored as completed"
        )

    def _say(self, message: str) -> None:
        warn_once(self._said, message)

    def _shut(self) -> None:
        if self.ledger is not None:
            ledger, self.ledger = self.ledger, None
            try:
                ledger.close()
            except Exception as exc:  # closing a connection SQLite already gave up on
                logger.debug("carbonlog: closing the run ledger: %s", exc)
