"""How a model writes tool calls in its output, and reading them back out of a stream.

A :class:`ToolSyntax` is one way of writing calls. A model whose chat template has a
tool-call format of its own gets that one (:func:`syntax_for_template`); every other
model gets :data:`GENERIC`, the format documented in ``docs/inference.md``::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

one block per call, several blocks for parallel calls. It is the Hermes format (Qwen 2.5
and 3, Hermes, and many fine-tunes use it), so models that have seen tool calls in
training tend to write it unprompted, and its markers are plain text for every other.

:class:`ToolCallScanner` reads a generation's text as it streams: text before and between
calls passes through at once (held back only while it could be the start of a call's
opening marker), and each call becomes a :class:`ToolCall` as soon as its closing marker
(or the end of the output) arrives. A block that does not parse as a call of an offered
tool is given back as text; only a call cut off by the token limit is dropped.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from edgecoder.inference.types import ToolCall

__all__ = (
    "GENERIC",
    "MISTRAL",
    "ToolCallScanner",
    "ToolSyntax",
    "call_json",
    "new_call_id",
    "syntax_for_template",
)


@dataclass(frozen=True, slots=True)
class ToolSyntax:
    """One way of writing tool calls in text.

    Calls are ``{"name": …, "arguments": {…}}`` objects between ``open`` and ``close``;
    with ``array`` one opening marker is followed by a JSON array of them, and an empty
    ``close`` means the calls run to the end of the output.
    """

    name: str
    open: str
    close: str
    array: bool = False
    native: bool = False
    """True when the model's own chat template renders the tools and past calls."""

    def block(self, calls: Iterable[ToolCall]) -> str:
        """``calls`` written in this syntax, as a past assistant turn shows them."""
        objects = [call_json(c) for c in calls]
        if self.array:
            return f"{self.open}[{', '.join(objects)}]{self.close}"
        return "\n".join(f"{self.open}\n{o}\n{self.close}" for o in objects)


GENERIC = ToolSyntax("generic", "<tool_call>", "</tool_call>")
"""Hermes-style blocks, for any model without a tool-call format of its own."""
HERMES = ToolSyntax("hermes", "<tool_call>", "</tool_call>", native=True)
"""The same blocks, rendered by a template that knows them (Qwen, Hermes)."""
MISTRAL = ToolSyntax("mistral", "[TOOL_CALLS]", "", array=True, native=True)
"""Mistral's ``[TOOL_CALLS][{…}, …]``, running to the end of the output."""


def syntax_for_template(template: str) -> ToolSyntax:
    """The tool-call syntax a chat template writes, or :data:`GENERIC` when it has none.

    A template that renders tools and past calls itself names its markers in its text;
    one that mentions no known marker cannot be trusted to show the model its calls.
    """
    if "tools" in template and "<tool_call>" in template:
        return HERMES
    if "tools" in template and "[TOOL_CALLS]" in template:
        return MISTRAL
    return GENERIC


def new_call_id() -> str:
    """A fresh call id (``call_`` and 24 hex digits, as OpenAI's look)."""
    return f"call_{secrets.token_hex(12)}"


def call_json(call: ToolCall) -> str:
    """A call as the ``{"name", "arguments"}`` object a model writes."""
    try:
        arguments = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = call.arguments
    return json.dumps({"name": call.name, "arguments": arguments}, ensure_ascii=False)


class ToolCallScanner:
    """Feed generated text; get back text to show and the calls completed so far."""

    def __init__(self, syntax: ToolSyntax, tools: Iterable[str]) -> None:
        self._syntax = syntax
        self._tools = frozenset(tools)
        self._held = ""
        self._inside = False
        self._body = ""
        self._space = ""
        self._before = ""
        self.calls_made = 0

    def feed(self, text: str) -> tuple[str, list[ToolCall]]:
        """Add ``text``; return the text that can be shown now and the calls completed."""
        shown: list[str] = []
        calls: list[ToolCall] = []
        buffer = self._held + text
        self._held = ""
        while buffer:
            if self._inside:
                close = self._syntax.close
                body = self._body + buffer
                at = body.find(close) if close else -1
                if at < 0:
                    self._body = body
                    break
                self._finish(body[:at], close, shown, calls)
                buffer = body[at + len(close) :]
                continue
            at = buffer.find(self._syntax.open)
            if at < 0:
                keep = _partial_suffix(buffer, self._syntax.open)
                self._show(buffer[: len(buffer) - keep], shown)
                self._held = buffer[len(buffer) - keep :]
                break
            self._show(buffer[:at], shown)
            # The blank before a call is layout, not content (unless it is no call).
            self._before, self._space = self._space, ""
            buffer = buffer[at + len(self._syntax.open) :]
            self._inside, self._body = True, ""
        return "".join(shown), calls

    def flush(self, *, truncated: bool = False) -> tuple[str, list[ToolCall]]:
        """The end of the output: a call without its closing marker is read as it is.

        With ``truncated`` (the output hit its token limit) an unfinished call is
        dropped: it is the start of a call, not text the model wrote for the reader, and
        the finish reason ``length`` tells the client it was cut.
        """
        shown: list[str] = []
        calls: list[ToolCall] = []
        held, self._held = self._held, ""
        self._show(held, shown)
        if self._inside and truncated and self._syntax.close:
            self._inside, self._body = False, ""
        elif self._inside:
            self._finish(self._body, "", shown, calls)
        if not self.calls_made:
            shown.append(self._space)
        self._space = ""
        return "".join(shown), calls

    def _show(self, text: str, shown: list[str]) -> None:
        """Pass ``text`` on, holding back trailing blanks (they may precede a call)."""
        if self.calls_made and not self._space and not shown:
            text = text.lstrip()  # the blank after a call is layout too
        body = text.rstrip()
        if body:
            shown.append(self._space + body)
            self._space = text[len(body) :]
        else:
            self._space += text

    def _finish(self, body: str, close: str, shown: list[str], calls: list[ToolCall]) -> None:
        self._inside, self._body = False, ""
        parsed = self._parse(body)
        if parsed is None:
            shown.append(f"{self._before}{self._syntax.open}{body}{close}")
            return
        calls += parsed
        self.calls_made += len(parsed)

    def _parse(self, body: str) -> list[ToolCall] | None:
        try:
            value = json.loads(body)
        except ValueError:
            return None
        items = value if self._syntax.array and isinstance(value, list) else [value]
        calls = []
        for item in items:
            if not isinstance(item, dict):
                return None
            name, arguments = item.get("name"), item.get("arguments", {})
            if not isinstance(name, str) or name not in self._tools:
                return None
            if not isinstance(arguments, dict):
                return None
            text = json.dumps(arguments, ensure_ascii=False)
            calls.append(ToolCall(new_call_id(), name, text))
        return calls or None


def _partial_suffix(buffer: str, marker: str) -> int:
    """Length of the longest end of ``buffer`` that begins ``marker``."""
    for size in range(min(len(marker) - 1, len(buffer)), 0, -1):
        if buffer.endswith(marker[:size]):
            return size
    return 0
