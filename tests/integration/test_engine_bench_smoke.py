"""Keeps benchmarks/engine_bench.py from rotting: a tiny run, checked for its JSON fields.

Figures are never asserted (STYLE section 4): only that every part ran and was reported.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import engine_bench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_tiny_run_writes_every_field(tmp_path):
    out = tmp_path / "result.json"
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Other benchmark\n\nkept\n")
    engine_bench.main([
        "--dir", str(tmp_path / "data"), "--out", str(out), "--results", str(results),
        "--sizes", "1024,65536", "--writers", "1,2", "--read-threads", "1,2",
        "--duration", "0.05", "--repeats", "1", "--read-bytes", "262144",
    ])

    data = json.loads(out.read_text())
    assert data["command"].startswith("python -m benchmarks.engine_bench")
    for field in ("nproc", "memory_gib", "filesystem", "python", "py_lmdb", "date_utc"):
        assert field in data["machine"]
    summary = data["summary"]
    assert {(p["size_bytes"], p["writers"], p["mode"]) for p in summary["puts"]} == {
        (size, writers, mode)
        for size in (1024, 65536) for writers in (1, 2) for mode in ("threads", "pipeline")
    }
    for put in summary["puts"]:
        assert put["ops_s"] > 0
        assert put["floor_ops_s"] > 0
        assert put["ratio"] > 0
    floors = summary["floors"]
    assert len(floors["group_commit"]) == len(floors["group_commit_index"]) == 4
    assert floors["sequential_write"] is None  # only measured when 1 MiB puts are
    assert {(g["size_bytes"], g["threads"], g["inline_max_bytes"]) for g in summary["gets"]} == {
        (1024, 1, 0), (1024, 2, 0), (65536, 1, 0), (65536, 2, 0), (1024, 1, 4096),
        (1024, 2, 4096),
    }
    assert all(g["ratio"] > 0 for g in summary["gets"])
    assert [i["threads"] for i in summary["inline"]] == [1, 2]
    assert any(t["target"].startswith("get 1 KiB") for t in summary["targets"])

    text = results.read_text()
    assert "## Other benchmark\n\nkept" in text
    assert "## Storage engine" in text
    assert "<!-- engine_bench:begin -->" in text
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").iterdir())
