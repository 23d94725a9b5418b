"""Ollama request bodies → inference requests (``/api/chat``, ``/api/generate``, ``/api/embed``).

Ollama streams unless ``"stream": false``. Options map as Ollama documents them:
``num_predict`` (negative: up to the context) → max tokens, ``temperature``, ``top_p``,
``seed``, ``stop``; ``format`` (``"json"`` or a JSON schema) holds the answer to it.
``num_ctx`` is ignored: each model runs with one fixed context here,
reported by ``/api/show``, and a prompt that does not fit is refused, never truncated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgecoder.adapters.web.parsed import ParsedChat
from edgecoder.adapters.web.request_limits import (
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
    MAX_TOOLS,
    at_most,
)
from edgecoder.adapters.web.requests import Fields, item_fields, parse_tool_calls
from edgecoder.errors import BadRequestError
from edgecoder.inference.types import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    SamplingParams,
    ToolSpec,
)

__all__ = (
    "OllamaGenerate",
    "json_format",
    "model_name",
    "parse_chat",
    "parse_embed",
    "parse_generate",
    "sampling",
)


def sampling(fields: Fields) -> SamplingParams:
    """The ``options`` object as sampling parameters.

    :raises BadRequestError: a malformed option, or ``logprobs`` asked for.
    """
    if fields.flag("logprobs"):
        raise BadRequestError("'logprobs': this node does not return log probabilities", "logprobs")
    options = fields.mapping("options") or Fields({}, "options.")
    limit = options.integer("num_predict")
    return SamplingParams(
        max_tokens=limit if limit is not None and limit > 0 else None,
        temperature=options.number("temperature", 0.0, math.inf),  # Ollama sets no ceiling
        top_p=options.number("top_p", 0.0, 1.0),
        top_k=options.integer("top_k", minimum=0),
        stop=options.stops("stop"),
        seed=options.integer("seed"),
    )


def json_format(fields: Fields) -> dict[str, object] | None:
    """Ollama's ``format``: ``"json"`` (any JSON object), a JSON schema, or nothing.

    :raises BadRequestError: another string.
    """
    raw = fields.data.get("format")
    if raw is None or raw == "":
        return None
    if raw == "json":
        return {"type": "object"}
    if isinstance(raw, dict):
        return raw
    raise BadRequestError("'format' must be \"json\" or a JSON schema", "format")


def model_name(fields: Fields) -> str:
    """The model a body names: ``model``, or the older ``name``.

    :raises BadRequestError: neither is there.
    """
    return fields.text("model") or fields.text("name", required=True) or ""


def parse_chat(fields: Fields) -> ParsedChat:
    """An ``/api/chat`` body: the request, streamed unless ``"stream": false``.

    :raises BadRequestError: a field is missing or malformed.
    """
    raw = fields.array("messages") or []
    at_most(raw, MAX_MESSAGES, "messages", "messages")
    messages = []
    for i, item in enumerate(raw):
        at = f"messages[{i}]"
        message = item_fields(item, at)
        role = message.text("role", "")
        if role not in {"system", "user", "assistant", "tool"}:
            raise BadRequestError(f"'{at}.role' must be system, user, assistant or tool", at)
        if message.array("images"):  # LiteLLM sends an empty list with every message
            raise BadRequestError(f"'{at}.images': this node's models read text only", at)
        messages.append(
            ChatMessage(
                role=role,  # type: ignore[arg-type]
                content=message.text("content", "") or "",
                tool_calls=parse_tool_calls(item.get("tool_calls"), f"{at}.tool_calls"),
                tool_call_id=message.text("tool_name", "") or "",
            )
        )
    raw_tools = fields.array("tools") or []
    at_most(raw_tools, MAX_TOOLS, "tools", "tools")
    tools = []
    for i, tool in enumerate(raw_tools):
        fn = item_fields(tool, f"tools[{i}]").mapping("function")
        name = fn.text("name") if fn is not None else None
        if fn is None or name is None:
            raise BadRequestError(f"'tools[{i}].function.name' is required", f"tools[{i}]")
        params = fn.mapping("parameters")
        tools.append(
            ToolSpec(name, fn.text("description", "") or "", params.data if params else {})
        )
    request = ChatRequest(
        model=model_name(fields),
        messages=tuple(messages),
        sampling=sampling(fields),
        tools=tuple(tools),
        json_schema=json_format(fields),
    )
    return ParsedChat(request, fields.flag("stream", True))


@dataclass(frozen=True, slots=True)
class OllamaGenerate:
    """An ``/api/generate`` body, read."""

    model: str
    stream: bool
    load_only: bool
    chat: ChatRequest | None
    completion: CompletionRequest | None


def parse_generate(fields: Fields) -> OllamaGenerate:
    """An ``/api/generate`` body: raw or templated prompt, optional ``suffix``.

    An empty prompt only loads the model, as in Ollama.

    :raises BadRequestError: a field is missing or malformed.
    """
    model = model_name(fields)
    stream = fields.flag("stream", True)
    if fields.array("images"):
        raise BadRequestError("'images': this node's models read text only", "images")
    prompt = fields.text("prompt", "") or ""
    suffix = fields.text("suffix", "") or ""
    if not prompt and not suffix:
        return OllamaGenerate(model, stream, True, None, None)
    params = sampling(fields)
    schema = json_format(fields)
    if suffix or fields.flag("raw"):
        if schema is not None:
            raise BadRequestError(
                "'format' applies to templated prompts, not raw or suffix", "format"
            )
        completion = CompletionRequest(model=model, prompt=prompt, suffix=suffix, sampling=params)
        return OllamaGenerate(model, stream, False, None, completion)
    messages = [ChatMessage("user", prompt)]
    system = fields.text("system")
    if system:
        messages.insert(0, ChatMessage("system", system))
    chat = ChatRequest(model=model, messages=tuple(messages), sampling=params, json_schema=schema)
    return OllamaGenerate(model, stream, False, chat, None)


def parse_embed(fields: Fields) -> EmbeddingRequest:
    """An ``/api/embed`` body (``input``) or a legacy ``/api/embeddings`` one (``prompt``).

    :raises BadRequestError: a field is missing or malformed.
    """
    if fields.has("dimensions"):
        raise BadRequestError(
            "'dimensions': this node's models give vectors of one fixed size", "dimensions"
        )
    raw = fields.data.get("input", fields.data.get("prompt"))
    if isinstance(raw, str):
        inputs: tuple[str, ...] = (raw,)
    elif isinstance(raw, list) and raw and all(isinstance(x, str) for x in raw):
        at_most(raw, MAX_EMBEDDING_INPUTS, "input", "texts")
        inputs = tuple(raw)
    else:
        raise BadRequestError("'input' must be a string or a non-empty array of strings", "input")
    return EmbeddingRequest(model=model_name(fields), inputs=inputs)
