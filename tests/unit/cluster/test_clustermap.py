"""The cluster map: validation, JSON, new epochs, quorums, the local map."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cairn.cluster
from cairn.cluster import ClusterMap, NodeId, NodeInfo, local_map, parse_address
from cairn.errors import AlreadyExists, InvalidArgument, NotFound

pytestmark = pytest.mark.unit


def node(i: int, zone: str = "", weight: float = 1.0) -> NodeInfo:
    return NodeInfo(NodeId(i), f"127.0.0.1:{7100 + i}", zone, weight)


def three() -> ClusterMap:
    return ClusterMap(1, (node(1), node(2), node(3)))


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epoch": 0}, "epoch 0 is not in"),
        ({"epoch": True}, "epoch must be an integer"),
        ({"nodes": ()}, "no nodes"),
        ({"nodes": (node(1), node(1))}, "node id 1 appears twice"),
        (
            {"nodes": (node(1), NodeInfo(NodeId(2), "127.0.0.1:7101"), node(3))},
            "share the address",
        ),
        (
            {"nodes": (node(1), NodeInfo(NodeId(2), "LOCALHOST:1"),
                       NodeInfo(NodeId(3), "localhost:1"))},
            "share the address",
        ),
        ({"nodes": (node(1, "a"), node(2, "b"), node(3))}, "every node has a zone or none"),
        ({"replicas_n": 4}, r"N=4 must be in 1\.\.3"),
        ({"replicas_n": 0}, "N=0"),
        ({"write_quorum": 4}, r"W=4 must be in 1\.\.N \(N=3\)"),
        ({"write_quorum": 0}, "W=0"),
        ({"read_quorum": 4}, "R=4"),
        ({"read_quorum": 0}, "R=0"),
        ({"replicas_n": 2, "write_quorum": 3}, "W=3"),
        ({"partitions": 0}, "P=0"),
        ({"partitions": 65537}, "P=65537"),
        ({"partitions": 2.5}, "partitions must be an integer"),
        ({"nodes": [{"id": 1}]}, "NodeInfo"),
        ({"nodes": "abc"}, "sequence of NodeInfo"),
    ],
)
def test_invalid_maps_are_refused(kwargs, message):
    fields = {"epoch": 1, "nodes": (node(1), node(2), node(3))} | kwargs
    with pytest.raises(InvalidArgument, match=message):
        ClusterMap(**fields)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": 0}, "node id 0 is not in"),
        ({"id": 2**32}, "node id"),
        ({"id": True}, "node id must be an integer"),
        ({"weight": 0}, "weight"),
        ({"weight": -1.0}, "weight"),
        ({"weight": float("nan")}, "weight"),
        ({"weight": float("inf")}, "weight"),
        ({"weight": 2e6}, "weight"),
        ({"weight": True}, "weight"),
        ({"weight": "1"}, "weight"),
        ({"zone": "bad zone"}, "zone"),
        ({"zone": "z" * 65}, "zone"),
        ({"zone": 3}, "zone must be a string"),
        ({"address": "127.0.0.1"}, "not 'host:port'"),
        ({"address": ":7101"}, "not 'host:port'"),
        ({"address": "host:0"}, "port"),
        ({"address": "host:65536"}, "port"),
        ({"address": "host:http"}, "port"),
        ({"address": "::1:7101"}, "brackets"),
        ({"address": "[::1:7101"}, "unbalanced"),
        ({"address": "[nothost]:7101"}, "IPv6"),
        ({"address": "300.1.1.1:7101"}, "not a host name"),
        ({"address": "-bad-.example:7101"}, "not a host name"),
        ({"address": "a b:7101"}, "not a host name"),
        ({"address": 7101}, "must be a string"),
    ],
)
def test_invalid_nodes_are_refused(kwargs, message):
    fields = {"id": NodeId(1), "address": "127.0.0.1:7101"} | kwargs
    with pytest.raises(InvalidArgument, match=message):
        NodeInfo(**fields)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:7101", ("127.0.0.1", 7101)),
        ("node-1.cairn.internal:1", ("node-1.cairn.internal", 1)),
        ("[::1]:65535", ("::1", 65535)),
        ("localhost:7101", ("localhost", 7101)),
    ],
)
def test_parse_address(address, expected):
    assert parse_address(address) == expected


def test_errors_are_value_errors_too():
    with pytest.raises(ValueError, match="epoch"):
        ClusterMap(0, (node(1),), replicas_n=1, write_quorum=1, read_quorum=1)


def test_nodes_are_kept_sorted_and_weights_as_floats():
    m = ClusterMap(1, (node(3), node(1), NodeInfo(NodeId(2), "h:1", weight=2)))
    assert m.node_ids == (1, 2, 3)
    assert m.node(NodeId(2)).weight == 2.0
    assert isinstance(m.node(NodeId(2)).weight, float)
    assert m == ClusterMap(1, (node(1), NodeInfo(NodeId(2), "h:1", weight=2.0), node(3)))


def test_validate_is_idempotent_and_maps_are_hashable():
    m = three()
    m.validate()
    assert {m: 1}[three()] == 1


# -- lookups and quorums ---------------------------------------------------------------


def test_node_lookup():
    m = three()
    assert m.node(NodeId(2)).address == "127.0.0.1:7102"
    assert NodeId(2) in m
    assert NodeId(9) not in m
    with pytest.raises(NotFound, match="node 9 is not in the cluster map"):
        m.node(NodeId(9))


def test_zones_property():
    assert three().zones == frozenset()
    zoned = ClusterMap(1, (node(1, "a"), node(2, "b"), node(3, "a")))
    assert zoned.zones == {"a", "b"}


@pytest.mark.parametrize(
    ("consistency", "kind", "expected"),
    [
        ("one", "read", 1), ("one", "write", 1),
        ("quorum", "read", 3), ("quorum", "write", 4),
        ("all", "read", 5), ("all", "write", 5),
    ],
)
def test_quorum_for(consistency, kind, expected):
    m = ClusterMap(1, tuple(node(i) for i in range(1, 6)), replicas_n=5, write_quorum=4,
                   read_quorum=3)
    assert m.quorum_for(consistency, kind) == expected


def test_quorum_for_rejects_unknown_names():
    with pytest.raises(InvalidArgument, match="consistency"):
        three().quorum_for("most", "read")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="kind"):
        three().quorum_for("one", "delete")  # type: ignore[arg-type]


# -- new epochs ------------------------------------------------------------------------


def test_with_node_added():
    m = three()
    grown = m.with_node_added(node(4, weight=2.0))
    assert grown.epoch == m.epoch + 1
    assert grown.node_ids == (1, 2, 3, 4)
    assert m.node_ids == (1, 2, 3)  # the old map is unchanged
    with pytest.raises(AlreadyExists):
        grown.with_node_added(node(4))
    with pytest.raises(InvalidArgument, match="share the address"):
        m.with_node_added(NodeInfo(NodeId(9), "127.0.0.1:7101"))


def test_with_node_removed():
    m = three().with_node_added(node(4))
    shrunk = m.with_node_removed(NodeId(2))
    assert shrunk.epoch == m.epoch + 1
    assert shrunk.node_ids == (1, 3, 4)
    with pytest.raises(NotFound):
        shrunk.with_node_removed(NodeId(2))
    with pytest.raises(InvalidArgument, match=r"N=3 must be in 1\.\.2"):
        shrunk.with_node_removed(NodeId(1))


def test_with_weight():
    m = three()
    heavier = m.with_weight(NodeId(2), 3.0)
    assert heavier.epoch == 2
    assert heavier.node(NodeId(2)).weight == 3.0
    assert heavier.node(NodeId(1)).weight == 1.0
    with pytest.raises(InvalidArgument, match="weight"):
        m.with_weight(NodeId(2), 0.0)
    with pytest.raises(NotFound):
        m.with_weight(NodeId(7), 2.0)


# -- JSON ------------------------------------------------------------------------------


def test_json_round_trip_and_canonical_text():
    m = ClusterMap(
        42, (node(2, "b", 2.5), node(1, "a"), NodeInfo(NodeId(7), "[::1]:7", "c")),
        replicas_n=3, write_quorum=3, read_quorum=1, partitions=4096,
    )
    text = m.to_json()
    back = ClusterMap.from_json(text)
    assert back == m
    assert back.to_json() == text
    assert ClusterMap.from_json(text.encode()) == m
    assert json.loads(m.to_json(indent=2)) == json.loads(text)
    assert json.loads(text)["format"] == 1


@st.composite
def maps(draw):
    ids = draw(st.lists(st.integers(1, 2**32 - 1), min_size=1, max_size=8, unique=True))
    zoned = draw(st.booleans())
    nodes = tuple(
        NodeInfo(NodeId(i), f"n{i}.example:{draw(st.integers(1, 65535))}",
                 zone=draw(st.sampled_from(["a", "b", "rack-1.x"])) if zoned else "",
                 weight=draw(st.floats(0.001, 1_000_000.0)))
        for i in ids
    )
    n = draw(st.integers(1, len(nodes)))
    return ClusterMap(draw(st.integers(1, 2**63 - 1)), nodes, replicas_n=n,
                      write_quorum=draw(st.integers(1, n)), read_quorum=draw(st.integers(1, n)),
                      partitions=draw(st.integers(1, 65536)))


@given(m=maps())
def test_json_round_trip_property(m):
    assert ClusterMap.from_json(m.to_json()) == m


def _doc(**changes):
    doc = json.loads(three().to_json())
    doc.update(changes)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (_doc(extra=1), r"unknown keys \['extra'\]"),
        (_doc(format=2), "format 2 is not supported"),
        (_doc(format=True), "format True"),
        (_doc(nodes={}), "nodes must be a JSON array"),
        (_doc(nodes=[1]), "a node must be a JSON object"),
        (_doc(nodes=[{"id": 1, "address": "h:1", "rack": "x"}]), r"unknown keys \['rack'\]"),
        (_doc(nodes=[{"id": 1}]), r"missing keys \['address'\]"),
        (_doc(nodes=[{"id": "1", "address": "h:1"}]), "node id must be an integer"),
        (_doc(epoch="3"), "epoch must be an integer"),
        (_doc(replicas_n=1.0), "replicas_n must be an integer"),
        ('{"epoch": 1, "epoch": 2}', "repeats the key 'epoch'"),
        ('{"epoch": NaN}', "NaN"),
        (_doc(replicas_n=5), "N=5"),
    ],
)
def test_bad_json_is_refused(text, message):
    with pytest.raises(InvalidArgument, match=message):
        ClusterMap.from_json(text)


def test_json_missing_map_key_is_refused():
    doc = json.loads(three().to_json())
    del doc["partitions"]
    with pytest.raises(InvalidArgument, match=r"missing keys \['partitions'\]"):
        ClusterMap.from_dict(doc)


def test_json_format_key_is_optional_and_node_defaults_apply():
    doc = {"epoch": 1, "replicas_n": 1, "write_quorum": 1, "read_quorum": 1,
           "partitions": 16, "nodes": [{"id": 5, "address": "h:1"}]}
    m = ClusterMap.from_dict(doc)
    assert m.node(NodeId(5)) == NodeInfo(NodeId(5), "h:1", "", 1.0)


# -- the local map ---------------------------------------------------------------------


def test_local_map_of_three():
    m = local_map(3, 7101)
    assert m.epoch == 1
    assert [n.address for n in m.nodes] == ["127.0.0.1:7101", "127.0.0.1:7102", "127.0.0.1:7103"]
    assert (m.replicas_n, m.write_quorum, m.read_quorum, m.partitions) == (3, 2, 2, 1024)
    assert m.zones == frozenset()


@pytest.mark.parametrize(("count", "nwr"), [(1, (1, 1, 1)), (2, (2, 2, 2)), (7, (3, 2, 2))])
def test_local_map_sizes(count, nwr):
    m = local_map(count, 9000, host="localhost", partitions=64)
    assert (m.replicas_n, m.write_quorum, m.read_quorum) == nwr
    assert m.partitions == 64
    assert m.node_ids == tuple(range(1, count + 1))


def test_local_map_ipv6_host():
    assert local_map(1, 7101, host="::1").nodes[0].address == "[::1]:7101"


@pytest.mark.parametrize(("count", "port"), [(0, 7101), (3, 65534), (1, 0), (True, 7101)])
def test_local_map_refuses_bad_arguments(count, port):
    with pytest.raises(InvalidArgument):
        local_map(count, port)


# -- the package's public names --------------------------------------------------------


def test_exported_names():
    for name in cairn.cluster.__all__:
        assert hasattr(cairn.cluster, name), name
    assert set(cairn.cluster.__all__) >= {
        "ClusterMap", "NodeInfo", "NodeId", "PartitionId", "local_map", "partition_of",
        "replicas", "HybridClock", "HealthView", "Clock", "SystemClock", "OffsetClock",
    }
    # The submodule is not shadowed by the function of the same name.
    import cairn.cluster.placement as placement_module

    assert callable(placement_module.placement)
