"""Rendering a model's own chat template (GGUF ``tokenizer.chat_template``, Jinja2).

Rendered in a sandbox: a template is data from a model file, not trusted code. The BOS
token is left to the tokenizer (it adds one) and end-of-turn tokens are stopped on by id,
so both render as empty strings here.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from edgecoder.errors import BadRequestError
from edgecoder.inference.types import ChatMessage

__all__ = ("render_template",)


@lru_cache(maxsize=16)
def _compile(template: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise BadRequestError(f"the model's chat template refused the messages: {message}")

    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(template)
    except TemplateError as exc:
        raise BadRequestError(f"the model's chat template is invalid: {exc}") from None


def render_template(template: str, messages: Sequence[ChatMessage]) -> tuple[str, tuple[str, ...]]:
    """Render ``messages`` with the template, ready for the assistant's reply."""
    compiled = _compile(template)
    prompt = compiled.render(
        messages=[{"role": m.role, "content": m.content} for m in messages],
        add_generation_prompt=True,
        bos_token="",
        eos_token="",
    )
    return str(prompt), ()
