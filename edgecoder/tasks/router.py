"""Local first, else the mesh: where one generation request runs.

A request runs here when this node may execute (``tasks.worker_slots`` > 0), has the
model, the prompt fits its context, a slot is free and the predicted time to first
token is within ``tasks.ttft_budget_ms``. Otherwise it becomes a mesh task offered to
the fittest peers — unless no peer can do better, in which case it queues here. In
``local-only`` mode nothing leaves the node. A prompt that fits no model in the mesh is
refused with ``context_length_exceeded``; a model nobody has, with ``model_not_found``.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from edgecoder.config import Config
from edgecoder.errors import (
    BackendUnavailableError,
    ContextOverflowError,
    InsufficientCreditsError,
    ModelNotFoundError,
)
from edgecoder.inference.served import ServedStream
from edgecoder.inference.types import ChatRequest, CompletionRequest, Delta
from edgecoder.mesh.advert_types import Advert
from edgecoder.tasks.fitness import (
    Fit,
    estimate_prompt_tokens,
    fits_context,
    peer_fit,
    predicted_ttft_ms,
    rank,
)
from edgecoder.tasks.origin import Origin, RemoteTask

__all__ = ("Decision", "Router", "prompt_estimate")

_TASK_MS = 2000


def prompt_estimate(request: ChatRequest | CompletionRequest) -> int:
    """The origin's upper-bound estimate of the request's prompt tokens."""
    if isinstance(request, ChatRequest):
        texts = [m.content for m in request.messages] + [request.continue_from]
        texts += [t.description + str(t.parameters) for t in request.tools]
        return estimate_prompt_tokens(texts)
    return estimate_prompt_tokens([request.prompt, request.suffix])


@dataclass(frozen=True, slots=True)
class Decision:
    """Where a request runs, and why (logged, and shown in tests)."""

    where: str
    """``local`` or ``mesh``."""
    reason: str
    local_ttft_ms: int | None = None
    best_peer: Fit | None = None


class Router:
    """Chooses between the local backend and the mesh for each generation."""

    def __init__(
        self,
        *,
        config: Config,
        node_id: str,
        origin: Origin,
        peers: Callable[[], list[tuple[str, Advert]]],
        own_advert: Callable[[], Advert | None],
        in_flight: Callable[[], int],
        execute: Callable[[ChatRequest | CompletionRequest], AsyncIterator[Delta]],
        suspected: Callable[[str], bool] = lambda node_id: False,
    ) -> None:
        """``peers``: every live or suspect peer's advert; ``suspected``: whether a peer is
        suspected of having failed (it is then offered work only after the others)."""
        self.config = config
        self.node_id = node_id
        self.origin = origin
        self._peers = peers
        self._own_advert = own_advert
        self._in_flight = in_flight
        self._execute = execute
        self._suspected = suspected
        self.decisions = {"local": 0, "mesh": 0, "fallback": 0}
        self._rng = random.Random()  # noqa: S311 - load spreading, not a secret

    def candidates(self, model: str, prompt_tokens: int, exclude: frozenset[str]) -> list[Fit]:
        """Peers whose adverts fit the task, fittest first."""
        fits = []
        assigned = self.origin.assigned
        for node_id, advert in self._peers():
            if node_id in exclude or node_id == self.node_id:
                continue
            fit = peer_fit(node_id, advert, model, prompt_tokens, _TASK_MS, assigned[node_id])
            if fit is not None:
                fits.append(fit)
        # Equally fit peers in random order, so that the same one does not always lead;
        # suspects after everyone else, in their order (a stable sort).
        ranked = rank(fits, self.config.tasks.ttft_budget_ms, self._rng)
        return sorted(ranked, key=lambda fit: self._suspected(fit.node_id))

    def decide(self, request: ChatRequest | CompletionRequest, prompt_tokens: int) -> Decision:
        """Where ``request`` runs.

        :raises ModelNotFoundError: neither this node nor any peer has the model.
        :raises ContextOverflowError: the prompt fits no model of that name in the mesh.
        """
        cfg = self.config.tasks
        may_run_here = cfg.worker_slots > 0
        if cfg.mode == "local-only":
            return Decision("local", "local-only mode")
        advert = self._own_advert()
        if advert is None:
            return Decision("local", "the mesh is not running")
        held = advert.model(request.model) if may_run_here else None
        local_ttft = None
        if held is not None and fits_context(held, prompt_tokens):
            slots = self.config.inference.slots
            queued = max(0, self._in_flight() - slots + 1)
            local_ttft = predicted_ttft_ms(
                model=held,
                prompt_tokens=prompt_tokens,
                prefill_tps=advert.prefill_tps,
                queued_ahead=queued,
                task_ms=_TASK_MS,
                load_pct=0,
                owner_busy=False,
            )
            if queued == 0 and local_ttft <= cfg.ttft_budget_ms:
                return Decision("local", "free slot within the TTFT budget", local_ttft)
        fits = self.candidates(request.model, prompt_tokens, frozenset())
        best = min(fits, key=lambda fit: fit.ttft_ms) if fits else None
        if best is None:
            if local_ttft is not None:
                return Decision("local", "no peer can run it", local_ttft)
            self._refuse(request.model, prompt_tokens, held is not None)
        assert best is not None
        if local_ttft is not None and local_ttft <= best.ttft_ms:
            return Decision("local", "no peer is predicted faster", local_ttft, best)
        return Decision("mesh", "a peer is predicted faster", local_ttft, best)

    def _refuse(self, model: str, prompt_tokens: int, held_here: bool) -> None:
        contexts = []
        for _, advert in self._peers():
            peer_model = advert.model(model)
            if peer_model is not None:
                contexts.append(peer_model.context_length)
        own_advert = self._own_advert()
        own = own_advert.model(model) if own_advert is not None else None
        if own is not None:
            contexts.append(own.context_length)
        if contexts:
            largest = max(contexts)
            if prompt_tokens + 1 > largest:
                raise ContextOverflowError(
                    f"the prompt (about {prompt_tokens} tokens) fits no '{model}' in the mesh: "
                    f"the largest context is {largest} tokens; shorten the prompt",
                    prompt_tokens=prompt_tokens,
                    context_length=largest,
                )
            if self.config.tasks.worker_slots <= 0 and own is not None and len(contexts) == 1:
                raise BackendUnavailableError(
                    "this node is requester-only (tasks.worker_slots = 0) and no peer "
                    f"serves '{model}' now"
                )
            raise BackendUnavailableError(f"no peer can run '{model}' for this request now")
        raise ModelNotFoundError(f"model '{model}' is not served by this node or any peer")

    def route(
        self, request: ChatRequest | CompletionRequest, account: str | None = None
    ) -> ServedStream:
        """A stream of the request's deltas, served here or by a peer; a peer's work is
        charged to ``account`` (the API key that asked; None: no key's)."""
        return ServedStream.naming(
            lambda stream: self._routed(request, stream, account), self.node_id
        )

    async def _routed(
        self,
        request: ChatRequest | CompletionRequest,
        stream: ServedStream,
        account: str | None,
    ) -> AsyncIterator[Delta]:
        prompt_tokens = prompt_estimate(request)
        decision = self.decide(request, prompt_tokens)
        self.decisions[decision.where] += 1
        if decision.where == "local":
            async for delta in self._execute(request):
                yield delta
            return

        def named(node_id: str) -> None:
            stream.node_id = node_id

        cfg = self.config.tasks
        # A node that can run the request itself waits for a claim only as long as the
        # protocol's own retries take; one that cannot waits for the busy mesh.
        patience = cfg.max_attempts * cfg.offer_timeout_ms / 1000
        task = RemoteTask(
            request=request,
            prompt_tokens=prompt_tokens,
            candidates=lambda exclude: self.candidates(request.model, prompt_tokens, exclude),
            on_worker=named,
            account=account,
            claim_patience_s=patience if decision.local_ttft_ms is not None else None,
        )
        async with contextlib.aclosing(self.origin.run(task)) as remote:
            try:
                admitted = await anext(remote)
            except (BackendUnavailableError, InsufficientCreditsError):
                if decision.local_ttft_ms is None:
                    raise
                # No peer took it after all, or this node cannot pay for it: this node
                # can run it, later than predicted (and for free).
                self.decisions["fallback"] += 1
                async for delta in self._execute(request):
                    yield delta
                return
            yield admitted
            async for delta in remote:
                yield delta
