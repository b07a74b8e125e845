"""The single-stream transfer floor of a rebuild: one gRPC stream moving bytes between two
processes on 127.0.0.1 in 1 MiB messages, with and without writing them to disk.

A perfect rebuild of a wiped disk is one stream from a healthy replica that the
rebuilding node writes sequentially, syncing now and then. This floor is that and nothing
more: no protobuf (raw ``bytes`` messages), no index, no checksums, no per-object calls.

- The receiver is a process of its own (``python -m benchmarks._stream_floor --dir D``):
  ``grpc.aio`` on uvloop with the node's message limits. Its one method, ``Sink``, is a
  client stream of chunks answered by the byte count. With ``--dir`` every chunk is
  written (``os.write``) to a fresh file there by one writer thread behind a queue of 8
  chunks (so receiving goes on while the disk syncs, as a node's engine executor lets
  it), with an ``fsync`` every 8 MiB and at the end; without it, the chunks are dropped.
- The sender is the caller's process (``send``): it streams ``total_bytes`` from a 1 MiB
  buffer in memory (a rebuild's source reads from its page cache).

The server prints ``{"event": "listening", "port": N}`` on stdout once it serves and
stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
import grpc.aio

from ._procs import ROOT, START_TIMEOUT_S, STOP_GRACE_S, _pdeathsig, _read_line, cpu_of

SERVICE: Final = "cairnbench.StreamFloor"
CHUNK_BYTES: Final = 1024 * 1024
SYNC_EVERY_BYTES: Final = 8 * 1024 * 1024
WRITE_QUEUE_CHUNKS: Final = 8
MAX_MESSAGE_BYTES: Final = 8 * 1024 * 1024  # as node/server/app.py
OPTIONS: Final = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)
CALL_TIMEOUT_S: Final = 600.0
_COUNT_BYTES: Final = 8


class _DiskWriter:
    """One thread appending chunks to a file, fsync every 8 MiB and at the end."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, f"stream-{os.getpid()}-{time.monotonic_ns()}.bin")
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._queue: queue.Queue[bytes | None] = queue.Queue(WRITE_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="stream-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        unsynced = 0
        try:
            while (chunk := self._queue.get()) is not None:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self._fd, view):]
                unsynced += len(chunk)
                if unsynced >= SYNC_EVERY_BYTES:
                    os.fsync(self._fd)
                    unsynced = 0
            os.fsync(self._fd)
        except BaseException as exc:  # reported by close()
            self._error = exc
            while self._queue.get() is not None:  # drain, so put() never blocks forever
                pass

    async def put(self, chunk: bytes) -> None:
        try:
            self._queue.put_nowait(chunk)
        except queue.Full:
            await asyncio.to_thread(self._queue.put, chunk)

    async def close(self) -> None:
        await asyncio.to_thread(self._queue.put, None)
        await asyncio.to_thread(self._thread.join)
        os.close(self._fd)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        if self._error is not None:
            raise self._error


class _Service:
    def __init__(self, directory: str | None) -> None:
        self.directory = directory

    async def sink(self, request_iterator: AsyncIterator[bytes], context: Any) -> bytes:
        received = 0
        if self.directory is None:
            async for chunk in request_iterator:
                received += len(chunk)
            return received.to_bytes(_COUNT_BYTES, "little")
        writer = _DiskWriter(self.directory)
        try:
            async for chunk in request_iterator:
                received += len(chunk)
                await writer.put(chunk)
        finally:
            await writer.close()
        return received.to_bytes(_COUNT_BYTES, "little")

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Sink": grpc.stream_unary_rpc_method_handler(self.sink)})


async def serve(listen: str, directory: str | None) -> None:
    server = grpc.aio.server(options=OPTIONS)
    port = server.add_insecure_port(listen)
    server.add_generic_rpc_handlers((_Service(directory).handler(),))
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"event": "listening", "port": port}), flush=True)
    await stop.wait()
    await server.stop(1.0)


# --------------------------------------------------------------------------- sender side


@dataclass(frozen=True, slots=True)
class StreamSample:
    """One stream of ``total_bytes``: wall time and the receiver's CPU."""

    total_bytes: int
    elapsed_s: float
    receiver_cpu_s: float
    sender_cpu_s: float

    @property
    def mib_s(self) -> float:
        return self.total_bytes / (1024 * 1024) / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"total_bytes": self.total_bytes, "elapsed_s": round(self.elapsed_s, 3),
                "mib_s": round(self.mib_s, 1), "receiver_cpu_s": round(self.receiver_cpu_s, 2),
                "sender_cpu_s": round(self.sender_cpu_s, 2)}


async def send(address: str, total_bytes: int, receiver_pid: int) -> StreamSample:
    """Stream ``total_bytes`` to the receiver at ``address`` in 1 MiB messages, on one
    call, and wait for its answer (after its last fsync, when it writes to disk)."""
    chunk = os.urandom(CHUNK_BYTES)
    async with grpc.aio.insecure_channel(address, options=OPTIONS) as channel:
        sink = channel.stream_unary(f"/{SERVICE}/Sink")
        await sink(iter([b"x"]), timeout=CALL_TIMEOUT_S)  # connect before the clock starts
        cpu_start, own_start = cpu_of([receiver_pid]), time.process_time()
        started = time.perf_counter()
        call = sink(timeout=CALL_TIMEOUT_S)
        left = total_bytes
        while left > 0:
            piece = chunk if left >= CHUNK_BYTES else chunk[:left]
            await call.write(piece)
            left -= len(piece)
        await call.done_writing()
        answer: bytes = await call
        elapsed = time.perf_counter() - started
        got = int.from_bytes(answer, "little")
        if got != total_bytes:
            raise RuntimeError(f"stream floor received {got} bytes, not {total_bytes}")
        return StreamSample(total_bytes, elapsed, cpu_of([receiver_pid]) - cpu_start,
                            time.process_time() - own_start)


class Receiver:
    """``python -m benchmarks._stream_floor [--dir DIR]`` in a subprocess."""

    def __init__(self, directory: str | None, log_path: str) -> None:
        self.directory = directory
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.address = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Receiver:
        """Raises: RuntimeError if it did not say it listens within 30 s."""
        args = [sys.executable, "-m", "benchmarks._stream_floor"]
        if self.directory is not None:
            args += ["--dir", self.directory]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log, cwd=ROOT, env=env,
                                         preexec_fn=_pdeathsig())
        assert self.proc.stdout is not None
        line = _read_line(self.proc.stdout, START_TIMEOUT_S)
        try:
            self.address = f"127.0.0.1:{int(json.loads(line)['port'])}"
        except (ValueError, KeyError, TypeError):
            self.stop()
            raise RuntimeError(f"stream floor did not start: {line!r}; see "
                               f"{self.log_path}") from None
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks._stream_floor")
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--dir", help="write what arrives to a file here (fsync every 8 MiB)")
    args = p.parse_args(argv)
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover - uvloop comes with the node extra
        runner = asyncio.run
    runner(serve(args.listen, args.dir))


if __name__ == "__main__":
    sys.exit(main())
