"""A run's exporters, as the Tracker drives them: opened at start with the run's labels on
global rank zero, given each interval as it closes, closed at stop. An exporter never breaks
training: one that fails is said once and left out of the rest of the run. And the check that
an exporter's library is installed, with the pip extra to install."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from carbonlog._log import warn_once
from carbonlog.errors import ConfigurationError
from carbonlog.export.series import run_labels, values_of
from carbonlog.interval import Interval


@runtime_checkable
class Exporter(Protocol):
    """What the Tracker calls: `open` once a run starts (the run's labels), `publish` per
    interval (its figures under the schema's bare names, carbonlog.metrics), `close` at stop."""

    def open(self, labels: Mapping[str, str]) -> None: ...

    def publish(self, values: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


def check_exporters(exporters: Sequence[Exporter] | None) -> tuple[Exporter, ...]:
    """The exporters as a tuple; a ConfigurationError for anything that is not one."""
    if exporters is None:
        return ()
    if isinstance(exporters, Exporter | str) or not isinstance(exporters, Sequence):
        raise ConfigurationError(f"exporters must be a list of exporters, got {exporters!r}")
    wrong = [e for e in exporters if not isinstance(e, Exporter)]
    if wrong:
        raise ConfigurationError(
            f"exporters: {wrong[0]!r} is not an exporter (open, publish and close; "
            "see carbonlog.export)"
        )
    return tuple(exporters)


class Exports:
    """The run's exporters on global rank zero (`active`), none elsewhere: the figures are the
    same on every rank after the one sum, so one process publishes the job's."""

    def __init__(self, exporters: Sequence[Exporter] | None, active: bool = True):
        checked = check_exporters(exporters)  # on every rank alike: a bad one fails everywhere
        self._exporters = checked if active else ()
        self._open: list[Exporter] = []

    def open(
        self,
        run_id: int | None,
        run_name: str | None,
        run_info: Mapping[str, object],
        launch: Mapping[str, object],
    ) -> None:
        """Open every exporter with the run's labels (see series.run_labels)."""
        labels = run_labels(run_id, run_name, run_info, launch)
        for exporter in self._exporters:
            if self._guarded(exporter, "open", labels):
                self._open.append(exporter)

    def interval(self, interval: Interval) -> None:
        """The interval's figures to every open exporter (built once, for all)."""
        if not self._open:
            return
        values = values_of(interval)
        for exporter in list(self._open):
            if not self._guarded(exporter, "publish", values):
                self._open.remove(exporter)
                self._guarded(exporter, "close")

    def close(self) -> None:
        """Close every open exporter (a server shut, a provider flushed)."""
        for exporter in self._open:
            self._guarded(exporter, "close")
        self._open = []

    @staticmethod
    def _guarded(exporter: Exporter, step: str, *args) -> bool:
        try:
            getattr(exporter, step)(*args)
        except Exception as exc:
            name = type(exporter).__name__
            warn_once(
                f"export:{name}:{step}",
                f"carbonlog: the {name} failed to {step} ({exc}); the run goes on without it",
            )
            return False
        return True


def require(module: str, extra: str, needs: str) -> None:
    """The exporter's ImportError naming the pip extra to install, unless `module` is found."""
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is absent
        found = False
    if not found:
        raise ImportError(
            f'carbonlog\'s {extra} exporter needs {needs}: pip install "carbonlog[{extra}]"'
        )
