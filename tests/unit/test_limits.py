"""Token buckets, slot pools and the SSE heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from edgecoder.adapters.web.streams import KEEPALIVE, heartbeat
from edgecoder.errors import OverloadedError
from edgecoder.inference.slots import SlotPool
from edgecoder.security.ratelimit import TokenBuckets


def test_token_bucket_burst_then_refill() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)
    assert buckets.take("b", 0.0) == 0.0  # another key, another bucket
    assert buckets.take("a", 0.5) == 0.0  # one token refilled


def test_token_buckets_stay_bounded() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=10)
    for i in range(100):
        buckets.take(str(i), 0.0)
    assert len(buckets._buckets) <= 10


@pytest.mark.anyio
async def test_slot_pool_queues_then_refuses() -> None:
    pool = SlotPool(slots=1, max_queue=1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str) -> None:
        async with pool.slot():
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("second"))
    await asyncio.sleep(0)
    assert (pool.busy, pool.waiting) == (1, 1)
    with pytest.raises(OverloadedError):
        pool.admit()
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"]
    assert (pool.busy, pool.waiting) == (0, 0)


@pytest.mark.anyio
async def test_heartbeat_fills_silence_and_closes_its_source() -> None:
    closed = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        try:
            yield b"a"
            await asyncio.sleep(0.35)
            yield b"b"
            await asyncio.sleep(3600)
            yield b"never"
        finally:
            closed.set()

    out = []
    stream = heartbeat(slow(), interval_s=0.1)
    async for chunk in stream:
        out.append(chunk)
        if chunk == b"b":
            break
    await stream.aclose()  # type: ignore[attr-defined]
    assert out[0] == b"a"
    assert out[-1] == b"b"
    assert KEEPALIVE in out
    assert closed.is_set()
