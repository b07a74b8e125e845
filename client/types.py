"""Plain value types shared by every layer (stdlib only, like ``cairn.errors``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = [
    "MAX_BUCKET_BYTES",
    "MAX_KEY_BYTES",
    "MIN_BUCKET_BYTES",
    "Version",
    "validate_bucket",
    "validate_key",
]

MAX_KEY_BYTES: Final = 1024
MIN_BUCKET_BYTES: Final = 3
MAX_BUCKET_BYTES: Final = 63

_BUCKET_RE: Final = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_RE: Final = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


@dataclass(frozen=True, slots=True, order=True)
class Version:
    """A hybrid logical clock stamp: the newest version of an object wins.

    Ordered by (physical_ms, logical, node_id); node_id breaks ties between
    coordinators so two distinct writes never compare equal.
    """

    physical_ms: int
    logical: int = 0
    node_id: int = 0

    def __str__(self) -> str:
        return f"{self.physical_ms}.{self.logical}.{self.node_id}"

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse the ``physical_ms.logical.node_id`` form produced by ``str()``."""
        parts = text.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not a version stamp: {text!r}")
        return cls(int(parts[0]), int(parts[1]), int(parts[2]))


def validate_bucket(name: str) -> str | None:
    """Return why ``name`` is not a valid bucket name (S3 rules), or None if it is."""
    if not isinstance(name, str):
        return "bucket name must be a string"
    if not MIN_BUCKET_BYTES <= len(name) <= MAX_BUCKET_BYTES:
        return f"bucket name must be {MIN_BUCKET_BYTES}..{MAX_BUCKET_BYTES} characters long"
    if not _BUCKET_RE.match(name):
        return (
            "bucket name may contain only lowercase letters, digits, '.' and '-', "
            "and must start and end with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        return "bucket name must not contain '..', '.-' or '-.'"
    if _IPV4_RE.match(name):
        return "bucket name must not look like an IP address"
    return None


def validate_key(key: bytes, max_key_bytes: int = MAX_KEY_BYTES) -> str | None:
    """Return why ``key`` (UTF-8 bytes) is not a valid object key, or None if it is."""
    if not isinstance(key, bytes):
        return "key must be bytes"
    if not key:
        return "key must not be empty"
    if len(key) > max_key_bytes:
        return f"key is {len(key)} bytes, the limit is {max_key_bytes}"
    if b"\x00" in key:
        return "key must not contain NUL"
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return "key is not valid UTF-8"
    return None
