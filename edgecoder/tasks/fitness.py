"""How fit a node is for a task: predicted time to first token and candidates.

Pure functions of what a node knows (its own state, or a peer's signed advert), so the
origin's choice of candidates, a worker's claim delay and the local-first decision all
use one model of cost:

    TTFT = load + prompt_tokens / prefill_rate + queue wait,  scaled up by CPU load,
    plus a large penalty while the owner is using the machine.

A model that is not loaded costs its load time (size over an assumed disk rate); a model
whose context cannot hold the prompt plus at least one output token disqualifies the
node. The claim delay built on it is :func:`edgecoder.tasks.claim_delay.claim_delay_ms`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from edgecoder.mesh.advert_types import Advert, AdvertModel

__all__ = (
    "Fit",
    "ModelFit",
    "estimate_prompt_tokens",
    "fits_context",
    "peer_fit",
    "predicted_ttft_ms",
    "rank",
)

LOAD_BYTES_PER_S = 500 * 1024 * 1024
"""Assumed rate at which a model file is loaded into memory (an SSD or a warm cache)."""
DEFAULT_PREFILL_TPS = 50
"""Prefill rate assumed for a node that has not measured its own yet (a slow box)."""
OWNER_BUSY_PENALTY_MS = 60_000
"""Added to a node's TTFT while its owner uses it: it works for peers only as a last resort."""
_CHARS_PER_TOKEN = 3
_TOKENS_PER_MESSAGE = 8


def estimate_prompt_tokens(texts: list[str]) -> int:
    """An upper-bound estimate of a prompt's tokens without a tokenizer.

    Tokenizers of code models average 3.5-4.5 characters per token on English and code;
    three characters per token, plus a few tokens of template per message, errs high, so
    a worker's context check never admits a prompt that will not fit.
    """
    chars = sum(len(t) for t in texts)
    return math.ceil(chars / _CHARS_PER_TOKEN) + _TOKENS_PER_MESSAGE * max(1, len(texts))


@dataclass(frozen=True, slots=True)
class ModelFit:
    """How a node holds one model, where no advert lists it (simulations); an advert's
    entry (:class:`~edgecoder.mesh.advert_types.AdvertModel`) says the same and more."""

    loaded: bool
    context_length: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Fit:
    """A node's fitness for one task; lower ``ttft_ms`` is fitter."""

    node_id: str
    ttft_ms: int
    loaded: bool
    owner_busy: bool
    price_pct: int = 100
    """The price multiplier the node advertises (what a receipt for its work states)."""
    size_class: str = "?"
    """The size class of its copy of the model (what the task is priced by)."""
    context_length: int = 0
    """Its copy's context (0: unknown): bounds the output of a task without max_tokens."""


def predicted_ttft_ms(
    *,
    model: AdvertModel | ModelFit,
    prompt_tokens: int,
    prefill_tps: int,
    queued_ahead: int,
    task_ms: int,
    load_pct: int,
    owner_busy: bool,
) -> int:
    """Predicted milliseconds from grant to first token on a node.

    ``queued_ahead`` is how many generations must finish before this one gets a slot
    (0 with a free slot), each taking about ``task_ms``.
    """
    load_ms = 0 if model.loaded else model.size_bytes * 1000 // LOAD_BYTES_PER_S
    rate = prefill_tps if prefill_tps > 0 else DEFAULT_PREFILL_TPS
    prefill_ms = prompt_tokens * 1000 // rate
    ttft = load_ms + prefill_ms + queued_ahead * task_ms
    ttft = ttft * (100 + max(0, load_pct)) // 100
    return ttft + (OWNER_BUSY_PENALTY_MS if owner_busy else 0)


def fits_context(model: AdvertModel | ModelFit, prompt_tokens: int) -> bool:
    """Whether the prompt and at least one output token fit the model's context."""
    return model.context_length <= 0 or prompt_tokens + 1 <= model.context_length


def peer_fit(
    node_id: str,
    advert: Advert,
    model: str,
    prompt_tokens: int,
    task_ms: int,
    assigned: int = 0,
) -> Fit | None:
    """A peer's fitness from its advert; None when it lacks the model or the context.

    ``assigned`` is how many of this origin's tasks run on the peer now: fresher than the
    advert's queue depth, which is only as new as the advert.
    """
    held = advert.model(model)
    if held is None or not fits_context(held, prompt_tokens):
        return None
    if advert.slots <= 0:
        return None
    ttft = predicted_ttft_ms(
        model=held,
        prompt_tokens=prompt_tokens,
        prefill_tps=advert.prefill_tps,
        queued_ahead=max(advert.queue_depth, assigned - advert.slots + 1),
        task_ms=task_ms,
        load_pct=advert.load_pct,
        owner_busy=advert.owner_busy,
    )
    # A price of 0 is read as the default, as it always was.
    return Fit(node_id, ttft, held.loaded, advert.owner_busy, advert.price_pct or 100,
               held.size_class, held.context_length)  # fmt: skip


RANK_BANDS_PER_BUDGET = 8
"""Candidates whose predicted TTFT falls in the same band of ``ttft_budget_ms / 8`` rank
as equals."""


def rank(fits: list[Fit], budget_ms: int, rng: random.Random) -> list[Fit]:
    """Candidates in the order to offer them: by predicted TTFT in bands of an eighth of
    the budget, in random order within a band.

    Every origin ranks from the same adverts, so a strict order sends every origin's
    tasks to the same few fastest workers at once: they fill up, and the tasks walk down
    the ranking round by round (the claim simulator measured p50 12 s of added TTFT at
    1,000 workers). Workers within a band are all about as fast; spreading the tasks over
    them costs each task at most a band.
    """
    band = max(1, budget_ms // RANK_BANDS_PER_BUDGET)
    shuffled = list(fits)
    rng.shuffle(shuffled)
    return sorted(shuffled, key=lambda fit: fit.ttft_ms // band)
