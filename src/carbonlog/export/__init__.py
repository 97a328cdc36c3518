"""The run's figures for cluster monitoring, off by default: OpenTelemetry metrics and a
Prometheus endpoint, on global rank zero, labelled with the run.

    from carbonlog.export import PrometheusExporter
    carbonlog.track(location="FR", exporters=[PrometheusExporter(port=9464)])

Importing this costs nothing: each exporter imports its library when the run opens it.
"""

from carbonlog.export.exports import Exporter, Exports, check_exporters
from carbonlog.export.otel import OtelExporter
from carbonlog.export.prometheus import PrometheusExporter

__all__ = ["Exporter", "Exports", "OtelExporter", "PrometheusExporter", "check_exporters"]
