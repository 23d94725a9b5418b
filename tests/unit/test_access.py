"""API keys: creation, lookup, revocation, rate limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecoder.access import AccessControl
from edgecoder.clock import SystemClock
from edgecoder.errors import AuthError, BadRequestError, RateLimitedError
from edgecoder.security.api_keys import hash_key, looks_like_key
from edgecoder.storage.database import Database

pytestmark = pytest.mark.anyio


class FrozenClock(SystemClock):
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


async def test_key_lifecycle(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        access = AccessControl(db, SystemClock(), rate_per_min=60, burst=10)
        key = await access.create_key("alice", admin=False)
        assert looks_like_key(key)
        stored = await access.list_keys()
        assert [(r.name, r.admin, r.active) for r in stored] == [("alice", False, True)]
        assert stored[0].key_hash == hash_key(key)
        raw = (tmp_path / "edgecoder.db").read_bytes()
        assert key.encode() not in raw
        principal = await access.authenticate(key)
        assert (principal.name, principal.admin) == ("alice", False)
        with pytest.raises(BadRequestError, match="already exists"):
            await access.create_key("alice", admin=True)
        await access.revoke_key("alice")
        with pytest.raises(AuthError, match="revoked"):
            await access.authenticate(key)
        with pytest.raises(BadRequestError, match="no active API key"):
            await access.revoke_key("alice")
    finally:
        await db.close()


async def test_refusals(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    try:
        access = AccessControl(db, SystemClock(), rate_per_min=60, burst=10)
        with pytest.raises(AuthError, match="missing"):
            await access.authenticate(None)
        with pytest.raises(AuthError, match="look like"):
            await access.authenticate("sk-openai")
        with pytest.raises(AuthError, match="no such key"):
            await access.authenticate("ec_" + "x" * 43)
        with pytest.raises(BadRequestError, match="key name"):
            await access.create_key("has space", admin=False)
    finally:
        await db.close()


async def test_rate_limit_per_key(tmp_path: Path) -> None:
    db = await Database.open(tmp_path)
    clock = FrozenClock()
    try:
        access = AccessControl(db, clock, rate_per_min=60, burst=2)
        alice = await access.authenticate(await access.create_key("alice", admin=False))
        bob = await access.authenticate(await access.create_key("bob", admin=False))
        access.check_rate(alice)
        access.check_rate(alice)
        with pytest.raises(RateLimitedError) as limited:
            access.check_rate(alice)
        assert limited.value.retry_after_s == pytest.approx(1.0)
        access.check_rate(bob)
        clock.now += 1.0
        access.check_rate(alice)
    finally:
        await db.close()
