"""The exporters for cluster monitoring: series names, the run's labels, the Tracker's hook
(global rank zero only, one publish per interval, a failing exporter left out), a Prometheus
endpoint scraped over HTTP on 127.0.0.1, and OpenTelemetry through the SDK's in-memory reader
and over OTLP/HTTP to a collector on 127.0.0.1."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from carbonlog import Tracker, metrics
from carbonlog.distributed import Ranks
from carbonlog.errors import ConfigurationError
from carbonlog.export import OtelExporter, PrometheusExporter, check_exporters
from carbonlog.export.series import SERIES, run_labels
from carbonlog.session import Session

POWER_W = {"cpu": 30.0, "ram": 3.0}  # constant power: energy is watts x seconds
TRACKER = {"location": "FR", "intensity": 100.0, "gpus": None, "power_w": POWER_W, "pue": 1.5}


class Recording:
    """An exporter of the user's own: it records what the Tracker hands it."""

    def __init__(self, fail_at: str | None = None):
        self.calls: list[tuple[str, object]] = []
        self.fail_at = fail_at

    def _called(self, step: str, arg: object = None) -> None:
        self.calls.append((step, arg))
        if step == self.fail_at:
            raise RuntimeError(f"{step} broke")

    def open(self, labels):
        self._called("open", dict(labels))

    def publish(self, values):
        self._called("publish", dict(values))

    def close(self):
        self._called("close")


def tracker(tmp_path, exporters, **options) -> Tracker:
    return Tracker(
        ledger=str(tmp_path / "ledger.sqlite3"), exporters=exporters, **TRACKER, **options
    )


def scrape(port: int) -> dict[str, list]:
    """The endpoint's families by name, each a list of (labels, value)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def test_series_names_follow_prometheus_conventions():
    names = {s.prometheus_name: s.kind for s in SERIES}
    assert names == {
        "carbonlog_energy_kwh": "counter",  # exposed as carbonlog_energy_kwh_total
        "carbonlog_co2_kg": "counter",
        "carbonlog_interval_energy_kwh": "gauge",
        "carbonlog_interval_co2_kg": "gauge",
        "carbonlog_interval_device_energy_kwh": "gauge",
        "carbonlog_interval_duration_seconds": "gauge",
        "carbonlog_power_watts": "gauge",
        "carbonlog_intensity_g_per_kwh": "gauge",
        "carbonlog_forecast_energy_kwh": "gauge",
        "carbonlog_forecast_co2_kg": "gauge",
    }


def test_run_labels_are_those_known():
    labels = run_labels(7, None, {"task": "sst2", "base_model": "bert-base"}, {"world_size": 2})
    assert labels == {"run_id": "7", "task": "sst2", "model": "bert-base"}
    launch = {"slurm_job_id": "4242"}
    assert run_labels(None, "a", {"model": "mlp"}, launch) == {
        "run_name": "a",
        "model": "mlp",
        "slurm_job_id": "4242",
    }


def test_what_is_not_a_list_of_exporters_fails_at_construction():
    assert check_exporters(None) == ()
    with pytest.raises(ConfigurationError, match="a list of exporters"):
        check_exporters(Recording())
    with pytest.raises(ConfigurationError, match="is not an exporter"):
        check_exporters([object()])
    with pytest.raises(ConfigurationError, match="is not an exporter"):
        Session("test", exporters=["prometheus"], **TRACKER)
    with pytest.raises(ConfigurationError, match="port must be"):
        PrometheusExporter(port=70000)


def test_the_tracker_opens_publishes_every_interval_and_closes(tmp_path):
    seen = Recording()
    t = tracker(tmp_path, [seen], run_name="r", task="sst2").start()
    first = t.mark("epoch")
    t.mark("epoch")
    summary = t.stop()
    steps = [step for step, _ in seen.calls]
    assert steps == ["open", "publish", "publish", "publish", "close"]  # 2 marks and the stop
    assert seen.calls[0][1] == {"run_id": str(summary.run_id), "run_name": "r", "task": "sst2"}
    assert seen.calls[1][1] == metrics.to_dict(first, prefix="", keys="full")  # the schema
    assert seen.calls[1][1]["cpu_kwh"] == pytest.approx(30.0 * first.duration_s / 3.6e6, 1e-3)
    assert seen.calls[3][1]["energy_kwh_total"] == summary.energy_kwh


def test_only_global_rank_zero_exports(tmp_path):
    seen = Recording()
    ranks = Ranks(rank=1, local_rank=1, world_size=2)
    t = tracker(tmp_path, [seen], ranks=ranks, reduce=lambda values: values).start()
    t.mark("epoch")
    t.stop()
    assert seen.calls == []


def test_a_failing_exporter_is_said_once_and_left_out(tmp_path, carbon_warnings):
    broken, fine = Recording(fail_at="publish"), Recording()
    t = tracker(tmp_path, [broken, fine]).start()
    for _ in range(3):
        t.mark("epoch")
    t.stop()
    assert [step for step, _ in broken.calls] == ["open", "publish", "close"]
    assert [step for step, _ in fine.calls].count("publish") == 4
    said = [r.getMessage() for r in carbon_warnings if "Recording" in r.getMessage()]
    assert said == [
        "carbonlog: the Recording failed to publish (publish broke); the run goes on without it"
    ]


def test_prometheus_endpoint_is_scraped_and_shut_down_at_stop(tmp_path):
    exporter = PrometheusExporter(port=0, addr="127.0.0.1")
    t = tracker(tmp_path, [exporter], task="sst2", planned_epochs=4).start()
    time.sleep(0.02)
    t.mark("epoch")
    time.sleep(0.02)
    interval = t.mark("epoch")
    port = exporter.port
    assert port
    families = scrape(port)
    labels = {"run_id": str(t.run_id), "task": "sst2"}
    assert families["carbonlog_energy_kwh"] == [(labels, interval.energy_kwh_total)]
    assert families["carbonlog_co2_kg"] == [(labels, interval.co2_kg_total)]
    assert families["carbonlog_power_watts"] == [(labels, interval.power_w)]
    assert families["carbonlog_intensity_g_per_kwh"] == [(labels, 100.0)]
    assert families["carbonlog_interval_duration_seconds"] == [(labels, interval.duration_s)]
    components = dict(
        (s[0]["component"], s[1]) for s in families["carbonlog_interval_device_energy_kwh"]
    )
    assert components == {"gpu": 0.0, "cpu": interval.cpu_j / 3.6e6, "ram": interval.ram_j / 3.6e6}
    assert families["carbonlog_forecast_co2_kg"] == [(labels, interval.forecast_co2_kg)]
    t.stop()
    with pytest.raises(urllib.error.URLError):
        scrape(port)


def test_prometheus_text_names_counters_with_total(tmp_path):
    registry = CollectorRegistry()
    exporter = PrometheusExporter(port=None, registry=registry)
    t = tracker(tmp_path, [exporter]).start()
    interval = t.mark("epoch")
    text = generate_latest(registry).decode()
    assert (
        f'carbonlog_energy_kwh_total{{run_id="{t.run_id}"}} {interval.energy_kwh_total!r}' in text
    )
    assert (
        "# TYPE carbonlog_co2_kg_total counter" in text or "# TYPE carbonlog_co2_kg counter" in text
    )
    t.stop()
    assert "carbonlog_" not in generate_latest(registry).decode()  # unregistered at stop


def test_a_port_taken_is_said_and_training_goes_on(tmp_path, carbon_warnings):
    first = PrometheusExporter(port=0, addr="127.0.0.1")
    t1 = Tracker(ledger=False, exporters=[first], **TRACKER).start()
    second = PrometheusExporter(port=first.port, addr="127.0.0.1")
    t2 = Tracker(ledger=False, exporters=[second], **TRACKER).start()
    assert t2.mark("epoch").energy_kwh_total > 0
    t2.stop(), t1.stop()
    assert any("PrometheusExporter failed to open" in r.getMessage() for r in carbon_warnings)


def otel_points(reader: InMemoryMetricReader) -> dict[str, tuple[object, list]]:
    """Each metric's data type and its points as (attributes, value)."""
    found = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points = [(dict(p.attributes), p.value) for p in metric.data.data_points]
                found[metric.name] = (metric.data, metric.unit, points)
    return found


