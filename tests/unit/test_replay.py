"""The replay cache through both implementations, and their decisions over one trace."""

from __future__ import annotations

import random

import pytest

from tests.conftest import Core


def test_add_seen_expire(core: Core) -> None:
    cache = core.replay.ReplayCache(capacity=4, window_ms=1000)
    assert cache.add("a", "n1", 0, 0) is True
    assert cache.add("a", "n1", 0, 10) is False
    assert cache.seen("a", "n1")
    assert not cache.seen("b", "n1")
    assert cache.add("b", "n1", 100, 100) is True
    assert cache.expire(999) == 0
    assert cache.expire(1000) == 1
    assert not cache.seen("a", "n1")
    assert len(cache) == 1


def test_full_of_unexpired_entries_refuses_instead_of_forgetting(core: Core) -> None:
    cache = core.replay.ReplayCache(capacity=2, window_ms=1000)
    cache.add("a", "1", 0, 0)
    cache.add("a", "2", 0, 0)
    with pytest.raises(OverflowError):
        cache.add("a", "3", 0, 500)
    assert cache.add("a", "3", 0, 1000) is True  # the old ones expired meanwhile


def test_snapshot_restore_round_trip(core: Core) -> None:
    cache = core.replay.ReplayCache(capacity=10, window_ms=1000)
    for i in range(5):
        cache.add("s", str(i), i * 100, i * 100)
    snapshot = cache.snapshot(250)
    assert [key for key, _ in snapshot] == [f"s:{i}" for i in range(5)]
    fresh = core.replay.ReplayCache(capacity=10, window_ms=1000)
    fresh.restore(snapshot, 1150)  # s:0 and s:1 have expired by then
    assert not fresh.seen("s", "1")
    assert fresh.seen("s", "2")
    assert fresh.add("s", "4", 400, 1150) is False


def test_bad_arguments(core: Core) -> None:
    with pytest.raises(ValueError, match="positive"):
        core.replay.ReplayCache(0, 1)


def test_identical_decisions_over_one_trace(pure_core: Core, compiled_core: Core) -> None:
    rng = random.Random(7)
    trace = []
    now = 0
    for _ in range(5000):
        now += rng.randrange(0, 40)
        trace.append(
            (f"s{rng.randrange(5)}", str(rng.randrange(300)), now - rng.randrange(50), now)
        )
    pure = pure_core.replay.ReplayCache(capacity=60, window_ms=2000)
    compiled = compiled_core.replay.ReplayCache(capacity=60, window_ms=2000)

    def decide(cache: object, event: tuple[str, str, int, int]) -> object:
        try:
            return cache.add(*event)  # type: ignore[attr-defined]
        except OverflowError:
            return "full"

    decisions = [(decide(pure, e), decide(compiled, e)) for e in trace]
    assert all(a == b for a, b in decisions)
    assert {d for d, _ in decisions} == {True, False, "full"}
    assert pure.snapshot(now) == compiled.snapshot(now)
