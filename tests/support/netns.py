"""A network namespace per node, for tests that cut the network (issue 6).

``Network(nodes)`` is a context manager that builds, for one test run:

- a Linux bridge ``cnb<idx>`` in the root namespace with the host address
  ``10.213.<idx>.1/24`` (the test process, and every client in it, reaches the nodes
  through it);
- one network namespace ``cairn-net<idx>-n<i>`` per node, ``lo`` up, joined to the
  bridge by a veth pair (``cnv<idx>n<i>`` in the root namespace, ``cnp<idx>n<i>``
  inside), with the address ``10.213.<idx>.<10+i>/24``.

Partitions are ``iptables`` DROP rules in the INPUT chain *inside* the receiving node's
namespace, naming only the other nodes' addresses: packets leave the sender and vanish
on the way, as on a real network (a DROP in OUTPUT would fail the sender's ``send``
with EPERM at once). The host address is never named, so clients always reach every
node. Nothing is routed: the namespaces have no default route and the root namespace
gets only the connected route of its bridge.

``<idx>`` (0..255) is taken under a ``flock`` on ``/run/cairn-netns/<idx>.lock`` held
for the run's life, so several runs at once get distinct names and subnets, and a run
that crashed (its lock died with it) is told from one in progress by
``remove_stale()``. Everything (namespaces, veths, bridge, and with the namespaces
their iptables rules) is removed on exit, on an exception too.

Nodes run in a namespace through ``nsenter --net=/run/netns/NAME`` rather than
``ip netns exec``: both exec, so the pid is the node's own python (SIGKILL/SIGSTOP hit
it), but ``ip netns exec`` also unshares the mount namespace, and on a machine whose
mounts are private (as here: no ``shared:`` in ``/proc/self/mountinfo``) a disk
mounted, remounted or unmounted after the node started would then be invisible to it.
``nsenter --net`` changes only the network namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SUPERNET = ipaddress.IPv4Network("10.213.0.0/16")  # one /24 per run; never 192.0.2.0/24
SLOTS = 256
HOST_OCTET = 1
NODE_OCTET_BASE = 10  # node i is .<10+i>
NS_PREFIX = "cairn-net"
LINK_PREFIX = "cn"  # cnb<idx> bridge, cnv<idx>n<i> / cnp<idx>n<i> veth ends
NS_RE = re.compile(rf"^{NS_PREFIX}(\d+)-n(\d+)$")
LINK_RE = re.compile(rf"^{LINK_PREFIX}(?:b(\d+)|[vp](\d+)n\d+)$")
CMD_TIMEOUT_S = 10.0
ROUTE_TYPES = frozenset({"local", "broadcast", "unicast", "multicast", "anycast", "blackhole",
                         "unreachable", "prohibit", "throw", "nat"})


def lock_dir() -> Path:
    base = Path("/run") if os.access("/run", os.W_OK) else Path("/tmp")
    return base / "cairn-netns"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=CMD_TIMEOUT_S,
                            stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {result.returncode}: "
                           f"{result.stderr.strip()}")
    return result


@cache
def available() -> str | None:
    """Why this machine cannot build per-node namespaces and cut them, or None."""
    if os.geteuid() != 0:
        return "network partitions need root (ip netns, iptables); not root"
    for tool in ("ip", "iptables", "nsenter"):
        if shutil.which(tool) is None:
            return f"network partitions need {tool!r}, which is not installed"
    probe = f"{NS_PREFIX}probe{os.getpid()}"
    made = run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"'ip netns add' fails here: {made.stderr.strip()}"
    try:
        rules = run("ip", "netns", "exec", probe, "iptables", "-S", "INPUT", check=False)
        if rules.returncode != 0:
            return f"iptables does not work in a network namespace: {rules.stderr.strip()}"
    finally:
        run("ip", "netns", "del", probe, check=False)
    # With br_netfilter loaded, bridged packets cross the root namespace's FORWARD chain;
    # a DROP policy there (docker sets one) would cut every node from every other.
    bridged = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if bridged.exists() and bridged.read_text().strip() == "1":
        forward = run("iptables", "-S", "FORWARD", check=False).stdout
        if "-P FORWARD DROP" in forward or "-P FORWARD REJECT" in forward:
            return ("the root namespace's iptables FORWARD policy drops bridged packets "
                    "(br_netfilter is loaded): nodes on a bridge could not talk")
    return None


@dataclass(frozen=True, slots=True)
class NodeNet:
    node: int
    namespace: str
    address: str  # the node's IPv4 address inside its namespace
    veth: str  # the root-namespace end of its veth pair

    def exec_prefix(self) -> list[str]:
        """Run a command in this namespace (the command keeps its pid: nsenter execs)."""
        return ["nsenter", f"--net=/run/netns/{self.namespace}"]


def _names(idx: int, nodes: Iterable[int]) -> tuple[str, list[str], list[str]]:
    nodes = list(nodes)
    return (f"{LINK_PREFIX}b{idx}", [f"{NS_PREFIX}{idx}-n{i}" for i in nodes],
            [f"{LINK_PREFIX}v{idx}n{i}" for i in nodes])


def _existing() -> tuple[set[str], set[str]]:
    namespaces = {line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines()
                  if line.strip()}
    links = set()
    for line in run("ip", "-o", "link", "show").stdout.splitlines():
        # "7: cnv3n1@if6: <...>": the name, without the peer suffix
        links.add(line.split(":", 2)[1].strip().split("@")[0])
    return namespaces, links


def _remove(idx: int, namespaces: Iterable[str], links: Iterable[str]) -> list[str]:
    """Remove one run's namespaces (killing what still runs in them), veths and bridge.
    Returns the errors (every removal is tried)."""
    errors: list[str] = []
    for ns in namespaces:
        pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:  # leftover node processes of this run (a crashed harness)
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        done = run("ip", "netns", "del", ns, check=False)
        if done.returncode != 0:
            errors.append(f"ip netns del {ns}: {done.stderr.strip()}")
    for link in sorted(links, reverse=True):  # veths (cnv) before the bridge (cnb)
        done = run("ip", "link", "del", link, check=False)
        if done.returncode != 0 and "Cannot find device" not in done.stderr:
            errors.append(f"ip link del {link}: {done.stderr.strip()}")
    return errors


class _Lock:
    """An exclusive flock on ``<lock_dir>/<idx>.lock``, or nothing if someone holds it."""

    def __init__(self, idx: int) -> None:
        self.path = lock_dir() / f"{idx}.lock"
        self.fd: int | None = None

    def acquire(self) -> bool:
        for _ in range(10):  # another run may remove the empty directory meanwhile
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                break
            except FileNotFoundError:
                continue
        else:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The holder before us may have unlinked the file after we opened it.
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return False
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            os.close(self.fd)
            self.fd = None
            with contextlib.suppress(OSError):  # only if no other run holds a lock
                self.path.parent.rmdir()


def remove_stale() -> list[str]:
    """Remove what crashed runs of ours left (by name prefix; a run in progress holds its
    lock and is left alone). Returns the names removed."""
    namespaces, links = _existing()
    by_idx: dict[int, tuple[list[str], list[str]]] = {}
    for ns in namespaces:
        if m := NS_RE.match(ns):
            by_idx.setdefault(int(m.group(1)), ([], []))[0].append(ns)
    for link in links:
        if m := LINK_RE.match(link):
            by_idx.setdefault(int(m.group(1) or m.group(2)), ([], []))[1].append(link)
    removed: list[str] = []
    for idx, (nss, lks) in sorted(by_idx.items()):
        lock = _Lock(idx)
        if not lock.acquire():
            continue
        try:
            _remove(idx, nss, lks)
            removed += nss + lks
        finally:
            lock.release()
    return removed


def _subnet_in_use(subnet: ipaddress.IPv4Network) -> bool:
    """Is any address or route of the root namespace inside (or around) ``subnet``?"""
    for line in run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
        cidr = line.split()[3]
        if ipaddress.IPv4Interface(cidr).network.overlaps(subnet):
            return True
    for line in run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        words = line.split()
        dest = words[1] if words[0] in ROUTE_TYPES and len(words) > 1 else words[0]
        if dest == "default":
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(dest, strict=False).overlaps(subnet):
                return True
    return False


def _bypass_proxies() -> None:
    """gRPC sends calls to any address but loopback through ``grpc_proxy``/``https_proxy``/
    ``http_proxy`` when one is set; the test subnet must never leave this machine."""
    if not any(os.environ.get(v) for v in ("grpc_proxy", "https_proxy", "http_proxy")):
        return
    current = os.environ.get("no_grpc_proxy") or os.environ.get("no_proxy") or ""  # noqa: SIM112
    if str(SUPERNET) not in current.split(","):
        os.environ["no_grpc_proxy"] = ",".join(  # noqa: SIM112 (gRPC reads lower case)
            p for p in (current, str(SUPERNET)) if p)


@dataclass(frozen=True, slots=True)
class Block:
    """One rule: ``node`` drops what ``source`` sends it (``mode`` as in ``block``)."""

    node: int
    source: int
    mode: str


class Network:
    """A bridge and one namespace per node, for one run; see the module docstring."""

    def __init__(self, nodes: Sequence[int] | int) -> None:
        self.node_ids = list(range(1, nodes + 1)) if isinstance(nodes, int) else list(nodes)
        self.idx = -1
        self.subnet: ipaddress.IPv4Network | None = None
        self.host_address = ""
        self.bridge = ""
        self.nodes: dict[int, NodeNet] = {}
        self._lock: _Lock | None = None
        self.blocked: list[Block] = []  # the rules in force (nemeses may overlap)
        self._blocked_lock = threading.Lock()

    def __enter__(self) -> Network:
        why = available()
        if why:
            raise RuntimeError(why)
        remove_stale()
        _bypass_proxies()
        try:
            self._allocate()
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _allocate(self) -> None:
        for idx in random.sample(range(SLOTS), SLOTS):
            lock = _Lock(idx)
            if not lock.acquire():
                continue
            subnet = list(SUPERNET.subnets(new_prefix=24))[idx]
            # Leftovers of a crashed run with this idx are ours to remove.
            bridge, nss, veths = _names(idx, self.node_ids)
            namespaces, links = _existing()
            _remove(idx, [n for n in namespaces if (m := NS_RE.match(n)) and
                          int(m.group(1)) == idx],
                    [lk for lk in links if (m := LINK_RE.match(lk)) and
                     int(m.group(1) or m.group(2)) == idx])
            if _subnet_in_use(subnet):
                lock.release()
                continue
            self._lock, self.idx, self.subnet, self.bridge = lock, idx, subnet, bridge
            hosts = list(subnet.hosts())
            self.host_address = str(hosts[HOST_OCTET - 1])
            self.nodes = {i: NodeNet(i, ns, str(hosts[NODE_OCTET_BASE + i - 1]), veth)
                          for i, ns, veth in zip(self.node_ids, nss, veths, strict=True)}
            return
        raise RuntimeError(f"no free /24 in {SUPERNET} for a test network")

    def _build(self) -> None:
        assert self.subnet is not None
        prefix = self.subnet.prefixlen
        run("ip", "link", "add", "name", self.bridge, "type", "bridge")
        with contextlib.suppress(OSError):  # no IPv6 chatter on a test bridge
            Path(f"/proc/sys/net/ipv6/conf/{self.bridge}/disable_ipv6").write_text("1")
        run("ip", "addr", "add", f"{self.host_address}/{prefix}", "dev", self.bridge)
        run("ip", "link", "set", self.bridge, "up")
        for n in self.nodes.values():
            peer = n.veth.replace(f"{LINK_PREFIX}v", f"{LINK_PREFIX}p", 1)
            run("ip", "netns", "add", n.namespace)
            run("ip", "link", "add", n.veth, "type", "veth", "peer", "name", peer)
            run("ip", "link", "set", peer, "netns", n.namespace)
            run("ip", "link", "set", n.veth, "master", self.bridge)
            run("ip", "link", "set", n.veth, "up")
            inside = ["ip", "netns", "exec", n.namespace]
            run(*inside, "ip", "link", "set", "lo", "up")
            run(*inside, "ip", "addr", "add", f"{n.address}/{prefix}", "dev", peer)
            run(*inside, "ip", "link", "set", peer, "up")

    def close(self) -> None:
        """Remove everything this run made; raises after trying all if something stuck."""
        if self.idx < 0:
            return
        bridge, nss, veths = _names(self.idx, self.node_ids)
        errors = _remove(self.idx, nss, [*veths, bridge])
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self.idx = -1
        self.blocked.clear()
        if errors:
            raise RuntimeError("test network not fully removed: " + "; ".join(errors))

    # Partitions --------------------------------------------------------------------

    def iptables(self, node: int, *args: str) -> str:
        return run("ip", "netns", "exec", self.nodes[node].namespace, "iptables",
                   *args).stdout

    def _rule(self, block: Block) -> list[str]:
        match = [] if block.mode == "all" else ["-m", "conntrack", "--ctdir", "ORIGINAL"]
        return ["INPUT", "-s", self.nodes[block.source].address, *match, "-j", "DROP"]

    def block(self, node: int, sources: Iterable[int], mode: str = "all") -> list[Block]:
        """``node`` drops what ``sources`` send it. ``mode="all"``: every packet;
        ``mode="requests"``: only connections the sources open (conntrack ORIGINAL
        direction), so ``node``'s own calls to them still get their answers. Returns
        the rules added, for ``heal``."""
        if mode not in ("all", "requests"):
            raise ValueError(f"unknown block mode {mode!r}")
        added = []
        for src in sources:
            if src == node:
                continue
            b = Block(node, src, mode)
            self.iptables(node, "-A", *self._rule(b))
            with self._blocked_lock:
                self.blocked.append(b)
            added.append(b)
        return added

    def cut(self, side_a: Iterable[int], side_b: Iterable[int]) -> list[Block]:
        """Both directions between two groups of nodes; returns the rules added."""
        a, b = list(side_a), list(side_b)
        return [*(r for n in a for r in self.block(n, b)),
                *(r for n in b for r in self.block(n, a))]

    def heal(self, blocks: Iterable[Block] | None = None) -> None:
        """Remove these rules (default: every rule added), one iptables rule each: two
        partitions that overlap are healed independently."""
        with self._blocked_lock:
            todo = list(self.blocked) if blocks is None else list(blocks)
            for b in todo:
                self.blocked.remove(b)
        for b in todo:
            self.iptables(b.node, "-D", *self._rule(b))

    def rules(self, node: int) -> list[str]:
        return [r for r in self.iptables(node, "-S", "INPUT").splitlines()
                if r.startswith("-A")]
