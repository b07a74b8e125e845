"""What every ``cairn`` command shares: exit codes, error lines, targets, progress, formats.

No click and no I/O beyond writing to the terminal: ``cairn.cli`` builds the commands on
top of these plain functions, and the tests can check each one alone.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import IO, Any, Final

from cairn.errors import (
    AlreadyExists,
    BucketNotFound,
    CairnError,
    Conflict,
    FailedPrecondition,
    IntegrityError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Timeout,
    Unauthenticated,
    Unavailable,
)
from cairn.types import validate_bucket

__all__ = [
    "EXIT_CONFLICT",
    "EXIT_ERROR",
    "EXIT_INTEGRITY",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TOO_LARGE",
    "EXIT_UNAUTHENTICATED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "PROGRESS_MIN_BYTES",
    "CliError",
    "Target",
    "exit_code_for",
    "format_bytes",
    "format_ms",
    "format_rate",
    "one_line",
    "parse_rate",
    "parse_target",
    "progress_bar",
]

# The exit codes; docs/cli.md documents them and scripts may rely on them.
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
"""Anything else: a local file cannot be read or written, an internal error."""
EXIT_USAGE: Final = 2
"""Bad command line, bad BUCKET/KEY, or a request the cluster calls invalid."""
EXIT_NOT_FOUND: Final = 3
"""No such object or bucket."""
EXIT_UNAVAILABLE: Final = 4
"""The cluster cannot be reached, too few replicas answered, or the deadline passed."""
EXIT_CONFLICT: Final = 5
"""The state forbids it: the bucket exists, is not empty, the saved cluster differs."""
EXIT_INTEGRITY: Final = 6
"""A checksum failed, or no healthy copy is left."""
EXIT_UNAUTHENTICATED: Final = 7
EXIT_TOO_LARGE: Final = 8
"""A limit was hit (object too large, too many streams)."""
EXIT_INTERRUPTED: Final = 130
"""Ctrl-C (128 + SIGINT), as shells do."""

PROGRESS_MIN_BYTES: Final = 4 * 1024 * 1024
"""Transfers smaller than this never show a progress bar: it would only flicker."""
MAX_ERROR_CHARS: Final = 600

# Order matters: the first class that matches wins (subclasses before parents).
_EXIT_CODES: Final[tuple[tuple[type[CairnError], int], ...]] = (
    (NotFound, EXIT_NOT_FOUND),
    (InvalidArgument, EXIT_USAGE),
    (Unavailable, EXIT_UNAVAILABLE),
    (AlreadyExists, EXIT_CONFLICT),
    (FailedPrecondition, EXIT_CONFLICT),
    (Conflict, EXIT_CONFLICT),
    (IntegrityError, EXIT_INTEGRITY),
    (Unauthenticated, EXIT_UNAUTHENTICATED),
    (ResourceExhausted, EXIT_TOO_LARGE),
)


class CliError(Exception):
    """An error the command reports as one line and an exit code.

    Attributes:
        message: the line (without the ``cairn: error:`` prefix).
        exit_code: one of the ``EXIT_*`` codes.
    """

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def exit_code_for(exc: CairnError) -> int:
    """The exit code of a cairn error, by its class (``EXIT_ERROR`` when none matches)."""
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_ERROR


def one_line(text: str) -> str:
    """Collapse whitespace and newlines, and cut very long text: an error is one line."""
    line = " ".join(str(text).split())
    if len(line) > MAX_ERROR_CHARS:
        line = line[: MAX_ERROR_CHARS - 3] + "..."
    return line


def describe_error(exc: CairnError, *, bucket: str | None, key: str | None, seeds: str) -> str:
    """Say what went wrong in the words of the command that was run.

    The node's message is kept; the CLI adds what it knows (which bucket, which object,
    which seeds) and what to do next where that is clear.
    """
    said = one_line(str(exc))
    if isinstance(exc, BucketNotFound) and bucket:
        return f"bucket '{bucket}' does not exist (create it with: cairn mb {bucket})"
    if isinstance(exc, NotFound) and bucket and key is not None:
        return f"no object '{key}' in bucket '{bucket}'"
    if isinstance(exc, AlreadyExists) and bucket and key is None:
        return f"bucket '{bucket}' already exists"
    if isinstance(exc, FailedPrecondition) and bucket and key is None:
        return f"bucket '{bucket}' is not empty (cairn rb --force {bucket} deletes its objects)"
    if isinstance(exc, Timeout):
        return f"{said} (the deadline passed; the write may or may not have happened)"
    if isinstance(exc, Unavailable):
        return f"{said} (seeds: {seeds})"
    return said


@dataclass(frozen=True, slots=True)
class Target:
    """A ``BUCKET[/KEY]`` argument split at its first '/'.

    Attributes:
        bucket: the bucket name.
        key: everything after the first '/' (may hold more '/'), or None if there was
            no '/'. An empty key (``app/``) is ``""``.
    """

    bucket: str
    key: str | None

    def __str__(self) -> str:
        return self.bucket if self.key is None else f"{self.bucket}/{self.key}"


def parse_target(text: str, *, need_key: bool) -> Target:
    """Split ``BUCKET/KEY`` at the first '/'; keys may themselves hold '/'.

    Args:
        text: the argument as typed.
        need_key: the command names one object (``get``, ``put``...), not a bucket.

    Raises:
        CliError: (usage) the bucket name is invalid, or a key is missing or empty.
    """
    bucket, sep, key = text.partition("/")
    if not bucket:
        raise CliError(f"'{text}' does not start with a bucket name (BUCKET/KEY)", EXIT_USAGE)
    why = validate_bucket(bucket)
    if why is not None:
        raise CliError(f"'{bucket}' is not a valid bucket name: {why}", EXIT_USAGE)
    if need_key and not key:
        raise CliError(
            f"'{text}' names no object: write BUCKET/KEY, for example {bucket}/notes.txt",
            EXIT_USAGE,
        )
    return Target(bucket, key if sep else None)


def format_bytes(size: int) -> str:
    """``1536`` -> ``1.5 KiB`` (binary units; bytes below 1 KiB)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


