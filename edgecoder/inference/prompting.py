"""Turning chat messages and fill-in-the-middle requests into a model's prompt text.

Three chat formats, chosen per model:

* the model's own chat template (GGUF ``tokenizer.chat_template``), when it has one;
* Gemma's turn format for ``gemma*`` architectures without a template (the Gemma 3 270M
  base model shipped as the default has none): a system message is folded into the first
  user turn, since Gemma has no system role;
* a plain transcript (``System:``/``User:``/``Assistant:``) for any other model.

Fill-in-the-middle uses the model's FIM tokens when its vocabulary has them. A model
without them completes the prefix only, and the suffix's first non-blank line becomes a
stop string so the completion does not run into the code after the cursor; such models
report ``supports_fim = False``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgecoder.inference.types import ChatMessage

__all__ = (
    "FIM_TOKEN_SETS",
    "ChatFormat",
    "FimFormat",
    "format_gemma",
    "format_transcript",
    "plan_fim",
)

ChatFormat = Callable[[Sequence[ChatMessage]], str]

FIM_TOKEN_SETS: tuple[tuple[str, str, str], ...] = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),  # Qwen2.5-Coder, CodeGemma
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),  # StarCoder
    ("<PRE>", "<SUF>", "<MID>"),  # Code Llama
)
"""Known fill-in-the-middle token triples (prefix, suffix, middle), tried in order."""

GEMMA_STOPS = ("<end_of_turn>", "<start_of_turn>")
TRANSCRIPT_STOPS = ("\nUser:", "\nSystem:")


def format_gemma(messages: Sequence[ChatMessage]) -> str:
    """Gemma's turn format; the reply starts after ``<start_of_turn>model``."""
    parts: list[str] = []
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    pending_system = system
    for message in messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        content = message.content
        if message.role == "tool":
            content = f"Tool result ({message.tool_call_id}):\n{content}"
        if role == "user" and pending_system:
            content = f"{pending_system}\n\n{content}"
            pending_system = ""
        parts.append(f"<start_of_turn>{role}\n{content}<end_of_turn>\n")
    if pending_system:
        parts.append(f"<start_of_turn>user\n{pending_system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


def format_transcript(messages: Sequence[ChatMessage]) -> str:
    """A plain transcript for models with no template; the reply follows ``Assistant:``."""
    names = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
    lines = [f"{names[m.role]}: {m.content}" for m in messages]
    return "\n".join([*lines, "Assistant:"])


@dataclass(frozen=True, slots=True)
class FimFormat:
    """How one fill-in-the-middle request is put to a model."""

    prompt: str
    stops: tuple[str, ...]
    native: bool
    """True when the model's own FIM tokens are used."""


def plan_fim(prefix: str, suffix: str, fim_tokens: tuple[str, str, str] | None) -> FimFormat:
    """Build the prompt for completing between ``prefix`` and ``suffix``."""
    if fim_tokens is not None:
        pre, suf, mid = fim_tokens
        return FimFormat(prompt=f"{pre}{prefix}{suf}{suffix}{mid}", stops=(), native=True)
    first_line = next((line for line in suffix.splitlines() if line.strip()), "")
    stops = (first_line.strip(),) if first_line.strip() else ()
    return FimFormat(prompt=prefix, stops=stops, native=False)
