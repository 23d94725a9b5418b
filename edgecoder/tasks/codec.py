"""What travels sealed: the task's request (origin to worker) and its result events (back).

The payload is JSON (sampling parameters are floats, and it is encrypted, not signed, so
it needs no canonical form)::

    {"kind": "chat" | "complete", "key": hex stream key, "continue_from": text,
     "request": {...}}

``continue_from`` is the output an earlier attempt already streamed to the client: the
new worker continues the reply from there. Events are small JSON objects, each sealed
in its own box (:class:`~edgecoder.security.stream_box.StreamBox`)::

    {"t": "admit"}                      the worker accepted and holds a slot (or queues)
    {"t": "hb"}                         still working (prefill, queue): renews the lease
    {"t": "text", "text": "...", "calls": [[id, name, arguments], ...]}
    {"t": "end", "finish": reason, "prompt_tokens": n, "completion_tokens": n,
     "model_digest": "..."}
    {"t": "error", "code": code, "message": "..."}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast, get_args

from edgecoder.errors import BadRequestError
from edgecoder.inference.types import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    Delta,
    FinishReason,
    SamplingParams,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = (
    "Payload",
    "decode_event",
    "decode_payload",
    "delta_event",
    "encode_event",
    "encode_payload",
)

_ROLES = ("system", "user", "assistant", "tool")
_FINISH = get_args(FinishReason)


@dataclass(frozen=True, slots=True)
class Payload:
    """The opened payload of one attempt."""

    request: ChatRequest | CompletionRequest
    key: bytes
    continue_from: str


def _sampling(s: SamplingParams) -> dict[str, Any]:
    return {"max_tokens": s.max_tokens, "temperature": s.temperature, "top_p": s.top_p,
            "stop": list(s.stop), "seed": s.seed, "ignore_eos": s.ignore_eos,
            "top_k": s.top_k}  # fmt: skip


def encode_payload(
    request: ChatRequest | CompletionRequest, key: bytes, continue_from: str
) -> bytes:
    """The payload's plaintext."""
    body: dict[str, Any] = {"model": request.model, "sampling": _sampling(request.sampling)}
    if isinstance(request, ChatRequest):
        kind = "chat"
        body["messages"] = [
            {"role": m.role, "content": m.content, "tool_call_id": m.tool_call_id,
             "tool_calls": [[c.id, c.name, c.arguments] for c in m.tool_calls]}
            for m in request.messages
        ]  # fmt: skip
        body["tools"] = [[t.name, t.description, t.parameters] for t in request.tools]
        body["tool_choice"] = request.tool_choice
        body["parallel_tool_calls"] = request.parallel_tool_calls
        body["json_schema"] = request.json_schema
    else:
        kind = "complete"
        body["prompt"], body["suffix"] = request.prompt, request.suffix
    document = {"kind": kind, "key": key.hex(), "continue_from": continue_from, "request": body}
    return json.dumps(document, separators=(",", ":")).encode()


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise BadRequestError(f"the task payload is malformed: {what}")


def _optional(value: object, kind: type | tuple[type, ...], what: str) -> Any:
    _expect(value is None or (isinstance(value, kind) and not isinstance(value, bool)), what)
    return value


def _decode_sampling(raw: object) -> SamplingParams:
    _expect(isinstance(raw, dict), "sampling")
    s = cast(dict[str, Any], raw)
    stop = s.get("stop", [])
    _expect(isinstance(stop, list) and all(isinstance(x, str) for x in stop), "sampling.stop")
    _expect(isinstance(s.get("ignore_eos", False), bool), "sampling.ignore_eos")
    return SamplingParams(
        max_tokens=_optional(s.get("max_tokens"), int, "sampling.max_tokens"),
        temperature=_optional(s.get("temperature"), (int, float), "sampling.temperature"),
        top_p=_optional(s.get("top_p"), (int, float), "sampling.top_p"),
        stop=tuple(stop),
        seed=_optional(s.get("seed"), int, "sampling.seed"),
        top_k=_optional(s.get("top_k"), int, "sampling.top_k"),
        ignore_eos=bool(s.get("ignore_eos", False)),
    )


def _calls(raw: object) -> tuple[ToolCall, ...]:
    _expect(isinstance(raw, list), "tool calls")
    calls = []
    for item in cast(list[Any], raw):
        _expect(isinstance(item, list) and len(item) == 3, "a tool call")
        _expect(all(isinstance(x, str) for x in item), "a tool call")
        calls.append(ToolCall(item[0], item[1], item[2]))
    return tuple(calls)


