"""A cluster of real node processes for tests, with a raw gRPC client per node.

Simpler than ``cairn.cluster.launcher.LocalCluster`` on purpose: each node can get its
own extra flags (a skewed clock), and tests reach every node directly.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import crc32c
import grpc

from cairn.cluster.clustermap import local_map
from cairn.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    object_pb2,
    object_pb2_grpc,
    replica_pb2,
    replica_pb2_grpc,
)

from .netns import Network
from .node import NodeProcess

CONSISTENCY = {"one": common_pb2.CONSISTENCY_ONE, "quorum": common_pb2.CONSISTENCY_QUORUM,
               "all": common_pb2.CONSISTENCY_ALL}


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Raw:
    """Raw protocol calls to one node (the coordinator for that call)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = grpc.insecure_channel(address)
        self.objects = object_pb2_grpc.ObjectServiceStub(self.channel)
        self.replica = replica_pb2_grpc.ReplicaServiceStub(self.channel)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    @staticmethod
    def header(consistency: str = "quorum") -> common_pb2.RequestHeader:
        return common_pb2.RequestHeader(consistency=CONSISTENCY[consistency])

    def put(self, bucket: str, key: bytes, value: bytes, consistency: str = "quorum",
            timeout: float = 10) -> common_pb2.ObjectInfo:
        reply = self.objects.PutSmall(object_pb2.PutSmallRequest(
            header=object_pb2.PutHeader(request=self.header(consistency),
                                        bucket=bucket.encode(), key=key),
            value=value, checksum=crc32c.crc32c(value)), timeout=timeout)
        return reply.info

    def get(self, bucket: str, key: bytes, consistency: str = "quorum", timeout: float = 10
            ) -> bytes:
        reply = self.objects.GetSmall(object_pb2.GetSmallRequest(
            header=self.header(consistency), bucket=bucket.encode(), key=key), timeout=timeout)
        return reply.value

    def delete(self, bucket: str, key: bytes, consistency: str = "quorum", timeout: float = 10
               ) -> common_pb2.Version:
        return self.objects.Delete(object_pb2.DeleteRequest(
            header=self.header(consistency), bucket=bucket.encode(), key=key),
            timeout=timeout).version

    def read_local(self, bucket: str, key: bytes) -> bytes:
        """This node's own copy of the newest version it holds, verified on the way."""
        parts = list(self.replica.ReplicaGet(replica_pb2.ReplicaGetRequest(
            bucket=bucket.encode(), key=key), timeout=30))
        data = b"".join(p.chunk for p in parts)
        assert parts[-1].HasField("end"), "stream ended without its checksum"
        assert parts[-1].end.checksum == crc32c.crc32c(data)
        return data

    def status(self) -> admin_pb2.NodeStatus:
        return self.admin.Status(admin_pb2.StatusRequest(), timeout=10).status

    def scrub(self) -> None:
        self.admin.Scrub(admin_pb2.ScrubRequest(), timeout=10)

    def repair(self, partition: int | None = None, wait: bool = True,
               timeout: float = 120) -> admin_pb2.RepairResponse:
        request = admin_pb2.RepairRequest(wait=wait)
        if partition is not None:
            request.partition = partition
        return self.admin.Repair(request, timeout=timeout)

    def local(self, bucket: str, key: bytes) -> common_pb2.ObjectInfo | None:
        """What this node itself holds (no quorum): for checking replicas directly."""
        reply = self.replica.ReplicaHead(replica_pb2.ReplicaHeadRequest(
            bucket=bucket.encode(), key=key), timeout=10)
        return reply.info if reply.found else None


