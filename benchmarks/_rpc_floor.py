"""gRPC floors: the least a grpc.aio server and client must do to move cairn's payloads.

A floor server is one process, like a node: ``grpc.aio`` on uvloop (as ``cairn.node``
runs), the node's channel limits, raw ``bytes`` messages (no protobuf, no validation, no
disk). Roles:

- ``echo`` (sdk_bench): ``Put`` takes a payload and answers a 1-byte ack; ``Get`` takes a
  4-byte size and answers that many bytes (cached); ``Upload`` is a client stream of
  1 MiB chunks answered by an ack; ``Download`` streams the asked size in 1 MiB chunks.
- ``front`` (cluster_bench): the same four calls, but each forwards to the ``--peers``
  first, the way a coordinating node does, and answers once enough peers acked:

  ============  ==========================================================  ===========
  call          forwards to every peer                                      waits for
  ============  ==========================================================  ===========
  Put           the payload on one long-lived bidi ``Link`` stream per peer  --put-acks
                (writes matched to acks by seq, as node/server/peers.py)
  PutUnary      the payload in one unary ``Ack`` call per peer              --put-acks
  Get           an 8-byte request on the ``Link`` stream                    --get-acks
  GetUnary      an 8-byte request in one unary ``Ack`` call (what cairn's    --get-acks
                quorum read does: a unary ReplicaHead per peer)
  Upload        each chunk on one client stream (``Sink``) per peer,        every peer
                fed through a 4-chunk queue each (as the coordinator does)
  Download      an 8-byte unary ``Ack`` to every peer, then streams          --get-acks
  ============  ==========================================================  ===========

- ``peer``: ``Ack`` answers every unary call with an ack, ``Link`` answers every message
  of the stream with its 8-byte seq, ``Sink`` swallows a stream and acks it.

``python -m benchmarks._rpc_floor --role echo|front|peer [--listen 127.0.0.1:0]
[--peers A,B] [--put-acks 2] [--get-acks 1]`` prints ``{"event": "listening", "port": N}``
on stdout once it serves, and stops on SIGTERM. ``FloorClient`` is the client side, on
a ``grpc.aio`` channel like the SDK's ``AsyncClient``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import struct
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Final

import grpc
import grpc.aio

SERVICE: Final = "cairnbench.Floor"
CHUNK_BYTES: Final = 1024 * 1024  # the SDK's and the node's stream chunk
MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024  # as node/server/app.py
ACK: Final = b"k"
SEQ: Final = struct.Struct("<Q")
SIZE: Final = struct.Struct("<Q")
SERVER_OPTIONS: Final = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # Above the node's 256: a front's stragglers (the peer that did not count towards the
    # quorum) may pile up for a moment on a loaded machine, and a refused stream would
    # fail the floor's call where it should only wait.
    ("grpc.max_concurrent_streams", 1024),
    ("grpc.so_reuseport", 0),
)
CHANNEL_OPTIONS: Final = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)
CALL_TIMEOUT_S: Final = 60.0
STREAM_QUEUE_DEPTH: Final = 4  # chunks queued per peer (node/coordinator STREAM_QUEUE_DEPTH)


class _Payloads:
    """Bytes of each asked size, made once (a floor must not pay for making them)."""

    def __init__(self) -> None:
        self._by_size: dict[int, bytes] = {}

    def get(self, size: int) -> bytes:
        data = self._by_size.get(size)
        if data is None:
            data = self._by_size[size] = bytes(size)
        return data

    def chunks(self, size: int) -> list[bytes]:
        full, rest = divmod(size, CHUNK_BYTES)
        out = [self.get(CHUNK_BYTES)] * full
        if rest or not out:
            out.append(self.get(rest))
        return out


# --------------------------------------------------------------------------- front side


class _Link:
    """One long-lived bidi stream to a peer; many messages in flight, matched by seq."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._open = channel.stream_stream(f"/{SERVICE}/Link")
        self._seq = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _requests(self) -> AsyncIterator[bytes]:
        while True:
            yield await self._outbox.get()

    async def _run(self) -> None:
        call = self._open(self._requests())
        try:
            async for reply in call:
                future = self._waiting.pop(SEQ.unpack_from(reply)[0], None)
                if future is not None and not future.done():
                    future.set_result(None)
        except grpc.RpcError as exc:
            error = RuntimeError(f"link failed: {exc}")
            waiting, self._waiting = self._waiting, {}
            for future in waiting.values():
                if not future.done():
                    future.set_exception(error)

    async def send(self, payload: bytes) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        seq = next(self._seq)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[seq] = future
        self._outbox.put_nowait(SEQ.pack(seq) + payload)
        await future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class _Peer:
    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.link = _Link(self.channel)
        self.ack = self.channel.unary_unary(f"/{SERVICE}/Ack")
        self.sink = self.channel.stream_unary(f"/{SERVICE}/Sink")


