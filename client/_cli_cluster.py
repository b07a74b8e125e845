"""``cairn cluster up``: a local cluster in the foreground (``cairn.cluster.launcher``).

It prints where the nodes listen and a ``seeds:`` line (scripts and tests wait for it),
then watches the nodes until Ctrl-C or SIGTERM, which it forwards to them as SIGTERM. A
node that dies is reported with its exit code and the last lines of its log, and is not
restarted. Exit status: 0 after a clean stop, 1 if a node died or had to be killed.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Final

import click

from cairn._cli_support import EXIT_CONFLICT, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, CliError
from cairn.cluster.clustermap import ClusterMap, parse_address
from cairn.cluster.launcher import (
    ClusterMismatch,
    LauncherError,
    LocalCluster,
    NodeExit,
    NodeFailed,
    describe_map,
)

__all__ = ["DEFAULT_BASE_PORT", "DEFAULT_DATA_DIR", "METRICS_PORT_OFFSET", "up"]

DEFAULT_DATA_DIR: Final = "./cairn-data"
DEFAULT_BASE_PORT: Final = 7101
METRICS_PORT_OFFSET: Final = 1000
"""Node i serves metrics on its gRPC port + 1000 (7101 -> 8101)."""
_CLEAN: Final = frozenset({0, -signal.SIGTERM})


def _say(text: str) -> None:
    click.echo(text)
    sys.stdout.flush()


def _warn(text: str) -> None:
    click.echo(f"cairn: {text}", err=True)


@click.command("up", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=None,
    help="Nodes of a new cluster  [default: 3; a saved cluster keeps its own]",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="The cluster's directory: map, node data, logs.",
)
@click.option(
    "--base-port",
    type=click.IntRange(1, 65535),
    default=None,
    help=f"Port of node 1; node i uses base+i-1  [default: {DEFAULT_BASE_PORT}; "
    "a saved cluster keeps its own]",
)
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    default=None,
    help="Replicas per object (N) of a new cluster  [default: min(3, nodes)]",
)
@click.option(
    "--partitions",
    type=click.IntRange(1, 65536),
    default=None,
    help="Partitions (P) of a new cluster, fixed for its life  [default: 1024]",
)
@click.option(
    "--metrics/--no-metrics",
    default=True,
    show_default=True,
    help=f"Serve Prometheus metrics on each gRPC port + {METRICS_PORT_OFFSET}.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="The nodes' log level.",
)
@click.option(
    "--ready-timeout",
    "ready_timeout_s",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for every node to be ready.",
)
def up(
    nodes: int | None,
    data_dir: str,
    base_port: int | None,
    replicas: int | None,
    partitions: int | None,
    metrics: bool,
    log_level: str,
    ready_timeout_s: float,
) -> int:
    """Start a local cluster in the foreground; Ctrl-C stops it.

    Started again on the same --data directory, it brings back the same cluster with
    its data; the shape flags (--nodes, --base-port, --replicas, --partitions) only
    apply to a new cluster.
    """
    data = Path(data_dir)
    try:
        saved = LocalCluster.saved_map(data)
        port = base_port if base_port is not None else (0 if saved else DEFAULT_BASE_PORT)
        cluster = LocalCluster(
            data,
            nodes=nodes,
            base_port=port,
            replicas=replicas,
            partitions=partitions,
            metrics_base_port=_metrics_base(port, saved) if metrics else None,
            log_level=log_level,
            ready_timeout_s=ready_timeout_s,
        )
        what = "starting the saved cluster in" if saved else "creating a cluster in"
        _say(f"cairn: {what} {data}")
        with _sigterm_interrupts():
            cluster.start()
    except ClusterMismatch as exc:
        raise CliError(str(exc), EXIT_CONFLICT) from None
    except NodeFailed as exc:
        # The last lines of the node's log say why; they come first, the error line last.
        node_exit = exc.exit
        if node_exit is None:  # never answered SERVING: the message holds the log's tail
            first, *rest = str(exc).splitlines() or [""]
            for line in rest:
                click.echo(line, err=True)
            raise CliError(f"{first}; every node was stopped", EXIT_ERROR) from None
        if node_exit.log_tail:
            _warn(f"last lines of {node_exit.log_path}:")
            for line in node_exit.log_tail:
                click.echo(f"    {line}", err=True)
        raise CliError(
            node_exit.describe(with_tail=False, when="while starting; every node was stopped"),
            EXIT_ERROR,
        ) from None
    except LauncherError as exc:
        raise CliError(str(exc), EXIT_ERROR) from None
    except KeyboardInterrupt:
        raise CliError(
            "interrupted while starting; every node was stopped", EXIT_INTERRUPTED
        ) from None
    died: list[NodeExit] = []

    def on_exit(node_exit: NodeExit) -> None:
        died.append(node_exit)
        _warn(node_exit.describe(when="(not restarted)"))

    try:
        _announce(cluster)
        sig, exits = cluster.run_until_signal(on_exit)
    except BaseException:  # e.g. Ctrl-C before the handlers were in place
        cluster.stop()
        raise
    if sig is None:
        _warn("every node has exited; stopping")
    else:
        _say(f"cairn: {signal.Signals(sig).name}: the cluster is stopped")
    dead = {e.node_id for e in died}
    unclean = [e for e in exits if e.returncode not in _CLEAN and e.node_id not in dead]
    for node_exit in unclean:
        _warn(node_exit.describe(when="while stopping"))
    return EXIT_ERROR if died or unclean or sig is None else EXIT_OK


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While the nodes start, SIGTERM acts like Ctrl-C: start() then stops what it began."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _metrics_base(port: int, saved: ClusterMap | None) -> int:
    """Metrics on each gRPC port + 1000 when that fits, else on free ports (0)."""
    first = port or (parse_address(saved.nodes[0].address)[1] if saved else 0)
    count = len(saved.nodes) if saved else 1
    if first and first + METRICS_PORT_OFFSET + count <= 65535:
        return first + METRICS_PORT_OFFSET
    return 0


def _announce(cluster: LocalCluster) -> None:
    _say(f"cairn: {len(cluster.node_ids)} nodes up: {describe_map(cluster.map)}")
    for node_id in cluster.node_ids:
        metrics = cluster.metrics_address(node_id)
        extra = f"  metrics http://{metrics}/metrics" if metrics else ""
        _say(
            f"  node {node_id}  {cluster.address(node_id)}  pid {cluster.pid(node_id)}"
            f"{extra}  log {cluster.log_path(node_id)}"
        )
    seeds = ",".join(cluster.seeds)
    _say(f"seeds: {seeds}")
    _self_check(cluster)
    _say(f"cairn: in another terminal: export CAIRN_SEEDS={seeds}; Ctrl-C stops the cluster")


SELF_CHECK_BUCKET = "cairn-selfcheck"


def _self_check(cluster: LocalCluster) -> None:
    """Show the cluster working: write an object at quorum, read it back through
    another node, and say so. A failure is reported, not fatal."""
    import time

    from cairn import AlreadyExists, CairnError, Client

    seeds = cluster.seeds
    value = f"written at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    try:
        with Client(seeds[:1], timeout=10.0) as writer:
            with contextlib.suppress(AlreadyExists):
                writer.create_bucket(SELF_CHECK_BUCKET)
            info = writer.put(SELF_CHECK_BUCKET, "probe", value)
        with Client(seeds[-1:], timeout=10.0) as reader:
            back = reader.get(SELF_CHECK_BUCKET, "probe")
    except CairnError as exc:
        _warn(f"self-check failed: {exc}")
        return
    if back != value:
        _warn(f"self-check read back {back!r}, expected {value!r}")
        return
    _say(f"cairn: self-check ok: wrote {SELF_CHECK_BUCKET}/probe through {seeds[0]} "
         f"(version {info.version}) and read it back through {seeds[-1]}")
