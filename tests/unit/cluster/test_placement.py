"""Placement: the key hash, weighted rendezvous hashing, zones, and what moves."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.cluster import (
    ClusterMap,
    NodeId,
    NodeInfo,
    PartitionId,
    changed_partitions,
    local_map,
    partition_of,
    replica_counts,
    replicas,
)
from cairn.cluster.placement import Placement, placement
from cairn.errors import InvalidArgument

pytestmark = pytest.mark.unit


def make_map(
    weights: list[float],
    zones: list[str] | None = None,
    n: int = 3,
    partitions: int = 1024,
    first_id: int = 1,
) -> ClusterMap:
    nodes = tuple(
        NodeInfo(
            NodeId(first_id + i),
            f"10.0.{(first_id + i) // 250}.{(first_id + i) % 250 + 1}:7101",
            zone=zones[i] if zones else "",
            weight=w,
        )
        for i, w in enumerate(weights)
    )
    quorum = n // 2 + 1
    return ClusterMap(1, nodes, replicas_n=n, write_quorum=quorum, read_quorum=quorum,
                      partitions=partitions)


def table(m: ClusterMap) -> list[tuple[NodeId, ...]]:
    return [replicas(m, PartitionId(p)) for p in range(m.partitions)]


def table_digest(m: ClusterMap) -> str:
    h = hashlib.sha256()
    for row in table(m):
        h.update(repr(row).encode())
    return h.hexdigest()[:16]


def relative_errors(m: ClusterMap) -> dict[NodeId, float]:
    counts = replica_counts(m)
    total = sum(counts.values())
    weight_sum = sum(node.weight for node in m.nodes)
    return {
        node.id: counts[node.id] / (total * node.weight / weight_sum) - 1 for node in m.nodes
    }


# -- the key hash ----------------------------------------------------------------------

# Golden values: if one of these changes, every object in every cluster has moved.
# A change of hash is a change of format and needs a migration, never a quiet edit.
# (They also prove the hash is not Python's per-process salted hash().)
GOLDEN_PARTITIONS = [
    ("app", b"config", 910, 9102),
    ("app", b"blob", 605, 23133),
    ("photos", b"2024/01/cat.jpg", 770, 12034),
    ("ab", b"c", 724, 56020),
    ("a", b"bc", 1019, 24571),
    ("app", "ключ".encode(), 83, 49235),
]


@pytest.mark.parametrize(("bucket", "key", "p1024", "p65536"), GOLDEN_PARTITIONS)
def test_partition_of_golden_values(bucket, key, p1024, p65536):
    assert partition_of(bucket, key, 1024) == p1024
    assert partition_of(bucket, key, 65536) == p65536
    assert partition_of(bucket, key, 1) == 0


def test_encoding_is_length_prefixed():
    assert partition_of("ab", b"c", 65536) != partition_of("a", b"bc", 65536)


def test_str_key_is_its_utf8_bytes():
    assert partition_of("app", "ключ", 1024) == partition_of("app", "ключ".encode(), 1024)


@pytest.mark.parametrize("partitions", [0, -1, 65537, True, 2.0])
def test_partition_of_rejects_bad_partition_counts(partitions):
    with pytest.raises(InvalidArgument, match="partitions"):
        partition_of("app", b"k", partitions)


def test_partition_of_rejects_bad_types():
    with pytest.raises(InvalidArgument, match="key"):
        partition_of("app", 5, 1024)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="bucket"):
        partition_of(b"app", b"k", 1024)  # type: ignore[arg-type]


@given(bucket=st.text(max_size=63), key=st.binary(max_size=1024),
       partitions=st.integers(1, 65536))
def test_partition_of_is_in_range_and_deterministic(bucket, key, partitions):
    p = partition_of(bucket, key, partitions)
    assert 0 <= p < partitions
    assert partition_of(bucket, key, partitions) == p


def test_keys_spread_evenly_over_partitions():
    counts = Counter(partition_of("app", f"key-{i}".encode(), 64) for i in range(64_000))
    assert len(counts) == 64
    assert max(counts.values()) < 1000 * 1.15
    assert min(counts.values()) > 1000 * 0.85


# -- replicas: determinism -------------------------------------------------------------


def test_replica_golden_values():
    m = local_map(5, 7101)
    assert [replicas(m, PartitionId(p)) for p in (0, 1, 2, 1023)] == [
        (1, 3, 2), (2, 4, 1), (1, 2, 3), (1, 3, 2),
    ]
    weighted = m.with_weight(NodeId(5), 2.0)
    assert [replicas(weighted, PartitionId(p)) for p in (0, 1, 2, 1023)] == [
        (1, 3, 2), (2, 4, 5), (1, 2, 5), (1, 3, 5),
    ]
    zoned = ClusterMap(1, tuple(NodeInfo(NodeId(i), f"10.0.0.{i}:7101", zone=f"z{i % 3}")
                                for i in range(1, 10)))
    assert [replicas(zoned, PartitionId(p)) for p in (0, 1, 2, 1023)] == [
        (9, 1, 2), (2, 4, 6), (1, 2, 6), (1, 6, 8),
    ]


def test_whole_table_golden_digests():
    # Equal weights rank by the raw hash (integers only). Weighted maps go through
    # math.log, pinned here on this platform's libm (see docs/placement.md).
    m = local_map(5, 7101)
    assert table_digest(m) == "ffc9887647414920"
    assert table_digest(m.with_weight(NodeId(5), 2.0)) == "32c80a7326e89b92"
    zoned = ClusterMap(1, tuple(NodeInfo(NodeId(i), f"10.0.0.{i}:7101", zone=f"z{i % 3}")
                                for i in range(1, 10)))
    assert table_digest(zoned) == "03d38e760e718459"


def test_placement_does_not_depend_on_node_order_epoch_or_addresses():
    m = make_map([1, 1, 2, 1, 1])
    shuffled = ClusterMap(m.epoch + 7, tuple(reversed([
        NodeInfo(n.id, f"host{n.id}.example:9000", n.zone, n.weight) for n in m.nodes
    ])), replicas_n=3, write_quorum=2, read_quorum=2, partitions=1024)
    assert table(m) == table(shuffled)


def test_placement_matches_partition_and_replicas():
    m = local_map(5, 7101)
    got = placement(m, "app", b"config")
    assert got == Placement(PartitionId(910), replicas(m, PartitionId(910)))
    assert placement(m, "app", "config") == got


@pytest.mark.parametrize("partition", [-1, 1024, True, "1"])
def test_replicas_rejects_partitions_out_of_range(partition):
    with pytest.raises(InvalidArgument, match="partition"):
        replicas(local_map(3, 7101), partition)


@st.composite
def cluster_maps(draw):
    count = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=count, max_size=count, unique=True))
    zone_count = draw(st.integers(0, 4))
    nodes = tuple(
        NodeInfo(
            NodeId(node_id),
            f"node{node_id}:7101",
            zone=f"z{draw(st.integers(0, zone_count - 1))}" if zone_count else "",
            weight=draw(st.sampled_from([0.5, 1.0, 1.0, 2.0, 3.5])),
        )
        for node_id in ids
    )
    n = draw(st.integers(1, min(5, count)))
    return ClusterMap(draw(st.integers(1, 100)), nodes, replicas_n=n, write_quorum=1,
                      read_quorum=1, partitions=draw(st.sampled_from([1, 7, 64])))


@settings(max_examples=200, deadline=None)
@given(m=cluster_maps())
def test_replicas_are_n_distinct_nodes_on_as_many_zones_as_possible(m):
    zone_of = {node.id: node.zone or node.id for node in m.nodes}
    distinct_zones = len(set(zone_of.values()))
    for row in table(m):
        assert len(row) == m.replicas_n
        assert len(set(row)) == m.replicas_n
        assert set(row) <= set(m.node_ids)
        assert len({zone_of[n] for n in row}) == min(m.replicas_n, distinct_zones)
        # The zones come first: the first replicas are on distinct zones.
        leading = row[: min(m.replicas_n, distinct_zones)]
        assert len({zone_of[n] for n in leading}) == len(leading)


# -- balance ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "n", "partitions", "tolerance"),
    [
        (3, 1, 4096, 0.02),
        (5, 3, 1024, 0.05),
        (5, 3, 4096, 0.02),
        (10, 3, 4096, 0.03),
        (20, 3, 4096, 0.06),
    ],
)
def test_equal_weights_balance(nodes, n, partitions, tolerance):
    # Measured (docs/placement.md): 5 nodes/N=3/P=4096 max |error| 1.7%, 10 nodes 2.6%,
    # 20 nodes 5.1%. The spread is the binomial noise of P draws, ~1/sqrt(count).
    m = make_map([1.0] * nodes, n=n, partitions=partitions)
    errors = relative_errors(m)
    assert max(abs(e) for e in errors.values()) <= tolerance, errors


def test_weight_is_proportional_for_the_first_replica():
    # With N=1 the rendezvous score -w/ln(u) makes P(first) = w / sum(w), exactly.
    m = make_map([1, 1, 1, 1, 2], n=1, partitions=4096)
    counts = replica_counts(m)
    errors = relative_errors(m)
    assert max(abs(e) for e in errors.values()) <= 0.02, errors
    heavy = counts[NodeId(5)]
    light = sum(counts[NodeId(i)] for i in range(1, 5)) / 4
    assert 1.9 <= heavy / light <= 2.1


def test_weight_with_three_replicas_is_close_to_proportional_when_nodes_are_many():
    # A node holds at most one replica of a partition, so the N-replica share of a
    # heavy node falls short of proportional (measured 1.78x for weight 2 among 10).
    m = make_map([1] * 9 + [2], n=3, partitions=4096)
    counts = replica_counts(m)
    heavy = counts[NodeId(10)]
    light = sum(counts[NodeId(i)] for i in range(1, 10)) / 9
    assert 1.7 <= heavy / light <= 2.0
    m20 = make_map([1] * 19 + [2], n=3, partitions=4096)
    counts = replica_counts(m20)
    assert 1.8 <= counts[NodeId(20)] / (sum(counts.values()) - counts[NodeId(20)]) * 19 <= 2.05


# -- zones -----------------------------------------------------------------------------


def test_three_zones_three_replicas_every_partition_spans_all_zones():
    zones = ["a", "a", "a", "b", "b", "b", "c", "c", "c"]
    m = make_map([1.0] * 9, zones=zones, partitions=4096)
    zone_of = {node.id: node.zone for node in m.nodes}
    for row in table(m):
        assert {zone_of[n] for n in row} == {"a", "b", "c"}
    # Within a zone, the zone's share is split evenly (measured: max 2.1% off).
    errors = relative_errors(m)
    assert max(abs(e) for e in errors.values()) <= 0.04, errors


def test_three_zones_with_uneven_sizes_still_spread():
    zones = ["a", "a", "a", "a", "b", "b", "c"]
    m = make_map([1.0] * 7, zones=zones)
    zone_of = {node.id: node.zone for node in m.nodes}
    counts = replica_counts(m)
    for row in table(m):
        assert {zone_of[n] for n in row} == {"a", "b", "c"}
    # The lone node of zone c holds every partition: the zone rule wins over balance.
    assert counts[NodeId(7)] == m.partitions


def test_two_zones_three_replicas_use_both_zones():
    zones = ["a", "a", "a", "b", "b", "b"]
    m = make_map([1.0] * 6, zones=zones)
    zone_of = {node.id: node.zone for node in m.nodes}
    for row in table(m):
        row_zones = [zone_of[n] for n in row]
        assert set(row_zones) == {"a", "b"}
        assert row_zones[0] != row_zones[1]  # distinct zones first, then the fill
    per_zone = Counter(zone_of[n] for row in table(m) for n in row)
    assert abs(per_zone["a"] - per_zone["b"]) / (3 * m.partitions) < 0.05


# -- what moves ------------------------------------------------------------------------


def _moves(old: ClusterMap, new: ClusterMap) -> tuple[int, int]:
    changed = gained = 0
    for before, after in zip(table(old), table(new), strict=True):
        if set(before) != set(after):
            changed += 1
            assert len(set(after) - set(before)) == 1  # exactly one replica moves
        gained += len(set(after) - set(before))
    return changed, gained


@pytest.mark.parametrize("nodes", [3, 5, 9])
def test_adding_a_node_moves_only_partitions_it_gains(nodes):
    old = make_map([1.0] * nodes, partitions=4096)
    new = old.with_node_added(NodeInfo(NodeId(nodes + 1), "10.9.9.9:7101"))
    new_id = NodeId(nodes + 1)
    for before, after in zip(table(old), table(new), strict=True):
        if new_id in after:
            assert set(after) - set(before) == {new_id}
        else:
            assert after == before  # same nodes, same order
    changed, gained = _moves(old, new)
    # The new node gets its fair share, N/(n+1) of the partitions, and nothing else moves:
    # 1/(n+1) of all replicas.
    expected = old.replicas_n * old.partitions / (nodes + 1)
    assert abs(gained - expected) / expected < 0.05
    assert changed == gained == replica_counts(new)[new_id]
    assert changed == len(changed_partitions(old, new))


@pytest.mark.parametrize("nodes", [4, 6, 10])
def test_removing_a_node_moves_only_partitions_it_loses(nodes):
    old = make_map([1.0] * nodes, partitions=4096)
    gone = NodeId(2)
    new = old.with_node_removed(gone)
    for before, after in zip(table(old), table(new), strict=True):
        if gone in before:
            assert set(before) - set(after) == {gone}
            assert len(set(after) - set(before)) == 1
        else:
            assert after == before
    changed, _ = _moves(old, new)
    assert changed == replica_counts(old)[gone]


def test_reweighting_moves_partitions_only_to_or_from_that_node():
    old = make_map([1.0] * 6, partitions=2048)
    new = old.with_weight(NodeId(3), 2.0)
    for before, after in zip(table(old), table(new), strict=True):
        if set(before) != set(after):
            assert set(after) - set(before) == {NodeId(3)}


@settings(max_examples=60, deadline=None)
@given(m=cluster_maps(), data=st.data())
def test_add_and_remove_move_only_the_node_even_with_zones_and_weights(m, data):
    zones = sorted(m.zones)
    new_id = NodeId(20_000)
    new_node = NodeInfo(
        new_id, "newnode:7101",
        zone=data.draw(st.sampled_from([*zones, "znew"])) if zones else "",
        weight=data.draw(st.sampled_from([0.5, 1.0, 3.0])),
    )
    grown = m.with_node_added(new_node)
    for before, after in zip(table(m), table(grown), strict=True):
        if new_id in after:
            assert set(after) - set(before) == {new_id}
            assert len(set(before) - set(after)) == 1
        else:
            assert after == before
    if len(m.nodes) > m.replicas_n:
        gone = data.draw(st.sampled_from(m.node_ids))
        shrunk = m.with_node_removed(gone)
        for before, after in zip(table(m), table(shrunk), strict=True):
            if gone in before:
                assert set(before) - set(after) == {gone}
                assert len(set(after) - set(before)) == 1
            else:
                assert after == before


def test_changed_partitions_refuses_different_partition_counts():
    with pytest.raises(InvalidArgument, match="partition counts"):
        changed_partitions(local_map(3, 7101), local_map(3, 7101, partitions=512))


def test_equal_maps_share_one_cached_table():
    a = local_map(5, 7101)
    b = local_map(5, 7101)
    assert a is not b
    assert a == b
    assert hash(a) == hash(b)
    assert replicas(a, PartitionId(7)) is replicas(b, PartitionId(7))


def test_adding_to_a_zone_moves_data_only_within_that_zone():
    old = make_map([1.0] * 9, zones=list("aaabbbccc"), partitions=4096)
    zone_of = {node.id: node.zone for node in old.nodes}
    new = old.with_node_added(NodeInfo(NodeId(10), "10.9.9.9:7101", zone="c"))
    changed = 0
    for before, after in zip(table(old), table(new), strict=True):
        if set(before) != set(after):
            changed += 1
            (lost,) = set(before) - set(after)
            assert zone_of[lost] == "c"  # the new node takes over its own zone's replica
    # Zone c's 4096 replicas are now split four ways (measured: 1007).
    assert abs(changed - 4096 / 4) / (4096 / 4) < 0.05


def test_the_first_node_of_a_new_zone_joins_every_partition():
    # 2 zones, N=3: every partition has a zone with two replicas. A third zone appears
    # and the zone rule puts a replica of every partition on its only node.
    old = make_map([1.0] * 6, zones=list("aaabbb"), partitions=1024)
    new = old.with_node_added(NodeInfo(NodeId(7), "10.9.9.9:7101", zone="c"))
    assert len(changed_partitions(old, new)) == 1024
    assert replica_counts(new)[NodeId(7)] == 1024
