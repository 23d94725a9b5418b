"""Claiming a fresh node: its one-time setup code exchanged for the first admin key.

A node is open for claiming while its data directory holds a setup-code verifier
(:mod:`edgecoder.storage.setup_state`) and it has no active admin key. The first claim
that presents the code gets an admin key and closes setup for good; every later one is
told there is nothing to claim.

Guessing is slow on purpose. A wrong code counts as a failed authentication against
the caller's address (the same buckets as bad API keys, see :mod:`edgecoder.access`), and
on top of that every node accepts at most :data:`FAILURE_BURST` wrong codes, then
:data:`FAILURES_PER_MIN` a minute, from everybody together: with 60 bits in a code, that
is tens of billions of years of guessing, whatever the number of addresses. Claims are
serialised, so two right answers at once give one key. Neither the code nor the key is
ever logged.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from edgecoder.access import AccessControl
from edgecoder.clock import Clock
from edgecoder.errors import RateLimitedError, SetupError
from edgecoder.security.ratelimit import TokenBuckets
from edgecoder.security.setup_codes import SetupVerifier, check_code
from edgecoder.storage import setup_state
from edgecoder.storage.setup_state import ClaimRecord

__all__ = ("DEFAULT_NAME", "FAILURES_PER_MIN", "FAILURE_BURST", "Claim")

log = logging.getLogger(__name__)

DEFAULT_NAME = "admin"
FAILURE_BURST = 30
FAILURES_PER_MIN = 30
_EVERYBODY = "*"


class Claim:
    """The claim flow over one node's data directory and access control."""

    def __init__(self, data_dir: Path, access: AccessControl, clock: Clock) -> None:
        self._data_dir = data_dir
        self._access = access
        self._clock = clock
        self._failures = TokenBuckets(rate=FAILURES_PER_MIN / 60.0, burst=float(FAILURE_BURST))
        self._lock = asyncio.Lock()

    async def is_open(self) -> bool:
        """Whether a setup code is open and nobody has claimed the node yet.

        :raises StorageError: the setup files are unreadable.
        """
        async with self._lock:
            return await self._open_verifier() is not None

    async def claim(self, code: str, name: str, address: str) -> str:
        """Exchange ``code`` for a new admin key named ``name``; returns the key.

        :raises RateLimitedError: too many wrong codes, from ``address`` or from everybody.
        :raises SetupError: ``setup_closed`` (nothing to claim), ``invalid_setup_code``.
        :raises BadRequestError: ``name`` is not a valid key name.
        :raises StorageError: the data directory failed.
        """
        self._access.check_address(address)
        wait = self._failures.wait(_EVERYBODY, self._clock.monotonic())
        if wait > 0:
            raise RateLimitedError(f"too many wrong setup codes; retry in {wait:.0f}s", wait)
        async with self._lock:
            verifier = await self._open_verifier()
            if verifier is None:
                raise SetupError("no setup is open on this node: it has an owner", "setup_closed")
            if not check_code(verifier, code):
                self._access.record_failure(address)
                self._failures.take(_EVERYBODY, self._clock.monotonic())
                log.info("setup: a wrong setup code from %s", address)
                raise SetupError("wrong setup code", "invalid_setup_code")
            key = await self._access.create_key(name, admin=True)
            record = ClaimRecord(name, self._clock.now_ms(), address)
            await asyncio.to_thread(setup_state.record_claim, self._data_dir, record)
        log.warning("setup: node claimed from %s; admin key '%s' created", address, name)
        return key

    async def _open_verifier(self) -> SetupVerifier | None:
        verifier = await asyncio.to_thread(setup_state.read_verifier, self._data_dir)
        if verifier is None:
            return None
        admins = [k for k in await self._access.list_keys() if k.admin and k.active]
        if admins:
            # An admin key made some other way (edgecoder keys create --admin) owns the node.
            record = ClaimRecord(admins[0].name, self._clock.now_ms(), "local")
            await asyncio.to_thread(setup_state.record_claim, self._data_dir, record)
            log.warning("setup: closed, admin key '%s' already owns this node", admins[0].name)
            return None
        return verifier
