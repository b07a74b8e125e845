"""What the load generator (``benchmarks.load``) drives: cairn through its SDK, or Swift
through its HTTP API, each with an asyncio client or a blocking one used from threads,
and the server processes whose CPU is charged to the operations.

A target has five coroutines, ``put(key, data)``, ``get(key) -> bytes read``,
``delete(key)``, ``list(prefix) -> keys listed`` (one page, at most 1,000 keys) and
``close()``, plus ``server_cpu_s()`` (CPU seconds of its server processes so far).
Blocking clients run in a thread pool of ``concurrency`` threads; their calls are timed
inside the thread, so the pool's hand-off is not counted as latency.

Server processes:
- cairn: the pids listening on the ports of every node in the cluster map (found from
  ``/proc/net/tcp*`` and ``/proc/*/fd``), or the pids given.
- Swift: every process whose process group leader is recorded in ``setup.sh``'s pids
  file (``/srv/swift-peer/run/pids``; proxy and object workers are forked children of
  the recorded parents, memcached included), looked up afresh at each reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from ._procs import CLOCK_TICKS, cpu_of

SWIFT_PIDFILE: Final = "/srv/swift-peer/run/pids"
SWIFT_URL: Final = "http://127.0.0.1:8080"
SWIFT_USER: Final = "test:tester"
SWIFT_KEY: Final = "testing"
STREAM_ABOVE_BYTES: Final = 8 << 20
"""cairn objects larger than this go through ``upload``/``download`` (streamed in 1 MiB
chunks) rather than ``put``/``get_bytes`` (one buffer)."""
LIST_PAGE: Final = 1000
TIMEOUT_S: Final = 120.0
READ_CHUNK: Final = 1 << 20


class HTTPStatusError(Exception):
    """A Swift answer with an unexpected status; its kind in the report is ``HTTP nnn``."""

    def __init__(self, method: str, status: int) -> None:
        super().__init__(f"{method} answered {status}")
        self.status = status


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, HTTPStatusError):
        return f"HTTP {exc.status}"
    return type(exc).__name__


# --------------------------------------------------------------------------- processes


def _listening_inodes(ports: set[int]) -> set[str]:
    inodes: set[str] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(name, encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split()
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if fields[3] == "0A" and port in ports:  # 0A: LISTEN
                    inodes.add(fields[9])
    return inodes


def pids_listening_on(ports: Iterable[int]) -> list[int]:
    """The pids holding a listening TCP socket on any of ``ports`` (needs the right to
    read other processes' ``/proc/PID/fd``: the same user, or root)."""
    inodes = {f"socket:[{i}]" for i in _listening_inodes(set(ports))}
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if any(os.readlink(f"/proc/{entry}/fd/{fd}") in inodes for fd in fds):
                found.append(int(entry))
        except OSError:
            continue
    return sorted(found)


def swift_leaders(pidfile: str = SWIFT_PIDFILE) -> list[int]:
    """The pids ``setup.sh`` recorded (process group leaders); [] if none."""
    leaders = []
    with contextlib.suppress(OSError), open(pidfile, encoding="ascii") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                leaders.append(int(fields[1]))
    return leaders


def group_cpu_s(leaders: Sequence[int]) -> float:
    """CPU seconds of every live process in the process groups ``leaders``."""
    groups = set(leaders)
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                text = f.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) in groups:  # field 5 of stat(5): pgrp
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


# --------------------------------------------------------------------------- cairn


class _NullSink(io.RawIOBase):
    """A binary file that counts what is written to it and keeps none of it."""

    def __init__(self) -> None:
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        self.size += n
        return n


class CairnTarget:
    """cairn through ``cairn.AsyncClient`` (or ``cairn.Client`` from threads)."""

    name = "cairn"

    def __init__(self, seeds: Sequence[str], bucket: str, *, pids: Sequence[int] = (),
                 sync: bool = False, concurrency: int = 16) -> None:
        self.seeds = list(seeds)
        self.bucket = bucket
        self.pids = list(pids)
        self.sync = sync
        self._pool = ThreadPoolExecutor(concurrency) if sync else None
        self._client: Any = None

    async def open(self) -> CairnTarget:
        import cairn

        if self.sync:
            self._client = cairn.Client(self.seeds, timeout=TIMEOUT_S)
            client = cairn.AsyncClient(self.seeds, timeout=TIMEOUT_S)
        else:
            client = self._client = cairn.AsyncClient(self.seeds, timeout=TIMEOUT_S)
        with contextlib.suppress(cairn.AlreadyExists):
            await client.create_bucket(self.bucket)
        if not self.pids:
            ports = {int(n.address.rsplit(":", 1)[1]) for n in (await client.cluster_map()).nodes}
            self.pids = pids_listening_on(ports)
        if self.sync:
            await client.close()
        return self

    def server_cpu_s(self) -> float:
        return cpu_of(self.pids)

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._pool is None:
            return await fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def put(self, key: str, data: bytes) -> None:
        if len(data) > STREAM_ABOVE_BYTES:
            await self._call(self._client.upload, self.bucket, key, io.BytesIO(data))
        else:
            await self._call(self._client.put, self.bucket, key, data)

    async def get(self, key: str, size: int) -> int:
        if size > STREAM_ABOVE_BYTES:
            sink = _NullSink()
            await self._call(self._client.download, self.bucket, key, sink)
            return sink.size
        return len(await self._call(self._client.get_bytes, self.bucket, key))

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete, self.bucket, key)

    async def list(self, prefix: str) -> int:
        if self._pool is not None:
            return int(await self._call(self._list_sync, prefix))
        n = 0
        async for _ in self._client.list(self.bucket, prefix=prefix, page_size=LIST_PAGE):
            n += 1
            if n >= LIST_PAGE:
                break
        return n

    def _list_sync(self, prefix: str) -> int:
        n = 0
        for _ in self._client.list(self.bucket, prefix=prefix, page_size=LIST_PAGE):
            n += 1
            if n >= LIST_PAGE:
                break
        return n

    async def close(self) -> None:
        if self._client is not None:
            result = self._client.close()
            if asyncio.iscoroutine(result):
                await result
        if self._pool is not None:
            self._pool.shutdown(wait=False)


