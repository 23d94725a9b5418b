"""What a dialect reads from a body: the inference request, and how to answer it."""

from __future__ import annotations

from dataclasses import dataclass

from edgecoder.inference.types import ChatRequest, CompletionRequest

__all__ = ("ParsedChat", "ParsedCompletion")


@dataclass(frozen=True, slots=True)
class ParsedChat:
    """A chat request and how to answer it: streamed or whole, with a usage event or not."""

    request: ChatRequest
    stream: bool
    include_usage: bool = False


@dataclass(frozen=True, slots=True)
class ParsedCompletion:
    """A completion request and how to answer it (``echo``: the prompt opens the answer)."""

    request: CompletionRequest
    stream: bool
    include_usage: bool
    echo: bool
