"""The Ollama backend: models served by a local Ollama daemon, through its official client.

Ollama cuts prompts that exceed ``num_ctx`` silently; EdgeCoder never does. Every
request runs with ``num_ctx`` set to the model's context here (its trained context,
capped by ``inference.context_length``), and a prompt whose size could exceed it —
estimated at :data:`BYTES_PER_TOKEN_FLOOR` bytes per token, an under-estimate for code
and prose alike — is refused with the context error instead of being sent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Any

import httpx

from edgecoder.errors import (
    BackendUnavailableError,
    BadRequestError,
    ContextOverflowError,
    InferenceError,
    ModelNotFoundError,
    UnsupportedError,
)
from edgecoder.inference.estimate import approximate_prompt_tokens
from edgecoder.inference.slots import SlotPool
from edgecoder.inference.tool_calls import new_call_id
from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    FinishReason,
    ModelInfo,
    PullProgress,
    SamplingParams,
    ToolCall,
    Usage,
)

__all__ = ("BYTES_PER_TOKEN_FLOOR", "OllamaBackend")

log = logging.getLogger(__name__)

BYTES_PER_TOKEN_FLOOR = 2
"""Tokenizers average 3-4 bytes per token; 2 errs towards refusing over truncating."""


def _client_error(exc: Exception, model: str) -> InferenceError:
    import ollama

    if isinstance(exc, ollama.ResponseError):
        if exc.status_code == 404:
            return ModelNotFoundError(f"model '{model}' not found on this node's Ollama")
        if "does not support" in str(exc.error):
            return UnsupportedError(str(exc.error))
        if 400 <= exc.status_code < 500:
            return BadRequestError(f"Ollama refused the request: {exc.error}")
        return BackendUnavailableError(f"Ollama failed: {exc.error}")
    return BackendUnavailableError(f"Ollama is unreachable: {exc}")


def _options(sampling: SamplingParams, num_ctx: int, max_tokens: int) -> dict[str, Any]:
    options: dict[str, Any] = {"num_ctx": num_ctx, "num_predict": max_tokens}
    if sampling.temperature is not None:
        options["temperature"] = sampling.temperature
    if sampling.top_p is not None:
        options["top_p"] = sampling.top_p
    if sampling.top_k is not None:
        options["top_k"] = sampling.top_k
    if sampling.seed is not None:
        options["seed"] = sampling.seed
    if sampling.stop:
        options["stop"] = list(sampling.stop)
    return options


def _ms(value: object) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return 0


class OllamaBackend:
    """Serves the models of an Ollama daemon."""

    name = "ollama"

    def __init__(self, url: str, *, context_length: int, slots: int, max_queue: int) -> None:
        import ollama

        self.url = url
        self._client = ollama.AsyncClient(host=url, timeout=httpx.Timeout(10.0, read=None))
        self._context_limit = context_length
        self._slots = SlotPool(slots, max_queue)
        self._shown: dict[str, ModelInfo] = {}

    async def start(self) -> None:
        """Check that the daemon answers.

        :raises BackendUnavailableError: it does not.
        """
        try:
            await self._client.list()
        except Exception as exc:
            raise BackendUnavailableError(f"no Ollama answered at {self.url}: {exc}") from None

    async def close(self) -> None:
        """Close the HTTP connections."""
        with contextlib.suppress(Exception):
            await self._client._client.aclose()

    # -- models -----------------------------------------------------------------------

    def _info(self, name: str, shown: Any, size: int = 0, digest: str = "") -> ModelInfo:
        details = shown.details
        family = (details.family if details else "") or ""
        model_info: Mapping[str, Any] = shown.modelinfo or {}
        arch = str(model_info.get("general.architecture", family))
        trained = int(model_info.get(f"{arch}.context_length", 2048))
        context = min(trained, self._context_limit) if self._context_limit > 0 else trained
        capabilities = set(shown.capabilities or [])
        return ModelInfo(
            name=name,
            backend=self.name,
            context_length=context,
            size_bytes=size,
            digest=digest,
            family=family,
            parameter_size=(details.parameter_size if details else "") or "",
            quantization=(details.quantization_level if details else "") or "",
            format=(details.format if details else "") or "gguf",
            supports_tools="tools" in capabilities,
            supports_fim="insert" in capabilities,
            supports_embeddings="embedding" in capabilities or "completion" in capabilities,
            modified_ms=_ms(shown.modified_at),
            parameter_count=int(model_info.get("general.parameter_count", 0) or 0),
        )

    async def show(self, model: str) -> ModelInfo:
        """One model, with its context length and capabilities."""
        if model in self._shown:
            return self._shown[model]
        try:
            shown = await self._client.show(model)
        except Exception as exc:
            raise _client_error(exc, model) from None
        info = self._info(model, shown)
        self._shown[model] = info
        return info

    async def list_models(self) -> list[ModelInfo]:
        """Every model the daemon has."""
        try:
            listed = await self._client.list()
        except Exception as exc:
            raise _client_error(exc, "") from None
        infos = []
        for entry in listed.models:
            name = entry.model or ""
            base = await self.show(name)
            infos.append(
                dataclasses.replace(
                    base,
                    size_bytes=entry.size or 0,
                    digest=entry.digest or "",
                    modified_ms=_ms(entry.modified_at),
                )
            )
        return infos

    async def loaded_models(self) -> list[ModelInfo]:
        """Models the daemon holds in memory."""
        try:
            running = await self._client.ps()
        except Exception as exc:
            raise _client_error(exc, "") from None
        infos = []
        for entry in running.models:
            base = await self.show(entry.model or "")
            infos.append(dataclasses.replace(base, loaded=True))
        return infos

    async def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Download a model through the daemon, with progress."""
        try:
            async for step in await self._client.pull(model, stream=True):
                yield PullProgress(step.status or "", step.completed or 0, step.total or 0)
        except Exception as exc:
            raise _client_error(exc, model) from None
        self._shown.pop(model, None)

    async def delete(self, model: str) -> None:
        """Remove a model from the daemon."""
        try:
            await self._client.delete(model)
        except Exception as exc:
            raise _client_error(exc, model) from None
        self._shown.pop(model, None)

    # -- generation -------------------------------------------------------------------

    def _budget(self, info: ModelInfo, prompt_bytes: int, sampling: SamplingParams) -> int:
        ceiling = prompt_bytes // BYTES_PER_TOKEN_FLOOR + 1
        room = info.context_length - ceiling
        if room <= 0:
            raise ContextOverflowError(
                f"this model's maximum context length is {info.context_length} tokens; the "
                f"prompt may need up to {ceiling}; shorten the prompt",
                prompt_tokens=ceiling,
                context_length=info.context_length,
            )
        # More output than the context leaves is cut where it ends (done_reason "length").
        return min(sampling.max_tokens, room) if sampling.max_tokens is not None else room

    async def chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """Stream a chat completion; tools are relayed to models that support them."""
        info = await self.show(request.model)
        tools = []
        if request.tools and request.tool_choice != "none":
            if not info.supports_tools:
                raise UnsupportedError(f"model '{request.model}' does not support tools")
            tools = [
                {"type": "function", "function": {"name": t.name, "description": t.description,
                                                  "parameters": t.parameters}}
                for t in request.tools
            ]  # fmt: skip
        messages = []
        for m in request.messages:
            message: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.tool_calls:
                message["tool_calls"] = [
                    {"function": {"name": c.name, "arguments": json.loads(c.arguments or "{}")}}
                    for c in m.tool_calls
                ]
            messages.append(message)
        if request.continue_from:
            # Ollama continues a trailing assistant message instead of starting a new one.
            messages.append({"role": "assistant", "content": request.continue_from})
        size = sum(len(m.content.encode()) for m in request.messages)
        size += len(json.dumps(tools).encode()) if tools else 0
        max_tokens = self._budget(info, size, request.sampling)
        self._slots.admit()
        yield Delta()
        options = _options(request.sampling, info.context_length, max_tokens)
        async with self._slots.slot():
            try:
                stream = await self._client.chat(
                    request.model, messages, tools=tools or None, stream=True, options=options,
                    format=request.json_schema,
                )  # fmt: skip
                called = False
                async for part in stream:
                    # Ollama's calls have no ids; the clients' tool results need one each.
                    calls = tuple(
                        ToolCall(new_call_id(), c.function.name, json.dumps(c.function.arguments))
                        for c in part.message.tool_calls or []
                    )
                    called = called or bool(calls)
                    if part.message.content or calls:
                        yield Delta(text=part.message.content or "", tool_calls=calls)
                    if part.done:
                        yield self._final(part, has_calls=called)
            except InferenceError:
                raise
            except Exception as exc:
                raise _client_error(exc, request.model) from None

    async def count_tokens(self, request: ChatRequest) -> int:
        """An estimate (:mod:`edgecoder.inference.estimate`): Ollama's API has no tokenizer."""
        await self.show(request.model)
        return approximate_prompt_tokens(request)

    async def complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        """Stream a raw completion, or fill-in-the-middle with ``suffix``."""
        info = await self.show(request.model)
        if request.suffix and not info.supports_fim:
            raise UnsupportedError(f"model '{request.model}' does not support insert (suffix)")
        size = len(request.prompt.encode()) + len(request.suffix.encode())
        max_tokens = self._budget(info, size, request.sampling)
        self._slots.admit()
        yield Delta()
        options = _options(request.sampling, info.context_length, max_tokens)
        async with self._slots.slot():
            try:
                stream = await self._client.generate(
                    request.model,
                    request.prompt,
                    suffix=request.suffix,
                    raw=not request.suffix,
                    stream=True,
                    options=options,
                )
                async for part in stream:
                    if part.response:
                        yield Delta(text=part.response)
                    if part.done:
                        yield self._final(part, has_calls=False)
            except InferenceError:
                raise
            except Exception as exc:
                raise _client_error(exc, request.model) from None

    @staticmethod
    def _final(part: Any, *, has_calls: bool) -> Delta:
        reason: FinishReason = "length" if part.done_reason == "length" else "stop"
        if has_calls:
            reason = "tool_calls"
        usage = Usage(part.prompt_eval_count or 0, part.eval_count or 0)
        return Delta(finish_reason=reason, usage=usage)

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embeddings from the daemon; over-long inputs are refused, not truncated."""
        try:
            result = await self._client.embed(request.model, list(request.inputs), truncate=False)
        except Exception as exc:
            raise _client_error(exc, request.model) from None
        vectors = tuple(tuple(float(x) for x in v) for v in result.embeddings)
        return EmbeddingResult(vectors, result.prompt_eval_count or 0)
