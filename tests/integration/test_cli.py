"""The ``cairn`` command as people run it: a real process against a real node.

Round trips (mb, put from a file and from stdin, get to a file and to stdout, ls, stat,
rm, rb, admin status, scrub and repair), one-line errors with their exit codes, and
``cairn cluster up`` itself: started as a subprocess, used, stopped with SIGINT, started
again on its data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cairn import Client, RepairResult, RepairStatus
from cairn._cli_support import (
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    format_rate,
    parse_rate,
)
from cairn.cluster.clustermap import local_map
from cairn.cluster.launcher import LocalCluster, free_port_range, free_ports
from cairn.errors import Unavailable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CALL_TIMEOUT_S = 60
ALL_BYTES = bytes(range(256)) * 64 + b"\r\n\x00\xff tail"


def cairn(
    *args: str, seeds: str | None, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run ``cairn ARGS`` (the module behind the console script) in a fresh process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    if seeds is not None:
        env["CAIRN_SEEDS"] = seeds
    return subprocess.run(
        [sys.executable, "-m", "cairn.cli", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=CALL_TIMEOUT_S,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess[bytes]) -> bytes:
    assert proc.returncode == EXIT_OK, (proc.returncode, proc.stderr.decode())
    return proc.stdout


def one_error_line(proc: subprocess.CompletedProcess[bytes], code: int) -> str:
    """The command failed with ``code`` and said why in exactly one stderr line."""
    text = proc.stderr.decode()
    lines = text.splitlines()
    assert proc.returncode == code, (proc.returncode, text)
    assert len(lines) == 1, text
    assert lines[0].startswith("cairn: error: "), text
    return lines[0]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    """One real node, started by the launcher, for the whole module."""
    with LocalCluster(tmp_path_factory.mktemp("cli-cluster"), nodes=1) as cluster:
        yield ",".join(cluster.seeds)


def test_round_trip(seeds, tmp_path):
    src = tmp_path / "in.bin"
    src.write_bytes(ALL_BYTES)
    assert b"made bucket" in ok(cairn("mb", "cli-round", seeds=seeds))
    assert b"cli-round" in ok(cairn("ls", seeds=seeds)).split()

    # Keys hold '/': BUCKET/KEY splits at the first one only.
    put = ok(cairn("put", "cli-round/dir/sub/file.bin", str(src), seeds=seeds)).decode()
    assert f"{len(ALL_BYTES)} bytes" in put
    ok(
        cairn(
            "put",
            "cli-round/dir/stdin.bin",
            "-",
            "--meta",
            "owner=me",
            stdin=ALL_BYTES[::-1],
            seeds=seeds,
        )
    )
    ok(cairn("put", "cli-round/other", "-", "--codec", "json", stdin=b"[1, 2]", seeds=seeds))

    out = tmp_path / "out.bin"
    ok(cairn("get", "cli-round/dir/sub/file.bin", "-o", str(out), seeds=seeds))
    assert out.read_bytes() == ALL_BYTES
    assert ok(cairn("get", "cli-round/dir/stdin.bin", seeds=seeds)) == ALL_BYTES[::-1]

    listed = ok(cairn("ls", "cli-round/dir/", seeds=seeds)).decode().splitlines()
    assert listed == ["dir/stdin.bin", "dir/sub/file.bin"]
    assert ok(cairn("ls", "cli-round", seeds=seeds)).decode().splitlines() == [
        "dir/stdin.bin",
        "dir/sub/file.bin",
        "other",
    ]
    long_lines = ok(cairn("ls", "-l", "cli-round/o", seeds=seeds)).decode().splitlines()
    assert len(long_lines) == 1
    assert long_lines[0].split()[0] == "6"
    assert long_lines[0].split()[-2:] == ["json", "other"]

    stat = ok(cairn("stat", "cli-round/dir/stdin.bin", seeds=seeds)).decode()
    fields = dict(line.split(":", 1) for line in stat.splitlines())
    fields = {k: v.strip() for k, v in fields.items()}
    assert fields["bucket"] == "cli-round"
    assert fields["key"] == "dir/stdin.bin"
    assert fields["size"].startswith(f"{len(ALL_BYTES)} bytes")
    assert fields["checksum"].startswith("crc32c:")
    assert fields["codec"] == "raw"
    assert fields["metadata"] == "owner=me"
    assert fields["tier"] == "local"
    assert len(fields["version"].split(".")) == 3
    as_json = json.loads(ok(cairn("stat", "--json", "cli-round/other", seeds=seeds)))
    assert (as_json["size"], as_json["codec"]) == (6, "json")

    ok(cairn("rm", "cli-round/dir/stdin.bin", "cli-round/dir/sub/file.bin", seeds=seeds))
    one_error_line(cairn("get", "cli-round/dir/stdin.bin", seeds=seeds), EXIT_NOT_FOUND)
    assert ok(cairn("ls", "cli-round", seeds=seeds)).decode().splitlines() == ["other"]

    one_error_line(cairn("rb", "cli-round", seeds=seeds), EXIT_CONFLICT)  # not empty
    ok(cairn("rb", "--force", "cli-round", seeds=seeds))
    assert b"cli-round" not in ok(cairn("ls", seeds=seeds)).split()


def test_large_put_shows_no_progress_bar_when_not_a_terminal(seeds, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    ok(cairn("mb", "cli-big", seeds=seeds))
    proc = cairn("put", "-q", "cli-big/big.bin", str(big), seeds=seeds)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")
    forced = cairn("get", "--progress", "cli-big/big.bin", "-o", str(tmp_path / "b"), seeds=seeds)
    assert forced.returncode == 0, forced.stderr
    assert b"6.00M" in forced.stderr  # tqdm drew a bar
    assert (tmp_path / "b").read_bytes() == big.read_bytes()


def test_errors_are_one_line_with_distinct_exit_codes(seeds, tmp_path):
    line = one_error_line(cairn("get", "no-such-bucket/k", seeds=seeds), EXIT_NOT_FOUND)
    assert "no-such-bucket" in line
    ok(cairn("mb", "cli-errors", seeds=seeds))
    line = one_error_line(cairn("get", "cli-errors/missing", seeds=seeds), EXIT_NOT_FOUND)
    assert "missing" in line
    line = one_error_line(cairn("mb", "cli-errors", seeds=seeds), EXIT_CONFLICT)
    assert "already exists" in line

    # BUCKET/KEY that cannot be right: usage errors, before any call.
    for bad in ("cli-errors", "cli-errors/", "/key", "Bad_Bucket/key"):
        one_error_line(cairn("get", bad, seeds=seeds), EXIT_USAGE)
    one_error_line(cairn("put", "cli-errors/k", str(tmp_path / "nope"), seeds=seeds), EXIT_USAGE)
    one_error_line(cairn("frobnicate", seeds=seeds), EXIT_USAGE)
    one_error_line(cairn("get", "--consistency", "most", "a/b", seeds=seeds), EXIT_USAGE)

    # Nobody listens on that port: unavailable, quickly, naming the seed.
    port = free_ports(1)[0]
    proc = cairn("--timeout", "3", "ls", seeds=f"127.0.0.1:{port}")
    line = one_error_line(proc, EXIT_UNAVAILABLE)
    assert f"127.0.0.1:{port}" in line


def test_flags_after_the_command_override_the_environment(seeds):
    port = free_ports(1)[0]
    ok(cairn("ls", "--seeds", seeds, seeds=f"127.0.0.1:{port}"))
    ok(cairn("--seeds", seeds, "ls", "--consistency", "all", seeds=None))


def test_admin_status(seeds):
    proc = cairn("admin", "status", seeds=seeds)
    text = ok(proc).decode()
    assert "node 1" in text
    assert seeds in text
    assert "disk " in text
    assert " ok " in text
    assert "hints pending" in text
    report = json.loads(ok(cairn("admin", "status", "--json", seeds=seeds)))
    assert report["nodes"][0]["up"] is True
    assert report["problem"] == ""


def test_admin_status_shows_the_repair_line(seeds):
    report = json.loads(ok(cairn("admin", "status", "--json", seeds=seeds)))
    repair = report["nodes"][0]["repair"]
    # One node has no other replica to differ from. (It counts the partitions it holds
    # only once a survey ran, and a single node runs none by itself: 0 or all of them.)
    held = repair["partitions_held"]
    assert held in (0, report["partitions"])
    assert repair["partitions_below_redundancy"] == 0
    assert repair["bytes_to_copy"] == 0
    assert repair["scrub_lost"] == 0
    lines = ok(cairn("admin", "status", seeds=seeds)).decode().splitlines()
    line = next(line for line in lines if line.startswith("  repair  "))
    assert lines[lines.index(line) - 1].startswith("node 1  ")  # under its node
    assert f"  0/{held} partitions below redundancy  to copy 0 B  eta -  " in line
    assert f"  rate {format_rate(repair['rate_bytes_s'])}  scrub " in line
    assert "  lost 0" in line


def _repair_status(seeds: str) -> dict:
    report = json.loads(ok(cairn("admin", "status", "--json", seeds=seeds)))
    return report["nodes"][0]["repair"]


def test_admin_scrub(seeds):
    ok(cairn("mb", "cli-scrub", seeds=seeds))
    ok(cairn("put", "cli-scrub/one", "-", stdin=ALL_BYTES, seeds=seeds))
    before = _repair_status(seeds)
    out = ok(cairn("admin", "scrub", seeds=seeds)).decode()
    assert out == f"node 1 {seeds}: scrub pass started\n"
    deadline = time.monotonic() + 30  # one small object: the pass takes milliseconds
    while (now := _repair_status(seeds))["scrub_passes"] <= before["scrub_passes"]:
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    assert now["scrub_checked"] > before["scrub_checked"]
    assert (now["scrub_repaired"], now["scrub_lost"]) == (0, 0)
    out = ok(cairn("admin", "scrub", "--node", seeds, seeds=seeds)).decode()
    assert out == f"{seeds}: scrub pass started\n"


def test_admin_repair_wait(seeds):
    out = ok(cairn("admin", "repair", "--wait", seeds=seeds)).decode()
    # A single node has no other replica: nothing differs, nothing moves.
    assert out == f"node 1 {seeds}: every partition level with its replicas: nothing to copy\n"
    out = ok(cairn("admin", "repair", seeds=seeds)).decode()
    assert out == f"node 1 {seeds}: anti-entropy pass started\n"
    out = ok(cairn("admin", "repair", "--partition", "0", seeds=seeds)).decode()
    assert out == f"node 1 {seeds}: partition 0: 0 objects pulled, 0 pushed\n"
    line = one_error_line(
        cairn("admin", "repair", "--partition", "999999", seeds=seeds), EXIT_USAGE
    )
    assert "partition 999999 does not exist" in line


def test_admin_repair_rate_shows_in_status(seeds):
    try:
        out = ok(cairn("admin", "repair", "--rate", "1MiB", seeds=seeds)).decode()
        assert out == f"node 1 {seeds}: repair rate set to 1.0 MiB/s\n"
        assert _repair_status(seeds)["rate_bytes_s"] == 1 << 20
        assert "  rate 1.0 MiB/s  " in ok(cairn("admin", "status", seeds=seeds)).decode()
        out = ok(cairn("admin", "repair", "--node", seeds, "--rate", "0", seeds=seeds)).decode()
        assert out == f"{seeds}: repair rate set to unlimited\n"
        assert "  rate unlimited  " in ok(cairn("admin", "status", seeds=seeds)).decode()
    finally:
        ok(cairn("admin", "repair", "--rate", "64MiB", seeds=seeds))  # the node's default
    one_error_line(cairn("admin", "repair", "--rate", "fast", seeds=seeds), EXIT_USAGE)
    line = one_error_line(
        cairn("admin", "repair", "--rate", "1MiB", "--wait", seeds=seeds), EXIT_USAGE
    )
    assert "--rate" in line


def test_admin_repair_wait_rebuilds_a_wiped_node(tmp_path):
    """Two replicas of everything; node 2 loses its data and comes back empty."""
    with LocalCluster(tmp_path / "cluster", nodes=2, replicas=2, partitions=8) as cluster:
        seeds = ",".join(cluster.seeds)
        with Client(cluster.seeds, timeout=CALL_TIMEOUT_S) as client:  # fewer processes
            client.create_bucket("cli-rebuild")
            for i in range(20):
                client.put("cli-rebuild", f"k{i}", b"v%d" % i)
        cluster.kill(2)
        for disk in cluster.data_dirs(2):
            shutil.rmtree(disk)
            disk.mkdir()
        cluster.restart(2)
        out = ok(cairn("admin", "repair", "--wait", seeds=seeds)).decode().splitlines()
        # Node 2 may pull some objects itself before (its first pass starts with it), so
        # the counts vary; what must hold is one line per node and a whole node 2 after.
        assert [line.split(": ")[0] for line in out] == [
            f"node {i} {address}" for i, address in enumerate(cluster.seeds, start=1)
        ]
        assert all("still below redundancy" not in line for line in out), out
        report = json.loads(ok(cairn("admin", "status", "--json", seeds=seeds)))
        assert [n["object_count"] for n in report["nodes"]] == [20, 20]
        assert [n["repair"]["partitions_below_redundancy"] for n in report["nodes"]] == [0, 0]
        assert ok(cairn("get", "cli-rebuild/k7", "--consistency", "all", seeds=seeds)) == b"v7"


class FakeAdminClient:
    """Just the two admin calls, for the report's shape with a node down."""

    calls: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        FakeAdminClient.calls = []

    def cluster_map(self):
        return local_map(2, 7101)

    def node_status(self, address):
        if address.endswith(":7102"):
            raise Unavailable("127.0.0.1:7102: failed to connect")
        disk = SimpleNamespace(
            path="/data/node-1",
            disk_id="d1",
            state="ok",
            error="",
            used_bytes=2048,
            free_bytes=10 << 30,
            object_count=5,
            segment_count=1,
            live_bytes=1024,
            dead_bytes=0,
        )
        return SimpleNamespace(
            node_id=1,
            address=address,
            software_version="0.1.0",
            uptime_s=75.0,
            epoch=1,
            disks=[disk],
            object_count=5,
            pending_hints=2,
            zone="",
            counters={},
            labels={},
            tombstone_count=1,
            repair=RepairStatus(
                partitions_held=342,
                partitions_below_redundancy=3,
                bytes_to_copy=3 << 30,
                eta_s=150.0,
                rate_bytes_s=64 << 20,
                scrub_progress=0.45,
                scrub_passes=2,
                scrub_repaired=4,
                scrub_lost=1,
            ),
        )

    def _node(self, address):
        if address.endswith(":7102"):
            raise Unavailable(f"{address}: UNAVAILABLE: failed to connect")
        self.calls.append(address)

    def scrub(self, address):
        self._node(address)

    def repair(self, address, *, partition=None, wait=False, timeout=None):
        self._node(address)
        return RepairResult(2, 5, 1) if wait else RepairResult()

    def set_repair_rate(self, address, rate_bytes_s):
        self._node(address)

    def close(self) -> None:
        pass