# --------------------------------------------------------------------------- Swift


def swift_auth(url: str, user: str, key: str) -> tuple[str, str]:
    """tempauth: ``(storage_url, token)``."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                      timeout=30)
    try:
        conn.request("GET", "/auth/v1.0", headers={"X-Auth-User": user, "X-Auth-Key": key})
        resp = conn.getresponse()
        resp.read()
        if resp.status // 100 != 2:
            raise HTTPStatusError("auth", resp.status)
        return resp.getheader("X-Storage-Url") or "", resp.getheader("X-Auth-Token") or ""
    finally:
        conn.close()


class SwiftTarget:
    """Swift's HTTP API through one aiohttp session (keep-alive connections, at most
    ``concurrency``), or ``http.client`` with one keep-alive connection per thread."""

    name = "swift"

    def __init__(self, url: str, container: str, *, user: str = SWIFT_USER,
                 key: str = SWIFT_KEY, pidfile: str = SWIFT_PIDFILE,
                 pids: Sequence[int] = (), sync: bool = False, concurrency: int = 16) -> None:
        self.url = url.rstrip("/")
        self.container = container
        self.user, self.key = user, key
        self.pidfile = pidfile
        self.pids = list(pids)
        self.sync = sync
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency) if sync else None
        self._local = threading.local()
        self._session: Any = None
        self.base = ""
        self.headers: dict[str, str] = {}

    async def open(self) -> SwiftTarget:
        storage_url, token = await asyncio.to_thread(swift_auth, self.url, self.user,
                                                     self.key)
        self.base = f"{storage_url}/{urllib.parse.quote(self.container)}"
        self.headers = {"X-Auth-Token": token}
        if not self.sync:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency + 4),
                timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), headers=self.headers,
                skip_auto_headers=("Content-Type",))
        await self._request("PUT", "", b"", ok=(201, 202))
        if not self.pids:
            self.pids = swift_leaders(self.pidfile)
        return self

    def server_cpu_s(self) -> float:
        return group_cpu_s(self.pids)

    async def _request(self, method: str, path: str, body: bytes | None = None, *,
                       ok: tuple[int, ...]) -> tuple[int, bytes]:
        """Returns ``(bytes read, body if it is small)``: large bodies are counted and
        dropped chunk by chunk."""
        url = self.base + path
        if self._session is None:
            assert self._pool is not None
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._request_sync, method, url, body, ok)
        async with self._session.request(method, url, data=body) as resp:
            if resp.status not in ok:
                await resp.read()
                raise HTTPStatusError(method, resp.status)
            if method != "GET" or path.startswith("?"):
                data = await resp.read()
                return len(data), data
            n = 0
            async for chunk in resp.content.iter_chunked(READ_CHUNK):
                n += len(chunk)
            return n, b""

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            parts = urllib.parse.urlsplit(self.base)
            conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1",
                                              parts.port or 80, timeout=TIMEOUT_S)
            self._local.conn = conn
        return conn

    def _request_sync(self, method: str, url: str, body: bytes | None,
                      ok: tuple[int, ...]) -> tuple[int, bytes]:
        conn = self._conn()
        path = urllib.parse.urlsplit(url)._replace(scheme="", netloc="").geturl()
        try:
            conn.request(method, path, body=body, headers=self.headers)
            resp = conn.getresponse()
            n, keep = 0, b""
            while chunk := resp.read(READ_CHUNK):
                n += len(chunk)
                if n <= READ_CHUNK:
                    keep += chunk
        except (OSError, http.client.HTTPException):
            conn.close()
            self._local.conn = None
            raise
        if resp.status not in ok:
            raise HTTPStatusError(method, resp.status)
        return n, keep

    @staticmethod
    def _path(key: str) -> str:
        return "/" + urllib.parse.quote(key)

    async def put(self, key: str, data: bytes) -> None:
        await self._request("PUT", self._path(key), data, ok=(201,))

    async def get(self, key: str, size: int) -> int:
        n, _ = await self._request("GET", self._path(key), ok=(200,))
        return n

    async def delete(self, key: str) -> None:
        await self._request("DELETE", self._path(key), ok=(204,))

    async def list(self, prefix: str) -> int:
        query = urllib.parse.urlencode({"prefix": prefix, "limit": LIST_PAGE, "format": "json"})
        _, body = await self._request("GET", "?" + query, ok=(200, 204))
        return len(json.loads(body)) if body else 0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)


Target = CairnTarget | SwiftTarget
