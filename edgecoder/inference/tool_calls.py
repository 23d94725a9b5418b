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
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from edgecoder.inference.types import Delta, ToolCall

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


_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"arguments"\s*:\s*(?=\{)')
"""The start of a call object, up to its arguments' opening brace (they are an object)."""


class ToolCallScanner:
    """Feed generated text; get back what to stream: text, calls begun and their arguments.

    :meth:`feed` and :meth:`flush` return deltas: ``text`` to show; ``tool_call_start``
    when a call's name is known (its id is fixed then), ``tool_call_text`` pieces of its
    arguments as they are written, and the whole call in ``tool_calls`` once its block
    closes (with the same id, and the streamed text as its arguments). Calls in an array
    syntax (Mistral's) are given whole only.
    """

    def __init__(self, syntax: ToolSyntax, tools: Iterable[str]) -> None:
        self._syntax = syntax
        self._tools = frozenset(tools)
        self._held = ""
        self._inside = False
        self._body = ""
        self._space = ""
        self._before = ""
        self._started: ToolCall | None = None
        self._arguments_at = 0
        self._sent = 0
        self.calls_made = 0

    def feed(self, text: str) -> list[Delta]:
        """Add ``text``; return what can be streamed now."""
        out: list[Delta] = []
        buffer = self._held + text
        self._held = ""
        while buffer:
            if self._inside:
                close = self._syntax.close
                body = self._body + buffer
                at = body.find(close) if close else -1
                if at < 0:
                    self._body = body
                    self._stream(body, out, final=False)
                    break
                self._stream(body[:at], out, final=True)
                self._finish(body[:at], close, out)
                buffer = body[at + len(close) :]
                continue
            at = buffer.find(self._syntax.open)
            if at < 0:
                keep = _partial_suffix(buffer, self._syntax.open)
                self._show(buffer[: len(buffer) - keep], out)
                self._held = buffer[len(buffer) - keep :]
                break
            self._show(buffer[:at], out)
            # The blank before a call is layout, not content (unless it is no call).
            self._before, self._space = self._space, ""
            buffer = buffer[at + len(self._syntax.open) :]
            self._inside, self._body = True, ""
        return out

    def flush(self, *, truncated: bool = False) -> list[Delta]:
        """The end of the output: a call without its closing marker is read as it is.

        With ``truncated`` (the output hit its token limit) an unfinished call is
        dropped: it is the start of a call, not text the model wrote for the reader, and
        the finish reason ``length`` tells the client it was cut.
        """
        out: list[Delta] = []
        held, self._held = self._held, ""
        self._show(held, out)
        if self._inside and truncated and self._syntax.close:
            self._inside, self._body, self._started = False, "", None
        elif self._inside:
            self._stream(self._body, out, final=True)
            self._finish(self._body, "", out)
        if not self.calls_made and self._space:
            out.append(Delta(text=self._space))
        self._space = ""
        return out

    def _show(self, text: str, out: list[Delta]) -> None:
        """Pass ``text`` on, holding back trailing blanks (they may precede a call)."""
        if self.calls_made and not self._space and not any(d.text for d in out):
            text = text.lstrip()  # the blank after a call is layout too
        body = text.rstrip()
        if body:
            out.append(Delta(text=self._space + body))
            self._space = text[len(body) :]
        else:
            self._space += text

    def _stream(self, body: str, out: list[Delta], *, final: bool) -> None:
        """Announce the call once its name is read, then stream its arguments' text.

        The call object's own closing brace (and blanks, and a closing marker still being
        written) stays back until it is clear it is not part of the arguments.
        """
        if self._syntax.array:
            return
        if self._started is None:
            head = _HEAD.match(body)
            if head is None:
                return
            try:
                name = json.loads(f'"{head.group(1)}"')
            except ValueError:
                return
            if name not in self._tools:
                return
            self._started = ToolCall(new_call_id(), name, "")
            self._arguments_at = self._sent = head.end()
            out.append(Delta(tool_call_start=self._started))
        end = len(body) if final else len(body) - _partial_suffix(body, self._syntax.close)
        end = len(body[:end].rstrip())
        if end > self._arguments_at and body[end - 1] == "}":
            end = len(body[: end - 1].rstrip())  # the call object's closing brace
        if end > self._sent:
            out.append(Delta(tool_call_text=body[self._sent : end]))
            self._sent = end

    def _finish(self, body: str, close: str, out: list[Delta]) -> None:
        self._inside, self._body = False, ""
        started, self._started = self._started, None
        parsed = self._parse(body)
        if parsed is None:
            if started is None:
                out.append(Delta(text=f"{self._before}{self._syntax.open}{body}{close}"))
                return
            # Announced and streamed, so it stands, with the text the client already has.
            parsed = [ToolCall(started.id, started.name, body[self._arguments_at : self._sent])]
        elif started is not None:
            arguments = body[self._arguments_at : self._sent]
            parsed = [ToolCall(started.id, started.name, arguments)]
        out.append(Delta(tool_calls=tuple(parsed)))
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
