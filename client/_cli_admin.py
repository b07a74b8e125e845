"""``cairn admin status``: the cluster map and every node's own status, for operators.

It asks one seed for the cluster map (AdminService.GetClusterMap), then every node of
the map for its status (AdminService.Status), through the SDK. A node that does not
answer is shown as down, with why; the command still prints the others, and exits
``EXIT_DEGRADED`` when a node is down or a disk is not ``ok``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from cairn._cli_support import EXIT_UNAVAILABLE, format_bytes, one_line
from cairn.errors import CairnError

__all__ = ["EXIT_DEGRADED", "NodeReport", "StatusReport", "collect"]

EXIT_DEGRADED: Final = EXIT_UNAVAILABLE


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
    return out


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
