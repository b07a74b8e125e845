"""``cairn admin``: the cluster map and every node's own status; scrub and repair.

``status`` asks one seed for the cluster map (AdminService.GetClusterMap), then every
node of the map for its status (AdminService.Status), through the SDK. A node that does
not answer is shown as down, with why; the command still prints the others, and exits
``EXIT_DEGRADED`` when a node is down or a disk is not ``ok``.

``scrub`` and ``repair`` send one call to each chosen node (``targets``: one ``--node``,
the replicas of a ``--partition``, or every node of the map) and say what each did; a
node that fails does not stop the others (``run_on``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from cairn._cli_support import (
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    exit_code_for,
    format_bytes,
    format_rate,
    one_line,
)
from cairn._values import RepairResult, RepairStatus
from cairn.cluster.placement import replicas
from cairn.errors import CairnError

__all__ = [
    "EXIT_DEGRADED",
    "REPAIR_FIELDS",
    "REPAIR_WAIT_TIMEOUT_S",
    "NodeReport",
    "StatusReport",
    "Target",
    "collect",
    "repair_line",
    "repair_summary",
    "run_on",
    "targets",
]

EXIT_DEGRADED: Final = EXIT_UNAVAILABLE
REPAIR_WAIT_TIMEOUT_S: Final = 3600.0
"""Deadline of ``admin repair --wait`` when ``--timeout`` is not given: levelling copies
object bytes at the repair rate, far longer than the SDK's default deadline."""
REPAIR_FIELDS: Final = tuple(f.name for f in dataclasses.fields(RepairStatus))
"""The fields of ``NodeStatus.repair``, in the wire's order (``--json`` shows them all)."""


@dataclass(slots=True)
class NodeReport:
    """One node of the map: its status, or why it could not be had."""

    node_id: int
    address: str
    zone: str
    status: Any = None
    error: str = ""

    @property
    def up(self) -> bool:
        return self.status is not None

    def bad_disks(self) -> list[Any]:
        if self.status is None:
            return []
        return [d for d in getattr(self.status, "disks", ()) if d.state != "ok"]


@dataclass(slots=True)
class StatusReport:
    """The map and what each node said."""

    cluster_map: Any
    nodes: list[NodeReport] = field(default_factory=list)

    def problem(self) -> str:
        """One line saying what is wrong, or "" when every node is up and every disk ok."""
        down = [n for n in self.nodes if not n.up]
        bad = [(n, d) for n in self.nodes for d in n.bad_disks()]
        parts = []
        if down:
            ids = ", ".join(str(n.node_id) for n in down)
            parts.append(f"{len(down)} of {len(self.nodes)} nodes unreachable (node {ids})")
        if bad:
            disks = ", ".join(f"node {n.node_id} {d.path} {d.state}" for n, d in bad)
            parts.append(f"{len(bad)} disks not ok ({disks})")
        return "; ".join(parts)

    def lines(self) -> Iterator[str]:
        """The report for people."""
        m = self.cluster_map
        yield (
            f"cluster: epoch {m.epoch}, {len(m.nodes)} nodes, N={m.replicas_n} "
            f"W={m.write_quorum} R={m.read_quorum} P={m.partitions}"
        )
        hints = 0
        for node in self.nodes:
            zone = f"  zone {node.zone}" if node.zone else ""
            if not node.up:
                yield f"node {node.node_id}  {node.address}{zone}  DOWN  {node.error}"
                continue
            s = node.status
            hints += s.pending_hints
            yield (
                f"node {node.node_id}  {node.address}{zone}  up  v{s.software_version}  "
                f"uptime {_duration(s.uptime_s)}  epoch {s.epoch}  objects {s.object_count}  "
                f"tombstones {getattr(s, 'tombstone_count', 0)}  hints {s.pending_hints}"
            )
            repair = getattr(s, "repair", None)
            if repair is not None:
                yield repair_line(repair)
            for d in s.disks:
                error = f"  ({one_line(d.error)})" if d.error else ""
                yield (
                    f"  disk {d.path}  {d.state}{error}  used {format_bytes(d.used_bytes)}  "
                    f"free {format_bytes(d.free_bytes)}  objects {d.object_count}  "
                    f"segments {d.segment_count}  live {format_bytes(d.live_bytes)}  "
                    f"dead {format_bytes(d.dead_bytes)}"
                )
        up = sum(1 for n in self.nodes if n.up)
        bad = sum(len(n.bad_disks()) for n in self.nodes)
        yield (
            f"health: {up} of {len(self.nodes)} nodes up, {bad} disks not ok, {hints} hints pending"
        )

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        m = self.cluster_map
        return {
            "epoch": m.epoch,
            "replicas_n": m.replicas_n,
            "write_quorum": m.write_quorum,
            "read_quorum": m.read_quorum,
            "partitions": m.partitions,
            "nodes": [_node_dict(n) for n in self.nodes],
            "problem": self.problem(),
        }


def _node_dict(node: NodeReport) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": node.node_id,
        "address": node.address,
        "zone": node.zone,
        "up": node.up,
    }
    if not node.up:
        out["error"] = node.error
        return out
    s = node.status
    out.update(
        software_version=s.software_version,
        uptime_s=s.uptime_s,
        epoch=s.epoch,
        object_count=s.object_count,
        tombstone_count=getattr(s, "tombstone_count", 0),
        pending_hints=s.pending_hints,
        counters=dict(getattr(s, "counters", {}) or {}),
        labels=dict(getattr(s, "labels", {}) or {}),
        disks=[
            {
                name: getattr(d, name)
                for name in (
                    "path",
                    "disk_id",
                    "state",
                    "error",
                    "used_bytes",
                    "free_bytes",
                    "object_count",
                    "segment_count",
                    "live_bytes",
                    "dead_bytes",
                )
            }
            for d in s.disks
        ],
    )
    repair = getattr(s, "repair", None)
    if repair is not None:
        out["repair"] = {name: getattr(repair, name) for name in REPAIR_FIELDS}
    return out


