"""Keeps benchmarks/sdk_bench.py and benchmarks/cluster_bench.py from rotting: a tiny run
of each (real node processes, real floor servers), checked for its JSON and markdown.

Figures are never asserted (STYLE section 4): only that every cell ran and was reported.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import cluster_bench, sdk_bench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

LARGE = 2 * 1024 * 1024  # over the 1 MiB fast path: the streams are exercised
TINY = ["--sizes", "4096", "--large-bytes", str(LARGE), "--duration", "0.1",
        "--large-duration", "0.05", "--repeats", "1", "--get-keys", "8"]


def _results_file(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other benchmark\n\nkept\n")
    return results


def _check_cell(cell):
    assert cell["ops_s"] > 0
    assert cell["ops"] > 0
    assert cell["server_cpu_ms_per_op"] >= 0
    assert cell["client_cpu_ms_per_op"] >= 0
    assert len(cell["runs_ops_s"]) == 1


def test_sdk_bench_tiny_run(tmp_path):
    out, results = tmp_path / "sdk.json", _results_file(tmp_path)
    sdk_bench.main(["--dir", str(tmp_path / "data"), "--out", str(out), "--results",
                    str(results), "--concurrency", "1,2", "--sync-threads", "2", *TINY])

    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m benchmarks.sdk_bench")
    for field in ("nproc", "memory_gib", "filesystem", "python", "grpcio", "git_commit",
                  "date_utc", "disk_rotational"):
        assert field in data["machine"]
    summary = data["summary"]
    assert {(r["op"], r["size_bytes"], r["concurrency"]) for r in summary["small"]} == {
        (op, 4096, c) for op in ("put", "get") for c in (1, 2)}
    for row in summary["small"]:
        _check_cell(row["sdk"])
        _check_cell(row["floor"])
        assert row["ratio"] > 0
        assert row["goal"] in (0.5, 0.6)
    assert {(r["op"], r["threads"]) for r in summary["sync_client"]} == {("put", 2), ("get", 2)}
    assert {r["op"] for r in summary["large"]} == {"upload", "download", "put", "get"}
    for row in summary["large"]:
        assert row["size_bytes"] == LARGE
        assert row["sdk"]["mb_s"] > 0
        assert row["floor"]["mb_s"] > 0
    assert {t["target"].split()[0] for t in summary["targets"]} == {
        "PUT", "GET", "upload", "download"}
    assert all(isinstance(t["met"], bool) for t in summary["targets"])

    text = results.read_text()
    assert "## Other benchmark\n\nkept" in text
    assert "## One node through the SDK" in text
    assert "<!-- sdk_bench:begin -->" in text
    assert "### Targets" in text
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())


def test_cluster_bench_tiny_run(tmp_path):
    out, results = tmp_path / "cluster.json", _results_file(tmp_path)
    cluster_bench.main(["--dir", str(tmp_path / "data"), "--out", str(out), "--results",
                        str(results), "--concurrency", "2", *TINY])

    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m benchmarks.cluster_bench")
    summary = data["summary"]
    assert {(r["op"], r["concurrency"]) for r in summary["small"]} == {("put", 2), ("get", 2)}
    for row in summary["small"]:
        for system in cluster_bench.SYSTEMS:
            _check_cell(row[system])
        assert row["ratio_stream"] > 0
        assert row["ratio_unary"] > 0
        assert row["ratio_one_node"] > 0
    assert {r["op"] for r in summary["large"]} == {"upload", "download"}
    for row in summary["large"]:
        for system in ("cluster", "one-node", "fanout-stream"):
            assert row[system]["mb_s"] > 0
    assert [t["target"] for t in summary["targets"]] == [
        "3-node PUT 4 KiB x2 vs fan-out floor (stream)"]

    text = results.read_text()
    assert "## Other benchmark\n\nkept" in text
    assert "## Three-node cluster" in text
    assert "<!-- cluster_bench:begin -->" in text
