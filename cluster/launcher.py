"""Run a local cairn cluster: N node processes on one machine, for people and for tests.

What it owns: starting ``cairn node`` processes on 127.0.0.1, the data directory of a
local cluster, waiting until each node's gRPC health check says SERVING, reporting a
node that dies, and stopping every process it started, whatever happens. It does not
own what a node does (``cairn.node``) nor talk to the object API (the SDK).

A local cluster's data directory::

    DATA/cluster.json        the cluster map (written once, reused on every start)
    DATA/launcher.lock       held while a launcher runs the cluster (pid inside)
    DATA/node-<id>/          node <id>'s data directory (its one disk), or with
    DATA/node-<id>/disk-<j>/ several disks per node, one directory per disk
    DATA/logs/node-<id>.log  node <id>'s stdout and stderr (JSON lines), appended

Started again on the same directory, the launcher brings back the same cluster: the same
map (node ids, ports, N, W, R, P) and the same data. The shape of a cluster is fixed when
it is created; asking for another shape on an existing directory is ``ClusterMismatch``.

A node that dies is reported (``poll()``: exit code and the last lines of its log), never
silently restarted. ``stop()`` sends SIGTERM to every node, waits ``stop_grace_s``, then
sends SIGKILL; it also runs at interpreter exit and when ``start()`` fails. On Linux each
node also gets SIGTERM if the launcher itself dies (``PR_SET_PDEATHSIG``), so even a
SIGKILLed launcher leaves no process behind.

This module imports ``grpc`` and ``grpc_health`` (the node extra) lazily, only to probe
health, so ``import cairn.cluster`` stays free of I/O and of grpc.

Entry points: ``LocalCluster`` (a context manager), ``NodeExit``, ``LauncherError``,
``free_ports``, ``free_port_range``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import dataclasses
import errno
import fcntl
import importlib.util
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any, Final

from cairn.cluster.clustermap import (
    DEFAULT_PARTITIONS,
    DEFAULT_REPLICAS_N,
    MIN_EPOCH,
    ClusterMap,
    NodeInfo,
    local_map,
    parse_address,
)
from cairn.cluster.ids import NodeId
from cairn.errors import CairnError

__all__ = [
    "DEFAULT_NODES",
    "DEFAULT_READY_TIMEOUT_S",
    "DEFAULT_STOP_GRACE_S",
    "MAP_FILE",
    "ClusterMismatch",
    "LauncherError",
    "LocalCluster",
    "NodeExit",
    "NodeFailed",
    "describe_map",
    "free_port_range",
    "free_ports",
]

log = logging.getLogger(__name__)

DEFAULT_NODES: Final = 3
DEFAULT_READY_TIMEOUT_S: Final = 60.0
"""How long ``start()`` waits for every node to answer SERVING (seconds)."""
DEFAULT_STOP_GRACE_S: Final = 15.0
"""How long a node may take to stop after SIGTERM before it gets SIGKILL (seconds).
Longer than the node's own ``shutdown_grace_s`` (10 s), so a draining node is not cut."""
STDERR_TAIL_LINES: Final = 20
"""How many lines of a dead node's log a report shows."""
STDERR_TAIL_BYTES: Final = 64 * 1024
MAX_LOG_LINE_CHARS: Final = 500
HEALTH_PROBE_TIMEOUT_S: Final = 1.0
"""Deadline of one health probe: a frozen node accepts TCP but never answers."""
POLL_INTERVAL_S: Final = 0.1

MAP_FILE: Final = "cluster.json"
LOCK_FILE: Final = "launcher.lock"
LOGS_DIR: Final = "logs"

_PR_SET_PDEATHSIG: Final = 1
_CLEAN_STOP_CODES: Final = frozenset({0, -signal.SIGTERM})
_TERMINATING: Final = frozenset(
    {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGABRT}
)


class LauncherError(RuntimeError):
    """The local cluster could not be started, or a node misbehaved.

    Deliberately not a ``cairn.CairnError``: those are wire errors with codes, and this is
    a local, operator-facing failure.
    """


