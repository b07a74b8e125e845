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
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cairn.cluster.clustermap import ClusterMap, NodeInfo
from cairn.cluster.hlc import HybridClock
from cairn.cluster.ids import NodeId
from cairn.errors import CairnError, InvalidArgument
from cairn.node.coordinator import Coordinator
from cairn.node.storage import Engine
from cairn.node.storage.aio import AsyncEngine
from cairn.v1 import admin_pb2, object_pb2

from . import logs, wire
from .config import NodeConfig, load_config
from .metrics import Metrics
from .services import AdminService, ObjectService, make_context

log = logging.getLogger("cairn.node")

# gRPC's default 4 MiB receive limit fits PutSmall (1 MiB) and 1 MiB chunks; headroom
# for headers and metadata.
MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024
SERVICE_NAMES: Final = ("", "cairn.v1.ObjectService", "cairn.v1.AdminService")


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
        response = wire.message_factory.GetMessageClass(method.output_type)
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
        self.engine = await asyncio.to_thread(Engine(config.engine_config()).open)
        self.aengine = AsyncEngine(self.engine, max_workers=config.executor_threads)
        clock = HybridClock(NodeId(config.node_id))
        coordinator = Coordinator(self.aengine, clock, cluster_map)
        metrics = Metrics(self.engine)
        ctx = make_context(config, coordinator, metrics)
        server.add_generic_rpc_handlers((
            _generic_handler(object_pb2.DESCRIPTOR.services_by_name["ObjectService"],
                             ObjectService(ctx)),
            _generic_handler(admin_pb2.DESCRIPTOR.services_by_name["AdminService"],
                             AdminService(ctx, self.engine, self.started)),
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
        log.info("listening", extra={"address": self.address, "node_id": config.node_id,
                                     "disks": list(config.data), "epoch": cluster_map.epoch})

    async def stop(self) -> None:
        """Stop in the reverse order of start; collects and logs every cleanup error."""
        errors: list[BaseException] = []
        with contextlib.suppress(Exception):
            await self.health.enter_graceful_shutdown()
        if self.server is not None:
            try:
                await self.server.stop(self.config.shutdown_grace_s)
            except Exception as exc:
                errors.append(exc)
            self.server = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server = None
        if self.aengine is not None:
            try:
                await asyncio.to_thread(self.aengine.close)
            except Exception as exc:
                errors.append(exc)
            self.aengine = self.engine = None
        for exc in errors:
            log.error("error while stopping: %s", exc)
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
