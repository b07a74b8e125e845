"""The composition root of a node: reads config, builds every part, owns start and stop.

Start order: engine (disks opened and recovered) → coordinator → gRPC server (services,
health) → health SERVING. Stop order is the reverse (STYLE 2.11): health NOT_SERVING,
the server stops accepting and drains in-flight calls for ``shutdown_grace_s``, the
engine finishes queued writes, fsyncs and closes LMDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.health import HealthView
from cairn.cluster.hlc import HybridClock, OffsetClock
from cairn.cluster.ids import NodeId
from cairn.errors import CairnError, InvalidArgument
from cairn.node.coordinator import Coordinator
from cairn.node.coordinator.coordinator import CoordinatorConfig
from cairn.node.repair import Repair, RepairConfig
from cairn.node.storage import Engine
from cairn.node.storage.aio import AsyncEngine
from cairn.node.storage.hints import HintStore
from cairn.v1 import admin_pb2, object_pb2, replica_pb2

from . import faults, logs, wire
from .config import NodeConfig, load_config
from .metrics import Metrics
from .peers import GrpcPeers
from .replica import ReplicaService
from .services import AdminService, ObjectService, make_context

log = logging.getLogger("cairn.node")

# gRPC's default 4 MiB receive limit fits PutSmall (1 MiB) and 1 MiB chunks; headroom
# for headers and metadata.
MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
SERVICE_NAMES: Final = ("", "cairn.v1.ObjectService", "cairn.v1.AdminService",
                        "cairn.v1.ReplicaService")
HINTS_DIR: Final = "hints"
CREATED_DISK_CHECK_S: Final = 2.0  # deadline of asking the others whether they hold data


def _generic_handler(service_descriptor: Any, servicer: Any) -> grpc.GenericRpcHandler:
    """Method handlers whose deserializers never fail (see ``wire.Malformed``)."""
    factories = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    handlers = {}
    for method in service_descriptor.methods:
        response = message_factory.GetMessageClass(method.output_type)
        factory = factories[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(
            getattr(servicer, method.name),
            request_deserializer=wire.safe_deserializer(method.input_type),
            response_serializer=response.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service_descriptor.full_name, handlers)


def _load_map(config: NodeConfig, address: str) -> ClusterMap:
    if config.cluster_map is None:
        return ClusterMap(epoch=1, nodes=(NodeInfo(NodeId(config.node_id), address,
                                                   config.zone),),
                          replicas_n=1, write_quorum=1, read_quorum=1)
    try:
        with open(config.cluster_map, encoding="utf-8") as f:
            cluster_map = ClusterMap.from_json(f.read())
    except OSError as exc:
        raise InvalidArgument(f"cannot read cluster map {config.cluster_map}: {exc}") from exc
    if config.node_id not in cluster_map.node_ids:
        raise InvalidArgument(f"node {config.node_id} is not in the cluster map "
                              f"{config.cluster_map}")
    return cluster_map


def _create_missing(paths: Sequence[str]) -> None:
    """First run: `cairn node --data ./data` just works. (An unmounted disk leaves its
    mount point behind, so this does not mask a vanished disk; the disk's identity
    marker catches a mount point that lost its disk.)"""
    for path in paths:
        if not os.path.exists(path):
            os.makedirs(path)
            log.info("created data directory", extra={"path": path})


class Node:
    """One running node. ``await start()``, then ``await stop()``."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.port = 0
        self.engine: Engine | None = None
        self.aengine: AsyncEngine | None = None
        self.server: grpc.aio.Server | None = None
        self.health = health.aio.HealthServicer()
        self._metrics_server: Any = None
        self.started = time.monotonic()
        self.peers: GrpcPeers | None = None
        self.hints: HintStore | None = None
        self.coordinator: Coordinator | None = None
        self._background: asyncio.Task[None] | None = None
        self._replica_service: ReplicaService | None = None
        self.repair: Repair | None = None
        self.fault_control: faults.FaultControl | None = None  # test-only, usually None

    @property
    def address(self) -> str:
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    async def start(self) -> None:
        """Open the engine, start serving; health says SERVING once everything is up.

        Raises:
            CairnError: the config or the disks do not allow the node to run.
        """
        config = self.config
        server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_concurrent_streams", config.max_concurrent_streams),
            ("grpc.so_reuseport", 0),
        ])
        self.port = server.add_insecure_port(config.listen)
        if not self.port:
            raise InvalidArgument(f"cannot listen on {config.listen}")
        cluster_map = _load_map(config, self.address)
        node_id = NodeId(config.node_id)
        await asyncio.to_thread(_create_missing, config.data)
        # Plain FileSystem unless the test-only fault layer is switched on.
        fs, self.fault_control = faults.file_system(config.fault_control)
        self.engine = await asyncio.to_thread(Engine(config.engine_config(), fs=fs).open)
        if self.fault_control is not None:
            self.fault_control.start()
        self.aengine = AsyncEngine(self.engine, max_workers=config.executor_threads)
        clock = HybridClock(node_id, OffsetClock(config.clock_offset_ms)
                            if config.clock_offset_ms else None)
        if len(cluster_map.nodes) > 1:
            self.hints = await asyncio.to_thread(
                HintStore, os.path.join(config.data[0], HINTS_DIR))
        health_view = HealthView()
        if len(cluster_map.nodes) > 1:
            self.peers = GrpcPeers(cluster_map, node_id, clock.now, health_view)
        coordinator = Coordinator(
            self.aengine, clock, cluster_map, node_id, self.peers, self.hints,
            health_view, CoordinatorConfig(replica_timeout_s=config.replica_timeout_s,
                                            small_object_bytes=config.small_object_bytes))
        self.coordinator = coordinator
        hints = self.hints

        def gauges() -> dict[str, float]:
            values = {
                "pending_hints": float(len(hints) if hints else 0),
                "read_repairs_total": float(coordinator.stats["read_repairs"]),
                "hints_replayed_total": float(coordinator.stats["hints_replayed"]),
                "hints_lost_total": float(coordinator.stats["hints_lost"]),
            }
            if self.repair is not None:
                for name, value in self.repair.status().items():
                    values[f"repair_{name}"] = float(value)
            return values

        metrics = Metrics(self.engine, gauges)
        self.repair = Repair(coordinator, RepairConfig(
            repair_rate_bytes_s=config.repair_rate_bytes_s,
            scrub_rate_bytes_s=config.scrub_rate_bytes_s,
            scrub_interval_s=config.scrub_interval_s,
            antientropy_interval_s=config.antientropy_interval_s,
            timeout_s=config.replica_timeout_s))
        if self.peers is not None:
            # A disk that comes back empty is refilled from the replicas, and this
            # node's answers about those partitions do not count until it is.
            self.engine.rebuild_scope = self.repair.antientropy.held_partitions
            await self._mark_created_disks(self.peers, cluster_map, node_id)
        ctx = make_context(config, coordinator, metrics)
        self._replica_service = ReplicaService(ctx)
        server.add_generic_rpc_handlers((
            _generic_handler(object_pb2.DESCRIPTOR.services_by_name["ObjectService"],
                             ObjectService(ctx)),
            _generic_handler(admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
                             AdminService(ctx, self.engine, self.started,
                                          lambda: len(hints) if hints else 0, self.repair)),
            _generic_handler(replica_pb2.DESCRIPTOR.services_by_name["ReplicaService"],
                             self._replica_service),
        ))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        await server.start()
        self.server = server
        if config.metrics_listen:
            from prometheus_client import start_http_server

            host, _, port = config.metrics_listen.rpartition(":")
            self._metrics_server, _ = start_http_server(int(port), addr=host,
                                                        registry=metrics.registry)
        for name in SERVICE_NAMES:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.peers is not None:
            self._background = asyncio.ensure_future(self._background_loop())
        self.repair.start()
        log.info("listening", extra={"address": self.address, "node_id": config.node_id,
                                     "disks": list(config.data), "epoch": cluster_map.epoch})

    async def _mark_created_disks(self, peers: GrpcPeers, cluster_map: ClusterMap,
                                  node_id: NodeId) -> None:
        """A disk this start created (its directory was empty) in a cluster whose other
        nodes hold data replaced a lost one, or joined a node to a cluster in use: either
        way it must be refilled before this node's answers count (rebuild.py). In a new
        cluster the other nodes hold nothing (or are not up yet) and nothing is marked."""
        assert self.engine is not None
        engine = self.engine
        created = [d for d in engine.disks if d.created and d.state != "failed"]
        scope = engine.rebuild_scope
        if not created or scope is None:
            return
        others = [n for n in cluster_map.node_ids if n != node_id]
        counts = await asyncio.gather(
            *(peers.object_count(n, CREATED_DISK_CHECK_S) for n in others),
            return_exceptions=True)
        holding = [int(n) for n, c in zip(others, counts, strict=True)
                   if isinstance(c, int) and c > 0]
        if not holding:
            return
        for disk in created:
            await asyncio.to_thread(engine.rebuild.mark, disk, scope())
        if self.repair is not None:
            self.repair.antientropy.kick()
        log.warning("started on new empty disk(s) %s while nodes %s hold data: refilling "
                    "them; this node's answers count once that is done",
                    ", ".join(d.path for d in created), holding)

    async def _background_loop(self) -> None:
        """Probe the other nodes and replay hints to those that answer."""
        assert self.coordinator is not None
        while True:
            try:
                await self.coordinator.probe_peers()
                await self.coordinator.replay_hints()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background round failed")
            await asyncio.sleep(self.config.background_interval_s)

    async def stop(self) -> None:
        """Stop in the reverse order of start; collects and logs every cleanup error."""
        errors: list[BaseException] = []
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(BaseException):
                await self._background
            self._background = None
        if self.repair is not None:
            with contextlib.suppress(Exception):
                await self.repair.stop()
        if self._replica_service is not None:
            self._replica_service.closing.set()  # end the peers' long-lived streams
        if self.server is not None:
            try:
                await self.server.stop(self.config.shutdown_grace_s)
            except Exception as exc:
                errors.append(exc)
            self.server = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None
        if self.coordinator is not None:
            try:
                await asyncio.wait_for(self.coordinator.drain(), self.config.shutdown_grace_s)
            except Exception as exc:
                errors.append(exc)
        if self.peers is not None:
            with contextlib.suppress(Exception):
                await self.peers.close()
            self.peers = None
        if self.aengine is not None:
            try:
                await asyncio.to_thread(self.aengine.close)
            except Exception as exc:
                errors.append(exc)
            self.aengine = self.engine = None
        if self.hints is not None:
            self.hints.close()
            self.hints = None
        if self.fault_control is not None:
            self.fault_control.stop()
            self.fault_control = None
        for error in errors:
            log.error("error while stopping: %s", error)
        log.info("stopped")

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set (the trigger is injected: tests need no signals)."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


async def _serve(config: NodeConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Node(config).run(stop)


def main(argv: Sequence[str] | None = None) -> int:
    """``cairn node``: run one node in the foreground until SIGTERM or SIGINT."""
    try:
        config = load_config(argv)
    except CairnError as exc:
        print(f"cairn node: error: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_level, config.node_id)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is in the node extra
        runner = asyncio.run
    try:
        runner(_serve(config))
    except CairnError as exc:
        log.error("node stopped: %s", exc)
        print(json.dumps({"event": "fatal", "error": str(exc)}), file=sys.stderr)
        return 1
    return 0
