"""The local cluster launcher against real node processes: start, health, kill, restart,
death reports, the saved map, and no process left behind whatever happens."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cairn.cluster.clustermap import ClusterMap, local_map
from cairn.cluster.launcher import (
    MAP_FILE,
    ClusterMismatch,
    LauncherError,
    LocalCluster,
    NodeFailed,
    free_port_range,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def processes_mentioning(text: str) -> list[int]:
    """Pids of live (not zombie) processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def data_dir(tmp_path):
    """The cluster's directory; after the test, no process may still use it."""
    path = tmp_path / "cluster"
    yield path
    deadline = time.monotonic() + 10
    while processes_mentioning(str(path)) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = processes_mentioning(str(path))
    for pid in left:  # never leave them running, even when the check fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"


def serving(address: str) -> bool:
    with grpc.insecure_channel(address, options=[("grpc.enable_http_proxy", 0)]) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=2
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def test_start_serve_stop(data_dir):
    with LocalCluster(data_dir, nodes=3) as cluster:
        assert len(cluster.seeds) == 3
        assert all(serving(address) for address in cluster.seeds)
        saved = ClusterMap.from_json((data_dir / MAP_FILE).read_text())
        assert saved == cluster.map
        assert (saved.replicas_n, saved.write_quorum, saved.read_quorum) == (3, 2, 2)
        for node_id in cluster.node_ids:
            assert cluster.data_dirs(node_id) == (data_dir / f"node-{node_id}",)
            assert cluster.data_dirs(node_id)[0].is_dir()
            assert cluster.log_path(node_id).exists()
        pids = list(cluster.pids().values())
        assert len(pids) == 3
    exits = cluster.stop()  # idempotent
    assert exits == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


def test_consecutive_ports_give_the_local_map(data_dir):
    base = free_port_range(2)
    with LocalCluster(data_dir, nodes=2, base_port=base) as cluster:
        assert cluster.map == local_map(2, base)
        assert cluster.seeds == [f"127.0.0.1:{base}", f"127.0.0.1:{base + 1}"]


def test_restart_on_the_same_directory_brings_back_the_same_cluster(data_dir):
    with LocalCluster(data_dir, nodes=2, replicas=1, partitions=64) as cluster:
        first_map = cluster.map
    with LocalCluster(data_dir) as cluster:  # nothing said: the saved shape
        assert cluster.map == first_map
        assert all(serving(address) for address in cluster.seeds)


def test_a_different_shape_is_refused_clearly(data_dir):
    with LocalCluster(data_dir, nodes=2):
        pass
    with pytest.raises(ClusterMismatch) as caught:
        LocalCluster(data_dir, nodes=3, partitions=8).start()
    message = str(caught.value)
    assert "--nodes 3 (saved: 2)" in message
    assert "--partitions 8 (saved: 1024)" in message
    assert str(data_dir / MAP_FILE) in message
    assert caught.value.differences[0] == ("--nodes", 3, 2)


def test_node_directories_without_a_map_are_refused(data_dir):
    (data_dir / "node-1").mkdir(parents=True)
    with pytest.raises(LauncherError, match=r"no cluster\.json"):
        LocalCluster(data_dir, nodes=1).start()


def test_kill_is_expected_and_restart_keeps_address(data_dir):
    with LocalCluster(data_dir, nodes=3) as cluster:
        address = cluster.address(2)
        old_pid = cluster.pid(2)
        assert cluster.kill(2) == -signal.SIGKILL
        assert not cluster.is_running(2)
        assert cluster.poll() == []  # asked for: not reported as a death
        cluster.restart(2)
        assert cluster.pid(2) not in (None, old_pid)
        assert cluster.address(2) == address
        assert serving(address)


def test_a_frozen_node_can_be_restarted(data_dir):
    with LocalCluster(data_dir, nodes=1, stop_grace_s=5) as cluster:
        assert cluster.kill(1, signal.SIGSTOP) is None
        assert cluster.is_running(1)
        cluster.restart(1)
        assert serving(cluster.address(1))


def test_an_unexpected_death_is_reported_not_restarted(data_dir):
    with LocalCluster(data_dir, nodes=2) as cluster:
        pid = cluster.pid(2)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        exits = []
        while not exits and time.monotonic() < deadline:
            exits = cluster.poll()
            time.sleep(0.05)
        assert [(e.node_id, e.pid, e.returncode, e.expected) for e in exits] == [
            (2, pid, -signal.SIGKILL, False)
        ]
        assert exits[0].log_tail  # the node logged its start
        assert "was killed by SIGKILL" in exits[0].describe()
        assert cluster.poll() == []  # reported once
        time.sleep(0.5)
        assert not cluster.is_running(2)  # and not restarted


def test_a_node_that_fails_to_start_is_reported_and_nothing_is_left(data_dir):
    cluster = LocalCluster(data_dir, nodes=2, node_args=["--no-such-flag"])
    with pytest.raises(NodeFailed) as caught:
        cluster.start()
    node_exit = caught.value.exit
    assert node_exit is not None
    assert node_exit.returncode != 0
    assert any("--no-such-flag" in line for line in node_exit.log_tail)
    assert "while starting" in str(caught.value)
    assert cluster.pids() == {}


def test_per_node_args_apply_to_that_node_only(data_dir):
    cluster = LocalCluster(data_dir, nodes=2, per_node_args={2: ["--no-such-flag"]})
    with pytest.raises(NodeFailed) as caught:
        cluster.start()
    assert caught.value.exit is not None
    assert caught.value.exit.node_id == 2
    cluster.set_node_args(2, [])
    with cluster:
        assert all(serving(address) for address in cluster.seeds)


def test_a_second_launcher_on_the_same_directory_is_refused(data_dir):
    with (
        LocalCluster(data_dir, nodes=1),
        pytest.raises(LauncherError, match="another launcher"),
    ):
        LocalCluster(data_dir).start()


def test_a_port_in_use_is_refused_before_anything_starts(data_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LauncherError, match="already in use"):
            LocalCluster(data_dir, nodes=1, base_port=port).start()


def test_a_killed_launcher_takes_its_nodes_with_it(data_dir):
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux only")
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from cairn.cluster.launcher import LocalCluster
        cluster = LocalCluster({str(data_dir)!r}, nodes=2).start()
        print(json.dumps(list(cluster.pids().values())), flush=True)
        time.sleep(600)
        """
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert launcher.stdout is not None
        pids = json.loads(launcher.stdout.readline())
        assert len(pids) == 2
    finally:
        launcher.kill()
        launcher.wait()
    deadline = time.monotonic() + 20
    while processes_mentioning(str(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(data_dir)) == []
