"""Prompt lines that change on every request and mean nothing to the model, removed.

A backend with a prompt cache (llama.cpp keeps the longest common prefix of the previous
prompt in its KV cache) reuses only the tokens before the first difference. Some clients
put a line that changes on every request at the very start of the system prompt: Claude
Code's ``x-anthropic-billing-header: cc_version=…; cc_entrypoint=…; cch=<hash>;`` is the
first system block of each request, its hash new every turn, so every turn would read the
whole conversation again (minutes on a small box). Such lines are telemetry for the
client's own vendor and carry no instruction, so they are dropped before the prompt is
built; everything else in the system prompt is kept byte for byte.
"""

from __future__ import annotations

import re

__all__ = ("VOLATILE_LINE_PREFIXES", "strip_volatile_lines")

VOLATILE_LINE_PREFIXES: tuple[str, ...] = ("x-anthropic-billing-header:",)
"""Starts of lines dropped from system prompts (matched at the start of a line)."""

_VOLATILE = re.compile(
    "|".join(rf"^[ \t]*{re.escape(p)}[^\n]*(?:\n|$)" for p in VOLATILE_LINE_PREFIXES),
    re.MULTILINE | re.IGNORECASE,
)


def strip_volatile_lines(text: str) -> str:
    """``text`` without its volatile lines (see :data:`VOLATILE_LINE_PREFIXES`)."""
    return _VOLATILE.sub("", text)