class ClusterMismatch(LauncherError):
    """The data directory holds a cluster of another shape than the one asked for.

    Attributes:
        differences: ``(setting, asked, saved)`` for each setting that disagrees, with
            the setting named as the ``cairn cluster up`` flag (``--nodes``, ...).
    """

    def __init__(self, message: str, differences: Sequence[tuple[str, object, object]]) -> None:
        super().__init__(message)
        self.differences = tuple(differences)


class NodeFailed(LauncherError):
    """A node process exited (or never became ready) while the launcher needed it.

    Attributes:
        exit: what is known of the exit (``None`` if the node is running but never
            answered SERVING before the deadline).
    """

    def __init__(self, message: str, node_exit: NodeExit | None = None) -> None:
        super().__init__(message)
        self.exit = node_exit


@dataclass(frozen=True, slots=True)
class NodeExit:
    """One node process that exited.

    Attributes:
        node_id: the node's id.
        pid: its process id.
        returncode: its exit status; negative: killed by that signal.
        expected: True if the launcher stopped or killed it on request.
        log_tail: the last lines of its log (stderr and stdout) from this run.
        log_path: where the whole log is.
    """

    node_id: int
    pid: int
    returncode: int
    expected: bool
    log_tail: tuple[str, ...]
    log_path: Path

    @property
    def how(self) -> str:
        """``exited with code 1`` or ``was killed by SIGKILL``."""
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = f"signal {-self.returncode}"
            return f"was killed by {name}"
        return f"exited with code {self.returncode}"

    def describe(self, *, with_tail: bool = True, when: str = "") -> str:
        """A report for people: what happened, then the last log lines, indented.

        Args:
            with_tail: add the last log lines.
            when: words to add after what happened, such as ``"while starting"``.
        """
        head = f"node {self.node_id} (pid {self.pid}) {self.how}"
        if when:
            head = f"{head} {when}"
        if not with_tail:
            return head
        if not self.log_tail:
            return f"{head}; its log ({self.log_path}) is empty"
        lines = "\n".join(f"    {line}" for line in self.log_tail)
        return f"{head}; last lines of {self.log_path}:\n{lines}"