MAX_RATE_BYTES_S: Final = (1 << 64) - 1
"""The largest rate the wire carries (``SetRepairRateRequest.rate_bytes_s``, uint64)."""

_RATE: Final = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<prefix>[kmgtp]?)(?P<binary>i?)b?(?:/s)?",
    re.IGNORECASE,
)
_PREFIXES: Final = "kmgtp"


def parse_rate(text: str) -> int:
    """A rate in bytes per second as people write it -> bytes per second.

    ``1048576``, ``64MiB``, ``64 MiB/s``, ``100M`` or ``100MB`` (decimal: 10**8),
    ``1.5GiB``; ``0`` or ``unlimited`` -> 0 (no limit). Units are case-insensitive;
    ``K M G T P`` are powers of 1000, ``Ki Mi Gi Ti Pi`` powers of 1024.

    Raises:
        ValueError: not a rate, not a whole number of bytes, or past the wire's uint64.
    """
    clean = text.strip()
    if clean.lower() == "unlimited":
        return 0
    match = _RATE.fullmatch(clean)
    if match is None:
        raise ValueError(
            f"{text!r} is not a rate: write bytes per second, e.g. 1048576, 64MiB, 100M, "
            "or 0 for unlimited"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # the pattern admits only decimals; kept for safety
        raise ValueError(f"{text!r} is not a rate") from None
    prefix = match["prefix"].lower()
    base = 1024 if match["binary"] else 1000
    if match["binary"] and not prefix:
        raise ValueError(f"{text!r} is not a rate: 'i' needs a unit before it (KiB, MiB...)")
    value = number * (base ** (_PREFIXES.index(prefix) + 1) if prefix else 1)
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of bytes per second")
    if value > MAX_RATE_BYTES_S:
        raise ValueError(f"{text!r} is too large (at most {MAX_RATE_BYTES_S} bytes/s)")
    return int(value)


def format_rate(rate_bytes_s: int | float) -> str:
    """``1048576`` -> ``1.0 MiB/s``; 0 -> ``unlimited`` (a repair rate's meaning of 0)."""
    if not rate_bytes_s:
        return "unlimited"
    return f"{format_bytes(int(rate_bytes_s))}/s"


def format_ms(ms: int) -> str:
    """Milliseconds since the Unix epoch -> ``2024-05-01T12:00:00Z``; ``-`` for 0."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _LazyBar:
    """A progress callback that opens a tqdm bar once the transfer proves large."""

    def __init__(self, label: str, stream: IO[str]) -> None:
        self._label = label
        self._stream = stream
        self._bar: Any = None
        self._done = 0
        self._disabled = False

    def __call__(self, done: int, total: int | None) -> None:
        if self._disabled:
            return
        if self._bar is None:
            if max(done, total or 0) < PROGRESS_MIN_BYTES:
                return
            try:
                from tqdm import tqdm  # type: ignore[import-untyped]
            except ImportError:  # the bar is a nicety: without tqdm, none
                self._disabled = True
                return
            self._bar = tqdm(
                total=total,
                desc=self._label,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self._stream,
                leave=False,
                dynamic_ncols=True,
            )
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def progress_bar(label: str, *, enabled: bool | None = None) -> _LazyBar | None:
    """A ``progress(done, total)`` callback drawing a bar on stderr, or None.

    Args:
        label: what is moving (``app/big.iso``).
        enabled: None: only when stderr is a terminal (never in pipes, logs or CI).
    """
    stream = sys.stderr
    if enabled is None:
        enabled = stream.isatty() and os.environ.get("TERM") != "dumb"
    return _LazyBar(label, stream) if enabled else None


def make_progress(
    label: str, enabled: bool | None
) -> tuple[Callable[[int, int | None], None] | None, Callable[[], None]]:
    """``(callback or None, close)`` for a transfer: close always runs, bar or not."""
    bar = progress_bar(label, enabled=enabled)
    if bar is None:
        return None, lambda: None
    return bar, bar.close
