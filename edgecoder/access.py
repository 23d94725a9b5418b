"""Who may use the client API: API keys, their accounts, and per-key rate limits.

Failed authentications are limited per client address: ``api.auth_failure_burst`` failures
(default :data:`AUTH_FAILURE_BURST`), then ``api.auth_failures_per_min`` more a minute; an
address over that is refused with 429 before its key is even looked at, so guessing keys
costs time, not just requests.

Lookups are cached for :data:`CACHE_TTL_S` so a request costs no database round trip;
a key revoked from another process (``edgecoder keys revoke``) stops working within that
time, one revoked through this node's own API at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from edgecoder.clock import Clock
from edgecoder.errors import AuthError, BadRequestError, RateLimitedError, StorageError
from edgecoder.security.api_keys import generate_key, hash_key, looks_like_key, valid_key_name
from edgecoder.security.ratelimit import TokenBuckets
from edgecoder.storage import api_keys as store
from edgecoder.storage.api_keys import ApiKeyRecord
from edgecoder.storage.database import Database

__all__ = (
    "AUTH_FAILURES_PER_MIN",
    "AUTH_FAILURE_BURST",
    "CACHE_TTL_S",
    "AccessControl",
    "Principal",
)

log = logging.getLogger(__name__)

CACHE_TTL_S = 2.0
AUTH_FAILURE_BURST = 20
AUTH_FAILURES_PER_MIN = 10
_TOUCH_EVERY_S = 60.0
_MAX_MC = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the key's name is its credit account."""

    name: str
    admin: bool


class AccessControl:
    """API keys and rate limits over the node database."""

    def __init__(
        self,
        database: Database,
        clock: Clock,
        *,
        rate_per_min: int,
        burst: int,
        auth_failure_burst: int = AUTH_FAILURE_BURST,
        auth_failures_per_min: int = AUTH_FAILURES_PER_MIN,
    ) -> None:
        self._database = database
        self._clock = clock
        self._limits = TokenBuckets(rate=rate_per_min / 60.0, burst=float(burst))
        self._cache: dict[str, tuple[ApiKeyRecord | None, float]] = {}
        self._touched: dict[str, float] = {}
        self._failures = TokenBuckets(
            rate=auth_failures_per_min / 60.0, burst=float(auth_failure_burst)
        )

    def check_address(self, address: str) -> None:
        """Refuse an address that has failed to authenticate too often of late.

        :raises RateLimitedError: ``retry_after_s`` says when it may try again.
        """
        wait = self._failures.wait(address, self._clock.monotonic())
        if wait > 0:
            raise RateLimitedError(
                f"too many failed authentications from {address}; retry in {wait:.0f}s", wait
            )

    def record_failure(self, address: str) -> None:
        """Count one failed authentication against ``address``."""
        self._failures.take(address, self._clock.monotonic())

    async def authenticate(self, key: str | None) -> Principal:
        """The principal of an API key.

        :raises AuthError: no key, a malformed one, an unknown one, or a revoked one.
        """
        if not key:
            raise AuthError(
                "missing API key: send 'Authorization: Bearer <key>' "
                "(create one with 'edgecoder keys create NAME')"
            )
        if not looks_like_key(key):
            raise AuthError("invalid API key: EdgeCoder keys look like ec_ and 43 characters")
        digest = hash_key(key)
        now = self._clock.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            record = cached[0]
        else:
            record = await self._database.run(lambda c: store.find_key(c, digest))
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[digest] = (record, now + CACHE_TTL_S)
        if record is None:
            raise AuthError("invalid API key: no such key on this node")
        if not record.active:
            raise AuthError(f"API key '{record.name}' has been revoked")
        if now - self._touched.get(record.name, -_TOUCH_EVERY_S) >= _TOUCH_EVERY_S:
            self._touched[record.name] = now
            stamp = self._clock.now_ms()
            try:
                await self._database.run(lambda c: store.touch_key(c, record.name, stamp))
            except StorageError as exc:
                # Last-used times are a convenience: a full disk must not refuse a read.
                log.warning("could not record the use of key '%s': %s", record.name, exc)
        return Principal(record.name, record.admin)

    def check_rate(self, principal: Principal) -> None:
        """Charge one request to the principal's bucket.

        :raises RateLimitedError: over the limit; ``retry_after_s`` says for how long.
        """
        wait = self._limits.take(principal.name, self._clock.monotonic())
        if wait > 0:
            raise RateLimitedError(
                f"rate limit exceeded for API key '{principal.name}'; retry in {wait:.1f}s", wait
            )

    async def create_key(self, name: str, admin: bool) -> str:
        """Create a key; returns it (the only time it is ever available).

        :raises BadRequestError: bad or taken name.
        """
        if not valid_key_name(name):
            raise BadRequestError(
                f"key name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-'", "name"
            )
        key = generate_key()
        digest, now = hash_key(key), self._clock.now_ms()
        await self._database.run(lambda c: store.insert_key(c, name, digest, admin, now))
        return key

    async def list_keys(self) -> list[ApiKeyRecord]:
        """Every key record (hashes only)."""
        return await self._database.run(store.list_keys)

    async def set_budget(self, name: str, budget_mc: int | None) -> None:
        """Give a key's credit account a budget in mc (None: no limit), effective at once.

        :raises BadRequestError: no key has that name, or a budget below 0.
        """
        if budget_mc is not None and not 0 <= budget_mc <= _MAX_MC:
            raise BadRequestError(
                "a budget is a whole number of millicredits from 0 (or none: no limit)",
                "budget_mc",
            )
        if not await self._database.run(lambda c: store.set_budget(c, name, budget_mc)):
            raise BadRequestError(f"no API key named '{name}'", "name")

    async def revoke_key(self, name: str) -> None:
        """Revoke a key by name, effective at once on this node.

        :raises BadRequestError: no active key has that name.
        """
        now = self._clock.now_ms()
        if not await self._database.run(lambda c: store.revoke_key(c, name, now)):
            raise BadRequestError(f"no active API key named '{name}'", "name")
        self._cache.clear()
