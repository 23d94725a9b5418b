"""An in-process node for API tests: real Services, real apps, a scripted backend, no sockets.

``InProcessNode`` builds :class:`~edgecoder.services.Services` over a real database in a
temporary directory, with a :class:`ScriptedBackend` that answers every generation with a
fixed reply or scripted deltas (and checks what it receives the way a real backend would:
the model must exist, the text must encode). Requests go through ``httpx.ASGITransport``
to the very Starlette apps the listeners serve, middleware included — so the official
OpenAI and Ollama clients can be pointed at a node too (:meth:`InProcessNode.transport`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from edgecoder.adapters.transports.mesh_app import build_mesh_app
from edgecoder.adapters.web.client_app import build_client_app
from edgecoder.clock import SystemClock
from edgecoder.config import Config, MeshConfig
from edgecoder.config.model import ApiConfig, NodeConfig
from edgecoder.control import Control
from edgecoder.daemon.assembly import assemble
from edgecoder.daemon.mesh_runtime import MeshRuntime
from edgecoder.errors import BackendUnavailableError, ModelNotFoundError, UnsupportedError
from edgecoder.inference.executor import BackendState, LocalExecutor
from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    PullProgress,
    SamplingParams,
    ToolCall,
    Usage,
)
from edgecoder.ledger.heads import HEAD
from edgecoder.mesh.advert_types import Advert
from edgecoder.mesh.node import MeshNode
from edgecoder.mesh.peer_info import ADVERT
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.mesh_guard import MeshGuard
from edgecoder.services import Services
from edgecoder.storage.database import Database

__all__ = ("MODEL", "InProcessNode", "ScriptedBackend")

MODEL = "scripted:1"


@dataclass
class ScriptedBackend:
    """A backend that says ``reply`` word by word and records what it was asked.

    It keeps the :class:`~edgecoder.inference.backend.Backend` contract: an empty
    admission ``Delta()`` first (every refusal raised before it), then the words, then a
    last delta with the finish reason and usage; closing the stream early cancels it.
    Each word is one token, and so is each word of the prompt (``prompt_tokens``
    overrides the count); ``max_tokens`` cuts the reply (finish ``length``). With
    ``tool_calls`` the reply ends in them (finish ``tool_calls``); ``deltas`` replaces
    everything after admission with exactly those deltas. ``refuse`` is raised before
    admission, as a real backend refuses; ``fail_after`` words in, the stream fails as a
    backend that dies mid-generation; ``delay_s`` paces the words, and with ``gate`` set
    every word after the first waits for it (to hold a generation in flight).
    ``admissions`` counts generations admitted, ``cancellations`` those closed before
    their end (a client that went away); :meth:`until` waits for a count.
    """

    reply: str = "Hello from the script."
    name: str = "scripted"
    context_length: int = 4096
    tool_calls: tuple[ToolCall, ...] = ()
    refuse: Exception | None = None
    fail_after: int | None = None
    delay_s: float = 0.0
    deltas: tuple[Delta, ...] | None = None
    prompt_tokens: int | None = None
    family: str = "scripted"
    gate: asyncio.Event | None = None
    requests: list[object] = field(default_factory=list)
    admissions: int = 0
    cancellations: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    """Set whenever ``admissions`` or ``cancellations`` grows."""
    embed_started: asyncio.Event = field(default_factory=asyncio.Event)
    embed_gate: asyncio.Event | None = None
    """When set, embeddings wait on it (to hold a request in flight)."""
    script: Callable[[ChatRequest], tuple[Delta, ...] | None] | None = None
    """Chooses a chat's deltas from the request (an agent's turns); None: the reply."""

    def _info(self) -> ModelInfo:
        return ModelInfo(
            MODEL, self.name, self.context_length, family=self.family, supports_tools=True,
            supports_embeddings=True, parameter_count=1_000_000,
        )  # fmt: skip

    def _check(self, model: str, *texts: str) -> None:
        if model != MODEL:
            raise ModelNotFoundError(f"model {model!r} not found")
        for text in texts:
            text.encode("utf-8")  # what a tokenizer does first; a lone surrogate fails here

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def list_models(self) -> list[ModelInfo]:
        return [self._info()]

    async def show(self, model: str) -> ModelInfo:
        self._check(model)
        return self._info()

    async def loaded_models(self) -> list[ModelInfo]:
        return [self._info()]

    async def _say(
        self,
        prompt_tokens: int,
        sampling: SamplingParams,
        deltas: tuple[Delta, ...] | None = None,
    ) -> AsyncIterator[Delta]:
        if self.refuse is not None:
            raise self.refuse
        yield Delta()
        self.admissions += 1
        self.changed.set()
        try:
            steps = self._script(prompt_tokens, sampling, deltas)
            async with contextlib.aclosing(steps) as script:
                async for delta in script:
                    yield delta
        except (GeneratorExit, asyncio.CancelledError):
            self.cancellations += 1
            self.changed.set()
            raise

    async def until(self, *, admissions: int = 0, cancellations: int = 0) -> None:
        """Wait until at least that many generations were admitted, and cancelled."""
        while self.admissions < admissions or self.cancellations < cancellations:
            self.changed.clear()
            await self.changed.wait()

    async def _script(
        self, prompt_tokens: int, sampling: SamplingParams, deltas: tuple[Delta, ...] | None
    ) -> AsyncIterator[Delta]:
        deltas = deltas if deltas is not None else self.deltas
        if deltas is not None:
            for delta in deltas:
                yield delta
            return
        prompt_tokens = self.prompt_tokens if self.prompt_tokens is not None else prompt_tokens
        words = self.reply.split(" ")
        limit = sampling.max_tokens or len(words)
        for i, word in enumerate(words[:limit]):
            if self.fail_after is not None and i == self.fail_after:
                raise BackendUnavailableError("the scripted backend died mid-stream")
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            if self.gate is not None and i > 0:
                await self.gate.wait()
            yield Delta(text=word if i == 0 else " " + word)
        said = min(limit, len(words))
        usage = Usage(prompt_tokens, said)
        if self.tool_calls:
            yield Delta(finish_reason="tool_calls", usage=usage, tool_calls=self.tool_calls)
        else:
            yield Delta(finish_reason="length" if said < len(words) else "stop", usage=usage)

    async def chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        self._check(request.model, *(m.content for m in request.messages))
        self.requests.append(request)
        prompt = sum(len(m.content.split()) for m in request.messages)
        deltas = self.script(request) if self.script is not None else None
        async for delta in self._say(prompt, request.sampling, deltas):
            yield delta

    async def count_tokens(self, request: ChatRequest) -> int:
        self._check(request.model, *(m.content for m in request.messages))
        return sum(len(m.content.split()) for m in request.messages)

    async def complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        self._check(request.model, request.prompt, request.suffix)
        self.requests.append(request)
        async for delta in self._say(len(request.prompt.split()), request.sampling):
            yield delta

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        self._check(request.model, *request.inputs)
        self.requests.append(request)
        self.embed_started.set()
        if self.embed_gate is not None:
            await self.embed_gate.wait()
        vectors = tuple((float(len(t)), 1.0) for t in request.inputs)
        return EmbeddingResult(vectors, sum(len(t.split()) for t in request.inputs))

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        raise UnsupportedError("the scripted backend cannot pull models")
        yield PullProgress("never")  # pragma: no cover - makes this an async generator

    async def delete(self, model: str) -> None:
        raise UnsupportedError("the scripted backend cannot delete models")


class _Silent:
    """A gossip transport that sends nothing (a joined peer is only what it announced)."""

    async def send(self, url: str, node_id: str | None, body: bytes) -> tuple[int, Any]:
        return 200, {"ok": True}


class InProcessNode:
    """A node's services and both its apps, in this process and this event loop."""

    def __init__(
        self,
        services: Services,
        runtime: MeshRuntime,
        backend: ScriptedBackend,
        admin_key: str,
    ) -> None:
        self.services = services
        self.runtime = runtime
        """The node's mesh parts, built as the daemon builds them, never started: it has
        no peers and sends nothing."""
        self.backend = backend
        self.admin_key = admin_key
        self.control = Control(services, lambda: services.config)
        self.client_app = build_client_app(services, self.control)
        self.mesh_app = build_mesh_app(services)

    @classmethod
    async def open(cls, data_dir: Path, config: Config | None = None) -> InProcessNode:
        """A node over a fresh database in ``data_dir``."""
        config = config or Config(
            node=NodeConfig(data_dir=data_dir),
            api=ApiConfig(rate_limit_per_min=60_000, rate_limit_burst=10_000),
        )
        clock = SystemClock()
        identity = NodeIdentity.generate()
        database = await Database.open(data_dir)
        backend = ScriptedBackend()
        executor = LocalExecutor(
            backend, BackendState("scripted", "scripted", "ready", "scripted for tests")
        )
        services, runtime = await assemble(
            config=config,
            identity=identity,
            clock=clock,
            database=database,
            guard=MeshGuard(identity.node_id, config.mesh, clock),
            executor=executor,
            extensions=False,
            listeners={"mesh": "in-process", "api": "in-process"},
            starts=1,
            mesh_port=4301,
            api_port=4304,
        )
        key = await services.access.create_key("tests", admin=True)
        return cls(services, runtime, backend, key)

    async def close(self) -> None:
        await self.runtime.aclose()
        await self.services.database.close()

    def transport(self, address: str = "127.0.0.1") -> httpx.ASGITransport:
        """A transport to the client app, as from ``address`` (for an SDK's own client)."""
        return httpx.ASGITransport(app=self.client_app, client=(address, 50000))

    def client(self, *, key: str | None = "", address: str = "127.0.0.1") -> httpx.AsyncClient:
        """An HTTP client of the client API, from ``address``, with the admin key by default."""
        token = self.admin_key if key == "" else key
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(
            transport=self.transport(address), base_url="http://node", headers=headers
        )

    async def join_peer(
        self,
        identity: NodeIdentity,
        *,
        head: dict[str, Any] | None = None,
        advert: Advert | None = None,
    ) -> MeshNode:
        """A peer ``identity`` in this node's membership, as gossip brings one: its signed
        peer record held (so its key is known), and its ledger ``head`` body and
        capability ``advert`` when given. It sends nothing; messages to it fail."""
        clock = SystemClock()

        async def its_advert() -> Advert:
            assert advert is not None
            return advert

        peer = MeshNode(identity=identity, config=Config(), clock=clock,
                        guard=MeshGuard(identity.node_id, MeshConfig(), clock),
                        url=f"http://{identity.node_id}.invalid:1", addrs=[], api_port=1,
                        transport=_Silent(), advert_source=its_advert)  # fmt: skip
        peer._publish_peer()
        mesh = self.services.mesh
        (hello,) = peer.membership.join([mesh.url], 0)
        mesh.receive(peer.node_id, peer._encode(hello.message, None))
        if advert is not None:
            await peer.publish_advert()
        if head is not None:
            peer.publish_record(HEAD, head)
        for kind in (ADVERT, HEAD):
            record = peer.store.get(peer.node_id, kind)
            if record is not None:
                mesh.store.offer(record, clock.now_ms())
        return peer

    def mesh_client(self) -> httpx.AsyncClient:
        """An HTTP client of the mesh app (unsigned: only what answers unsigned works)."""
        transport = httpx.ASGITransport(app=self.mesh_app, client=("127.0.0.1", 50001))
        return httpx.AsyncClient(transport=transport, base_url="http://node")
