"""The cluster map: which nodes exist, where they listen, their zones and weights, N/W/R, P.

A ``ClusterMap`` is an immutable value with an epoch. Every change (a node added,
removed or re-weighted) is a new map with ``epoch + 1``, built by the ``with_*``
helpers; nobody mutates a map in place, so a reader holding one sees one consistent
picture, and swapping maps is one reference assignment. Maps are validated when they
are built: an invalid map cannot exist (``validate()`` re-checks and is idempotent).

The map travels as JSON (``to_json`` / ``from_json``); unknown keys are rejected, so a
typo in an operator's file is an error instead of a silently ignored setting.

Entry points: ``ClusterMap``, ``NodeInfo``, ``local_map``.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from cairn.cluster.ids import (
    MAX_NODE_ID,
    MAX_PARTITIONS,
    MIN_NODE_ID,
    MIN_PARTITIONS,
    NodeId,
)
from cairn.errors import AlreadyExists, InvalidArgument, NotFound

__all__ = [
    "DEFAULT_PARTITIONS",
    "DEFAULT_READ_QUORUM",
    "DEFAULT_REPLICAS_N",
    "DEFAULT_WRITE_QUORUM",
    "MAP_FORMAT_VERSION",
    "MAX_EPOCH",
    "MAX_NODES",
    "MAX_NODE_WEIGHT",
    "MAX_ZONE_CHARS",
    "MIN_EPOCH",
    "ClusterMap",
    "Consistency",
    "NodeInfo",
    "QuorumKind",
    "local_map",
    "parse_address",
]

DEFAULT_REPLICAS_N: Final = 3
DEFAULT_WRITE_QUORUM: Final = 2
DEFAULT_READ_QUORUM: Final = 2
DEFAULT_PARTITIONS: Final = 1024
"""Fixed for the life of a cluster: changing P moves almost every object."""

MIN_EPOCH: Final = 1
"""Epoch 0 is reserved for "no map yet" (the default of an unset wire field)."""
MAX_EPOCH: Final = 2**63 - 1

MAX_NODES: Final = 4096
"""A bound on the map's size; placement hashes every node once per partition."""

MAX_NODE_WEIGHT: Final = 1_000_000.0
"""Weights are relative; a bound keeps a typo (1e300) from starving every other node."""

MAX_ZONE_CHARS: Final = 64
MAX_HOST_CHARS: Final = 253
MIN_PORT: Final = 1
MAX_PORT: Final = 65535

MAP_FORMAT_VERSION: Final = 1
"""The ``format`` field of the JSON form. Bumped when the meaning of a field changes."""

Consistency = Literal["one", "quorum", "all"]
QuorumKind = Literal["read", "write"]

_ZONE_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_HOSTNAME_LABEL_RE: Final = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_PORT_RE: Final = re.compile(r"^[0-9]{1,5}$")

