"""Prometheus metrics of one node, served over HTTP when ``metrics_listen`` is set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cairn.node.storage import Engine


class Metrics:
    """Request counters and latencies, plus engine state read at scrape time."""

    def __init__(self, engine: Engine, extra: Callable[[], dict[str, float]] | None = None
                 ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("cairn_requests_total", "RPCs answered, by method and code",
                                ["method", "code"], registry=self.registry)
        self.latency = Histogram("cairn_request_seconds", "RPC latency by method", ["method"],
                                 registry=self.registry,
                                 buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5,
                                          1, 2.5, 5, 10))
        self.bytes_in = Counter("cairn_bytes_in_total", "object bytes received",
                                registry=self.registry)
        self.bytes_out = Counter("cairn_bytes_out_total", "object bytes sent",
                                 registry=self.registry)
        self.registry.register(_EngineCollector(engine, extra))


class _EngineCollector(Collector):
    def __init__(self, engine: Engine, extra: Callable[[], dict[str, float]] | None) -> None:
        self.engine = engine
        self.extra = extra

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("cairn_disk_ok", "1 if the disk serves reads and writes",
                               labels=["path", "state"])
        objects = GaugeMetricFamily("cairn_disk_objects", "objects indexed", labels=["path"])
        live = GaugeMetricFamily("cairn_disk_live_bytes", "bytes of live records",
                                 labels=["path"])
        dead = GaugeMetricFamily("cairn_disk_dead_bytes", "bytes compaction can reclaim",
                                 labels=["path"])
        free = GaugeMetricFamily("cairn_disk_free_bytes", "free bytes", labels=["path"])
        bad = GaugeMetricFamily("cairn_disk_integrity_errors", "checksum failures seen",
                                labels=["path"])
        for d in self.engine.status():
            up.add_metric([d.path, d.state], 1.0 if d.state == "ok" else 0.0)
            objects.add_metric([d.path], d.objects)
            live.add_metric([d.path], d.live_bytes)
            dead.add_metric([d.path], d.dead_bytes)
            free.add_metric([d.path], d.free_bytes)
            bad.add_metric([d.path], d.integrity_errors)
        yield from (up, objects, live, dead, free, bad)
        if self.extra is not None:
            for name, value in self.extra().items():
                g = GaugeMetricFamily(f"cairn_{name}", name)
                g.add_metric([], value)
                yield g
