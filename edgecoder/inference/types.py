"""Requests, results and model descriptions shared by the backends and the client APIs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = (
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "Delta",
    "EmbeddingRequest",
    "EmbeddingResult",
    "FinishReason",
    "ModelInfo",
    "PullProgress",
    "SamplingParams",
    "ToolCall",
    "ToolSpec",
    "Usage",
)

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asks the client to make; ``arguments`` is a JSON object as text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the client offers the model."""

    name: str
    description: str
    parameters: dict[str, object]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a conversation, with its content flattened to text."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How to sample; ``None`` means the backend's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    top_k: int | None = None
    """Sample from the ``top_k`` likeliest tokens only (Anthropic's and Ollama's ``top_k``)."""
    ignore_eos: bool = False
    """Generate exactly ``max_tokens`` (vLLM's extension; for benchmarks and tests)."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat completion: messages in, assistant text (or tool calls) out."""

    model: str
    messages: tuple[ChatMessage, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"
    """``auto``, ``none``, ``required``, or the name of one tool."""
    continue_from: str = ""
    """The start of the assistant's reply, already written: the model continues it.

    Set when a mesh task fails over after some output reached the client; the new
    generation (and its usage) covers only what comes after this text.
    """
    parallel_tool_calls: bool = True
    """Whether the model may call several tools in one turn (else at most one)."""
    json_schema: dict[str, object] | None = None
    """The answer must be JSON valid against this schema (``{"type": "object"}`` for any
    object: a JSON mode); None for text. A tool call may still replace it."""


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A raw completion; with ``suffix`` it is fill-in-the-middle."""

    model: str
    prompt: str
    suffix: str = ""
    sampling: SamplingParams = field(default_factory=SamplingParams)


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """Texts to embed with one model."""

    model: str
    inputs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmbeddingResult:
    """One vector per input, and the tokens read."""

    vectors: tuple[tuple[float, ...], ...]
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Usage:
    """Exact token counts of one generation."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of a streamed generation.

    Text pieces have ``text``; a tool call comes whole in ``tool_calls``, announced
    first by ``tool_call_start`` and ``tool_call_text`` pieces when it is read here; the
    last piece has ``finish_reason`` and ``usage``.
    """

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    stop_sequence: str = ""
    """On the last piece: the client's stop string that ended the generation, if one did."""
    tool_call_start: ToolCall | None = None
    """A call the model has begun: its id and name (no arguments yet)."""
    tool_call_text: str = ""
    """A piece of the arguments of the call begun last, as the model writes them.

    The pieces of a begun call add up to its arguments; the whole call then follows in
    ``tool_calls`` with the same id. Only a stream read on this node has these (a mesh
    peer relays whole calls), so a reader must take a call it never saw begin as whole.
    """


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a backend can tell about one model."""

    name: str
    backend: str
    context_length: int
    """The context the model runs with here: prompt plus output must fit in it."""
    size_bytes: int = 0
    digest: str = ""
    family: str = ""
    parameter_size: str = ""
    quantization: str = ""
    format: str = "gguf"
    supports_tools: bool = False
    supports_fim: bool = False
    supports_embeddings: bool = False
    modified_ms: int = 0
    loaded: bool = False
    parameter_count: int = 0
    """Parameters in the model (0: not known here, as for a model a peer serves)."""

    @property
    def capabilities(self) -> list[str]:
        """What the model does, in Ollama's words: ``completion``, ``insert``, ``tools``…"""
        found = ["completion"]
        if self.supports_fim:
            found.append("insert")
        if self.supports_tools:
            found.append("tools")
        if self.supports_embeddings:
            found.append("embedding")
        return found


@dataclass(frozen=True, slots=True)
class PullProgress:
    """Progress of a model download."""

    status: str
    completed: int = 0
    total: int = 0
