"""The client API's dialects, one object each: OpenAI's (and its Responses API),
Anthropic's and Ollama's.

What a dialect provides is :class:`~edgecoder.adapters.web.dialect.Dialect`; each lives
in its own module (:mod:`~edgecoder.adapters.web.openai_dialect`,
:mod:`~edgecoder.adapters.web.responses_dialect`,
:mod:`~edgecoder.adapters.web.anthropic_dialect`,
:mod:`~edgecoder.adapters.web.ollama_dialect`) and is named here.
"""

from __future__ import annotations

from edgecoder.adapters.web.anthropic_dialect import ANTHROPIC, AnthropicDialect
from edgecoder.adapters.web.dialect import Answer, Dialect
from edgecoder.adapters.web.ollama_dialect import OLLAMA, OllamaDialect
from edgecoder.adapters.web.openai_dialect import OPENAI, OpenAIDialect
from edgecoder.adapters.web.responses_dialect import RESPONSES, ResponsesDialect

__all__ = (
    "ANTHROPIC",
    "DIALECTS",
    "OLLAMA",
    "OPENAI",
    "RESPONSES",
    "Answer",
    "AnthropicDialect",
    "Dialect",
    "OllamaDialect",
    "OpenAIDialect",
    "ResponsesDialect",
)

DIALECTS: tuple[Dialect, ...] = (OPENAI, RESPONSES, ANTHROPIC, OLLAMA)
"""Every dialect the client listener speaks."""