class FloorService:
    """The handlers of every role (a peer-less front is the echo server)."""

    def __init__(self, peers: Sequence[str] = (), put_acks: int = 2, get_acks: int = 1) -> None:
        self.peers = [_Peer(a) for a in peers]
        self.put_acks = min(put_acks, len(self.peers))
        self.get_acks = min(get_acks, len(self.peers))
        self.payloads = _Payloads()
        self._late: set[asyncio.Task[Any]] = set()

    async def _fan(self, op: Callable[[_Peer], Awaitable[Any]], need: int) -> None:
        """Run ``op`` on every peer; return once ``need`` of them finished."""
        if not self.peers:
            return
        if need >= len(self.peers):
            await asyncio.gather(*(op(p) for p in self.peers))
            return
        pending = {asyncio.ensure_future(op(p)) for p in self.peers}
        done_count = 0
        while done_count < need:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            done_count += len(done)
        for task in pending:  # stragglers finish in the background, like cairn's
            self._late.add(task)
            task.add_done_callback(self._late.discard)

    async def put(self, request: bytes, context: Any) -> bytes:
        await self._fan(lambda p: p.link.send(request), self.put_acks)
        return ACK

    async def put_unary(self, request: bytes, context: Any) -> bytes:
        await self._fan(lambda p: p.ack(request, timeout=CALL_TIMEOUT_S), self.put_acks)
        return ACK

    async def get(self, request: bytes, context: Any) -> bytes:
        await self._fan(lambda p: p.link.send(request[:SIZE.size]), self.get_acks)
        return self.payloads.get(SIZE.unpack_from(request)[0])

    async def get_unary(self, request: bytes, context: Any) -> bytes:
        await self._fan(lambda p: p.ack(request[:SIZE.size], timeout=CALL_TIMEOUT_S),
                        self.get_acks)
        return self.payloads.get(SIZE.unpack_from(request)[0])

    async def upload(self, request_iterator: AsyncIterator[bytes], context: Any) -> bytes:
        if not self.peers:
            async for _chunk in request_iterator:
                pass
            return ACK
        # One writer per peer behind a short queue (as cairn's coordinator feeds its
        # replicas): the peers' streams advance in parallel, memory stays bounded.
        queues: list[asyncio.Queue[bytes | None]] = [
            asyncio.Queue(maxsize=STREAM_QUEUE_DEPTH) for _ in self.peers]

        async def forward(peer: _Peer, q: asyncio.Queue[bytes | None]) -> None:
            call = peer.sink(timeout=CALL_TIMEOUT_S)
            while (chunk := await q.get()) is not None:
                await call.write(chunk)
            await call.done_writing()
            await call

        writers = [asyncio.ensure_future(forward(p, q))
                   for p, q in zip(self.peers, queues, strict=True)]
        try:
            async for chunk in request_iterator:
                for q in queues:
                    await q.put(chunk)
            for q in queues:
                await q.put(None)
            await asyncio.gather(*writers)
        finally:
            for w in writers:
                w.cancel()
        return ACK

    async def download(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        await self._fan(lambda p: p.ack(request[:SIZE.size], timeout=CALL_TIMEOUT_S),
                        self.get_acks)
        for chunk in self.payloads.chunks(SIZE.unpack_from(request)[0]):
            yield chunk

    # peer role

    async def ack(self, request: bytes, context: Any) -> bytes:
        return ACK

    async def link(self, request_iterator: AsyncIterator[bytes], context: Any
                   ) -> AsyncIterator[bytes]:
        async for message in request_iterator:
            yield message[:SEQ.size]

    async def sink(self, request_iterator: AsyncIterator[bytes], context: Any) -> bytes:
        async for _chunk in request_iterator:
            pass
        return ACK

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Put": grpc.unary_unary_rpc_method_handler(self.put),
            "PutUnary": grpc.unary_unary_rpc_method_handler(self.put_unary),
            "Get": grpc.unary_unary_rpc_method_handler(self.get),
            "GetUnary": grpc.unary_unary_rpc_method_handler(self.get_unary),
            "Upload": grpc.stream_unary_rpc_method_handler(self.upload),
            "Download": grpc.unary_stream_rpc_method_handler(self.download),
            "Ack": grpc.unary_unary_rpc_method_handler(self.ack),
            "Link": grpc.stream_stream_rpc_method_handler(self.link),
            "Sink": grpc.stream_unary_rpc_method_handler(self.sink),
        })

    async def close(self) -> None:
        for peer in self.peers:
            await peer.link.close()
            await peer.channel.close()


