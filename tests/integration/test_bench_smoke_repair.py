"""Keeps benchmarks/repair_bench.py from rotting: a tiny run (20 MiB, real node
processes, a real stream-floor receiver), checked for its JSON and markdown.

Figures are never asserted (STYLE section 4): only that every phase ran and was reported.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import repair_bench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TINY = ["--mib", "20", "--partitions", "64", "--duration", "0.2", "--repeats", "1",
        "--floor-repeats", "1", "--get-keys", "8", "--put-keys", "2", "--spot-checks", "2"]


def test_repair_bench_tiny_run(tmp_path):
    out = tmp_path / "repair.json"
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other benchmark\n\nkept\n")
    repair_bench.main(["--dir", str(tmp_path / "data"), "--out", str(out), "--results",
                       str(results), *TINY])

    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m benchmarks.repair_bench")
    for field in ("nproc", "memory_gib", "filesystem", "python", "grpcio", "git_commit",
                  "date_utc", "disk_rotational"):
        assert field in data["machine"]
    assert data["node_env"] == {}  # the node's own anti-entropy interval
    assert data["runs"]["in_sync_pass"]["elapsed_s"] > 0
    assert data["partitions"] == 64
    assert data["data_set"]["bytes"] >= 20 * 1024 * 1024
    assert set(data["data_set"]["by_size"]) == {str(65536), str(1 << 20), str(16 << 20)}

    summary = data["summary"]
    assert summary["load"]["mib_s"] > 0
    for variant in ("disk", "memory"):
        assert summary["floor"][variant]["mib_s"] > 0
    assert [r["name"] for r in summary["rebuilds"]] == [
        "default", "default+foreground", "unlimited", "unlimited+16 partitions at once"]
    probe = data["runs"]["rebuilds"][3]["probe"]
    assert probe["partitions"] == 64
    assert probe["errors"] == 0
    for r in summary["rebuilds"]:
        assert r["objects"] > 0
        assert r["bytes"] > 0
        assert 0 <= r["noticed_s"] <= r["reopened_s"] <= r["data_back_s"] <= r["whole_s"]
        assert r["mib_s_from_wipe"] > 0
        assert r["objects_after"] >= r["objects"]
        assert r["spot_check"]["checked"] > 0
        assert r["spot_check"]["ok"] == r["spot_check"]["checked"], r["spot_check"]
        assert set(r["node_cores"]) == {"1", "2", "3"}
        assert r["stall_kicks"] >= 0
    assert summary["rebuilds"][2]["rate_bytes_s"] == 0
    assert summary["rebuilds"][0]["rate_bytes_s"] == 64 * 1024 * 1024
    assert {(r["op"], r["size_bytes"]) for r in summary["foreground"]} == {
        (op, size) for op in ("put", "get") for size in (4096, 65536)}
    for row in summary["foreground"]:
        assert row["baseline_ops_s"] > 0
        assert row["baseline_runs"]
    targets = summary["targets"]
    assert targets[0]["target"].startswith("rebuild at unlimited rate")
    assert all(isinstance(t["met"], bool) for t in targets)

    text = results.read_text()
    assert "## Other benchmark\n\nkept" in text
    assert "## Repair and rebuild" in text
    assert "<!-- repair_bench:begin -->" in text
    assert "### Rebuild of a wiped node" in text
    assert "### Targets" in text
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