_NODE_KEYS: Final = frozenset({"id", "address", "zone", "weight"})
_NODE_REQUIRED: Final = frozenset({"id", "address"})
_MAP_KEYS: Final = frozenset(
    {"format", "epoch", "nodes", "replicas_n", "write_quorum", "read_quorum", "partitions"}
)
_MAP_REQUIRED: Final = _MAP_KEYS - {"format"}


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` into its parts, checking both.

    The host is a DNS name, an IPv4 address, or an IPv6 address in brackets
    (``[::1]:7101``); the port is 1..65535.

    Args:
        address: the address as written in the map.

    Returns:
        ``(host, port)``; an IPv6 host is returned without its brackets.

    Raises:
        InvalidArgument: the address is not ``host:port``.
    """
    if not isinstance(address, str):
        raise InvalidArgument(f"address must be a string 'host:port', not {address!r}")
    host, sep, port_text = address.rpartition(":")
    if not sep or not host:
        raise InvalidArgument(f"address {address!r} is not 'host:port'")
    if not _PORT_RE.match(port_text) or not MIN_PORT <= int(port_text) <= MAX_PORT:
        raise InvalidArgument(
            f"address {address!r}: port must be a number in {MIN_PORT}..{MAX_PORT}"
        )
    if host.startswith("["):
        if not host.endswith("]"):
            raise InvalidArgument(f"address {address!r}: unbalanced '[' in host")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidArgument(f"address {address!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise InvalidArgument(f"address {address!r}: write an IPv6 host in brackets, [::1]:port")
    elif not _is_hostname(host):
        raise InvalidArgument(f"address {address!r}: {host!r} is not a host name or IPv4 address")
    return host, int(port_text)


def _is_hostname(host: str) -> bool:
    # An IPv4 address is also a valid run of DNS labels, except that a label of only
    # digits must then form an address: reject "300.1.1.1" rather than resolve it.
    if len(host) > MAX_HOST_CHARS:
        return False
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return all(_HOSTNAME_LABEL_RE.match(label) for label in labels)


def _require_int(name: str, value: object) -> int:
    # bool is an int in Python; a map that says "epoch": true is a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an integer, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One node of the cluster map.

    Attributes:
        id: the node's permanent id, MIN_NODE_ID..MAX_NODE_ID; never reused.
        address: where its gRPC server listens, ``host:port``.
        zone: its failure domain (rack, host, availability zone); "" for none. Either
            every node of a map has a zone or none has.
        weight: its relative share of the data (e.g. its capacity), 0 < weight <=
            MAX_NODE_WEIGHT. A node of weight 2 gets about twice the partitions of a
            node of weight 1 (see docs/placement.md for the limits of that).
    """

    id: NodeId
    address: str
    zone: str = ""
    weight: float = 1.0

    def __post_init__(self) -> None:
        self.validate()
        # Keep one canonical form: weight 2 and 2.0 serialize the same way.
        object.__setattr__(self, "weight", float(self.weight))

    def validate(self) -> None:
        """Check this node's own fields.

        Raises:
            InvalidArgument: the id, address, zone or weight is out of range.
        """
        node_id = _require_int("node id", self.id)
        if not MIN_NODE_ID <= node_id <= MAX_NODE_ID:
            raise InvalidArgument(f"node id {node_id} is not in {MIN_NODE_ID}..{MAX_NODE_ID}")
        try:
            parse_address(self.address)
        except InvalidArgument as exc:
            raise InvalidArgument(f"node {node_id}: {exc.message}") from None
        if not isinstance(self.zone, str):
            raise InvalidArgument(f"node {node_id}: zone must be a string, not {self.zone!r}")
        if self.zone and (len(self.zone) > MAX_ZONE_CHARS or not _ZONE_RE.match(self.zone)):
            raise InvalidArgument(
                f"node {node_id}: zone {self.zone!r} must be 1..{MAX_ZONE_CHARS} letters, "
                "digits, '.', '_' or '-', starting with a letter or digit"
            )
        weight = self.weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not math.isfinite(weight)
            or not 0 < weight <= MAX_NODE_WEIGHT
        ):
            raise InvalidArgument(
                f"node {node_id}: weight must be a number in (0, {MAX_NODE_WEIGHT:g}], "
                f"not {weight!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form of this node."""
        return {"id": self.id, "address": self.address, "zone": self.zone, "weight": self.weight}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeInfo:
        """Build a node from its JSON form.

        Raises:
            InvalidArgument: a key is unknown or missing, or a value is out of range.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"a node must be a JSON object, not {data!r}")
        _check_keys("node", data, _NODE_KEYS, _NODE_REQUIRED)
        return cls(
            id=NodeId(_require_int("node id", data["id"])),
            address=data["address"],
            zone=data.get("zone", ""),
            weight=data.get("weight", 1.0),
        )


def _check_keys(
    what: str, data: Mapping[str, Any], allowed: frozenset[str], required: frozenset[str]
) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise InvalidArgument(f"{what}: unknown keys {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(data))
    if missing:
        raise InvalidArgument(f"{what}: missing keys {missing}")


@dataclass(frozen=True, slots=True)
class ClusterMap:
    """The cluster as every node and client sees it at one epoch.

    Nodes are kept sorted by id, so two maps with the same content are equal and
    serialize to the same JSON whatever order the nodes were given in.

    Attributes:
        epoch: the version of this map, MIN_EPOCH..MAX_EPOCH; a newer map has a
            larger epoch. Every RPC carries its sender's epoch.
        nodes: the nodes, sorted by id.
        replicas_n: N, the number of replicas of each partition (1..number of nodes).
        write_quorum: W, acknowledgements a "quorum" write waits for (1..N).
        read_quorum: R, answers a "quorum" read waits for (1..N).
        partitions: P, the fixed number of partitions (MIN_PARTITIONS..MAX_PARTITIONS).
    """

    epoch: int
    nodes: tuple[NodeInfo, ...]
    replicas_n: int = DEFAULT_REPLICAS_N
    write_quorum: int = DEFAULT_WRITE_QUORUM
    read_quorum: int = DEFAULT_READ_QUORUM
    partitions: int = DEFAULT_PARTITIONS
    # The map is the key of placement's cache and is hashed on every lookup: hash once.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nodes = self.nodes
        if isinstance(nodes, str | bytes | Mapping) or not isinstance(nodes, Iterable):
            raise InvalidArgument(f"nodes must be a sequence of NodeInfo, not {nodes!r}")
        nodes = tuple(nodes)
        for node in nodes:
            if not isinstance(node, NodeInfo):
                raise InvalidArgument(f"nodes must be NodeInfo values, not {node!r}")
        object.__setattr__(self, "nodes", tuple(sorted(nodes, key=lambda n: n.id)))
        self.validate()
        object.__setattr__(
            self,
            "_hash",
            hash(
                (
                    self.epoch,
                    self.nodes,
                    self.replicas_n,
                    self.write_quorum,
                    self.read_quorum,
                    self.partitions,
                )
            ),
        )

    def __hash__(self) -> int:
        return self._hash

    def validate(self) -> None:
        """Check the whole map: its fields and the rules between them.

        Raises:
            InvalidArgument: with a message naming the broken rule, e.g. duplicate node
                ids or addresses, W > N, N > number of nodes, P out of range, or zones
                given for only some nodes.
        """
        epoch = _require_int("epoch", self.epoch)
        if not MIN_EPOCH <= epoch <= MAX_EPOCH:
            raise InvalidArgument(f"epoch {epoch} is not in {MIN_EPOCH}..{MAX_EPOCH}")
        where = f"cluster map epoch {epoch}"
        if not self.nodes:
            raise InvalidArgument(f"{where}: the map has no nodes")
        if len(self.nodes) > MAX_NODES:
            raise InvalidArgument(f"{where}: {len(self.nodes)} nodes, the limit is {MAX_NODES}")
        ids: set[int] = set()
        addresses: dict[str, int] = {}
        for node in self.nodes:
            node.validate()
            if node.id in ids:
                raise InvalidArgument(f"{where}: node id {node.id} appears twice")
            ids.add(node.id)
            # Host names are case-insensitive: "Node1:7101" and "node1:7101" are one server.
            address = node.address.lower()
            if address in addresses:
                raise InvalidArgument(
                    f"{where}: nodes {addresses[address]} and {node.id} share the address "
                    f"{node.address!r}"
                )
            addresses[address] = node.id
        zoned = [node.id for node in self.nodes if node.zone]
        if zoned and len(zoned) != len(self.nodes):
            unzoned = [node.id for node in self.nodes if not node.zone]
            raise InvalidArgument(
                f"{where}: either every node has a zone or none has; nodes {unzoned} have none"
            )
        partitions = _require_int("partitions", self.partitions)
        if not MIN_PARTITIONS <= partitions <= MAX_PARTITIONS:
            raise InvalidArgument(
                f"{where}: partitions P={partitions} is not in {MIN_PARTITIONS}..{MAX_PARTITIONS}"
            )
        n = _require_int("replicas_n", self.replicas_n)
        if not 1 <= n <= len(self.nodes):
            raise InvalidArgument(
                f"{where}: replicas_n N={n} must be in 1..{len(self.nodes)} (the number of nodes)"
            )
        w = _require_int("write_quorum", self.write_quorum)
        if not 1 <= w <= n:
            raise InvalidArgument(f"{where}: write_quorum W={w} must be in 1..N (N={n})")
        r = _require_int("read_quorum", self.read_quorum)
        if not 1 <= r <= n:
            raise InvalidArgument(f"{where}: read_quorum R={r} must be in 1..N (N={n})")

    # -- lookups -----------------------------------------------------------------------

    @property
    def node_ids(self) -> tuple[NodeId, ...]:
        """The ids of all nodes, ascending."""
        return tuple(node.id for node in self.nodes)

    @property
    def zones(self) -> frozenset[str]:
        """The distinct zones of the map (empty when the map has no zones)."""
        return frozenset(node.zone for node in self.nodes if node.zone)

    def node(self, node_id: NodeId) -> NodeInfo:
        """Return the node with this id.

        Raises:
            NotFound: no node of this map has that id.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise NotFound(f"node {node_id} is not in the cluster map (epoch {self.epoch})")

    def __contains__(self, node_id: object) -> bool:
        return any(node.id == node_id for node in self.nodes)

    def quorum_for(self, consistency: Consistency, kind: QuorumKind) -> int:
        """Return how many replicas must answer a call of this consistency.

        "one" is 1, "quorum" is W for writes and R for reads, "all" is N.

        Raises:
            InvalidArgument: consistency or kind is not one of the names above.
        """
        if kind not in ("read", "write"):
            raise InvalidArgument(f"quorum kind must be 'read' or 'write', not {kind!r}")
        if consistency == "one":
            return 1
        if consistency == "quorum":
            return self.write_quorum if kind == "write" else self.read_quorum
        if consistency == "all":
            return self.replicas_n
        raise InvalidArgument(
            f"consistency must be 'one', 'quorum' or 'all', not {consistency!r}"
        )

    # -- new epochs --------------------------------------------------------------------

    def with_node_added(self, node: NodeInfo) -> ClusterMap:
        """Return the next epoch's map, with ``node`` added.

        Raises:
            AlreadyExists: a node with that id is already in the map.
            InvalidArgument: the new map would be invalid (e.g. a duplicate address).
        """
        if node.id in self:
            raise AlreadyExists(f"node {node.id} is already in the cluster map")
        return self._next(nodes=(*self.nodes, node))

    def with_node_removed(self, node_id: NodeId) -> ClusterMap:
        """Return the next epoch's map, without the node ``node_id``.

        Raises:
            NotFound: no node has that id.
            InvalidArgument: fewer nodes than N would be left.
        """
        self.node(node_id)
        return self._next(nodes=tuple(n for n in self.nodes if n.id != node_id))

    def with_weight(self, node_id: NodeId, weight: float) -> ClusterMap:
        """Return the next epoch's map, with the node's weight set to ``weight``.

        Raises:
            NotFound: no node has that id.
            InvalidArgument: the weight is out of range.
        """
        old = self.node(node_id)
        new = replace(old, weight=weight)
        return self._next(nodes=tuple(new if n.id == node_id else n for n in self.nodes))

    def _next(self, *, nodes: tuple[NodeInfo, ...]) -> ClusterMap:
        return replace(self, epoch=self.epoch + 1, nodes=nodes)

    # -- JSON --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-ready form of the map."""
        return {
            "format": MAP_FORMAT_VERSION,
            "epoch": self.epoch,
            "replicas_n": self.replicas_n,
            "write_quorum": self.write_quorum,
            "read_quorum": self.read_quorum,
            "partitions": self.partitions,
            "nodes": [node.to_dict() for node in self.nodes],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """Serialize the map; the same map always gives the same text."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClusterMap:
        """Build and validate a map from its JSON form.

        Raises:
            InvalidArgument: a key is unknown or missing, the format version is not
                supported, or the map is invalid.
        """
        if not isinstance(data, Mapping):
            raise InvalidArgument(f"a cluster map must be a JSON object, not {type(data).__name__}")
        _check_keys("cluster map", data, _MAP_KEYS, _MAP_REQUIRED)
        fmt = data.get("format", MAP_FORMAT_VERSION)
        if fmt != MAP_FORMAT_VERSION or isinstance(fmt, bool):
            raise InvalidArgument(
                f"cluster map format {fmt!r} is not supported (this build reads "
                f"{MAP_FORMAT_VERSION})"
            )
        nodes = data["nodes"]
        if not isinstance(nodes, list):
            raise InvalidArgument("cluster map: nodes must be a JSON array")
        return cls(
            epoch=_require_int("epoch", data["epoch"]),
            nodes=tuple(NodeInfo.from_dict(node) for node in nodes),
            replicas_n=_require_int("replicas_n", data["replicas_n"]),
            write_quorum=_require_int("write_quorum", data["write_quorum"]),
            read_quorum=_require_int("read_quorum", data["read_quorum"]),
            partitions=_require_int("partitions", data["partitions"]),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ClusterMap:
        """Parse and validate a map from JSON text.

        Raises:
            InvalidArgument: the text is not JSON, repeats a key, holds NaN or
                Infinity, or is not a valid map (see ``from_dict``).
        """
        try:
            data = json.loads(
                text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject_constant
            )
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"cluster map is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; in a config file that hides a mistake.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidArgument(f"cluster map JSON repeats the key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise InvalidArgument(f"cluster map JSON must not contain {name}")


def local_map(
    n_nodes: int,
    base_port: int,
    host: str = "127.0.0.1",
    *,
    partitions: int = DEFAULT_PARTITIONS,
) -> ClusterMap:
    """Build the epoch-1 map of a local cluster: nodes 1..n on consecutive ports.

    Node ``i`` listens on ``host:base_port + i - 1``. There are no zones and every
    weight is 1. N is 3 (fewer if there are fewer nodes) and W = R = a majority of N,
    so 1 node gives N=W=R=1 and 2 nodes give N=W=R=2.

    Args:
        n_nodes: how many nodes, 1..MAX_NODES.
        base_port: the port of node 1.
        host: the host every node listens on.
        partitions: P.

    Raises:
        InvalidArgument: n_nodes is out of range, or a port would exceed 65535.
    """
    count = _require_int("n_nodes", n_nodes)
    if not 1 <= count <= MAX_NODES:
        raise InvalidArgument(f"n_nodes must be in 1..{MAX_NODES}, not {count}")
    port = _require_int("base_port", base_port)
    if port < MIN_PORT or port + count - 1 > MAX_PORT:
        raise InvalidArgument(
            f"ports {port}..{port + count - 1} do not fit in {MIN_PORT}..{MAX_PORT}"
        )
    replicas_n = min(DEFAULT_REPLICAS_N, count)
    majority = replicas_n // 2 + 1
    host_part = f"[{host}]" if ":" in host else host
    nodes = tuple(
        NodeInfo(id=NodeId(i), address=f"{host_part}:{port + i - 1}") for i in range(1, count + 1)
    )
    return ClusterMap(
        epoch=MIN_EPOCH,
        nodes=nodes,
        replicas_n=replicas_n,
        write_quorum=majority,
        read_quorum=majority,
        partitions=partitions,
    )
