"""Keeps the load generator (benchmarks/load.py) from rotting: a few seconds against a real
one-node cluster, tiny objects, every workload, asyncio and blocking clients; checks the
JSON lines it writes. Figures are never asserted (STYLE section 4). Never against Swift:
CI has none.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import load
from cairn.cluster.launcher import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FIELDS = {"schema", "target", "workload", "phase", "size", "size_bytes", "concurrency",
          "client", "ops", "errors", "error_count", "elapsed_s", "ops_s", "mb_s",
          "latency_ms", "latency_ms_quantiles", "server_cpu_s", "server_cpu_ms_per_op",
          "client_cpu_ms_per_op", "server_pids", "time_utc"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with LocalCluster(tmp_path_factory.mktemp("load-smoke"), nodes=1,
                      node_args=["--sync", "always"]) as c:
        yield c


@pytest.mark.parametrize(("workload", "extra"), [
    ("put", ["--duration", "1"]),
    ("get", ["--duration", "0.5", "--keys", "10"]),
    ("mix", ["--duration", "0.5", "--keys", "10", "--sync"]),
    ("delete", ["--count", "10"]),
    ("list", ["--count", "5", "--keys", "10"]),
])
def test_each_workload_writes_its_phases(cluster, tmp_path, workload, extra):
    out = tmp_path / "out.jsonl"
    rc = load.main(["--target", "cairn", "--seeds", ",".join(cluster.seeds),
                    "--workload", workload, "--size", "1k", "--concurrency", "2",
                    "--json", str(out), *extra])

    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["phase"] for r in lines] == load.phases_of(workload)
    for r in lines:
        assert set(r) >= FIELDS
        assert r["target"] == "cairn"
        assert r["workload"] == workload
        assert r["size_bytes"] == 1024
        assert r["ops"] > 0
        assert r["errors"] == {}
        assert r["ops_s"] > 0
        assert r["server_pids"] == 1  # the node, found by its port
        assert r["server_cpu_ms_per_op"] >= 0
        lat = r["latency_ms"]
        assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert len(r["latency_ms_quantiles"]) == load.QUANTILES + 1
    assert lines[-1]["client"] == ("sync" if "--sync" in extra else "async")
    if workload == "delete":
        assert lines[-1]["ops"] == 10


def test_percentile_is_nearest_rank():
    xs = [float(i) for i in range(1, 101)]
    assert load.percentile(xs, 50) == 50.0
    assert load.percentile(xs, 99) == 99.0
    assert load.percentile(xs, 100) == 100.0
    assert load.percentile([], 50) == 0.0
    assert load.parse_size("64k") == 65536
    assert load.parse_size("1m") == 1 << 20
