"""A token count for a prompt no tokenizer here can read: an estimate, said to be one.

Used where the exact count would need a model this node does not hold (a model served by
a peer, or by Ollama, whose API has no tokenizer): Anthropic's ``count_tokens`` is itself
documented as an estimate, and clients use it to budget context, not to bill.
"""

from __future__ import annotations

import json
import math

from edgecoder.inference.types import ChatRequest

__all__ = ("BYTES_PER_TOKEN", "approximate_prompt_tokens")

BYTES_PER_TOKEN = 4
"""UTF-8 bytes per token in English prose and code for the BPE vocabularies in use."""


def approximate_prompt_tokens(request: ChatRequest) -> int:
    """About how many tokens ``request``'s messages and tools take."""
    size = 0
    for message in request.messages:
        size += len(message.content.encode()) + 8  # the role and turn markers
        size += sum(len(c.name) + len(c.arguments.encode()) + 16 for c in message.tool_calls)
    for tool in request.tools:
        size += len(tool.name) + len(tool.description.encode())
        size += len(json.dumps(tool.parameters).encode())
    return math.ceil(size / BYTES_PER_TOKEN)
