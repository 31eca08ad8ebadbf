"""Fixtures of the observability tests: the conformance suite's backends (``backend_url`` runs
a test once per selected backend) and OpenTelemetry's SDK with in-memory exporters, installed
once per session as the global providers (OpenTelemetry allows one of each per process)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conformance.conftest import backend_name, backend_url  # noqa: F401  (fixtures)
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@dataclass
class Telemetry:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def metric_points(self, name: str) -> list[dict[str, object]]:
        """The data points of metric ``name`` as dicts: attributes and value/count."""
        data = self.reader.get_metrics_data()
        points: list[dict[str, object]] = []
        if data is None:
            return points
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        points.append(
                            {
                                "attributes": dict(point.attributes or {}),
                                "count": getattr(point, "count", None),
                                "value": getattr(point, "value", None),
                            }
                        )
        return points


_SESSION: Telemetry | None = None


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """The session's in-memory span exporter (emptied for each test) and metric reader."""
    global _SESSION
    if _SESSION is None:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        _SESSION = Telemetry(exporter, reader)
    _SESSION.spans.clear()
    yield _SESSION