def test_admin_status_report_shows_nodes_disks_hints_and_a_down_node(monkeypatch, capsys):
    import cairn
    from cairn.cli import run

    monkeypatch.setattr(cairn, "Client", FakeAdminClient)
    assert run(["admin", "status"]) == EXIT_UNAVAILABLE
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "cluster: epoch 1, 2 nodes, N=2 W=2 R=2 P=1024"
    assert lines[1].startswith("node 1  127.0.0.1:7101  up  v0.1.0  uptime 1m15s")
    assert "hints 2" in lines[1]
    assert lines[2] == (
        "  repair  3/342 partitions below redundancy  to copy 3.0 GiB  eta 2m30s  "
        "rate 64.0 MiB/s  scrub 45% (2 passes)  repaired 4  lost 1"
    )
    assert lines[3].startswith("  disk /data/node-1  ok  used 2.0 KiB  free 10.0 GiB")
    assert lines[4].startswith("node 2  127.0.0.1:7102  DOWN  Unavailable: ")
    assert lines[5] == "health: 1 of 2 nodes up, 0 disks not ok, 2 hints pending"
    assert err == "cairn: error: 1 of 2 nodes unreachable (node 2)\n"
    assert run(["admin", "status", "--json"]) == EXIT_UNAVAILABLE
    report = json.loads(capsys.readouterr().out)
    assert [n["up"] for n in report["nodes"]] == [True, False]
    assert report["nodes"][0]["disks"][0]["state"] == "ok"
    repair = report["nodes"][0]["repair"]
    assert (repair["partitions_below_redundancy"], repair["scrub_lost"]) == (3, 1)
    assert set(repair) == {f.name for f in dataclasses.fields(RepairStatus)}