def repair_line(r: Any) -> str:
    """A node's repair status in one line (the fields of ``cairn.RepairStatus``)."""
    eta = _duration(r.eta_s) if r.eta_s > 0 else "-"
    passes = "pass" if r.scrub_passes == 1 else "passes"
    return (
        f"  repair  {r.partitions_below_redundancy}/{r.partitions_held} partitions below "
        f"redundancy  to copy {format_bytes(r.bytes_to_copy)}  eta {eta}  "
        f"rate {format_rate(r.rate_bytes_s)}  scrub {r.scrub_progress:.0%} "
        f"({r.scrub_passes} {passes})  repaired {r.scrub_repaired}  lost {r.scrub_lost}"
        + (f"  deferred {r.scrub_deferred}" if r.scrub_deferred else "")
        + (f"  rebuilding {r.partitions_rebuilding} partitions"
           if r.partitions_rebuilding else "")
    )


def _duration(seconds: float) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def collect(client: Any) -> StatusReport:
    """Ask for the map (``Client.cluster_map``: any seed), then each node of it for its
    status (``Client.node_status``: that node only).

    Raises:
        CairnError: the map could not be had from any seed.
    """
    cluster_map = client.cluster_map()
    report = StatusReport(cluster_map)
    for info in cluster_map.nodes:
        node = NodeReport(node_id=info.id, address=info.address, zone=info.zone)
        try:
            node.status = client.node_status(info.address)
        except CairnError as exc:
            node.error = one_line(f"{type(exc).__name__}: {exc}")
        report.nodes.append(node)
    return report


# ------------------------------------------------------------- scrub and repair


@dataclass(frozen=True, slots=True)
class Target:
    """A node a scrub or repair call goes to: its address, and how to name it."""

    address: str
    label: str


def targets(client: Any, node: str | None, partition: int | None) -> list[Target]:
    """The nodes to send to: ``node`` alone, else the replicas of ``partition``, else
    every node of the cluster map (asked of a seed).

    With both ``node`` and ``partition``, a node of the map that holds no replica of the
    partition is refused: it would copy the whole partition in from its replicas.

    Raises:
        CliError: (usage) the partition does not exist, or ``node`` does not hold it.
        CairnError: the cluster map could not be had from any seed.
    """
    if node is not None and partition is None:
        return [Target(node, node)]
    cluster_map = client.cluster_map()
    if partition is not None and partition >= cluster_map.partitions:
        raise CliError(
            f"partition {partition} does not exist (the cluster has "
            f"{cluster_map.partitions}: 0..{cluster_map.partitions - 1})",
            EXIT_USAGE,
        )
    nodes = list(cluster_map.nodes)
    if partition is not None:
        holders = [cluster_map.node(n) for n in replicas(cluster_map, partition)]
        if node is None:
            nodes = holders
        else:
            nodes = [n for n in nodes if n.address == node]
            if not nodes:  # an address the map spells otherwise: the node decides
                return [Target(node, node)]
            if nodes[0] not in holders:
                where = ", ".join(f"node {n.id} {n.address}" for n in holders)
                raise CliError(
                    f"node {nodes[0].id} {node} holds no replica of partition {partition} "
                    f"(its replicas: {where})",
                    EXIT_USAGE,
                )
    return [Target(n.address, f"node {n.id} {n.address}") for n in nodes]


def run_on(
    nodes: list[Target],
    action: Callable[[str], str],
    *,
    what: str,
    echo: Callable[[str], None],
) -> None:
    """Run ``action(address)`` on each node in turn and echo ``label: <what it says>``.

    A node that fails does not stop the others; once all were asked, the failures
    become one error line.

    Raises:
        CliError: a node failed; the exit code is that of the first failure.
    """
    failures: list[tuple[Target, CairnError]] = []
    for target in nodes:
        try:
            text = action(target.address)
        except CairnError as exc:
            failures.append((target, exc))
            continue
        echo(f"{target.label}: {text}")
    if not failures:
        return
    said = "; ".join(f"{t.label}: {_error_text(t, exc)}" for t, exc in failures)
    if len(nodes) == 1:
        message = said
    else:
        message = f"{what} failed on {len(failures)} of {len(nodes)} nodes: {said}"
    raise CliError(message, exit_code_for(failures[0][1]))


def _error_text(target: Target, exc: CairnError) -> str:
    """The error without the address the transport put first (the label names it)."""
    text = one_line(str(exc))
    prefix = f"{target.address}: "
    text = text.removeprefix(prefix)
    return f"{type(exc).__name__}: {text}"


def repair_summary(result: RepairResult, partition: int | None) -> str:
    """What a waited-for ``repair`` did, for people."""
    copied = f"{result.objects_pulled} objects pulled, {result.objects_pushed} pushed"
    failed = ""
    if result.errors:
        more = len(result.errors) - 1
        failed = f"; not levelled: {result.errors[0]}" + (f" (+{more} more)" if more else "")
    if partition is not None:
        return f"partition {partition}: {copied}{failed}"
    if not result.partitions:
        return "every partition level with its replicas: nothing to copy"
    plural = "partition" if result.partitions == 1 else "partitions"
    return f"{result.partitions} {plural} differed: {copied}{failed}"