async def serve(listen: str, peers: Sequence[str], put_acks: int, get_acks: int) -> None:
    service = FloorService(peers, put_acks, get_acks)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    port = server.add_insecure_port(listen)
    server.add_generic_rpc_handlers((service.handler(),))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"event": "listening", "port": port}), flush=True)
    await stop.wait()
    await server.stop(1.0)
    await service.close()


# --------------------------------------------------------------------------- client side


class FloorClient:
    """The benchmark's side of a floor: one ``grpc.aio`` channel, as ``AsyncClient`` has
    one per node. Make it inside the event loop that uses it."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self._put = self.channel.unary_unary(f"/{SERVICE}/Put")
        self._put_unary = self.channel.unary_unary(f"/{SERVICE}/PutUnary")
        self._get = self.channel.unary_unary(f"/{SERVICE}/Get")
        self._get_unary = self.channel.unary_unary(f"/{SERVICE}/GetUnary")
        self._upload = self.channel.stream_unary(f"/{SERVICE}/Upload")
        self._download = self.channel.unary_stream(f"/{SERVICE}/Download")
        self.payloads = _Payloads()

    async def put(self, payload: bytes, *, unary: bool = False) -> None:
        method = self._put_unary if unary else self._put
        await method(payload, timeout=CALL_TIMEOUT_S)

    async def get(self, size: int, *, unary: bool = False) -> bytes:
        method = self._get_unary if unary else self._get
        data: bytes = await method(SIZE.pack(size), timeout=CALL_TIMEOUT_S)
        if len(data) != size:
            raise RuntimeError(f"floor Get answered {len(data)} bytes, not {size}")
        return data

    async def upload(self, size: int) -> None:
        call = self._upload(timeout=CALL_TIMEOUT_S)
        for chunk in self.payloads.chunks(size):
            await call.write(chunk)
        await call.done_writing()
        await call

    async def download(self, size: int) -> int:
        received = 0
        async for chunk in self._download(SIZE.pack(size), timeout=CALL_TIMEOUT_S):
            received += len(chunk)
        if received != size:
            raise RuntimeError(f"floor Download sent {received} bytes, not {size}")
        return received

    async def close(self) -> None:
        await self.channel.close()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks._rpc_floor")
    p.add_argument("--role", choices=("echo", "front", "peer"), required=True)
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--peers", default="", help="front: peer addresses, comma separated")
    p.add_argument("--put-acks", type=int, default=2)
    p.add_argument("--get-acks", type=int, default=1)
    args = p.parse_args(argv)
    peers = [a for a in args.peers.split(",") if a] if args.role == "front" else []
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with the node extra
        runner = asyncio.run
    runner(serve(args.listen, peers, args.put_acks, args.get_acks))


if __name__ == "__main__":
    sys.exit(main())
