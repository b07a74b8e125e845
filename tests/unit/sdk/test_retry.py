"""cairn._retry: backoff bounds and jitter, the should_retry matrix, deadlines."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn._retry import NOT_SENT, Backoff, Deadline, Retry
from cairn.errors import (
    CairnError,
    Conflict,
    DiskFull,
    IntegrityError,
    InvalidArgument,
    NotFound,
    Timeout,
    Unavailable,
)

pytestmark = pytest.mark.unit


class FixedRandom:
    """An rng that always returns the same draw."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.calls = 0

    def random(self) -> float:
        self.calls += 1
        return self.value


# --- Backoff -----------------------------------------------------------------------


def test_ceiling_grows_exponentially_then_caps():
    b = Backoff(base_s=0.1, max_s=1.0, multiplier=2.0, jitter="none")
    assert [b.delay_s(n) for n in range(1, 7)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_huge_attempt_numbers_do_not_overflow():
    b = Backoff(base_s=0.1, max_s=3.0, multiplier=10.0, jitter="none")
    assert b.ceiling_s(10_000) == 3.0
    assert Backoff(base_s=0.0, max_s=0.0).ceiling_s(10_000) == 0.0


@given(
    base=st.floats(0, 10),
    extra=st.floats(0, 100),
    multiplier=st.floats(1, 10),
    attempt=st.integers(1, 5000),
    draw=st.floats(0, 1, exclude_max=True),
    jitter=st.sampled_from(["full", "equal", "none"]),
)
def test_delay_is_always_within_bounds(base, extra, multiplier, attempt, draw, jitter):
    b = Backoff(base_s=base, max_s=base + extra, multiplier=multiplier, jitter=jitter)
    ceiling = b.ceiling_s(attempt)
    assert 0 <= ceiling <= b.max_s
    delay = b.delay_s(attempt, FixedRandom(draw))
    assert 0 <= delay <= ceiling
    if jitter == "equal":
        assert delay >= ceiling / 2
    if jitter == "none":
        assert delay == ceiling


def test_jitter_extremes():
    b = Backoff(base_s=1.0, max_s=8.0, jitter="full")
    assert b.delay_s(3, FixedRandom(0.0)) == 0.0
    assert b.delay_s(3, FixedRandom(0.5)) == 2.0
    e = Backoff(base_s=1.0, max_s=8.0, jitter="equal")
    assert e.delay_s(3, FixedRandom(0.0)) == 2.0
    assert e.delay_s(3, FixedRandom(0.5)) == 3.0
    fixed = FixedRandom(0.3)
    Backoff(jitter="none").delay_s(2, fixed)
    assert fixed.calls == 0


@pytest.mark.parametrize(("jitter", "low"), [("full", 0.0), ("equal", 0.5)])
def test_jitter_is_spread_uniformly_over_its_range(jitter, low):
    b = Backoff(base_s=1.0, max_s=100.0, multiplier=2.0, jitter=jitter)
    rng = random.Random(1234)
    ceiling = b.ceiling_s(4)  # 8 s
    samples = [b.delay_s(4, rng) / ceiling for _ in range(20_000)]
    assert min(samples) >= low
    assert max(samples) < 1.0
    width = 1.0 - low
    assert sum(samples) / len(samples) == pytest.approx(low + width / 2, abs=0.01)
    buckets = [0] * 4
    for s in samples:
        buckets[min(3, int((s - low) / width * 4))] += 1
    for count in buckets:
        assert count / len(samples) == pytest.approx(0.25, abs=0.02)


def test_seeded_rng_makes_delays_reproducible():
    b = Backoff()
    first = [b.delay_s(n, random.Random(7)) for n in range(1, 5)]
    again = [b.delay_s(n, random.Random(7)) for n in range(1, 5)]
    assert first == again


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_s": -1.0},
        {"base_s": math.nan},
        {"base_s": 2.0, "max_s": 1.0},
        {"max_s": math.inf},
        {"multiplier": 0.5},
        {"multiplier": math.inf},
        {"jitter": "decorrelated"},
        {"jitter": None},
    ],
)
def test_backoff_rejects_bad_settings(kwargs):
    with pytest.raises(InvalidArgument):
        Backoff(**kwargs)


@pytest.mark.parametrize("attempt", [0, -1, 1.5, True])
def test_attempts_count_from_one(attempt):
    with pytest.raises(InvalidArgument, match="attempt"):
        Backoff().delay_s(attempt)
    with pytest.raises(InvalidArgument, match="attempt"):
        Retry().should_retry(Unavailable(), attempt, idempotent=True, deadline_left_s=10)


def test_backoff_and_retry_are_frozen_values():
    with pytest.raises(AttributeError):
        Backoff().base_s = 1.0  # type: ignore[misc]
    assert Retry() == Retry()
    assert hash(Retry()) == hash(Retry())


# --- should_retry --------------------------------------------------------------------

RETRY = Retry(max_attempts=3, backoff=Backoff(base_s=0.1, max_s=1.0, jitter="none"))


@pytest.mark.parametrize(
    ("error", "idempotent", "expected"),
    [
        (Unavailable("down"), True, True),
        (Timeout("slow"), True, True),
        (DiskFull("full"), True, True),
        (Unavailable("down"), False, False),  # may have reached a server
        (Timeout("slow"), False, False),  # may or may not have happened
        (Unavailable("refused", **{NOT_SENT: True}), False, True),
        (Unavailable("refused", **{NOT_SENT: False}), False, False),
        (NotFound("gone"), True, False),
        (InvalidArgument("bad"), True, False),
        (IntegrityError("rot"), True, False),
        (Conflict("older"), True, False),
        (InvalidArgument("bad", **{NOT_SENT: True}), False, False),
        (CairnError("?"), True, False),
        (OSError("socket"), True, False),  # transport maps these to CairnError first
        (KeyboardInterrupt(), True, False),
    ],
)
def test_should_retry_matrix(error, idempotent, expected):
    assert RETRY.should_retry(error, 1, idempotent=idempotent, deadline_left_s=60) is expected


