"""A Prometheus endpoint of the run's figures (prometheus-client), served over HTTP from the
run's start to its stop: `carbonlog_energy_kwh_total`, `carbonlog_co2_kg_total`, and the last
interval's gauges (series.SERIES), labelled with the run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from carbonlog.errors import ConfigurationError
from carbonlog.export.exports import require
from carbonlog.export.series import COUNTER, SERIES


class PrometheusExporter:
    """Serves the run's figures at `http://<addr>:<port>/metrics` while it runs, on global rank
    zero (port 0: a free port, read from `port` once open); or, with `port=None`, adds them to
    your `registry`, which your own endpoint serves. Each mark only swaps the values a scrape
    reads; the server is shut down when the run stops.

    `addr` is where the server listens: every interface by default, as a scraper on another
    host needs ("127.0.0.1" keeps it to this machine).
    """

    def __init__(self, port: int | None, addr: str = "0.0.0.0", registry: Any = None):
        require("prometheus_client", "prometheus", "prometheus-client")
        if port is None and registry is None:
            raise ConfigurationError("PrometheusExporter needs a port, or a registry to join")
        if port is not None and (
            not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535
        ):
            raise ConfigurationError(f"port must be an integer from 0 to 65535, got {port!r}")
        self._port, self._addr, self._registry = port, addr, registry
        self._labels: dict[str, str] = {}
        self._values: Mapping[str, float] = {}
        self._joined: Any = None
        self._server: Any = None
        self._thread: Any = None

    @property
    def port(self) -> int | None:
        """The port served on: the one bound while the run is open, else the one asked for."""
        return self._server.server_port if self._server is not None else self._port

    def open(self, labels: Mapping[str, str]) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        self._labels, self._values = dict(labels), {}
        registry = self._registry if self._registry is not None else CollectorRegistry()
        if self._port is not None:  # first: a port taken leaves your registry as it was
            self._server, self._thread = start_http_server(self._port, self._addr, registry)
        registry.register(self)
        self._joined = registry

    def publish(self, values: Mapping[str, float]) -> None:
        self._values = values  # replaced whole: a scrape reads one interval's figures

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None
        if self._joined is not None:
            self._joined.unregister(self)
            self._joined = None

    def collect(self) -> Iterator[Any]:
        """The registry's call at each scrape: a family per series, from the last interval."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        values, labels = self._values, self._labels
        for series in SERIES:
            points = series.points(values)
            if not points:
                continue
            family = CounterMetricFamily if series.kind == COUNTER else GaugeMetricFamily
            component = any(c is not None for c, _ in points)
            names = [*labels, "component"] if component else list(labels)
            metric = family(
                series.prometheus_name, series.help, labels=names, unit=series.prometheus_unit
            )
            for name, value in points:
                metric.add_metric([*labels.values(), *([name] if component else [])], value)
            yield metric

    def describe(self) -> list[Any]:
        """Nothing to describe ahead of a scrape (the registry then skips a first collect)."""
        return []
