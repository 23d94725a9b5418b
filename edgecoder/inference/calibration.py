"""A short calibration run: how fast this node reads a prompt and writes tokens.

One completion of a fixed ~100-token prompt with 16 output tokens (``ignore_eos``, greedy):
prefill rate = prompt tokens / time to the first token; decode rate = (output tokens - 1)
/ time from the first token to the last. Run once after start, off the request path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from edgecoder.inference.backend import Backend
from edgecoder.inference.types import CompletionRequest, SamplingParams

__all__ = ("PROMPT", "Calibration", "calibrate")


@dataclass(frozen=True, slots=True)
class Calibration:
    """Measured speed of one model on this node (tokens per second)."""

    model: str
    prefill_tps: int
    decode_tps: int


PROMPT = (
    "def fibonacci(n: int) -> int:\n"
    '    """Return the n-th Fibonacci number, computed iteratively."""\n'
    "    a, b = 0, 1\n"
    "    for _ in range(n):\n"
    "        a, b = b, a + b\n"
    "    return a\n\n\n"
    "def is_prime(n: int) -> bool:\n"
    '    """Whether n is a prime number (trial division up to its square root)."""\n'
    "    if n < 2:\n"
    "        return False\n"
    "    i = 2\n"
    "    while i * i <= n:\n"
    "        if n % i == 0:\n"
    "            return False\n"
    "        i += 1\n"
    "    return True\n\n\n"
    "def gcd(a: int, b: int) -> int:\n"
)


async def calibrate(backend: Backend, model: str) -> Calibration:
    """Measure ``model`` on ``backend``.

    :raises InferenceError: the model could not run.
    """
    sampling = SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True)
    request = CompletionRequest(model=model, prompt=PROMPT, sampling=sampling)
    started = time.perf_counter()
    first = last = 0.0
    prompt_tokens = output_tokens = 0
    async for delta in backend.complete(request):
        now = time.perf_counter()
        if delta.text and not first:
            first = now
        last = now
        if delta.usage is not None:
            prompt_tokens, output_tokens = delta.usage.prompt_tokens, delta.usage.completion_tokens
    first = first or last
    prefill = prompt_tokens / max(first - started, 1e-6)
    decode = (output_tokens - 1) / (last - first) if output_tokens > 1 and last > first else 0.0
    return Calibration(model, int(prefill), int(decode))