def test_admin_scrub_and_repair_go_on_past_a_down_node(monkeypatch, capsys):
    import cairn
    from cairn.cli import run

    monkeypatch.setattr(cairn, "Client", FakeAdminClient)
    assert run(["admin", "scrub"]) == EXIT_UNAVAILABLE
    out, err = capsys.readouterr()
    assert out == "node 1 127.0.0.1:7101: scrub pass started\n"
    assert err == (
        "cairn: error: scrub failed on 1 of 2 nodes: node 2 127.0.0.1:7102: "
        "Unavailable: UNAVAILABLE: failed to connect\n"
    )
    assert run(["admin", "repair", "--wait"]) == EXIT_UNAVAILABLE
    out, err = capsys.readouterr()
    assert out == (  # the node's status after the pass says 3 are still below
        "node 1 127.0.0.1:7101: 2 partitions differed: 5 objects pulled, 1 pushed; "
        "3 partitions still below redundancy\n"
    )
    assert err.startswith("cairn: error: repair failed on 1 of 2 nodes: node 2 ")
    # One node named: its error alone, with that error's exit code.
    assert run(["admin", "repair", "--rate", "100M", "--node", "127.0.0.1:7102"]) == (
        EXIT_UNAVAILABLE
    )
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "cairn: error: 127.0.0.1:7102: Unavailable: UNAVAILABLE: failed to connect\n"
    assert run(["admin", "repair", "--rate", "100M", "--node", "127.0.0.1:7101"]) == EXIT_OK
    assert capsys.readouterr().out == "127.0.0.1:7101: repair rate set to 95.4 MiB/s\n"
    assert FakeAdminClient.calls == ["127.0.0.1:7101"]  # no map fetched, no other node


