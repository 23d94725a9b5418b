"""How much one client request may ask for, beyond its size in bytes (``api.max_body_bytes``).

Each bound is far above what an IDE agent sends (Claude Code's longest sessions hold a few
hundred messages and fewer than a hundred tools) and low enough that one request cannot
hold the node for minutes. ``docs/limits.md`` lists them with their errors.
"""

from __future__ import annotations

from collections.abc import Sized

from edgecoder.errors import BadRequestError

__all__ = (
    "MAX_EMBEDDING_INPUTS",
    "MAX_MESSAGES",
    "MAX_STOPS",
    "MAX_STOP_CHARS",
    "MAX_TOOLS",
    "at_most",
)

MAX_MESSAGES = 2048
"""Messages (or Responses input items) in one chat request."""
MAX_TOOLS = 256
"""Tool definitions in one request (OpenAI allows 128; MCP-heavy agents send more)."""
MAX_STOPS = 16
"""Stop strings in one request (OpenAI allows 4)."""
MAX_STOP_CHARS = 256
"""Characters in one stop string."""
MAX_EMBEDDING_INPUTS = 512
"""Texts in one embeddings request (each is also bounded by the model's context)."""


def at_most(items: Sized, limit: int, name: str, what: str) -> None:
    """Refuse ``items`` when there are more than ``limit`` of them.

    :raises BadRequestError: naming the field ``name`` and the limit.
    """
    if len(items) > limit:
        raise BadRequestError(
            f"'{name}' has {len(items)} {what}; at most {limit} are accepted", name
        )
