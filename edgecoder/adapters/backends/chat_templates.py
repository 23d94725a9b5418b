"""Rendering a model's own chat template (GGUF ``tokenizer.chat_template``, Jinja2).

Rendered in a sandbox: a template is data from a model file, not trusted code. The BOS
token is left to the tokenizer (it adds one) and end-of-turn tokens are stopped on by id,
so both render as empty strings here. Templates get what Hugging Face's renderer gives
them: messages with ``tool_calls`` (arguments as objects) and tool results with their
``tool_call_id`` and ``name``, ``tools`` in OpenAI's shape, and a ``tojson`` that writes
plain JSON (Jinja's own escapes ``<``, ``>`` and ``&`` for HTML, which would change what
the model reads).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from edgecoder.errors import BadRequestError
from edgecoder.inference.types import ChatMessage, ToolSpec

__all__ = ("render_template",)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise BadRequestError(f"the model's chat template refused the messages: {message}")

    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = _tojson
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise BadRequestError(f"the model's chat template is invalid: {exc}") from None


def _arguments(text: str) -> object:
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return text


def _messages(messages: Sequence[ChatMessage]) -> list[dict[str, object]]:
    names: dict[str, str] = {}
    out: list[dict[str, object]] = []
    for m in messages:
        message: dict[str, object] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": _arguments(c.arguments)}}
                for c in m.tool_calls
            ]  # fmt: skip
            names.update((c.id, c.name) for c in m.tool_calls)
        if m.role == "tool":
            message["tool_call_id"] = m.tool_call_id
            message["name"] = names.get(m.tool_call_id, m.tool_call_id)
        out.append(message)
    return out


def render_template(
    template: str, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()
) -> tuple[str, tuple[str, ...]]:
    """Render ``messages`` (and ``tools``) with the template, ready for the assistant's reply.

    :raises BadRequestError: the template is invalid or refuses the messages.
    """
    from jinja2 import TemplateError

    compiled = _compile(template)
    offered = [
        {"type": "function",
         "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]  # fmt: skip
    try:
        prompt = compiled.render(
            messages=_messages(messages),
            tools=offered or None,
            add_generation_prompt=True,
            bos_token="",
            eos_token="",
        )
    except TemplateError as exc:
        raise BadRequestError(f"the model's chat template failed: {exc}") from None
    return str(prompt), ()