def test_admin_repair_partition_goes_to_its_replicas_only(monkeypatch, capsys):
    import cairn
    from cairn.cli import run
    from cairn.cluster.placement import replicas

    cluster_map = local_map(5, 7101)  # N=3: two nodes hold no replica of a partition
    partition = 3
    holders = [cluster_map.node(n).address for n in replicas(cluster_map, partition)]
    other = next(n.address for n in cluster_map.nodes if n.address not in holders)

    class Five(FakeAdminClient):
        def cluster_map(self):
            return cluster_map

        def _node(self, address):
            self.calls.append(address)

    monkeypatch.setattr(cairn, "Client", Five)
    assert run(["admin", "repair", "--partition", str(partition)]) == EXIT_OK
    assert Five.calls == holders
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(f"partition {partition}: 5 objects pulled, 1 pushed")
    # A node that holds no replica would copy the whole partition in: refused.
    code = run(["admin", "repair", "--partition", str(partition), "--node", other])
    assert code == EXIT_USAGE
    assert f"holds no replica of partition {partition}" in capsys.readouterr().err
    assert Five.calls == []


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("0", 0),
        ("unlimited", 0),
        ("1048576", 1 << 20),
        ("64MiB", 64 << 20),
        ("64 MiB/s", 64 << 20),
        ("64mib", 64 << 20),
        ("100M", 100_000_000),
        ("100MB", 100_000_000),
        ("1.5GiB", 3 << 29),
        ("2k", 2000),
        ("2KiB", 2048),
        ("10B", 10),
    ],
)
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "-1", "fast", "1.5", "5i", "1e3", "MiB", "1 MiBps",
                                  "99999999999P"])
