"""Retry policy, backoff arithmetic and deadlines: plain values, no I/O, no sleeping.

Owns the decisions of the SDK's retry loop, not the loop: ``Client`` and ``AsyncClient``
run the call, ask ``Retry.next_delay_s`` what to do with a failure, and sleep the
returned delay themselves (``time.sleep`` or ``asyncio.sleep``). Time and randomness
come in as arguments (``now``, ``rng``), so every decision here is reproducible in tests.

Entry points: ``Retry`` (what is retried and how often), ``Backoff`` (how long to wait),
``Deadline`` (when the whole call must be over). ``docs/sdk-codecs.md`` ("Retries")
explains the policy to users.

Where this comes from: redis-py ``redis/retry.py`` and ``redis/backoff.py`` (retry and
backoff as value objects); AWS Architecture Blog, "Exponential Backoff And Jitter"
(2015), for the full and equal jitter formulas.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, TypeAlias

from cairn.errors import CairnError, InvalidArgument

__all__ = [
    "NOT_SENT",
    "Backoff",
    "Clock",
    "Deadline",
    "Jitter",
    "RandomSource",
    "Retry",
]

NOT_SENT: Final = "not_sent"
"""Key of ``CairnError.details``: true when the request provably never reached a server
(e.g. connection refused, no channel). Only then is a non-idempotent call retried."""

Jitter: TypeAlias = Literal["full", "equal", "none"]
_JITTERS: Final = ("full", "equal", "none")

Clock: TypeAlias = Callable[[], float]
"""Seconds on a monotonic clock; ``time.monotonic`` in production, a fake in tests."""


class RandomSource(Protocol):
    """Where jitter comes from: ``random.Random`` fits; tests pass a seeded one."""

    def random(self) -> float:
        """Return a float in [0.0, 1.0)."""
        ...


# The facades pass their own rng; this one only serves callers that pass none.
_DEFAULT_RNG: Final = random.Random()


def _check_seconds(name: str, value: float, *, allow_zero: bool = True) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        raise InvalidArgument(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgument(f"{name} must be {'>=' if allow_zero else '>'} 0, got {value!r}")


def _check_attempt(attempt: int) -> None:
    if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
        raise InvalidArgument(f"attempt counts from 1, got {attempt!r}")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before the next attempt: capped exponential growth with jitter.

    After attempt ``n`` (1-based) failed, the ceiling is
    ``min(max_s, base_s * multiplier ** (n - 1))`` and the delay is drawn from it:

    - ``"full"`` (default): uniform in ``[0, ceiling)``. Spreads clients that failed
      together the most, so they do not all come back at the same instant.
    - ``"equal"``: ``ceiling / 2`` plus uniform in ``[0, ceiling / 2)``; never very short.
    - ``"none"``: exactly ``ceiling``; deterministic, for tests and tools.

    Attributes:
        base_s: ceiling after the first failed attempt, seconds (>= 0).
        max_s: cap on any ceiling, seconds (>= base_s).
        multiplier: growth per attempt (>= 1).
        jitter: ``"full"``, ``"equal"`` or ``"none"``.

    Raises:
        InvalidArgument: a field is out of range.
    """

    base_s: float = 0.05
    max_s: float = 2.0
    multiplier: float = 2.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        _check_seconds("base_s", self.base_s)
        _check_seconds("max_s", self.max_s)
        if self.max_s < self.base_s or math.isinf(self.max_s):
            raise InvalidArgument(
                f"max_s must be finite and >= base_s ({self.base_s}), got {self.max_s!r}"
            )
        if (
            not isinstance(self.multiplier, int | float)
            or not math.isfinite(self.multiplier)
            or self.multiplier < 1
        ):
            raise InvalidArgument(
                f"multiplier must be a finite number >= 1, got {self.multiplier!r}"
            )
        if self.jitter not in _JITTERS:
            raise InvalidArgument(f"jitter must be one of {_JITTERS}, got {self.jitter!r}")

    def ceiling_s(self, attempt: int) -> float:
        """The largest delay that may follow failed attempt ``attempt`` (1-based).

        Raises:
            InvalidArgument: ``attempt`` < 1.
        """
        _check_attempt(attempt)
        if self.base_s == 0:
            return 0.0
        try:
            raw = self.base_s * self.multiplier ** (attempt - 1)
        except OverflowError:  # float ** huge int: the cap applies long before
            return self.max_s
        return min(self.max_s, raw)

    def delay_s(self, attempt: int, rng: RandomSource | None = None) -> float:
        """Draw the delay to wait after failed attempt ``attempt`` (1-based).

        Args:
            attempt: how many attempts have been made (and failed) so far.
            rng: the source of jitter; a module-level ``random.Random`` when None.

        Returns:
            Seconds in ``[0, ceiling_s(attempt)]``.

        Raises:
            InvalidArgument: ``attempt`` < 1.
        """
        ceiling = self.ceiling_s(attempt)
        if self.jitter == "none":
            return ceiling
        draw = (rng or _DEFAULT_RNG).random()
        if self.jitter == "equal":
            return ceiling / 2 + draw * (ceiling / 2)
        return draw * ceiling


