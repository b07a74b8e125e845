"""Large objects stream end to end: 1 GiB through the SDK and one node process, in bounded
memory on both sides.

DESIGN.md, "A node on one disk": *no process holds a whole large object in memory*.
Each test starts its own node (so the kernel's high-water mark of its resident set,
``VmHWM``, covers exactly that test) and runs the SDK in a fresh child process (so the
client's figure is the client's, not that of a pytest process that has run other
tests). While a transfer runs, a thread samples the resident set of both processes with
psutil every 50 ms; the test then asserts on the kernel's exact peaks (``VmHWM`` of the
node, ``ru_maxrss`` reported by the client itself), which no sample can miss, and prints
both kinds of figures.

Source files are written block by block from a seeded generator and hashed as they are
written; downloads are hashed in chunks. Every big file (source, download, the node's
data directory) is deleted at the end of its test or module.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import cairn
from tests.support.node import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MiB = 1 << 20
GiB = 1 << 30
RSS_LIMIT_BYTES = 200 * MiB
SAMPLE_INTERVAL_S = 0.05
CLIENT_TIMEOUT_S = 240.0
SOURCE_SEED = 20240611
BLOCK_BYTES = MiB

# The SDK side of each transfer, run as ``python -c CLIENT_SCRIPT REQUEST_JSON``: one
# call through Client or AsyncClient, then one JSON line with the result and the
# process's own peak resident set: VmHWM from /proc/self/status. (Not ru_maxrss: Linux
# carries the pre-exec peak over exec, so a child of a large pytest process would report
# the parent's size, as it did in CI.)
CLIENT_SCRIPT = r"""
import asyncio, json, sys, time
import cairn

req = json.loads(sys.argv[1])
kwargs = {k: req[k] for k in ("start", "end") if req.get(k) is not None}

def sync_call():
    with cairn.Client([req["address"]], timeout=req["timeout_s"]) as c:
        if req.get("create_bucket"):
            c.create_bucket(req["bucket"])
        return getattr(c, req["op"])(req["bucket"], req["key"], req["path"], **kwargs)

async def async_call():
    async with cairn.AsyncClient([req["address"]], timeout=req["timeout_s"]) as c:
        if req.get("create_bucket"):
            await c.create_bucket(req["bucket"])
        return await getattr(c, req["op"])(req["bucket"], req["key"], req["path"], **kwargs)

started = time.perf_counter()
info = sync_call() if req["kind"] == "sync" else asyncio.run(async_call())
print(json.dumps({
    "op": req["op"],
    "seconds": time.perf_counter() - started,
    "size": info.size,
    "checksum": info.checksum,
    "maxrss_bytes": next(int(line.split()[1]) * 1024
                         for line in open("/proc/self/status")
                         if line.startswith("VmHWM:")),
}))
"""


# --- files ------------------------------------------------------------------------------


def write_source(path: Path, size: int, seed: int) -> str:
    """Write ``size`` deterministic pseudo-random bytes, one block at a time; their sha256."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = rng.randbytes(min(BLOCK_BYTES, left))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path, start: int = 0, end: int | None = None) -> str:
    """sha256 of ``path[start:end]``, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = (end if end is not None else path.stat().st_size) - start
        while left:
            block = f.read(min(BLOCK_BYTES, left))
            assert block, f"{path} ended {left} bytes early"
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def unlink(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


# --- memory -----------------------------------------------------------------------------


def vm_hwm_bytes(pid: int) -> int:
    """The kernel's peak resident set of a live process (``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