def test_stops_after_max_attempts():
    err = Unavailable()
    assert RETRY.should_retry(err, 2, idempotent=True, deadline_left_s=60)
    assert not RETRY.should_retry(err, 3, idempotent=True, deadline_left_s=60)
    assert not RETRY.should_retry(err, 99, idempotent=True, deadline_left_s=60)
    assert not Retry(max_attempts=1).should_retry(err, 1, idempotent=True, deadline_left_s=60)


def test_never_sleeps_past_the_deadline():
    err = Unavailable()
    # attempt 2 -> ceiling 0.2 s with jitter "none"
    assert RETRY.should_retry(err, 2, idempotent=True, deadline_left_s=0.21)
    assert not RETRY.should_retry(err, 2, idempotent=True, deadline_left_s=0.2)
    assert not RETRY.should_retry(err, 2, idempotent=True, deadline_left_s=0.0)
    assert RETRY.should_retry(err, 2, idempotent=True, deadline_left_s=math.inf)
    # an explicit, already drawn delay is checked instead of the ceiling
    full = Retry(backoff=Backoff(base_s=1.0, max_s=1.0))
    assert not full.should_retry(err, 1, idempotent=True, deadline_left_s=0.5)
    assert full.should_retry(err, 1, idempotent=True, deadline_left_s=0.5, delay_s=0.3)
    assert not full.should_retry(err, 1, idempotent=True, deadline_left_s=0.5, delay_s=0.5)


def test_retry_on_overrides_the_class_attribute():
    policy = Retry(retry_on=(NotFound,))
    assert policy.should_retry(NotFound(), 1, idempotent=True, deadline_left_s=60)
    assert not policy.should_retry(Unavailable(), 1, idempotent=True, deadline_left_s=60)
    assert not policy.should_retry(NotFound(), 1, idempotent=False, deadline_left_s=60)


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"max_attempts": 2.5}, {"retry_on": [Unavailable]}]
)
def test_retry_rejects_bad_settings(kwargs):
    with pytest.raises(InvalidArgument):
        Retry(**kwargs)


def test_next_delay_draws_then_checks_the_deadline():
    policy = Retry(max_attempts=5, backoff=Backoff(base_s=1.0, max_s=10.0, jitter="full"))
    err = Unavailable()
    assert (
        policy.next_delay_s(err, 2, idempotent=True, deadline_left_s=5, rng=FixedRandom(0.5)) == 1.0
    )
    # the ceiling (2 s) would not fit in 1.5 s, but the drawn 1.0 s does
    assert (
        policy.next_delay_s(err, 2, idempotent=True, deadline_left_s=1.5, rng=FixedRandom(0.5))
        == 1.0
    )
    assert (
        policy.next_delay_s(err, 2, idempotent=True, deadline_left_s=0.9, rng=FixedRandom(0.5))
        is None
    )
    never = FixedRandom(0.5)
    assert policy.next_delay_s(NotFound(), 1, idempotent=True, deadline_left_s=5, rng=never) is None
    assert policy.next_delay_s(err, 5, idempotent=True, deadline_left_s=5, rng=never) is None
    assert never.calls == 0
    assert policy.next_delay_s(err, 1, idempotent=False, deadline_left_s=5, rng=never) is None


def test_a_retry_loop_driven_by_a_fake_clock():
    """How the facades use these pieces; nothing here sleeps."""
    now = 100.0
    deadline = Deadline.after(1.0, now)
    policy = Retry(max_attempts=10, backoff=Backoff(base_s=0.1, max_s=0.4, jitter="none"))
    attempt, slept = 0, []
    while True:
        attempt += 1
        now += 0.05  # each failed attempt takes 50 ms
        delay = policy.next_delay_s(
            Unavailable(), attempt, idempotent=True, deadline_left_s=deadline.left_s(now)
        )
        if delay is None:
            break
        slept.append(delay)
        now += delay
    assert slept == pytest.approx([0.1, 0.2, 0.4])
    assert not deadline.expired(now)
    assert now + 0.4 >= deadline.at_s  # the next delay would have overrun it


# --- Deadline ----------------------------------------------------------------------


def test_deadline_left_and_expired():
    d = Deadline.after(2.5, now=10.0)
    assert d.at_s == 12.5
    assert d.left_s(10.0) == 2.5
    assert d.left_s(12.0) == pytest.approx(0.5)
    assert not d.expired(12.4)
    assert d.expired(12.5)
    assert d.left_s(20.0) == 0.0


def test_earliest_deadline_wins():
    a, b = Deadline(5.0), Deadline(7.0)
    assert a.earliest(b) is a
    assert b.earliest(a) is a
    assert b.earliest(None) is b
    assert a < b


@pytest.mark.parametrize("timeout_s", [0, -1.0, math.nan, math.inf, "5"])
def test_deadline_needs_a_positive_finite_timeout(timeout_s):
    with pytest.raises(InvalidArgument, match="timeout_s"):
        Deadline.after(timeout_s, now=0.0)


def test_deadline_rejects_non_finite_instants():
    with pytest.raises(InvalidArgument):
        Deadline(math.nan)
