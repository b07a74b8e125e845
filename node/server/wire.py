"""Protobuf messages <-> the plain values of the layers below, and input validation.

Protobuf accepts much that cairn must not (DESIGN traps): wrong wire types become empty
defaults, and undecodable bytes never reach a handler unless the deserializer lets
them. Every field is checked here; nothing below the server sees a message.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf import message as _message
from google.protobuf import message_factory

from cairn.errors import InvalidArgument
from cairn.node.storage import format as fmt
from cairn.node.storage.reader import ObjectInfo
from cairn.types import Version, validate_bucket, validate_key
from cairn.v1 import common_pb2

PAGE_TOKEN_FORMAT: Final = 1
MAX_CODEC_CHARS: Final = 64


@dataclass(frozen=True, slots=True)
class Malformed:
    """Stands in for a request whose bytes did not decode, so the handler can answer
    INVALID_ARGUMENT (a grpc.aio server would answer UNKNOWN before any handler)."""

    error: str


def safe_deserializer(descriptor: Any) -> Any:
    cls = message_factory.GetMessageClass(descriptor)

    def deserialize(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except (_message.DecodeError, ValueError, RuntimeError) as exc:
            return Malformed(f"the request is not a valid {descriptor.name} message: {exc}")

    return deserialize


def check_malformed(request: object) -> None:
    """Raises: InvalidArgument if ``request`` did not decode."""
    if isinstance(request, Malformed):
        raise InvalidArgument(request.error)


def bucket_name(raw: bytes) -> str:
    """Raises: InvalidArgument unless ``raw`` is a valid bucket name."""
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidArgument("bucket name must be ASCII") from None
    if not name:
        raise InvalidArgument("bucket name is missing")
    why = validate_bucket(name)
    if why:
        raise InvalidArgument(f"invalid bucket name {name!r}: {why}")
    return name


def object_key(raw: bytes, max_key_bytes: int) -> bytes:
    """Raises: InvalidArgument unless ``raw`` is a valid key."""
    why = validate_key(raw, max_key_bytes)
    if why:
        raise InvalidArgument(f"invalid key: {why}")
    return raw


def codec_name(name: str) -> str:
    """Raises: InvalidArgument for a codec name that cannot be stored."""
    if len(name) > MAX_CODEC_CHARS or not name.isascii() or not name.isprintable():
        raise InvalidArgument(f"codec name must be printable ASCII of at most {MAX_CODEC_CHARS} "
                              "characters")
    return name or "raw"


def metadata(values: Mapping[str, str], max_bytes: int) -> dict[str, str]:
    """Raises: InvalidArgument when the metadata is larger than ``max_bytes`` encoded."""
    out = dict(values)
    size = sum(len(k.encode()) + len(v.encode()) + 4 for k, v in out.items())
    if size > max_bytes:
        raise InvalidArgument(f"metadata is {size} bytes, the limit is {max_bytes}")
    if any(not k for k in out):
        raise InvalidArgument("metadata names must not be empty")
    return out


def version_to_pb(v: Version) -> common_pb2.Version:
    return common_pb2.Version(physical_ms=v.physical_ms, logical=v.logical, node_id=v.node_id)


def version_from_pb(v: common_pb2.Version) -> Version:
    return Version(v.physical_ms, v.logical, v.node_id)


def info_to_pb(info: ObjectInfo) -> common_pb2.ObjectInfo:
    return common_pb2.ObjectInfo(
        bucket=info.bucket.encode("ascii"), key=info.key, size=info.size,
        version=version_to_pb(info.version), checksum=info.checksum, codec=info.codec,
        metadata=dict(info.metadata), tier=info.tier, deleted=info.deleted,
        partition=info.partition, modified_ms=info.version.physical_ms,
    )


def page_token(bucket: str, prefix: bytes, last_key: bytes) -> bytes:
    """An opaque continuation token: format byte, CRC32C binding it to the listing, key."""
    check = fmt.crc32c(last_key, fmt.crc32c(prefix + b"\0", fmt.crc32c(bucket.encode())))
    return struct.pack("<BI", PAGE_TOKEN_FORMAT, check) + last_key


def parse_page_token(token: bytes, bucket: str, prefix: bytes) -> bytes:
    """The last key of the previous page.

    Raises:
        InvalidArgument: the token is malformed or belongs to another listing.
    """
    if len(token) < 5 or token[0] != PAGE_TOKEN_FORMAT:
        raise InvalidArgument("malformed page token")
    last_key = token[5:]
    if page_token(bucket, prefix, last_key) != token:
        raise InvalidArgument("page token does not belong to this bucket and prefix")
    return last_key