def test_otel_metrics_through_the_users_provider(tmp_path):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    t = tracker(tmp_path, [OtelExporter(meter_provider=provider)], model="mlp").start()
    t.mark("epoch")
    interval = t.mark("epoch")
    found = otel_points(reader)
    labels = {"run_id": str(t.run_id), "model": "mlp"}
    data, unit, points = found["carbonlog.energy"]
    assert data.is_monotonic and unit == "kW.h"
    assert points == [(labels, interval.energy_kwh_total)]
    assert found["carbonlog.co2"][2] == [(labels, interval.co2_kg_total)]
    assert found["carbonlog.power"][1:] == ("W", [(labels, interval.power_w)])
    devices = {a["component"]: v for a, v in found["carbonlog.interval.device_energy"][2]}
    assert set(devices) == {"gpu", "cpu", "ram"}
    summary = t.stop()
    assert otel_points(reader)["carbonlog.energy"][2] == [(labels, summary.energy_kwh)]
    # a second run on the same provider: the same instruments, a series of the new run's own
    t2 = tracker(tmp_path, [OtelExporter(meter_provider=provider)]).start()
    t2.mark("epoch")
    runs = [attributes for attributes, _ in otel_points(reader)["carbonlog.energy"][2]]
    assert {"run_id": str(t2.run_id)} in runs
    t2.stop()
    assert summary.run_id != t2.run_id


class Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP metrics receiver on 127.0.0.1: it keeps each request's body."""

    bodies: list[bytes] = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        Collector.bodies.append((self.path, self.headers.get("x-team"), self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_otel_over_otlp_goes_where_the_otel_variables_say(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Collector.bodies = []
    endpoint = f"http://127.0.0.1:{server.server_port}/v1/metrics"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ml")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "trainer")
    try:
        exporter = OtelExporter()
        t = tracker(tmp_path, [exporter], task="sst2").start()
        assert Collector.bodies == []  # nothing sent before the SDK's export interval
        t.mark("epoch")
        summary = t.stop()  # the provider's shutdown exports what it holds
    finally:
        server.shutdown()
        server.server_close()
    assert Collector.bodies, "nothing reached the collector"
    path, team, body = Collector.bodies[-1]
    assert (path, team) == ("/v1/metrics", "ml")
    request = ExportMetricsServiceRequest.FromString(body)
    resource = request.resource_metrics[0]
    service = {a.key: a.value.string_value for a in resource.resource.attributes}
    assert service["service.name"] == "trainer"
    metrics = {m.name: m for s in resource.scope_metrics for m in s.metrics}
    energy = metrics["carbonlog.energy"].sum.data_points[0]
    assert energy.as_double == pytest.approx(summary.energy_kwh, rel=1e-12)
    attributes = {a.key: a.value.string_value for a in energy.attributes}
    assert attributes == {"run_id": str(summary.run_id), "task": "sst2"}