@dataclass(slots=True)
class _Node:
    info: NodeInfo
    data_dirs: tuple[Path, ...]
    log_path: Path
    metrics_address: str | None
    proc: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    expected_exit: bool = False
    reported: bool = False


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Return ``count`` distinct TCP ports that were free on ``host`` a moment ago.

    The kernel picks them (bind to port 0); all sockets are held open until every port is
    chosen, so the ports are distinct. Another process may still take one before it is
    used: good enough for tests on one machine.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(_family(host), socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_range(
    count: int, host: str = "127.0.0.1", *, low: int = 15000, high: int = 30000
) -> int:
    """Return a base port such that ``base .. base + count - 1`` were all free on ``host``.

    Searches ``low .. high`` (below Linux's ephemeral range, so outgoing connections do
    not take them meanwhile). Raises ``LauncherError`` if no range is found.
    """
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, high - count)
        if all(_port_is_free(host, base + i) for i in range(count)):
            return base
    raise LauncherError(f"found no {count} consecutive free ports in {low}..{high} on {host}")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _port_is_free(host: str, port: int) -> bool:
    # SO_REUSEADDR as a server sets it: a port whose old connections linger in TIME_WAIT
    # is free for a new listener. No SO_REUSEPORT: a gRPC server listens with it, and a
    # second one on the same port would silently share its connections; without it, our
    # bind fails on a port that any listener holds.
    with socket.socket(_family(host), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _build_map(
    host: str, ports: Sequence[int], replicas: int | None, partitions: int
) -> ClusterMap:
    count = len(ports)
    if replicas is not None and not 1 <= replicas <= count:
        raise LauncherError(f"replicas must be in 1..{count} (the number of nodes), not {replicas}")
    consecutive = list(ports) == list(range(ports[0], ports[0] + count))
    if consecutive:
        base = local_map(count, ports[0], host, partitions=partitions)
    else:
        host_part = f"[{host}]" if ":" in host else host
        nodes = tuple(
            NodeInfo(id=NodeId(i), address=f"{host_part}:{port}")
            for i, port in enumerate(ports, start=1)
        )
        replicas_n = min(DEFAULT_REPLICAS_N, count)
        base = ClusterMap(
            epoch=MIN_EPOCH,
            nodes=nodes,
            replicas_n=replicas_n,
            write_quorum=replicas_n // 2 + 1,
            read_quorum=replicas_n // 2 + 1,
            partitions=partitions,
        )
    if replicas is None or replicas == base.replicas_n:
        return base
    majority = replicas // 2 + 1
    return dataclasses.replace(
        base, replicas_n=replicas, write_quorum=majority, read_quorum=majority
    )


def _write_atomically(path: Path, text: str) -> None:
    # The durability ritual (STYLE 2.3): temp name, fsync, rename, fsync the directory.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _pdeathsig_preexec() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when the spawning thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        # The launcher may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def _read_tail(path: Path, offset: int) -> tuple[str, ...]:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(offset, size - STDERR_TAIL_BYTES)
            f.seek(start)
            data = f.read()
    except OSError:
        return ()
    lines = data.decode("utf-8", errors="replace").splitlines()
    if start > offset and lines:
        lines = lines[1:]  # the first line was cut by the byte limit
    tail = [line for line in lines if line.strip()][-STDERR_TAIL_LINES:]
    return tuple(
        line if len(line) <= MAX_LOG_LINE_CHARS else line[:MAX_LOG_LINE_CHARS] + "..."
        for line in tail
    )


def _default_node_command() -> list[str]:
    # ``python -m cairn.node`` reads best in ``ps``; fall back on the contract that the
    # node package offers ``main(argv) -> int`` if it has no __main__ module.
    if importlib.util.find_spec("cairn.node.__main__") is not None:
        return [sys.executable, "-m", "cairn.node"]
    return [
        sys.executable,
        "-c",
        "import sys; from cairn.node import main; sys.exit(main(sys.argv[1:]))",
    ]


class LocalCluster:
    """N cairn node processes on one machine, sharing one data directory.

    Use it as a context manager (tests) or call ``start()``/``stop()``;
    ``run_until_signal()`` is the foreground loop of ``cairn cluster up``::

        with LocalCluster(tmp_path, nodes=3) as cluster:      # free ports
            client = cairn.Client(cluster.seeds)
            cluster.kill(2)                                   # SIGKILL node 2
            cluster.restart(2)                                # same data, same port

    Args:
        data_dir: the cluster's directory (created if missing). If it holds a saved map
            (``cluster.json``), that cluster is started again.
        nodes: how many nodes a new cluster has (default 3); for a saved cluster, None
            or the saved number.
        base_port: node 1's port, node i's is ``base_port + i - 1``. 0 or None: a new
            cluster gets free ports chosen by the kernel; a saved one keeps its ports.
        replicas: N of a new cluster (default min(3, nodes)); W = R = a majority of N.
        partitions: P of a new cluster (default 1024).
        host: the address every node listens on.
        disks_per_node: data directories per node (``node-<id>/disk-<j>`` when > 1).
        metrics_base_port: None: no metrics endpoint; 0: free ports; else node i serves
            Prometheus metrics on ``metrics_base_port + i - 1``.
        log_level: the nodes' ``--log-level``.
        node_args: extra arguments for every node (e.g. ``["--config", "node.toml"]``).
        per_node_args: extra arguments for some nodes, by node id, after ``node_args``
            (e.g. a skewed clock for node 2); ``set_node_args`` changes them for the
            next start of that node.
        env: extra environment variables for every node.
        ready_timeout_s: how long to wait for a node to answer SERVING.
        stop_grace_s: how long a node may take to stop after SIGTERM.
        node_command: the argv prefix that runs a node (default ``python -m cairn.node``).

    Raises:
        LauncherError: see ``start()``.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        nodes: int | None = None,
        base_port: int | None = 0,
        *,
        replicas: int | None = None,
        partitions: int | None = None,
        host: str = "127.0.0.1",
        disks_per_node: int = 1,
        metrics_base_port: int | None = None,
        log_level: str = "info",
        node_args: Sequence[str] = (),
        per_node_args: Mapping[int, Sequence[str]] | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
        node_command: Sequence[str] | None = None,
    ) -> None:
        if nodes is not None and nodes < 1:
            raise LauncherError(f"nodes must be at least 1, not {nodes}")
        if disks_per_node < 1:
            raise LauncherError(f"disks_per_node must be at least 1, not {disks_per_node}")
        self.data_dir = Path(data_dir).absolute()
        self._nodes_asked = nodes
        self._base_port = base_port or 0
        self._replicas = replicas
        self._partitions = partitions
        self._host = host
        self._disks_per_node = disks_per_node
        self._metrics_base_port = metrics_base_port
        self._log_level = log_level
        self._node_args = tuple(node_args)
        self._per_node_args = {nid: tuple(a) for nid, a in (per_node_args or {}).items()}
        self._env = dict(env or {})
        self.ready_timeout_s = ready_timeout_s
        self.stop_grace_s = stop_grace_s
        self._node_command = list(node_command) if node_command else _default_node_command()
        self._map: ClusterMap | None = None
        self._nodes: dict[int, _Node] = {}
        self._lock_file: IO[str] | None = None
        self._spawner: ThreadPoolExecutor | None = None
        self._mutex = threading.RLock()
        self._started = False
        self._stopping = False
        self._signals_seen = 0

    # ----------------------------------------------------------------- the map

    @staticmethod
    def saved_map(data_dir: str | os.PathLike[str]) -> ClusterMap | None:
        """The map saved in ``data_dir/cluster.json``, or None if there is none.

        Raises:
            LauncherError: the file exists but is not a valid cluster map.
        """
        path = Path(data_dir) / MAP_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LauncherError(f"cannot read {path}: {exc.strerror}") from None
        try:
            return ClusterMap.from_json(text)
        except CairnError as exc:
            raise LauncherError(f"{path} is not a valid cluster map: {exc}") from None

    def _resolve_map(self) -> ClusterMap:
        saved = self.saved_map(self.data_dir)
        if saved is not None:
            self._check_matches(saved)
            return saved
        leftovers = sorted(p.name for p in self.data_dir.glob("node-*") if p.is_dir())
        if leftovers:
            raise LauncherError(
                f"{self.data_dir} holds node directories ({', '.join(leftovers)}) but no "
                f"{MAP_FILE}: it is not a cluster this launcher can bring back; "
                "restore the map or use an empty directory"
            )
        count = self._nodes_asked or DEFAULT_NODES
        if self._base_port:
            ports = list(range(self._base_port, self._base_port + count))
        else:
            ports = free_ports(count, self._host)
        try:
            cluster_map = _build_map(
                self._host, ports, self._replicas, self._partitions or DEFAULT_PARTITIONS
            )
        except CairnError as exc:
            raise LauncherError(f"cannot build the cluster map: {exc}") from None
        _write_atomically(self.data_dir / MAP_FILE, cluster_map.to_json(indent=2) + "\n")
        return cluster_map

    def _check_matches(self, saved: ClusterMap) -> None:
        ports = [parse_address(node.address)[1] for node in saved.nodes]
        hosts = {parse_address(node.address)[0] for node in saved.nodes}
        diffs: list[tuple[str, object, object]] = []
        if self._nodes_asked is not None and self._nodes_asked != len(saved.nodes):
            diffs.append(("--nodes", self._nodes_asked, len(saved.nodes)))
        if self._base_port and (
            ports != list(range(self._base_port, self._base_port + len(ports)))
        ):
            diffs.append(("--base-port", self._base_port, ports[0]))
        if self._replicas is not None and self._replicas != saved.replicas_n:
            diffs.append(("--replicas", self._replicas, saved.replicas_n))
        if self._partitions is not None and self._partitions != saved.partitions:
            diffs.append(("--partitions", self._partitions, saved.partitions))
        if hosts != {self._host}:
            diffs.append(("--host", self._host, ",".join(sorted(hosts))))
        if diffs:
            said = ", ".join(f"{name} {asked} (saved: {was})" for name, asked, was in diffs)
            raise ClusterMismatch(
                f"{self.data_dir} holds a cluster of {len(saved.nodes)} nodes "
                f"({describe_map(saved)}), saved in {self.data_dir / MAP_FILE}, that the "
                f"settings disagree with: {said}. The shape of a cluster is fixed when it "
                "is created: start it without those settings, or use another data directory",
                diffs,
            )

    # ------------------------------------------------------------ properties

    @property
    def map(self) -> ClusterMap:
        """The cluster map the nodes were started with."""
        if self._map is None:
            raise LauncherError("the cluster is not started")
        return self._map

    @property
    def seeds(self) -> list[str]:
        """Every node's address, node 1 first: what a client takes as its seeds."""
        return [node.address for node in self.map.nodes]

    @property
    def node_ids(self) -> tuple[int, ...]:
        """The node ids, ascending."""
        return tuple(node.id for node in self.map.nodes)

    def address(self, node_id: int) -> str:
        """Where node ``node_id`` serves gRPC (``host:port``)."""
        return self._node(node_id).info.address

    def pid(self, node_id: int) -> int | None:
        """The process id of node ``node_id``, or None if it is not running."""
        proc = self._node(node_id).proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def pids(self) -> dict[int, int]:
        """The process id of every running node, by node id."""
        return {nid: pid for nid in self._nodes if (pid := self.pid(nid)) is not None}

    def is_running(self, node_id: int) -> bool:
        """Whether node ``node_id``'s process exists (a SIGSTOPped one counts)."""
        return self.pid(node_id) is not None

    def data_dirs(self, node_id: int) -> tuple[Path, ...]:
        """Node ``node_id``'s data directories (its disks)."""
        return self._node(node_id).data_dirs

    def log_path(self, node_id: int) -> Path:
        """The file that collects node ``node_id``'s stdout and stderr."""
        return self._node(node_id).log_path

    def metrics_address(self, node_id: int) -> str | None:
        """Where node ``node_id`` serves Prometheus metrics, if it does."""
        return self._node(node_id).metrics_address

    def _node(self, node_id: int) -> _Node:
        try:
            return self._nodes[node_id]
        except KeyError:
            raise LauncherError(
                f"no node {node_id} in this cluster (nodes: {sorted(self._nodes)})"
            ) from None

    # ---------------------------------------------------------- start, stop

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        """Start every node and wait until each answers SERVING.

        On any failure every process started so far is stopped before the error is raised.

        Raises:
            ClusterMismatch: the saved cluster has another shape than asked for.
            NodeFailed: a node exited during start, or did not become ready in time.
            LauncherError: another launcher holds the directory, a port is taken, ...
        """
        with self._mutex:
            if self._started:
                raise LauncherError("the cluster is already started")
            self._started = True
            self._stopping = False
        atexit.register(self._stop_at_exit)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._take_lock()
            self._map = self._resolve_map()
            self._nodes = {
                node.id: self._plan_node(node, i) for i, node in enumerate(self._map.nodes)
            }
            busy = [n.info.address for n in self._nodes.values() if not self._is_free(n)]
            if busy:
                raise LauncherError(
                    f"address {', '.join(busy)} is already in use (another cluster or "
                    "program listens there); stop it, or choose other ports"
                )
            self._spawner = ThreadPoolExecutor(1, thread_name_prefix="cairn-launcher-spawn")
            for node in self._nodes.values():
                self._spawn(node)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _plan_node(self, info: NodeInfo, index: int) -> _Node:
        node_dir = self.data_dir / f"node-{info.id}"
        if self._disks_per_node == 1:
            dirs: tuple[Path, ...] = (node_dir,)
        else:
            dirs = tuple(node_dir / f"disk-{j}" for j in range(1, self._disks_per_node + 1))
        metrics: str | None = None
        if self._metrics_base_port is not None:
            port = (
                free_ports(1, self._host)[0]
                if self._metrics_base_port == 0
                else self._metrics_base_port + index
            )
            host_part = f"[{self._host}]" if ":" in self._host else self._host
            metrics = f"{host_part}:{port}"
        return _Node(
            info=info,
            data_dirs=dirs,
            log_path=self.data_dir / LOGS_DIR / f"node-{info.id}.log",
            metrics_address=metrics,
        )

    @staticmethod
    def _is_free(node: _Node) -> bool:
        addresses = [node.info.address]
        if node.metrics_address:
            addresses.append(node.metrics_address)
        return all(_port_is_free(*parse_address(address)) for address in addresses)

    def _take_lock(self) -> None:
        path = self.data_dir / LOCK_FILE
        lock = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the cluster's life
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            lock.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise LauncherError(
                    f"another launcher (pid {holder}) is running the cluster in "
                    f"{self.data_dir}; stop it first"
                ) from None
            raise
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        self._lock_file = lock

    def _argv(self, node: _Node) -> list[str]:
        argv = [
            *self._node_command,
            "--node-id",
            str(node.info.id),
            "--listen",
            node.info.address,
            "--cluster-map",
            str(self.data_dir / MAP_FILE),
            "--log-level",
            self._log_level,
        ]
        for directory in node.data_dirs:
            argv += ["--data", str(directory)]
        if node.metrics_address:
            argv += ["--metrics-listen", node.metrics_address]
        argv += self._node_args
        argv += self._per_node_args.get(node.info.id, ())
        return argv

    def set_node_args(self, node_id: int, args: Sequence[str]) -> None:
        """Extra arguments for node ``node_id`` from its next start (``restart``) on."""
        self._per_node_args[node_id] = tuple(args)

    def _spawn(self, node: _Node) -> None:
        for directory in node.data_dirs:
            directory.mkdir(parents=True, exist_ok=True)
        node.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env}
        with open(node.log_path, "ab") as log_file:
            node.log_offset = log_file.tell()
            argv = self._argv(node)
            assert self._spawner is not None
            # Spawned from one long-lived thread: PR_SET_PDEATHSIG fires when the thread
            # that forked the child exits, so a short-lived caller thread (asyncio's
            # to_thread, a test's worker) must not be the parent.
            node.proc = self._spawner.submit(
                subprocess.Popen,
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.data_dir,
                # A session of its own: Ctrl-C in a terminal reaches only the launcher,
                # which then stops the nodes in order.
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            ).result()
        node.expected_exit = False
        node.reported = False
        log.info("started node %d (pid %d): %s", node.info.id, node.proc.pid, " ".join(argv))

    def wait_ready(
        self, node_ids: Iterable[int] | None = None, timeout_s: float | None = None
    ) -> None:
        """Wait until every given node (default: all) answers its health check SERVING.

        Raises:
            NodeFailed: a node exited meanwhile, or the deadline passed.
        """
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        ids = list(self._nodes if node_ids is None else node_ids)
        deadline = time.monotonic() + (self.ready_timeout_s if timeout_s is None else timeout_s)
        pending = {nid: self._node(nid) for nid in ids}
        channels: dict[int, Any] = {}
        # No proxy: gRPC honours http_proxy even for 127.0.0.1.
        options = [("grpc.enable_http_proxy", 0)]
        request = health_pb2.HealthCheckRequest(service="")
        try:
            while pending:
                for nid, node in list(pending.items()):
                    if node.proc is None or node.proc.poll() is not None:
                        exit_ = self._exit_of(node)
                        raise NodeFailed(
                            exit_.describe(when="while starting")
                            if exit_
                            else f"node {nid} is not running",
                            exit_,
                        )
                    channel = channels.get(nid)
                    if channel is None:
                        channel = channels[nid] = grpc.insecure_channel(
                            node.info.address, options=options
                        )
                    try:
                        reply = health_pb2_grpc.HealthStub(channel).Check(
                            request, timeout=HEALTH_PROBE_TIMEOUT_S
                        )
                    except grpc.RpcError:
                        continue
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        del pending[nid]
                if not pending:
                    break
                if time.monotonic() > deadline:
                    nid = min(pending)
                    node = pending[nid]
                    tail = _read_tail(node.log_path, node.log_offset)
                    lines = "\n".join(f"    {line}" for line in tail)
                    raise NodeFailed(
                        f"node {nid} ({node.info.address}) did not answer SERVING within "
                        f"{self.ready_timeout_s if timeout_s is None else timeout_s:g} s"
                        + (f"; last lines of {node.log_path}:\n{lines}" if tail else "")
                    )
                time.sleep(POLL_INTERVAL_S)
        finally:
            for channel in channels.values():
                channel.close()

    def _exit_of(self, node: _Node) -> NodeExit | None:
        proc = node.proc
        if proc is None or proc.returncode is None:
            return None
        return NodeExit(
            node_id=node.info.id,
            pid=proc.pid,
            returncode=proc.returncode,
            expected=node.expected_exit,
            log_tail=_read_tail(node.log_path, node.log_offset),
            log_path=node.log_path,
        )

    def poll(self) -> list[NodeExit]:
        """Report each node that exited without being asked to, once.

        Returns:
            The nodes that died since the last call (exit code and last log lines).
        """
        found = []
        with self._mutex:
            for node in self._nodes.values():
                if node.proc is None or node.reported or node.proc.poll() is None:
                    continue
                node.reported = True
                exit_ = self._exit_of(node)
                if exit_ is not None and not exit_.expected:
                    log.info("%s", exit_.describe())
                    found.append(exit_)
        return found

    def kill(
        self,
        node_id: int,
        sig: int = signal.SIGKILL,
        *,
        wait: bool | None = None,
        timeout_s: float | None = None,
    ) -> int | None:
        """Send ``sig`` to node ``node_id`` (chaos): SIGKILL, SIGTERM, SIGSTOP, SIGCONT...

        A node that exits from it is an expected exit: ``poll()`` does not report it.

        Args:
            wait: wait for the process to exit (default: for terminating signals only).
            timeout_s: how long to wait (default ``stop_grace_s``).

        Returns:
            The exit code if the process exited, else None.

        Raises:
            LauncherError: the node is not running, or did not exit in time.
        """
        node = self._node(node_id)
        proc = node.proc
        if proc is None or proc.poll() is not None:
            raise LauncherError(f"node {node_id} is not running")
        if wait is None:
            wait = sig in _TERMINATING
        if sig in _TERMINATING:
            node.expected_exit = True
        proc.send_signal(sig)
        if not wait:
            return None
        try:
            return proc.wait(self.stop_grace_s if timeout_s is None else timeout_s)
        except subprocess.TimeoutExpired:
            raise LauncherError(
                f"node {node_id} (pid {proc.pid}) did not exit after {signal.Signals(sig).name}"
            ) from None

    def stop_node(self, node_id: int, grace_s: float | None = None) -> NodeExit | None:
        """Stop node ``node_id``: SIGTERM, then SIGKILL after ``grace_s``.

        Returns:
            Its exit, or None if it was not running.
        """
        node = self._node(node_id)
        self._terminate([node], self.stop_grace_s if grace_s is None else grace_s)
        return self._exit_of(node)

    def start_node(self, node_id: int, *, wait_ready: bool = True) -> None:
        """Start node ``node_id`` again, with the same data, port and map.

        Raises:
            LauncherError: it is running, or the cluster is stopped.
            NodeFailed: it exited during start or did not become ready in time.
        """
        node = self._node(node_id)
        with self._mutex:
            if self._stopping or self._spawner is None:
                raise LauncherError("the cluster is stopped")
            if node.proc is not None and node.proc.poll() is None:
                raise LauncherError(f"node {node_id} is running (pid {node.proc.pid})")
            self._spawn(node)
        if wait_ready:
            self.wait_ready([node_id])

    def restart(self, node_id: int, *, wait_ready: bool = True) -> None:
        """Stop node ``node_id`` if it runs (SIGTERM, then SIGKILL), and start it again."""
        self.stop_node(node_id)
        self.start_node(node_id, wait_ready=wait_ready)

    def _terminate(self, nodes: Sequence[_Node], grace_s: float) -> None:
        live = [n for n in nodes if n.proc is not None and n.proc.poll() is None]
        for node in live:
            assert node.proc is not None
            node.expected_exit = True
            with contextlib.suppress(ProcessLookupError):
                node.proc.send_signal(signal.SIGTERM)
                # A SIGSTOPped node would hold the SIGTERM until it runs again.
                node.proc.send_signal(signal.SIGCONT)
        deadline = time.monotonic() + grace_s
        for node in live:
            assert node.proc is not None
            try:
                node.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning(
                    "node %d (pid %d) did not stop within %g s of SIGTERM: SIGKILL",
                    node.info.id,
                    node.proc.pid,
                    grace_s,
                )
                with contextlib.suppress(ProcessLookupError):
                    node.proc.kill()
                node.proc.wait()

    def kill_all_now(self) -> None:
        """SIGKILL every node at once (a second Ctrl-C while stopping)."""
        for node in self._nodes.values():
            if node.proc is not None and node.proc.poll() is None:
                node.expected_exit = True
                with contextlib.suppress(ProcessLookupError):
                    node.proc.kill()

    def stop(self, grace_s: float | None = None) -> list[NodeExit]:
        """Stop every node (SIGTERM, then SIGKILL after ``grace_s``) and release the directory.

        Idempotent; safe to call when ``start()`` failed half way.

        Returns:
            How each node that ran in this last round exited.
        """
        with self._mutex:
            if not self._started:
                return []
            self._stopping = True
        errors: list[BaseException] = []
        exits: list[NodeExit] = []
        try:
            self._terminate(
                list(self._nodes.values()), self.stop_grace_s if grace_s is None else grace_s
            )
        except BaseException as exc:  # e.g. KeyboardInterrupt: kill, then re-raise
            self.kill_all_now()
            errors.append(exc)
        for node in self._nodes.values():
            if node.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(5.0)
                exit_ = self._exit_of(node)
                if exit_ is not None:
                    exits.append(exit_)
        if self._spawner is not None:
            self._spawner.shutdown(wait=True)
            self._spawner = None
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                self._lock_file.close()  # closing releases the flock
            self._lock_file = None
        atexit.unregister(self._stop_at_exit)
        with self._mutex:
            self._started = False
        if errors:
            raise errors[0]
        return exits

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(grace_s=min(self.stop_grace_s, 5.0))

    # ------------------------------------------------------------ foreground

    def run_until_signal(
        self,
        on_exit: Callable[[NodeExit], None] | None = None,
        *,
        poll_interval_s: float = 0.2,
    ) -> tuple[int | None, list[NodeExit]]:
        """Run in the foreground until SIGINT or SIGTERM, or until every node has died.

        The signal is forwarded to the nodes as SIGTERM (``stop()``); a second signal
        while they stop kills them at once. A node that dies meanwhile is passed to
        ``on_exit`` and not restarted. Call from the main thread of a started cluster.

        Returns:
            The signal that ended the run (None if every node died), and how each node
            exited when the cluster stopped.
        """
        got: list[int] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            got.append(signum)
            if len(got) > 1:
                self.kill_all_now()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not got:
                for exit_ in self.poll():
                    if on_exit is not None:
                        on_exit(exit_)
                if not self.pids():
                    break
                time.sleep(poll_interval_s)
            exits = self.stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return (got[0] if got else None), exits


def describe_map(cluster_map: ClusterMap) -> str:
    """``127.0.0.1:7101..7103, N=3 W=2 R=2 P=1024`` (for messages)."""
    addresses = [node.address for node in cluster_map.nodes]
    ports = [parse_address(a)[1] for a in addresses]
    hosts = {parse_address(a)[0] for a in addresses}
    if len(hosts) == 1 and ports == list(range(ports[0], ports[0] + len(ports))):
        where = addresses[0] if len(ports) == 1 else f"{addresses[0]}..{ports[-1]}"
    else:
        where = ", ".join(addresses)
    return (
        f"{where}, N={cluster_map.replicas_n} W={cluster_map.write_quorum} "
        f"R={cluster_map.read_quorum} P={cluster_map.partitions}"
    )