class Cluster:
    """N node processes on 127.0.0.1 (or each in its network namespace, see
    ``use_network``) with one cluster map; every process is reaped."""

    def __init__(self, root: Path, nodes: int = 3, extra: dict[int, list[str]] | None = None,
                 common: list[str] | None = None, env: dict[int, dict[str, str]] | None = None,
                 replicas_n: int | None = None) -> None:
        self.root = root
        ports = free_ports(nodes)
        self.map = local_map(nodes, ports[0])
        as_dict = {**self.map.to_dict(), "nodes": [
            {"id": i + 1, "address": f"127.0.0.1:{p}", "zone": "", "weight": 1.0}
            for i, p in enumerate(ports)]}
        if replicas_n is not None:
            as_dict.update(replicas_n=replicas_n, write_quorum=replicas_n // 2 + 1,
                           read_quorum=replicas_n // 2 + 1)
        self.map = type(self.map).from_dict(as_dict)
        root.mkdir(parents=True, exist_ok=True)
        self.map_path = root / "cluster.json"
        self.map_path.write_text(self.map.to_json())
        self.procs: dict[int, NodeProcess] = {}
        for i, port in enumerate(ports, start=1):
            args = ["--cluster-map", str(self.map_path), "--log-level", "warning",
                    *(common or []), *((extra or {}).get(i, []))]
            self.procs[i] = NodeProcess(root / f"node-{i}", node_id=i,
                                        listen=f"127.0.0.1:{port}", extra=args,
                                        env={"CAIRN_BACKGROUND_INTERVAL_S": "0.2",
                                             "CAIRN_REPLICA_TIMEOUT_S": "2",
                                             **(env or {}).get(i, {})})
        self.clients: dict[int, Raw] = {}
        self.net: Network | None = None

    def use_network(self, net: Network) -> None:
        """Run every node in its namespace of ``net`` (before ``start``): each listens on
        its namespace address, on the port it was given, and the map says so."""
        nodes = []
        for info in self.map.nodes:
            port = info.address.rsplit(":", 1)[1]
            address = f"{net.nodes[int(info.id)].address}:{port}"
            nodes.append({**info.to_dict(), "address": address})
            proc = self.procs[int(info.id)]
            proc.listen = address
            proc.netns = net.nodes[int(info.id)].namespace
        self.map = type(self.map).from_dict({**self.map.to_dict(), "nodes": nodes})
        self.map_path.write_text(self.map.to_json())
        self.net = net

    def start(self) -> Cluster:
        try:
            for proc in self.procs.values():
                proc.start()
        except BaseException:
            self.stop()
            raise
        self.clients = {i: Raw(p.address) for i, p in self.procs.items()}
        return self

    def stop(self) -> None:
        for client in self.clients.values():
            client.close()
        for proc in self.procs.values():
            proc.kill()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill(self, node_id: int) -> None:
        self.procs[node_id].kill()

    def restart(self, node_id: int) -> None:
        """Start the node again; its client gets a fresh channel (the old one may sit in
        reconnect backoff after the node went away)."""
        self.procs[node_id].start()
        old = self.clients.get(node_id)
        if old is not None:
            old.close()
            self.clients[node_id] = Raw(self.procs[node_id].address)

    def client(self, node_id: int) -> Raw:
        return self.clients[node_id]

    def replicas_agree(self, bucket: str, keys: list[bytes], timeout_s: float = 20.0) -> None:
        """Wait until every node that is a replica of each key holds the same version."""
        from cairn.cluster.placement import placement

        deadline = time.monotonic() + timeout_s
        while True:
            disagree = []
            for key in keys:
                where = placement(self.map, bucket, key).replicas
                seen: dict[int, object] = {}
                for node in where:
                    try:
                        info = self.clients[node].local(bucket, key)
                    except grpc.RpcError as exc:
                        seen[node] = f"error {exc.code().name}"
                        continue
                    seen[node] = None if info is None else (
                        info.version.physical_ms, info.version.logical, info.version.node_id,
                        info.deleted, info.checksum)
                if len(set(seen.values())) != 1 or None in seen.values():
                    disagree.append((key, seen))
            if not disagree:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"replicas disagree on {len(disagree)} keys, e.g. "
                                     f"{disagree[:3]}")
            time.sleep(0.2)
