"""The clients of a chaos run: SDK calls recorded in the history.

- ``set`` workers put write-once keys (``set/<writer>/<seq>``) and now and then read
  one of their earlier keys back.
- ``register`` workers put, get and delete a few hot keys (``reg/NN``), so writes race,
  deletes race with puts, and reads see the races. A few puts go out through the raw
  protocol with a wrong checksum: the node must refuse them (IntegrityError, a definite
  failure), and the checker makes sure they are never acknowledged nor visible.

Outcomes: ok; ``info`` (indeterminate: Unavailable and its subclasses, Timeout, and
anything unexpected, which is also counted by class in the report); ``fail`` (a
definite refusal: InvalidArgument, IntegrityError, ...).
"""

from __future__ import annotations

import random
import threading
from typing import Any

import crc32c
import grpc

import cairn
from cairn.v1 import common_pb2, object_pb2, object_pb2_grpc

from .history import FAIL, INFO, OK, History, describe, make_value

BUCKET = "chaos"
HOT_KEYS = 8
CLIENT_TIMEOUT_S = 8.0  # per SDK call, retries included; a frozen node must not stall us
SET_READ_EVERY = 5  # a set worker reads back one of its keys every this many puts
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
