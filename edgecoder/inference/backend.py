"""The one async interface every inference backend implements."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    PullProgress,
)

__all__ = ("Backend",)


class Backend(Protocol):
    """A local model runtime.

    Generations are async iterators of :class:`Delta`. The first item is an empty
    ``Delta()`` yielded once the request is admitted (model found, prompt fits, a slot is
    free or queueable): every refusal is raised before it, so an HTTP layer can still
    answer with an error status, and may commit to a streamed response after it. Closing
    the iterator early (a client that went away) cancels the generation and frees its
    slot. Every method raises :class:`~edgecoder.errors.InferenceError` subclasses for
    expected failures:
    ``ModelNotFoundError``, ``ContextOverflowError`` (never a silent truncation),
    ``UnsupportedError``, ``OverloadedError``, ``BackendUnavailableError``.
    """

    name: str

    async def start(self) -> None:
        """Prepare the backend (find models, connect); may raise BackendUnavailableError."""
        ...

    async def close(self) -> None:
        """Cancel running generations and release every resource."""
        ...

    async def list_models(self) -> list[ModelInfo]:
        """Every model this backend can serve."""
        ...

    async def show(self, model: str) -> ModelInfo:
        """One model's description."""
        ...

    async def loaded_models(self) -> list[ModelInfo]:
        """The models in memory now."""
        ...

    def chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """Stream a chat completion."""
        ...

    async def count_tokens(self, request: ChatRequest) -> int:
        """How many tokens ``request``'s prompt takes (exact where the backend can tell)."""
        ...

    def complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        """Stream a raw (or fill-in-the-middle) completion."""
        ...

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Embed texts."""
        ...

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """Fetch a model, reporting progress (may raise UnsupportedError when called)."""
        ...

    async def delete(self, model: str) -> None:
        """Remove a model."""
        ...
