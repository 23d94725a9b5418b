"""The client API's dialects, one object each: OpenAI's and Ollama's (Anthropic's to come).

What a dialect provides is :class:`~edgecoder.adapters.web.dialect.Dialect`; each lives
in its own module (:mod:`~edgecoder.adapters.web.openai_dialect`,
:mod:`~edgecoder.adapters.web.ollama_dialect`) and is named here.
"""

from __future__ import annotations

from edgecoder.adapters.web.dialect import Answer, Dialect
from edgecoder.adapters.web.ollama_dialect import OLLAMA, OllamaDialect
from edgecoder.adapters.web.openai_dialect import OPENAI, OpenAIDialect

__all__ = ("DIALECTS", "OLLAMA", "OPENAI", "Answer", "Dialect", "OllamaDialect", "OpenAIDialect")

DIALECTS: tuple[Dialect, ...] = (OPENAI, OLLAMA)
"""Every dialect the client listener speaks."""