def test_parse_rate_refuses(text):
    with pytest.raises(ValueError, match=r"rate|whole|too large"):
        parse_rate(text)


def test_format_rate():
    assert format_rate(0) == "unlimited"
    assert format_rate(1 << 20) == "1.0 MiB/s"
    assert format_rate(512) == "512 B/s"


def test_node_without_the_node_extras_says_what_to_install():
    # Make `import lmdb` fail, as it does after a client-only `pip install cairnstore`.
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'lmdb':\n"
        "            raise ModuleNotFoundError(\"No module named 'lmdb'\", name='lmdb')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from cairn.cli import run\n"
        "sys.exit(run(['node', '--data', 'x']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=CALL_TIMEOUT_S, check=False
    )
    line = one_error_line(proc, 1)
    assert "pip install 'cairnstore[node]'" in line


def test_node_passes_its_arguments_through():
    proc = cairn("node", "--help", seeds=None)
    assert b"--cluster-map" in ok(proc)
    proc = cairn("node", "--no-such-flag", seeds=None)
    assert proc.returncode == 2
    assert b"--no-such-flag" in proc.stderr


def test_help_and_version():
    assert b"cluster" in ok(cairn("--help", seeds=None))
    assert b"cairn" in ok(cairn("--version", seeds=None))
    assert ok(cairn(seeds=None)) == ok(cairn("--help", seeds=None))


