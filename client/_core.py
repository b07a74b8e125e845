"""The SDK's core: everything ``Client`` and ``AsyncClient`` decide, and nothing they do.

Owns argument checks, request headers and the client's clock, routing (in
``cairn._routing``: the cluster map, replicas by placement, health, per-attempt time
shares; re-exported here), Put framing (head on the first message, ``PutEnd`` on the
last, CRC32C on the way), Get stream verification, List paging, and the choice between
the unary fast path and a stream. No I/O, no sleeping, no gRPC: the facades run the loops
(``client/_async_client.py``), the transport (``client/_transport.py``) turns the values
into protobuf messages. The values themselves (``ObjectInfo``, headers, requests, stream
messages) live in ``cairn._values`` and are re-exported here, so the facades and the
transport read ``core.X`` for all of them.

Entry points: ``ObjectInfo``, ``Session`` (headers and the clock), ``Router``,
``PutFramer``, ``GetVerifier``, ``ListCursor``, the ``check_*`` functions.
``docs/sdk.md`` explains the decisions to users.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Final

import crc32c

from cairn._routing import (
    ANSWERED,
    MIN_ATTEMPT_TIMEOUT_S,
    Router,
    SeedRouter,
    attempt_deadline,
    attempt_route,
    attempt_timeout_s,
    avoid,
    health_order,
    is_failover,
    is_node_failure,
    map_fetch_deadline,
    retry_delay_s,
    telling_error,
)
from cairn._values import (
    ClusterMapRequest,
    Consistency,
    CreateBucketRequest,
    DeleteBucketRequest,
    DeleteRequest,
    DiskStatus,
    FetchedMap,
    GetHead,
    GetPart,
    GetRequest,
    GetResult,
    GetSmallRequest,
    HeadRequest,
    ListBucketsRequest,
    ListPage,
    ListRequest,
    NodeStatus,
    NodeStatusRequest,
    ObjectInfo,
    PutEnd,
    PutHead,
    PutMessage,
    PutSmallRequest,
    RepairRequest,
    RepairResult,
    RepairStatus,
    Request,
    RequestHeader,
    ResponseHeader,
    ScrubRequest,
    SetRepairRateRequest,
    SmallValue,
    object_info,
)
from cairn.codecs import Codec, CodecRegistry
from cairn.errors import (
    IntegrityError,
    InternalError,
    InvalidArgument,
)
from cairn.types import MAX_KEY_BYTES, Version, validate_bucket, validate_key

__all__ = [
    "ANSWERED",
    "CHUNK_BYTES",
    "DEFAULT_TIMEOUT_S",
    "MAX_METADATA_BYTES",
    "MAX_PAGE_SIZE",
    "MAX_UINT32",
    "MAX_UINT64",
    "MIN_ATTEMPT_TIMEOUT_S",
    "SEEDS_ENV",
    "SMALL_OBJECT_BYTES",
    "ZERO_VERSION",
    "ClusterMapRequest",
    "Consistency",
    "CreateBucketRequest",
    "DeleteBucketRequest",
    "DeleteRequest",
    "DiskStatus",
    "FetchedMap",
    "GetHead",
    "GetPart",
    "GetRequest",
    "GetResult",
    "GetSmallRequest",
    "GetVerifier",
    "HeadRequest",
    "ListBucketsRequest",
    "ListCursor",
    "ListPage",
    "ListRequest",
    "NodeStatus",
    "NodeStatusRequest",
    "ObjectInfo",
    "PutEnd",
    "PutFramer",
    "PutHead",
    "PutMessage",
    "PutSmallRequest",
    "RepairRequest",
    "RepairResult",
    "RepairStatus",
    "Request",
    "RequestHeader",
    "ResponseHeader",
    "Router",
    "ScrubRequest",
    "SeedRouter",
    "Session",
    "SetRepairRateRequest",
    "SmallValue",
    "attempt_deadline",
    "attempt_route",
    "attempt_timeout_s",
    "avoid",
    "check_address",
    "check_bucket",
    "check_consistency",
    "check_key",
    "check_metadata",
    "check_page_size",
    "check_partition",
    "check_prefix",
    "check_range",
    "check_rate",
    "check_source_size",
    "check_timeout",
    "checksum",
    "health_order",
    "is_failover",
    "is_node_failure",
    "make_registry",
    "map_fetch_deadline",
    "new_request_id",
    "object_info",
    "parse_seeds",
    "retry_delay_s",
    "shelf_codec",
    "split_value",
    "telling_error",
    "use_put_small",
    "verify_value",
]

CHUNK_BYTES: Final = 1 << 20
"""Bytes per chunk message of a Put or Get stream (the measured sweet spot, docs/protocol.md)."""
SMALL_OBJECT_BYTES: Final = 1 << 20
"""Values up to this size go through the unary PutSmall/GetSmall (the node's default limit)."""
MAX_METADATA_BYTES: Final = 2048
"""User metadata: names and values together, UTF-8 (docs/protocol.md "Limits")."""
MAX_PAGE_SIZE: Final = 1000
"""The node caps a List page at 1000 objects."""
DEFAULT_TIMEOUT_S: Final = 30.0
SEEDS_ENV: Final = "CAIRN_SEEDS"
"""Comma-separated ``host:port`` seeds, read when a client is built with ``seeds=None``."""
ZERO_VERSION: Final = Version(0, 0, 0)
MAX_UINT32: Final = (1 << 32) - 1
"""The largest partition number the wire carries (``RepairRequest.partition``)."""
MAX_UINT64: Final = (1 << 64) - 1
"""The largest rate the wire carries (``SetRepairRateRequest.rate_bytes_s``)."""

_CONSISTENCIES: Final = ("one", "quorum", "all")


def checksum(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C (Castagnoli) of ``data``, continuing from ``crc``."""
    return int(crc32c.crc32c(data, crc))


# --- headers and the clock ----------------------------------------------------------


def new_request_id() -> str:
    """A fresh id for one logical operation (kept across its retries and pages)."""
    return uuid.uuid4().hex


class Session:
    """What one client has learned from the nodes, and how it stamps its requests.

    Keeps the greatest ``ResponseHeader.clock`` seen and sends it in every request, so a
    call that starts after another finished is stamped after it, whichever node
    coordinates it (docs/protocol.md "Clocks"). ``map_epoch`` is the epoch of the
    cluster map the client routes with (0 until it fetched one), sent in every request;
    ``newest_epoch`` is the newest epoch a node reported and ``newest_epoch_node`` the
    node that reported it first, where the map is fetched from when it is newer.
    Thread-safe: the sync client may be shared between threads.
    """

    def __init__(self, consistency: Consistency | None = None) -> None:
        self.consistency = check_consistency(consistency)
        self.map_epoch = 0
        self.newest_epoch = 0
        self.newest_epoch_node = 0
        self._clock = ZERO_VERSION
        self._lock = threading.Lock()

    @property
    def clock(self) -> Version:
        """The greatest clock any node has reported to this client."""
        return self._clock

    def header(self, request_id: str, consistency: Consistency | None = None) -> RequestHeader:
        """The header for the next attempt of the operation ``request_id``."""
        return RequestHeader(
            request_id=request_id,
            epoch=self.map_epoch,
            clock=self._clock,
            consistency=consistency if consistency is not None else self.consistency,
        )

    def observe(self, response: ResponseHeader) -> None:
        """Advance the clock and the newest epoch past what a node reported."""
        with self._lock:
            if response.clock > self._clock:
                self._clock = response.clock
            if response.epoch > self.newest_epoch:
                self.newest_epoch = response.epoch
                self.newest_epoch_node = response.node_id


# --- argument checks: every one raises InvalidArgument before any I/O ----------------


def check_bucket(bucket: object) -> bytes:
    """Return the bucket name as wire bytes.

    Raises:
        InvalidArgument: not a valid bucket name (S3 rules).
    """
    why = validate_bucket(bucket)  # type: ignore[arg-type]  # validate_bucket checks the type
    if why is not None:
        raise InvalidArgument(f"{why}: {bucket!r}", bucket=bucket)
    assert isinstance(bucket, str)
    return bucket.encode("ascii")


def check_key(key: object) -> bytes:
    """Return the key as wire bytes (a ``str`` is encoded as UTF-8).

    Raises:
        InvalidArgument: not str or bytes, empty, too long, NUL, bad UTF-8.
    """
    if isinstance(key, str):
        try:
            raw = key.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument(f"key is not encodable as UTF-8: {exc.reason}") from exc
    elif isinstance(key, bytes | bytearray | memoryview):
        raw = bytes(key)
    else:
        raise InvalidArgument(f"key must be str or bytes, not {type(key).__name__}")
    why = validate_key(raw)
    if why is not None:
        raise InvalidArgument(f"{why}: {key!r:.80}")
    return raw


def check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Return a private copy of the user metadata.

    Raises:
        InvalidArgument: not a mapping of str to str, an empty name, more than
            ``MAX_METADATA_BYTES`` of UTF-8 in names and values together.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgument(f"metadata must be a mapping of str to str, not {metadata!r:.80}")
    total = 0
    for name, value in metadata.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidArgument(f"metadata names and values must be str: {name!r}: {value!r}")
        if not name:
            raise InvalidArgument("metadata names must not be empty")
        try:
            total += len(name.encode("utf-8")) + len(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidArgument(f"metadata is not encodable as UTF-8: {exc.reason}") from exc
    if total > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata is {total} bytes of UTF-8, the limit is "
                              f"{MAX_METADATA_BYTES}")
    return dict(metadata)


def check_consistency(consistency: object) -> Consistency | None:
    """Return ``consistency`` if it is None (the node's default), one, quorum or all.

    Raises:
        InvalidArgument: any other value.
    """
    if consistency is None or consistency in _CONSISTENCIES:
        return consistency
    raise InvalidArgument(
        f"consistency must be one of {_CONSISTENCIES} or None, not {consistency!r}"
    )


def _check_offset(name: str, value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{name} must be an int >= 0 or None, not {value!r}")
    return value


def check_range(start: object, end: object) -> tuple[int | None, int | None]:
    """Check a half-open byte range ``[start, end)``; None means "from 0" / "to the end".

    Raises:
        InvalidArgument: negative or non-int offsets, or ``start > end``.
    """
    start_i = _check_offset("start", start)
    end_i = _check_offset("end", end)
    if start_i is not None and end_i is not None and start_i > end_i:
        raise InvalidArgument(f"range start {start_i} is after its end {end_i}")
    return start_i, end_i


def check_prefix(name: str, value: object) -> bytes:
    """Return a key prefix (or ``start_after``) as wire bytes; None and "" mean none.

    Raises:
        InvalidArgument: not str or bytes, or longer than a key may be.
    """
    if value is None:
        return b""
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidArgument(f"{name} is not encodable as UTF-8: {exc.reason}") from exc
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
    else:
        raise InvalidArgument(f"{name} must be str or bytes, not {type(value).__name__}")
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidArgument(f"{name} is {len(raw)} bytes, longer than any key ({MAX_KEY_BYTES})")
    return raw


def check_page_size(page_size: object) -> int:
    """Raises: InvalidArgument: not an int in 1..``MAX_PAGE_SIZE``."""
    if (
        not isinstance(page_size, int)
        or isinstance(page_size, bool)
        or not 1 <= page_size <= MAX_PAGE_SIZE
    ):
        raise InvalidArgument(f"page_size must be an int in 1..{MAX_PAGE_SIZE}, not {page_size!r}")
    return page_size


def check_partition(partition: object) -> int | None:
    """Return a partition number for ``repair``, or None (every partition).

    Whether the partition exists is the node's to say (it knows the map's P).

    Raises:
        InvalidArgument: not None or an int in ``0..MAX_UINT32``.
    """
    if partition is None:
        return None
    if not isinstance(partition, int) or isinstance(partition, bool) or not (
        0 <= partition <= MAX_UINT32
    ):
        raise InvalidArgument(f"partition must be an int in 0..{MAX_UINT32}, not {partition!r}")
    return partition


def check_rate(rate_bytes_s: object) -> int:
    """Return a repair rate in bytes per second (0 = unlimited).

    Raises:
        InvalidArgument: not an int in ``0..MAX_UINT64``.
    """
    if not isinstance(rate_bytes_s, int) or isinstance(rate_bytes_s, bool) or not (
        0 <= rate_bytes_s <= MAX_UINT64
    ):
        raise InvalidArgument(
            f"rate_bytes_s must be an int >= 0 (0 = unlimited), not {rate_bytes_s!r}"
        )
    return rate_bytes_s


def check_timeout(timeout_s: object) -> float:
    """Raises: InvalidArgument: not a finite number of seconds > 0 (every call needs one)."""
    if (
        not isinstance(timeout_s, int | float)
        or isinstance(timeout_s, bool)
        or not 0 < timeout_s < float("inf")
    ):
        raise InvalidArgument(f"timeout must be a finite number of seconds > 0, not {timeout_s!r}")
    return float(timeout_s)


def parse_seeds(
    seeds: Sequence[str] | str | None, environ: Mapping[str, str] = os.environ
) -> tuple[str, ...]:
    """The seed addresses: ``seeds`` (a list, or one comma-separated string), else
    ``$CAIRN_SEEDS``. Duplicates are dropped, order is kept.

    Raises:
        InvalidArgument: no seed given, or one is not ``host:port``.
    """
    from cairn.cluster.clustermap import parse_address  # pure; shared with the node

    if seeds is None:
        seeds = environ.get(SEEDS_ENV, "")
        where = f"${SEEDS_ENV}"
    else:
        where = "seeds"
    items = seeds.split(",") if isinstance(seeds, str) else list(seeds)
    found: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"{where}: a seed must be a 'host:port' string, not {item!r}")
        address = item.strip()
        if address:
            parse_address(address)
            if address not in found:
                found.append(address)
    if not found:
        raise InvalidArgument(
            f"no seed address: pass seeds=['host:port', ...] or set {SEEDS_ENV}=host:port,..."
        )
    return tuple(found)


def check_address(address: object) -> str:
    """Return a node address, ``host:port``.

    Raises:
        InvalidArgument: not a ``host:port`` string.
    """
    from cairn.cluster.clustermap import parse_address  # pure; shared with the node

    if not isinstance(address, str):
        raise InvalidArgument(f"a node address must be a 'host:port' string, not {address!r}")
    parse_address(address)
    return address


def make_registry(
    allow_pickle: bool, codecs: Iterable[Codec] | CodecRegistry | None
) -> CodecRegistry:
    """The codec registry of a new client: its own, with ``codecs`` added.

    A ``CodecRegistry`` passed as ``codecs`` is used as it is (its own ``allow_pickle``
    then decides; passing ``allow_pickle=True`` next to a registry that refuses pickle
    is an error rather than a silent no).

    Raises:
        CodecError: a codec in ``codecs`` is invalid or clashes with a built-in.
        InvalidArgument: ``allow_pickle=True`` with a registry that refuses pickle.
    """
    if isinstance(codecs, CodecRegistry):
        if allow_pickle and not codecs.allow_pickle:
            raise InvalidArgument(
                "allow_pickle=True was passed with a CodecRegistry that refuses pickle; "
                "build the registry with CodecRegistry(allow_pickle=True)"
            )
        return codecs
    return CodecRegistry(allow_pickle=bool(allow_pickle), codecs=codecs or ())


# --- routing: in cairn._routing, re-exported here ------------------------------------------


# --- Put ------------------------------------------------------------------------------


def use_put_small(size: int) -> bool:
    """Whether a value of ``size`` bytes goes through the unary ``PutSmall``."""
    return size <= SMALL_OBJECT_BYTES


def split_value(data: bytes, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[memoryview, bool]]:
    """Yield ``(chunk, last)`` over ``data``; an empty value is one empty last chunk."""
    view = memoryview(data)
    if not view:
        yield view, True
        return
    for offset in range(0, len(view), chunk_bytes):
        yield view[offset : offset + chunk_bytes], offset + chunk_bytes >= len(view)


def check_source_size(size: int, announced: int) -> None:
    """Raises: InvalidArgument: an upload source gave another size than it announced."""
    if size != announced:
        raise InvalidArgument(
            f"the upload source gave {size} bytes where {announced} were announced; "
            "did the file change during the upload?"
        )


class PutFramer:
    """Frames the chunks of one Put stream and keeps their count and CRC32C.

    The first message carries the head, the last one the ``PutEnd``; a value that fits
    one chunk is a single message (docs/protocol.md "The Put stream").
    """

    def __init__(self, head: PutHead) -> None:
        self._head = head
        self._sent_head = False
        self._ended = False
        self.size = 0
        self.checksum = 0

    def frame(self, chunk: bytes | memoryview, *, last: bool) -> PutMessage:
        """The message that carries ``chunk`` (``last``: and ends the stream).

        Raises:
            InvalidArgument: the source gave more or fewer bytes than the head announced
                (a file that changed while it was uploaded).
        """
        assert not self._ended, "frame() after the last chunk"
        announced = self._head.size
        self.size += len(chunk)
        self.checksum = checksum(chunk, self.checksum)
        if announced is not None and (self.size > announced or last):
            check_source_size(self.size, announced)
        end = PutEnd(self.size, self.checksum) if last else None
        head = None if self._sent_head else self._head
        self._sent_head = True
        self._ended = last
        return PutMessage(head=head, chunk=bytes(chunk), end=end)


# --- Get ------------------------------------------------------------------------------


def verify_value(info: ObjectInfo, value: bytes) -> None:
    """Check a whole value against the writer's size and CRC32C in ``info``.

    Raises:
        IntegrityError: size or checksum differ; the bytes must not be used.
    """
    if len(value) != info.size:
        raise IntegrityError(
            f"{info.bucket}/{info.key}: received {len(value)} bytes, the object has {info.size}",
            bucket=info.bucket, key=info.key,
        )
    crc = checksum(value)
    if crc != info.checksum:
        raise IntegrityError(
            f"{info.bucket}/{info.key}: CRC32C of the received value is {crc:#010x}, the "
            f"writer's is {info.checksum:#010x}; the bytes were not used",
            bucket=info.bucket, key=info.key,
        )


class GetVerifier:
    """Checks one Get stream: its grammar, its length and its checksums.

    No byte may be used before ``finish`` returned: the node ends a stream whose
    source fails its check with an error instead of ``GetEnd`` (docs/protocol.md "The
    Get stream"). A range that covers the whole value is also compared with
    ``info.checksum``, the writer's own CRC: that check is end to end.
    """

    def __init__(self, start: int | None = None, end: int | None = None) -> None:
        self._start = start
        self._end = end
        self.head: GetHead | None = None
        self.received = 0
        self._crc = 0
        self._end_checksum: int | None = None

    @property
    def expected_bytes(self) -> int:
        assert self.head is not None
        return self.head.range_end - self.head.range_start

    def accept(self, part: GetPart) -> bytes:
        """Take the next message; return its chunk (not to be used before ``finish``).

        Raises:
            InternalError: the node broke the stream grammar or sent another range.
            IntegrityError: more bytes than the range holds.
        """
        if self._end_checksum is not None:
            raise InternalError("a node sent a Get message after GetEnd")
        if self.head is None:
            if part.head is None:
                raise InternalError("a node's Get stream did not start with a GetHeader")
            self._check_range(part.head)
            self.head = part.head
        elif part.head is not None:
            raise InternalError("a node sent a second GetHeader in one Get stream")
        if part.chunk:
            self.received += len(part.chunk)
            if self.received > self.expected_bytes:
                raise IntegrityError(
                    f"a node sent more than the {self.expected_bytes} bytes of the range"
                )
            self._crc = checksum(part.chunk, self._crc)
        if part.end_checksum is not None:
            self._end_checksum = part.end_checksum
        return part.chunk

    def _check_range(self, head: GetHead) -> None:
        size = head.info.size
        want_start = self._start or 0
        want_end = size if self._end is None else min(self._end, size)
        if (head.range_start, head.range_end) != (want_start, want_end):
            raise InternalError(
                f"a node sent bytes [{head.range_start}, {head.range_end}) of a {size}-byte "
                f"object where [{want_start}, {want_end}) was asked"
            )

    def finish(self) -> GetHead:
        """The stream ended: verify it and return its head.

        Raises:
            IntegrityError: no ``GetEnd`` (an incomplete stream), a short stream, or a
                checksum that differs from ``GetEnd``'s or (whole values) the writer's.
        """
        head = self.head
        if head is None or self._end_checksum is None:
            raise IntegrityError("the Get stream ended before its GetEnd: the bytes are incomplete")
        where = f"{head.info.bucket}/{head.info.key}"
        if self.received != self.expected_bytes:
            raise IntegrityError(
                f"{where}: received {self.received} bytes of a {self.expected_bytes}-byte range"
            )
        if self._crc != self._end_checksum:
            raise IntegrityError(
                f"{where}: CRC32C of the received bytes is {self._crc:#010x}, GetEnd says "
                f"{self._end_checksum:#010x}; the bytes were not used"
            )
        whole = head.range_start == 0 and head.range_end == head.info.size
        if whole and self._crc != head.info.checksum:
            raise IntegrityError(
                f"{where}: CRC32C of the received value is {self._crc:#010x}, the writer's "
                f"is {head.info.checksum:#010x}; the bytes were not used"
            )
        return head


# --- List -----------------------------------------------------------------------------


class ListCursor:
    """Where a listing stands: builds each page's request and follows the page tokens.

    Only an empty ``next_page_token`` ends a listing; pages may be empty while more
    remain (docs/protocol.md "List").
    """

    def __init__(
        self,
        bucket: bytes,
        *,
        prefix: bytes = b"",
        start_after: bytes = b"",
        page_size: int = MAX_PAGE_SIZE,
        include_deleted: bool = False,
    ) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._start_after = start_after
        self._limit = page_size
        self._include_deleted = include_deleted
        self._token = b""
        self.done = False

    @property
    def bucket(self) -> bytes:
        return self._bucket

    def request(self, header: RequestHeader) -> ListRequest:
        """The request for the next page."""
        assert not self.done, "request() after the last page"
        return ListRequest(
            header=header,
            bucket=self._bucket,
            prefix=self._prefix,
            start_after=self._start_after,
            page_token=self._token,
            limit=self._limit,
            include_deleted=self._include_deleted,
        )

    def advance(self, page: ListPage) -> None:
        """Move past ``page``.

        Raises:
            InternalError: the node answered an empty page with the token it was given
                (the listing would never end).
        """
        if page.next_page_token and page.next_page_token == self._token and not page.objects:
            raise InternalError("a node answered an empty List page with the same page token")
        self._token = page.next_page_token
        self.done = not page.next_page_token


# --- codec choice of the mapping view -------------------------------------------------


def shelf_codec(value: object, default: str) -> str | None:
    """The codec ``bucket(name)[key] = value`` stores with.

    Bytes-like values and ``str`` get the client's own choice (None: raw, text); any
    other value gets the mapping's ``default`` (json unless the mapping says otherwise).
    """
    if isinstance(value, bytes | bytearray | memoryview | str):
        return None
    return default
