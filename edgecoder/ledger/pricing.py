"""What a remote task costs its origin: the one pricing function (``docs/ledger.md`` §1).

Amounts are whole millicredits (mc; 1 credit = 1,000 mc). A task is priced from its
prompt and output tokens, the model's size class and the worker's price multiplier.
"""

from __future__ import annotations

from typing import Final

__all__ = (
    "MC_PER_CREDIT",
    "OUTPUT_WEIGHT",
    "SIZE_WEIGHTS",
    "UNBOUNDED_OUTPUT",
    "format_mc",
    "most_mc",
    "price_mc",
    "weight",
)

MC_PER_CREDIT: Final = 1000
OUTPUT_WEIGHT: Final = 4
"""An output token costs this many prompt tokens: it takes that much more machine time."""
SIZE_WEIGHTS: Final = {"xs": 1, "s": 2, "m": 4, "l": 8, "xl": 16}
"""Per size class (:func:`edgecoder.mesh.advert.size_class`); an unknown class counts as
``m``."""


def weight(size_class: str) -> int:
    """The price weight of a model's size class."""
    return SIZE_WEIGHTS.get(size_class, SIZE_WEIGHTS["m"])


def price_mc(prompt_tokens: int, output_tokens: int, size_class: str, price_pct: int) -> int:
    """The price in mc of a task with these token counts, on such a model and worker.

    :raises ValueError: a negative count, or a multiplier below 1.
    """
    if prompt_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts are never negative")
    if price_pct < 1:
        raise ValueError("a price multiplier is at least 1 %")
    units = (prompt_tokens + OUTPUT_WEIGHT * output_tokens) * weight(size_class) * price_pct
    return -(-units // 100)  # whole mc, rounded up


UNBOUNDED_OUTPUT: Final = 4096
"""The output a task without ``max_tokens`` is held for when the model's context is not
known either."""


def most_mc(
    prompt_tokens: int, max_tokens: int, size_class: str, price_pct: int, context_length: int
) -> int:
    """The most a task can cost on such a worker: its whole output budget, or, without one,
    what the model's context leaves after the prompt (:data:`UNBOUNDED_OUTPUT` when the
    context is unknown). What escrow holds before the task is offered."""
    if max_tokens > 0:
        output = max_tokens
    elif context_length > 0:
        output = max(1, context_length - prompt_tokens)
    else:
        output = UNBOUNDED_OUTPUT
    return price_mc(prompt_tokens, output, size_class, price_pct)


def format_mc(amount: int) -> str:
    """``12345`` → ``"12.345"`` credits (exact: no float)."""
    sign = "-" if amount < 0 else ""
    whole, part = divmod(abs(amount), MC_PER_CREDIT)
    return f"{sign}{whole}.{part:03d}"
