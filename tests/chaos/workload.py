"""The clients of a chaos run: SDK calls recorded in the history.

- ``set`` workers put write-once keys (``set/<writer>/<seq>``) and now and then read
  one of their earlier keys back.
- ``register`` workers put, get and delete a few hot keys (``reg/NN``), so writes race,
  deletes race with puts, and reads see the races. A few puts go out through the raw
  protocol with a wrong checksum: the node must refuse them (IntegrityError, a definite
  failure), and the checker makes sure they are never acknowledged nor visible.
- a ``large`` worker puts write-once large keys (``large/<writer>/<seq>``, 1-8 MiB,
  streamed from a file with ``upload``) and reads them back whole (``download`` to a
  file) and by random byte ranges (``get_bytes`` and ``download`` with a range). A
  large value is computed from a seed its put records (``history.LargeValue``), so the
  checker recomputes every range; ``LARGE_WRITE_BYTES_S`` keeps the load modest.

Outcomes: ok; ``info`` (indeterminate: Unavailable and its subclasses, Timeout, and
anything unexpected, which is also counted by class in the report); ``fail`` (a
definite refusal: InvalidArgument, IntegrityError, ...).
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import tempfile
import threading
import time
from typing import Any

import crc32c
import grpc

import cairn
from cairn.v1 import common_pb2, object_pb2, object_pb2_grpc

from .history import (
    FAIL,
    INFO,
    OK,
    History,
    LargeValue,
    describe,
    describe_chunks,
    describe_range,
    make_value,
)

BUCKET = "chaos"
HOT_KEYS = 8
CLIENT_TIMEOUT_S = 8.0  # per SDK call, retries included; a frozen node must not stall us
SET_READ_EVERY = 5  # a set worker reads back one of its keys every this many puts
MiB = 1024 * 1024
LARGE_SIZE = (1 * MiB, 8 * MiB)  # a large value's body size
LARGE_WRITE_BYTES_S = 1 * MiB  # the large worker's average put bandwidth (the load cap)
LARGE_PUT_P = 0.3  # share of its steps that put, while the bandwidth cap allows
LARGE_READ_PAUSE_S = 0.05  # between the large worker's reads
LARGE_WHOLE_READ_P = 0.25  # share of its reads that download the whole value
LARGE_RANGE_MAX = 2 * MiB  # longest range asked for (open-ended ranges aside)
LARGE_TIMEOUT_S = 30.0  # per SDK call of the large worker: 8 MiB through a loaded node
INDETERMINATE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.CANCELLED)


def value_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.85:
        return rng.randint(16, 4096)
    if r < 0.98:
        return rng.randint(4096, 64 * 1024)
    return rng.randint(64 * 1024, 512 * 1024)


def outcome_of(exc: BaseException) -> tuple[str, str]:
    name = type(exc).__name__
    if isinstance(exc, cairn.Unavailable):
        return INFO, f"{name}: {exc}"[:300]
    if isinstance(exc, cairn.CairnError):
        return FAIL, f"{name}: {exc}"[:300]
    return INFO, f"unexpected {name}: {exc}"[:300]


class Worker(threading.Thread):
    """One client thread; stops when ``stop`` is set. A crash is kept in ``crashed``."""

    def __init__(self, name: str, seeds: list[str], history: History, rng: random.Random,
                 stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self.seeds = seeds
        self.history = history
        self.rng = rng
        self.stop_event = stop
        self.seq = 0
        self.crashed: BaseException | None = None

    def run(self) -> None:
        try:
            with cairn.Client(self.seeds, timeout=CLIENT_TIMEOUT_S) as client:
                while not self.stop_event.is_set():
                    self.step(client)
        except BaseException as exc:
            self.crashed = exc

    def step(self, client: cairn.Client) -> None:
        raise NotImplementedError

    def put(self, client: cairn.Client, key: str) -> None:
        self.seq += 1
        raw, desc = make_value(key, self.name, self.seq, value_size(self.rng), self.rng)
        op = self.history.invoke(self.name, "put", key, value=desc)
        try:
            info = client.put(BUCKET, key, raw)
        except Exception as exc:
            outcome, error = outcome_of(exc)
            self.history.complete(op, outcome, error=error)
        else:
            self.history.complete(op, OK, version=str(info.version))

    def delete(self, client: cairn.Client, key: str) -> None:
        op = self.history.invoke(self.name, "delete", key)
        try:
            version = client.delete(BUCKET, key)
        except Exception as exc:
            outcome, error = outcome_of(exc)
            self.history.complete(op, outcome, error=error)
        else:
            self.history.complete(op, OK, version=str(version))


def read(client: cairn.Client, history: History, process: str, key: str,
         timeout_s: float | None = None) -> None:
    """A quorum get, recorded: found or not, and what the bytes say about themselves."""
    op = history.invoke(process, "get", key)
    try:
        value, info = client.get_object(BUCKET, key, timeout=timeout_s)
    except cairn.BucketNotFound as exc:
        history.complete(op, FAIL, error=f"BucketNotFound: {exc}"[:300])
    except cairn.NotFound:
        history.complete(op, OK, found=False)
    except Exception as exc:
        outcome, error = outcome_of(exc)
        history.complete(op, outcome, error=error)
    else:
        raw = value if isinstance(value, bytes) else repr(value).encode()
        history.complete(op, OK, found=True, value=describe(raw), version=str(info.version))


class SetWorker(Worker):
    def step(self, client: cairn.Client) -> None:
        key = f"set/{self.name}/{self.seq + 1:06d}"
        self.put(client, key)
        if self.seq % SET_READ_EVERY == 0:
            back = self.rng.randint(1, self.seq)
            read(client, self.history, self.name, f"set/{self.name}/{back:06d}")


class RegisterWorker(Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.raw: dict[str, object_pb2_grpc.ObjectServiceStub] = {}
        self.channels: list[grpc.Channel] = []

    def run(self) -> None:
        try:
            super().run()
        finally:
            for ch in self.channels:
                ch.close()

    def step(self, client: cairn.Client) -> None:
        key = f"reg/{self.rng.randrange(HOT_KEYS):02d}"
        r = self.rng.random()
        if r < 0.45:
            read(client, self.history, self.name, key)
        elif r < 0.85:
            self.put(client, key)
        elif r < 0.97:
            self.delete(client, key)
        else:
            self.put_bad_checksum(key)

    def put_bad_checksum(self, key: str) -> None:
        """A PutSmall whose checksum does not match its bytes, to a random node."""
        address = self.rng.choice(self.seeds)
        if address not in self.raw:
            channel = grpc.insecure_channel(address)
            self.channels.append(channel)
            self.raw[address] = object_pb2_grpc.ObjectServiceStub(channel)
        self.seq += 1
        raw, desc = make_value(key, self.name, self.seq, value_size(self.rng), self.rng)
        op = self.history.invoke(self.name, "put", key, value={**desc, "bad_checksum": True},
                                 node=address)
        request = object_pb2.PutSmallRequest(
            header=object_pb2.PutHeader(
                request=common_pb2.RequestHeader(consistency=common_pb2.CONSISTENCY_QUORUM),
                bucket=BUCKET.encode(), key=key.encode()),
            value=raw, checksum=crc32c.crc32c(raw) ^ 0x5A5A5A5A)
        try:
            reply = self.raw[address].PutSmall(request, timeout=CLIENT_TIMEOUT_S)
        except grpc.RpcError as exc:
            code = exc.code()
            outcome = INFO if code in INDETERMINATE_CODES else FAIL
            self.history.complete(op, outcome, error=f"{code.name}: {exc.details()}"[:300])
        else:
            v = reply.info.version
            self.history.complete(op, OK, version=f"{v.physical_ms}.{v.logical}.{v.node_id}")


class LargeWorker(Worker):
    """Write-once large keys, streamed, read back whole and by random byte ranges."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.written: list[tuple[str, int]] = []  # (key, length) of every put invoked
        self.tmp = ""
        self.started = time.monotonic()
        self.put_bytes = 0  # sent so far, against LARGE_WRITE_BYTES_S

    def run(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix=f"cairn-chaos-{self.name}-")
        try:
            with cairn.Client(self.seeds, timeout=LARGE_TIMEOUT_S) as client:
                while not self.stop_event.is_set():
                    self.step(client)
        except BaseException as exc:
            self.crashed = exc
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def step(self, client: cairn.Client) -> None:
        budget = (time.monotonic() - self.started) * LARGE_WRITE_BYTES_S - self.put_bytes
        if not self.written or (self.rng.random() < LARGE_PUT_P and budget >= 0):
            self.put_large(client)
            return
        key, length = self.rng.choice(self.written)
        if self.rng.random() < LARGE_WHOLE_READ_P:
            self.read_whole(client, key)
        else:
            self.read_range(client, key, length)
        self.stop_event.wait(LARGE_READ_PAUSE_S)

    def put_large(self, client: cairn.Client) -> None:
        self.seq += 1
        key = f"large/{self.name}/{self.seq:06d}"
        value = LargeValue.create(key, self.name, self.seq, self.rng.randint(*LARGE_SIZE),
                                  self.rng.randrange(2**63))
        path = os.path.join(self.tmp, "put")
        with open(path, "wb") as f:
            for chunk in value.chunks():
                f.write(chunk)
        self.written.append((key, len(value)))
        self.put_bytes += len(value)
        op = self.history.invoke(self.name, "put", key, value=value.description())
        try:
            info = client.upload(BUCKET, key, path)
        except Exception as exc:
            outcome, error = outcome_of(exc)
            self.history.complete(op, outcome, error=error)
        else:
            self.history.complete(op, OK, version=str(info.version))
        finally:
            os.unlink(path)

    def read_whole(self, client: cairn.Client, key: str) -> None:
        """A streamed download of the whole value to a file, described in pieces."""
        path = os.path.join(self.tmp, "get")
        op = self.history.invoke(self.name, "get", key)
        try:
            info = client.download(BUCKET, key, path)
            with open(path, "rb") as f:
                described = describe_chunks(iter(lambda: f.read(MiB), b""))
        except cairn.NotFound:
            self.history.complete(op, OK, found=False)
        except Exception as exc:
            outcome, error = outcome_of(exc)
            self.history.complete(op, outcome, error=error)
        else:
            self.history.complete(op, OK, found=True, value=described,
                                  version=str(info.version))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def read_range(self, client: cairn.Client, key: str, length: int) -> None:
        """``[start, end)`` of the value: ``end`` None (to the end) or past the size
        (clamped) now and then; by ``get_bytes`` (no version comes back) or by
        ``download`` into memory (with the version)."""
        start = self.rng.randrange(length)
        r = self.rng.random()
        end: int | None
        if r < 0.1:
            end = None
        elif r < 0.2:
            end = length + self.rng.randint(1, 4096)
        else:
            end = start + self.rng.randint(1, min(LARGE_RANGE_MAX, length - start))
        api = "get_bytes" if self.rng.random() < 0.5 else "download"
        op = self.history.invoke(self.name, "get-range", key, start=start, end=end, api=api)
        try:
            version = None
            if api == "get_bytes":
                data = client.get_bytes(BUCKET, key, start=start, end=end)
            else:
                sink = io.BytesIO()
                info = client.download(BUCKET, key, sink, start=start, end=end)
                data, version = sink.getvalue(), str(info.version)
        except cairn.NotFound:
            self.history.complete(op, OK, found=False)
        except Exception as exc:
            outcome, error = outcome_of(exc)
            self.history.complete(op, outcome, error=error)
        else:
            self.history.complete(op, OK, found=True, value=describe_range(start, data),
                                  **({"version": version} if version else {}))