class RssSampler:
    """Samples the resident set of named processes every 50 ms in a thread; keeps peaks."""

    def __init__(self) -> None:
        self.peaks: dict[str, int] = {}
        self.samples = 0
        self._procs: dict[str, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def watch(self, name: str, pid: int) -> None:
        self._procs[name] = psutil.Process(pid)
        self.peaks.setdefault(name, 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, proc in list(self._procs.items()):
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:  # exited (the client, at the end): keep its peak
                    continue
                self.peaks[name] = max(self.peaks[name], rss)
            self.samples += 1
            self._stop.wait(SAMPLE_INTERVAL_S)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run_client(sampler: RssSampler, **request: Any) -> dict[str, Any]:
    """Run one SDK call in a child process watched by ``sampler``; its JSON report."""
    request.setdefault("timeout_s", CLIENT_TIMEOUT_S)
    child = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, json.dumps(request)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        sampler.watch("client", child.pid)
        out, err = child.communicate(timeout=CLIENT_TIMEOUT_S + 30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, f"client {request['op']} failed:\n{err.decode()}"
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return report


def check_memory(what: str, sampler: RssSampler, node: NodeProcess,
                 client_reports: list[dict[str, Any]]) -> None:
    node_peak = vm_hwm_bytes(node.pid)
    client_peak = max(r["maxrss_bytes"] for r in client_reports)
    print(f"\n{what}: peak RSS node {node_peak / MiB:.1f} MiB (sampled "
          f"{sampler.peaks['node'] / MiB:.1f}), client {client_peak / MiB:.1f} MiB (sampled "
          f"{sampler.peaks.get('client', 0) / MiB:.1f}); {sampler.samples} samples; "
          + ", ".join(f"{r['op']} {r['seconds']:.1f} s" for r in client_reports))
    assert sampler.samples > 10, "the sampler barely ran"
    assert sampler.peaks["node"] < RSS_LIMIT_BYTES, sampler.peaks
    assert node_peak < RSS_LIMIT_BYTES, f"node peak RSS {node_peak / MiB:.1f} MiB"
    assert sampler.peaks.get("client", 0) < RSS_LIMIT_BYTES, sampler.peaks
    assert client_peak < RSS_LIMIT_BYTES, f"client peak RSS {client_peak / MiB:.1f} MiB"


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_1gib(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """A 1 GiB pseudo-random file on disk and its sha256, never whole in memory."""
    path = tmp_path_factory.mktemp("large-source") / "source-1gib.bin"
    try:
        yield path, write_source(path, GiB, SOURCE_SEED)
    finally:
        unlink(path)


@pytest.fixture
def big_node(tmp_path) -> Iterator[NodeProcess]:
    """A node of this test alone; its data directory (a GiB of segments) is removed after."""
    data = tmp_path / "node-data"
    try:
        with NodeProcess(data) as proc:
            yield proc
    finally:
        shutil.rmtree(data, ignore_errors=True)


# --- tests ------------------------------------------------------------------------------


def test_1gib_upload_and_download_in_bounded_memory(big_node, source_1gib, tmp_path):
    source, digest = source_1gib
    target = tmp_path / "download-1gib.bin"
    common = {"kind": "sync", "address": big_node.address, "bucket": "large", "key": "1gib"}
    try:
        with RssSampler() as sampler:
            sampler.watch("node", big_node.pid)
            up = run_client(sampler, op="upload", path=str(source), create_bucket=True, **common)
            down = run_client(sampler, op="download", path=str(target), **common)
        assert up["size"] == down["size"] == GiB
        assert up["checksum"] == down["checksum"]
        assert target.stat().st_size == GiB
        assert sha256_of(target) == digest
        assert not list(tmp_path.glob("*.cairn-part")), "download left a temporary file"
        check_memory("1 GiB sync upload + download", sampler, big_node, [up, down])
    finally:
        unlink(target)


def test_1gib_object_ranged_download_of_the_middle(big_node, source_1gib, tmp_path):
    source, _ = source_1gib
    # Not chunk-aligned on either end: half a GiB from the middle of the object.
    start, end = GiB // 4 + 12_345, 3 * GiB // 4 - 999
    target = tmp_path / "middle.bin"
    common = {"kind": "sync", "address": big_node.address, "bucket": "large", "key": "1gib"}
    try:
        with RssSampler() as sampler:
            sampler.watch("node", big_node.pid)
            up = run_client(sampler, op="upload", path=str(source), create_bucket=True, **common)
            ranged = run_client(sampler, op="download", path=str(target), start=start, end=end,
                                **common)
        assert ranged["size"] == up["size"] == GiB  # the whole object's info, even for a range
        assert target.stat().st_size == end - start
        assert sha256_of(target) == sha256_of(source, start, end)
        # A small range across a chunk boundary in the middle, read into memory.
        with cairn.Client([big_node.address], timeout=60) as c:
            edge = GiB // 2
            window = c.get_bytes("large", "1gib", start=edge - 100, end=edge + 100)
        with open(source, "rb") as f:
            f.seek(edge - 100)
            assert window == f.read(200)
        check_memory("1 GiB upload + ranged download of 512 MiB", sampler, big_node,
                     [up, ranged])
    finally:
        unlink(target)


def test_1gib_upload_and_download_with_async_client(big_node, source_1gib, tmp_path):
    source, digest = source_1gib
    target = tmp_path / "download-async.bin"
    common = {"kind": "async", "address": big_node.address, "bucket": "large-async",
              "key": "1gib"}
    try:
        with RssSampler() as sampler:
            sampler.watch("node", big_node.pid)
            up = run_client(sampler, op="upload", path=str(source), create_bucket=True, **common)
            down = run_client(sampler, op="download", path=str(target), **common)
        assert up["size"] == down["size"] == GiB
        assert up["checksum"] == down["checksum"]
        assert sha256_of(target) == digest
        assert not list(tmp_path.glob("*.cairn-part")), "download left a temporary file"
        check_memory("1 GiB async upload + download", sampler, big_node, [up, down])
    finally:
        unlink(target)


def test_concurrent_streamed_puts_of_one_key_all_succeed(big_node):
    """Two streamed puts of one key at once: both are acknowledged, one of them is stored.

    Under last-writer-wins the write that loses the race was concurrent with the winner,
    so "it happened, then was overwritten" is a valid order: there is nothing to report.
    Failing the loser with Unavailable ("a newer version of the object was written
    concurrently; this upload lost to it", node/coordinator put_stream; about one pair
    in eight here) makes the caller send the whole object again, or gives up on it when
    the source cannot seek. One attempt per call, so that no client retry hides it.
    """
    values = {name: random.Random(name).randbytes(3 * MiB) for name in ("left", "right")}
    failures: list[str] = []
    with cairn.Client([big_node.address], timeout=60, retry=cairn.Retry(max_attempts=1)) as c:
        c.create_bucket("race")

        def put(name: str, via_upload: bool) -> None:
            try:
                if via_upload:
                    c.upload("race", "k", io.BytesIO(values[name]))
                else:
                    c.put("race", "k", values[name])
            except cairn.CairnError as exc:
                failures.append(f"{name}: {exc!r}")

        for pair in range(40):
            threads = [threading.Thread(target=put, args=(name, pair % 2 == 1))
                       for name in values]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert c.get("race", "k") in values.values()
    assert not failures, f"{len(failures)} of 80 streamed puts failed: {failures[:3]}"
