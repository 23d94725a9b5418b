"""What Claude Code's per-request billing line costs the prompt cache; prints JSON.

Run: ``.venv/bin/python tests/benchmarks/bench_billing_line.py [ROUNDS]``.

Claude Code opens every request's system prompt with a line whose hash changes each turn
(``x-anthropic-billing-header: …; cch=<hash>;``). llama.cpp reuses the longest common
prefix of the previous prompt, so a line that changes at the very start makes every
turn read the whole conversation again. On Gemma 270M with a system prompt of about
1,500 tokens (Claude Code's runs far longer), each round makes two turns of one
conversation, the second adding a short exchange, and measures the second turn's time
to first token two ways, side by side:

* ``kept``: the billing line reaches the model as sent (as without the node's fix);
* ``removed``: the line is removed, as ``/v1/messages`` does
  (``edgecoder/inference/volatile_lines.py``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgecoder.adapters.backends.llamacpp import LlamaCppBackend
from edgecoder.inference.types import ChatMessage, ChatRequest, SamplingParams
from edgecoder.inference.volatile_lines import strip_volatile_lines
from edgecoder.storage.database import Database

RULES = "\n".join(
    f"Rule {i}: keep functions short, name them for what they do, and test them." for i in range(90)
)


def request(nonce: str, turns: int, strip: bool) -> ChatRequest:
    billing = f"x-anthropic-billing-header: cc_version=2.1.37.0d9; cc_entrypoint=cli; cch={nonce};"
    system = f"{billing}\n{RULES}"
    messages = [ChatMessage("system", strip_volatile_lines(system) if strip else system)]
    for i in range(turns):
        messages += [
            ChatMessage("user", f"Question {i}?"),
            ChatMessage("assistant", f"Answer {i}."),
        ]
    messages.append(ChatMessage("user", "And now?"))
    return ChatRequest(
        "gemma3:270m", tuple(messages), SamplingParams(max_tokens=1, temperature=0.0)
    )


async def first_token_s(backend: LlamaCppBackend, chat: ChatRequest) -> float:
    started = time.perf_counter()
    async for delta in backend.chat(chat):
        if delta.finish_reason is not None:
            break
    return time.perf_counter() - started


async def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        database = await Database.open(Path(tmp))
        backend = LlamaCppBackend(database, Path(tmp), context_length=4096, threads=2, slots=1,
                                  max_queue=4)  # fmt: skip
        await backend.start()
        times: dict[str, list[float]] = {"kept": [], "removed": []}
        try:
            prompt_tokens = await backend.count_tokens(request("0", 1, True))
            for n in range(rounds):
                for way in ("kept", "removed"):
                    strip = way == "removed"
                    await first_token_s(backend, request(f"a{n}", 1, strip))  # turn 1
                    times[way].append(await first_token_s(backend, request(f"b{n}", 2, strip)))
        finally:
            await backend.close()
            await database.close()
    report = {
        "model": "gemma3:270m",
        "rounds": rounds,
        "prompt_tokens": prompt_tokens,
        "second_turn_first_token_s_p50": {
            k: round(statistics.median(v), 3) for k, v in times.items()
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
