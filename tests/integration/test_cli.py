"""The ``cairn`` command as people run it: a real process against a real node.

Round trips (mb, put from a file and from stdin, get to a file and to stdout, ls, stat,
rm, rb, admin status), one-line errors with their exit codes, and ``cairn cluster up``
itself: started as a subprocess, used, stopped with SIGINT, started again on its data.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cairn._cli_support import (
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
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


class FakeAdminClient:
    """Just the two admin calls, for the report's shape with a node down."""

    def __init__(self, *args, **kwargs) -> None:
        pass

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
        )

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
    assert lines[2].startswith("  disk /data/node-1  ok  used 2.0 KiB  free 10.0 GiB")
    assert lines[3].startswith("node 2  127.0.0.1:7102  DOWN  Unavailable: ")
    assert lines[4] == "health: 1 of 2 nodes up, 0 disks not ok, 2 hints pending"
    assert err == "cairn: error: 1 of 2 nodes unreachable (node 2)\n"
    assert run(["admin", "status", "--json"]) == EXIT_UNAVAILABLE
    report = json.loads(capsys.readouterr().out)
    assert [n["up"] for n in report["nodes"]] == [True, False]
    assert report["nodes"][0]["disks"][0]["state"] == "ok"


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