# ------------------------------------------------------------- cairn cluster up


class Running:
    """A ``cairn cluster up`` process whose stdout lines are read by a thread."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cairn.cli", "cluster", "up", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode())

    def wait_for(self, prefix: str, timeout_s: float = 90) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
        stderr = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
        raise AssertionError(f"no {prefix!r} line; stdout {self.seen}, stderr {stderr}")

    def node_pids(self) -> list[int]:
        return [int(line.split(" pid ")[1].split()[0]) for line in self.seen if " pid " in line]

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def _ports_for_cluster_up(nodes: int) -> int:
    """A base port with base.. and the metrics ports base+1000.. all free."""
    for _ in range(50):
        base = free_port_range(nodes, low=15000, high=28000)
        if free_port_range_ok(base + 1000, nodes):
            return base
    raise AssertionError("no free ports")


def free_port_range_ok(base: int, count: int) -> bool:
    import socket

    for port in range(base, base + count):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_cluster_up_runs_stops_on_sigint_and_comes_back_with_its_data(tmp_path):
    data = tmp_path / "cairn-data"
    base = _ports_for_cluster_up(3)
    args = ("--data", str(data), "--base-port", str(base))
    first = Running(*args)
    try:
        seeds = first.wait_for("seeds: ")
        assert seeds == ",".join(f"127.0.0.1:{base + i}" for i in range(3))
        pids = first.node_pids()
        assert len(pids) == 3
        assert all(_alive(pid) for pid in pids)
        ok(cairn("mb", "kept", seeds=seeds))
        ok(cairn("put", "kept/across/restarts", "-", stdin=ALL_BYTES, seeds=seeds))
    finally:
        code = first.stop(signal.SIGINT)
    assert code == 0, first.proc.stderr.read().decode() if first.proc.stderr else ""
    assert not any(_alive(pid) for pid in pids)

    second = Running("--data", str(data))  # no flags: the saved cluster
    try:
        assert second.wait_for("seeds: ") == seeds
        assert any("saved cluster" in line for line in second.seen)
        assert ok(cairn("get", "kept/across/restarts", seeds=seeds)) == ALL_BYTES
        pids = second.node_pids()
    finally:
        assert second.stop(signal.SIGTERM) == 0
    assert not any(_alive(pid) for pid in pids)

    mismatch = subprocess.run(
        [sys.executable, "-m", "cairn.cli", "cluster", "up", "--data", str(data), "--nodes", "5"],
        capture_output=True,
        timeout=CALL_TIMEOUT_S,
        check=False,
    )
    line = one_error_line(mismatch, EXIT_CONFLICT)
    assert "--nodes 5 (saved: 3)" in line