@dataclass(frozen=True, slots=True)
class Retry:
    """Which failures are retried, how many times, and how long to wait in between.

    Rules of ``should_retry``, all of which must hold:

    1. fewer than ``max_attempts`` attempts have been made;
    2. the error is retryable: an instance of one of ``retry_on`` if that is given,
       else a ``CairnError`` whose class says ``retryable = True`` (``Unavailable``,
       ``Timeout``, the disk errors);
    3. the call is idempotent, or the error says the request never left this process
       (``error.details[NOT_SENT]``): a non-idempotent call that may have reached a
       server is never repeated;
    4. the delay before the next attempt ends before the deadline.

    Attributes:
        max_attempts: total attempts, the first included (1 disables retries). The
            default, 3, lets a call reach each replica of an N=3 partition once.
        backoff: the delays between attempts.
        retry_on: error classes to retry; empty (the default) means "classes whose
            ``retryable`` attribute is True".

    Raises:
        InvalidArgument: ``max_attempts`` < 1 or ``retry_on`` is not a tuple of classes.
    """

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)
    retry_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if (
            not isinstance(self.max_attempts, int)
            or isinstance(self.max_attempts, bool)
            or self.max_attempts < 1
        ):
            raise InvalidArgument(f"max_attempts must be an int >= 1, got {self.max_attempts!r}")
        if not isinstance(self.retry_on, tuple) or not all(
            isinstance(c, type) and issubclass(c, BaseException) for c in self.retry_on
        ):
            raise InvalidArgument(
                f"retry_on must be a tuple of exception classes, got {self.retry_on!r}"
            )

    def is_retryable(self, error: BaseException) -> bool:
        """Whether ``error``'s kind may succeed when repeated (rule 2 above)."""
        if not isinstance(error, Exception):  # KeyboardInterrupt, CancelledError, ...
            return False
        if self.retry_on:
            return isinstance(error, self.retry_on)
        return isinstance(error, CairnError) and type(error).retryable

    def should_retry(
        self,
        error: BaseException,
        attempt: int,
        *,
        idempotent: bool,
        deadline_left_s: float,
        delay_s: float | None = None,
    ) -> bool:
        """Decide whether to make another attempt after ``error``.

        Args:
            error: what attempt ``attempt`` raised.
            attempt: how many attempts have been made so far (1-based).
            idempotent: whether repeating the call is harmless if it did take effect.
            deadline_left_s: seconds until the call's deadline (``math.inf`` for none).
            delay_s: the delay that would be slept first. When None, the backoff's
                ceiling for this attempt is used, so True holds for any delay drawn.

        Returns:
            True if the caller should sleep, then try again.

        Raises:
            InvalidArgument: ``attempt`` < 1.
        """
        _check_attempt(attempt)
        if attempt >= self.max_attempts or not self.is_retryable(error):
            return False
        if not idempotent and not _not_sent(error):
            return False
        wait_s = self.backoff.ceiling_s(attempt) if delay_s is None else delay_s
        # Strictly before: an attempt that starts as the deadline passes can only time out.
        return wait_s < deadline_left_s

    def next_delay_s(
        self,
        error: BaseException,
        attempt: int,
        *,
        idempotent: bool,
        deadline_left_s: float,
        rng: RandomSource | None = None,
    ) -> float | None:
        """The facades' one question: how long to sleep before retrying, or None to give up.

        Draws a delay from ``backoff`` and applies ``should_retry`` to it.

        Raises:
            InvalidArgument: ``attempt`` < 1.
        """
        _check_attempt(attempt)
        if attempt >= self.max_attempts or not self.is_retryable(error):
            return None  # skip the draw: keeps a seeded rng's sequence for real retries
        delay = self.backoff.delay_s(attempt, rng)
        ok = self.should_retry(
            error, attempt, idempotent=idempotent, deadline_left_s=deadline_left_s, delay_s=delay
        )
        return delay if ok else None


def _not_sent(error: BaseException) -> bool:
    details = getattr(error, "details", None)
    return isinstance(details, dict) and bool(details.get(NOT_SENT))


@dataclass(frozen=True, slots=True, order=True)
class Deadline:
    """The instant a whole call (all its attempts and hops) must be over.

    An absolute time on a monotonic clock (``time.monotonic`` seconds), so it can be
    handed down through retries and hops unchanged; each hop sends ``left_s(now)`` as
    its own timeout. Pure: the caller supplies ``now``.

    Attributes:
        at_s: the monotonic clock reading at which the call is over.
    """

    at_s: float

    def __post_init__(self) -> None:
        if not isinstance(self.at_s, int | float) or not math.isfinite(self.at_s):
            raise InvalidArgument(f"a deadline must be a finite clock reading, got {self.at_s!r}")

    @classmethod
    def after(cls, timeout_s: float, now: float) -> Deadline:
        """The deadline ``timeout_s`` seconds after ``now``.

        Every call has one: a frozen (SIGSTOP) node still accepts connections, so only a
        deadline ends a call to it.

        Raises:
            InvalidArgument: ``timeout_s`` is not a finite number > 0.
        """
        _check_seconds("timeout_s", timeout_s, allow_zero=False)
        if math.isinf(timeout_s):
            raise InvalidArgument("timeout_s must be finite: every call needs a deadline")
        return cls(now + timeout_s)

    def left_s(self, now: float) -> float:
        """Seconds left at ``now``; 0.0 once expired, never negative."""
        return max(0.0, self.at_s - now)

    def expired(self, now: float) -> bool:
        """Whether the deadline has passed at ``now``."""
        return now >= self.at_s

    def earliest(self, other: Deadline | None) -> Deadline:
        """The sooner of two deadlines (a hop never outlives its caller's deadline)."""
        return self if other is None or self.at_s <= other.at_s else other
