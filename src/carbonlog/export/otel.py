"""The run's figures as OpenTelemetry metrics: observable instruments (series.SERIES) that read
the last interval when the SDK collects, so a mark costs a swap, not an export."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from carbonlog._version import __version__
from carbonlog.export.exports import require
from carbonlog.export.series import COUNTER, SERIES, Series

PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
"""The OTLP transport, as the OpenTelemetry specification names its variables; http/protobuf
(the specification's default) unless one of them says grpc."""


class OtelExporter:
    """The run's figures as OpenTelemetry metrics (`carbonlog.energy` in kW.h, `carbonlog.co2`
    in kg, the last interval's gauges), with the run's labels as attributes, on global rank
    zero. Through your `meter_provider` (an InMemoryMetricReader's, your own OTLP set-up); else
    through a provider of the run's own, built as the run opens and shut down (flushed) as it
    stops, that sends them over OTLP to the collector the standard OTEL_* variables name
    (OTEL_EXPORTER_OTLP_ENDPOINT, _HEADERS, _PROTOCOL, OTEL_METRIC_EXPORT_INTERVAL,
    OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES). Nothing is sent before a run opens it.
    """

    def __init__(self, meter_provider: Any = None):
        if meter_provider is None:
            require("opentelemetry.sdk", "otel", "opentelemetry-sdk")
            require("opentelemetry.exporter.otlp", "otel", "opentelemetry-exporter-otlp")
        else:
            require("opentelemetry.metrics", "otel", "opentelemetry-api")
        self._given = meter_provider
        self._provider: Any = None
        self._board: _Board | None = None

    def open(self, labels: Mapping[str, str]) -> None:
        self._provider = self._given if self._given is not None else _otlp_provider()
        self._board = _board_of(self._provider)
        self._board.runs[id(self)] = (dict(labels), {})

    def publish(self, values: Mapping[str, float]) -> None:
        labels, _ = self._board.runs[id(self)]
        self._board.runs[id(self)] = (labels, values)  # a collection reads one interval's

    def close(self) -> None:
        provider, board = self._provider, self._board
        if provider is None:
            return
        self._provider = self._board = None
        if provider is self._given:
            provider.force_flush()  # the last interval reaches your exporters; yours to shut
        else:
            provider.shutdown()  # collects once more, exports, stops the reader's thread
        board.runs.pop(id(self), None)


class _Board:
    """A provider's carbonlog instruments, made once (the SDK keeps the first of a name), and
    the figures of each run open on it, which their callbacks read at each collection."""

    def __init__(self, provider: Any):
        self.runs: dict[int, tuple[dict[str, str], Mapping[str, float]]] = {}
        meter = provider.get_meter("carbonlog", __version__)
        for series in SERIES:
            create = (
                meter.create_observable_counter
                if series.kind == COUNTER
                else meter.create_observable_gauge
            )
            create(series.name, [self._reader(series)], unit=series.unit, description=series.help)

    def _reader(self, series: Series):
        """The instrument's callback: the series' points of each open run, labelled."""
        from opentelemetry.metrics import Observation

        def observe(_options) -> Iterator[Any]:
            for labels, values in list(self.runs.values()):
                for component, value in series.points(values):
                    attributes = {**labels, "component": component} if component else labels
                    yield Observation(value, attributes)

        return observe


_boards: weakref.WeakKeyDictionary[Any, _Board] = weakref.WeakKeyDictionary()
_boards_lock = threading.Lock()


def _board_of(provider: Any) -> _Board:
    with _boards_lock:
        board = _boards.get(provider)
        if board is None:
            board = _boards[provider] = _Board(provider)
        return board


def _otlp_provider() -> Any:
    """A MeterProvider that exports over OTLP every OTEL_METRIC_EXPORT_INTERVAL (the SDK's
    default: 60 s), to where the OTEL_EXPORTER_OTLP_* variables say."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    protocol = next((os.environ[v] for v in PROTOCOL_VARS if os.environ.get(v)), "http/protobuf")
    if protocol.strip() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    return MeterProvider(metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())])
