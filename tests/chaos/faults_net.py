"""Network partitions for the nemesis: nodes in network namespaces, cut with iptables.

The setup puts every node of the cluster in its own network namespace
(``tests/support/netns.py``) before the cluster starts, when this machine allows it
(root, ``ip netns``, iptables); the runner's ExitStack removes the namespaces after the
nodes stopped. Clients stay in the root namespace and reach every node over the bridge,
whatever is cut: only node-to-node traffic is ever dropped.

Kinds (every choice from the nemesis's seeded ``rng``):

- ``partition-one``: one node cut from every other node, both directions. The node
  still takes client calls; those it coordinates must fail (Unavailable) rather than be
  acknowledged without a quorum.
- ``partition-minority``: two nodes cut from the other three, both directions (the two
  still talk to each other).
- ``partition-oneway``: a node receives nothing from one other node or from all of them,
  but can send. ``mode`` ``all`` drops every packet (over TCP this also starves the
  node's own calls of their answers, so it acts like a cut on which the far side sees
  half-open connections); ``requests`` drops only connections the others open
  (conntrack ORIGINAL direction), so the node's calls to them work while theirs to it
  time out.

The fault record says who was cut: ``cut`` lists ``[receiver, [senders], mode]`` for
every receiving node. Healing removes the rules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from tests.support import netns
from tests.support.cluster import Cluster

from . import nemesis
from .nemesis import Nemesis


def setup(cluster: Cluster, cleanup: contextlib.ExitStack) -> None:
    """Put the cluster's nodes in namespaces, if this machine can (else the partition
    kinds are reported unavailable and the nodes stay on 127.0.0.1)."""
    if netns.available() is not None:
        return
    net = cleanup.enter_context(netns.Network(sorted(cluster.procs)))
    cluster.use_network(net)


def _network(n: Nemesis) -> netns.Network:
    net = n.cluster.net
    if net is None:
        raise RuntimeError("a partition fault, but the nodes are not in namespaces")
    return net


def _recorded(net: netns.Network, blocks: list[netns.Block], record: dict[str, Any]
              ) -> Callable[[], None]:
    cut: dict[int, tuple[set[int], str]] = {}
    for b in blocks:
        cut.setdefault(b.node, (set(), b.mode))[0].add(b.source)
    record["cut"] = [[node, sorted(srcs), mode] for node, (srcs, mode) in sorted(cut.items())]
    # Only this fault's rules: with several nemeses, partitions overlap.
    return lambda: net.heal(blocks)


def inject_one(n: Nemesis, node: int, record: dict[str, Any]) -> Callable[[], None]:
    net = _network(n)
    others = [i for i in sorted(n.cluster.procs) if i != node]
    record["isolated"] = [node]
    return _recorded(net, net.cut([node], others), record)


def inject_minority(n: Nemesis, node: int, record: dict[str, Any]) -> Callable[[], None]:
    net = _network(n)
    nodes = sorted(n.cluster.procs)
    with nemesis._BUSY_LOCK:  # the second node too is this nemesis's while cut
        free = [i for i in nodes if i != node and i not in n.busy]
        second = n.rng.choice(free or [i for i in nodes if i != node])
        taken = bool(free)
        if taken:
            n.busy.add(second)
    minority = sorted([node, second])
    record["isolated"] = minority
    heal = _recorded(net, net.cut(minority, [i for i in nodes if i not in minority]), record)

    def heal_and_free() -> None:
        try:
            heal()
        finally:
            if taken:
                with nemesis._BUSY_LOCK:
                    n.busy.discard(second)
    return heal_and_free


def inject_oneway(n: Nemesis, node: int, record: dict[str, Any]) -> Callable[[], None]:
    net = _network(n)
    others = [i for i in sorted(n.cluster.procs) if i != node]
    senders = others if n.rng.random() < 0.5 else [n.rng.choice(others)]
    mode = n.rng.choice(("all", "requests"))
    record["deaf"] = node
    return _recorded(net, net.block(node, senders, mode), record)


nemesis.register("partition-one", inject_one, netns.available)
nemesis.register("partition-minority", inject_minority, netns.available)
nemesis.register("partition-oneway", inject_oneway, netns.available)
nemesis.register_setup(setup)
