"""An origin honours a peer's ``Retry-After``: a peer that shed an offer is asked last."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from edgecoder.clock import SystemClock
from edgecoder.config import Config, TasksConfig
from edgecoder.errors import BackendUnavailableError, PeerTransportError
from edgecoder.events import EventHub
from edgecoder.inference.types import ChatMessage, ChatRequest, SamplingParams
from edgecoder.security.identity import NodeIdentity
from edgecoder.storage.database import Database
from edgecoder.tasks.fitness import Fit
from edgecoder.tasks.origin import Origin, RemoteTask
from edgecoder.tasks.transport import MessageKind
from tests.inmemory import ALLOWANCE, funded_ledger

pytestmark = pytest.mark.anyio


class SheddingPeers:
    """Peer ``shed`` answers offers ``503 overloaded, Retry-After``; the others consider
    them and never claim."""

    def __init__(self, shed: str, retry_after_s: float | None) -> None:
        self.shed = shed
        self.retry_after_s = retry_after_s
        self.first: dict[str, str] = {}
        """Each task's first candidate."""

    async def post(self, node_id: str, kind: MessageKind, body: dict[str, Any]) -> dict[str, Any]:
        if kind is MessageKind.OFFER:
            self.first.setdefault(body["task_id"], node_id)
            if node_id == self.shed:
                raise PeerTransportError("overloaded", "busy", reachable=True,
                                         retry_after_s=self.retry_after_s)  # fmt: skip
            return {"result": "considering"}
        return {}

    def stream(
        self, node_id: str, kind: MessageKind, body: dict[str, Any]
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        raise AssertionError("nothing is granted here")


async def offers_of_two_tasks(tmp_path: Path, retry_after_s: float | None) -> list[str]:
    """The first candidate offered each of two tasks in a row."""
    transport = SheddingPeers("a", retry_after_s)
    database = await Database.open(tmp_path)
    config = Config(tasks=TasksConfig(max_candidates=1, offer_timeout_ms=50))
    identity, clock, events = NodeIdentity.generate(), SystemClock(), EventHub()
    ledger = await funded_ledger(identity, database, clock, events, ALLOWANCE)
    origin = Origin(identity=identity, config=config, clock=clock, database=database,
                    transport=transport, peer_key=lambda _: None, events=events,
                    ledger=ledger)  # fmt: skip
    request = ChatRequest("m", (ChatMessage("user", "hi"),), SamplingParams(max_tokens=1))
    try:
        for _ in range(2):
            task = RemoteTask(request=request, prompt_tokens=3, claim_patience_s=0.01,
                              candidates=lambda _: [Fit("a", 10, True, False),
                                                    Fit("b", 20, True, False)])  # fmt: skip
            with pytest.raises(BackendUnavailableError):
                async for _ in origin.run(task):
                    pass
    finally:
        await origin.aclose()
        await database.close()
    return list(transport.first.values())


async def test_a_peer_that_asked_to_be_left_alone_is_offered_last_while_it_rests(
    tmp_path: Path,
) -> None:
    first, second = await offers_of_two_tasks(tmp_path, retry_after_s=30)
    assert (first, second) == ("a", "b")  # the fitter peer first, until it shed


async def test_without_retry_after_the_ranking_stands(tmp_path: Path) -> None:
    first, second = await offers_of_two_tasks(tmp_path, retry_after_s=None)
    assert (first, second) == ("a", "a")