def _messages(raw: object) -> tuple[ChatMessage, ...]:
    _expect(isinstance(raw, list) and len(raw) > 0, "messages")
    out = []
    for m in cast(list[Any], raw):
        _expect(isinstance(m, dict) and m.get("role") in _ROLES, "a message's role")
        _expect(isinstance(m.get("content"), str), "a message's content")
        _expect(isinstance(m.get("tool_call_id", ""), str), "a message's tool_call_id")
        out.append(ChatMessage(m["role"], m["content"], _calls(m.get("tool_calls", [])),
                               m.get("tool_call_id", "")))  # fmt: skip
    return tuple(out)


def _tools(raw: object) -> tuple[ToolSpec, ...]:
    _expect(isinstance(raw, list), "tools")
    out = []
    for t in cast(list[Any], raw):
        _expect(isinstance(t, list) and len(t) == 3, "a tool")
        _expect(
            isinstance(t[0], str) and isinstance(t[1], str) and isinstance(t[2], dict), "a tool"
        )
        out.append(ToolSpec(t[0], t[1], t[2]))
    return tuple(out)


def decode_payload(plaintext: bytes) -> Payload:
    """Parse an opened payload.

    :raises BadRequestError: it is not a well-formed payload.
    """
    try:
        document = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("the task payload is not JSON") from None
    _expect(isinstance(document, dict), "not an object")
    kind, key, body = document.get("kind"), document.get("key"), document.get("request")
    cont = document.get("continue_from", "")
    _expect(isinstance(key, str) and len(key) == 64, "key")
    _expect(isinstance(cont, str), "continue_from")
    _expect(isinstance(body, dict) and isinstance(body.get("model"), str), "request.model")
    try:
        key_bytes = bytes.fromhex(key)
    except ValueError:
        raise BadRequestError("the task payload is malformed: key") from None
    sampling = _decode_sampling(body.get("sampling"))
    request: ChatRequest | CompletionRequest
    if kind == "chat":
        choice = body.get("tool_choice", "auto")
        _expect(isinstance(choice, str), "tool_choice")
        parallel, schema = body.get("parallel_tool_calls", True), body.get("json_schema")
        _expect(isinstance(parallel, bool), "parallel_tool_calls")
        _expect(schema is None or isinstance(schema, dict), "json_schema")
        messages, tools = _messages(body.get("messages")), _tools(body.get("tools", []))
        request = ChatRequest(
            body["model"], messages, sampling, tools, choice, cont, parallel, schema
        )
    elif kind == "complete":
        prompt, suffix = body.get("prompt"), body.get("suffix", "")
        _expect(isinstance(prompt, str) and isinstance(suffix, str), "prompt")
        request = CompletionRequest(body["model"], prompt + cont, suffix, sampling)
    else:
        raise BadRequestError("the task payload is malformed: kind")
    return Payload(request, key_bytes, cont)


def encode_event(event: dict[str, Any]) -> bytes:
    """One event's plaintext."""
    return json.dumps(event, separators=(",", ":")).encode()


def delta_event(delta: Delta, model_digest: str) -> dict[str, Any]:
    """The event that carries one delta of the worker's generation."""
    if delta.usage is not None or delta.finish_reason is not None:
        usage = delta.usage or Usage(0, 0)
        event: dict[str, Any] = {
            "t": "end",
            "finish": delta.finish_reason or "stop",
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "model_digest": model_digest,
        }
        if delta.text:
            event["text"] = delta.text
        if delta.tool_calls:
            event["calls"] = [[c.id, c.name, c.arguments] for c in delta.tool_calls]
        return event
    event = {"t": "text", "text": delta.text}
    if delta.tool_calls:
        event["calls"] = [[c.id, c.name, c.arguments] for c in delta.tool_calls]
    return event


def decode_event(plaintext: bytes) -> dict[str, Any]:
    """Parse one opened event; text and end events are checked field by field.

    :raises BadRequestError: malformed.
    """
    try:
        event = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("a result event is not JSON") from None
    _expect(isinstance(event, dict) and isinstance(event.get("t"), str), "event type")
    kind = event["t"]
    if kind in ("text", "end"):
        _expect(isinstance(event.get("text", ""), str), "event text")
        event["calls"] = _calls(event.get("calls", []))
    if kind == "end":
        _expect(event.get("finish") in _FINISH, "event finish reason")
        for name in ("prompt_tokens", "completion_tokens"):
            _expect(type(event.get(name)) is int and event[name] >= 0, f"event {name}")
        _expect(isinstance(event.get("model_digest"), str), "event model_digest")
    if kind == "error":
        _expect(isinstance(event.get("code"), str), "error code")
        _expect(isinstance(event.get("message"), str), "error message")
    return cast(dict[str, Any], event)
