"""The blocking side of the embedded backend: llama-cpp-python calls, run in worker threads.

Nothing here touches the event loop. A generation runs as :func:`generate` in a thread,
hands text to ``emit`` as it is decoded, and stops at EOS, a stop string, ``max_tokens``,
or as soon as ``cancel`` is set (checked between tokens).
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import secrets
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecoder.adapters.backends.llamacpp_grammar import GrammarSampler, constrained
from edgecoder.errors import BackendUnavailableError, BadRequestError
from edgecoder.inference.stops import StopScanner
from edgecoder.inference.types import FinishReason, SamplingParams

__all__ = (
    "Constraint",
    "Generated",
    "LoadedModel",
    "check_grammar",
    "embed",
    "generate",
    "load_model",
    "open_vocab",
    "parameter_count",
)

_DEFAULT_TEMPERATURE = 0.8
_DEFAULT_TOP_P = 0.95
_DEFAULT_TOP_K = 40
_log_callback: Any = None


def _llama() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise BackendUnavailableError(
            "the embedded backend needs llama-cpp-python: pip install 'edgecoder[embedded]'"
        ) from None
    global _log_callback
    if _log_callback is None:
        # llama.cpp writes to stderr on its own; keep the agent's log one line per event.
        @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
        def _quiet(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
            return None

        _log_callback = _quiet
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    return llama_cpp


def open_vocab(path: Path) -> Any:
    """Open only the vocabulary and metadata of a GGUF file (fast, little memory)."""
    llama_cpp = _llama()
    try:
        return llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise BadRequestError(f"llama.cpp cannot read {path}: {exc}", "file") from None


def parameter_count(path: Path) -> int:
    """How many parameters the GGUF model at ``path`` has (read without loading weights)."""
    llama_cpp = _llama()
    vocab = open_vocab(path)
    try:
        return int(llama_cpp.llama_model_n_params(vocab.model))
    finally:
        vocab.close()


@dataclass(slots=True)
class LoadedModel:
    """A model in memory, ready to generate.

    A llama.cpp context must never be used by two threads at once: :func:`generate` and
    :func:`embed` hold :attr:`lock` for their whole run. The async slot pool decides who
    may *start*; this lock is what makes overlap impossible even when a cancelled request
    gives its slot back before its thread has noticed the cancellation.
    """

    llm: Any
    n_ctx: int
    eos: frozenset[int]
    lock: threading.Lock = field(default_factory=threading.Lock)


def load_model(path: Path, n_ctx: int, threads: int, *, embedding: bool = False) -> LoadedModel:
    """Load a GGUF model for generation (or, with ``embedding``, for mean-pooled vectors)."""
    llama_cpp = _llama()
    kwargs: dict[str, Any] = {
        "model_path": str(path),
        "n_ctx": n_ctx,
        "verbose": False,
        "embedding": embedding,
    }
    if threads > 0:
        kwargs["n_threads"] = threads
        kwargs["n_threads_batch"] = threads
    if embedding:
        kwargs["pooling_type"] = llama_cpp.LLAMA_POOLING_TYPE_MEAN
    try:
        llm = llama_cpp.Llama(**kwargs)
    except (ValueError, RuntimeError) as exc:
        raise BackendUnavailableError(f"llama.cpp cannot load {path}: {exc}") from None
    eos = {llm.token_eos()}
    for marker in (b"<end_of_turn>", b"<|im_end|>", b"<|eot_id|>", b"<|endoftext|>"):
        ids = llm.tokenize(marker, add_bos=False, special=True)
        if len(ids) == 1:
            eos.add(ids[0])
    return LoadedModel(llm=llm, n_ctx=llm.n_ctx(), eos=frozenset(eos))


@dataclass(frozen=True, slots=True)
class Generated:
    """How a generation ended."""

    completion_tokens: int
    finish_reason: FinishReason
    cancelled: bool
    stop: str = ""
    """The stop string that ended it, if one did."""


@dataclass(frozen=True, slots=True)
class Constraint:
    """A grammar (GBNF, root rule ``root``) the output must follow, after a fixed prefix.

    With no ``trigger`` it holds from the first token. With one, the model writes freely
    until its output contains ``trigger``; the grammar holds for what follows it (stop
    strings do not apply there: they would cut a call in half). Either way ``prefix`` is
    written first, as if the model had sampled it, and the grammar starts after it.
    """

    grammar: str
    trigger: str = ""
    prefix: str = ""


def check_grammar(model: LoadedModel, grammar: str) -> None:
    """Refuse a grammar llama.cpp cannot parse (its sampler would be a null pointer).

    :raises BadRequestError: the grammar does not parse.
    """
    llama_cpp = _llama()
    sampler = llama_cpp.llama_sampler_init_grammar(
        model.llm._model.vocab, grammar.encode("utf-8"), b"root"
    )
    if not sampler:
        raise BadRequestError("the tools' schemas could not be turned into a grammar", "tools")
    llama_cpp.llama_sampler_free(sampler)


def generate(
    model: LoadedModel,
    tokens: Sequence[int],
    sampling: SamplingParams,
    stops: Sequence[str],
    max_tokens: int,
    emit: Callable[[str], None],
    cancel: threading.Event,
    constraint: Constraint | None = None,
) -> Generated:
    """Sample up to ``max_tokens`` tokens after ``tokens``, emitting text as it settles."""
    with model.lock:
        if cancel.is_set():
            return Generated(0, "stop", True)
        run = _Run(model, sampling, max_tokens, emit, cancel, special=constraint is not None)
        return run.generate(tokens, stops, constraint)


class _Run:
    """One generation: its budget, decoder and sampling, across its (one or two) phases."""

    def __init__(
        self,
        model: LoadedModel,
        sampling: SamplingParams,
        max_tokens: int,
        emit: Callable[[str], None],
        cancel: threading.Event,
        *,
        special: bool,
    ) -> None:
        self.model, self.sampling, self.max_tokens = model, sampling, max_tokens
        self.emit, self.cancel = emit, cancel
        # Tool markers may be special tokens (Qwen's <tool_call>): render them as text.
        self.special = special
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.produced = 0
        self.seed = 0
        self.stop = ""
        self.finish: FinishReason = "length"

    def generate(
        self, tokens: Sequence[int], stops: Sequence[str], constraint: Constraint | None
    ) -> Generated:
        llm = self.model.llm
        self.seed = self.sampling.seed if self.sampling.seed is not None else secrets.randbits(31)
        if self.sampling.seed is not None:
            # A reused prompt prefix changes the logits' rounding; a seed promises a repeat.
            llm.reset()
        llm.set_seed(self.seed)
        if constraint is not None and not constraint.trigger:
            self._constrained(list(tokens), "", constraint)
        else:
            written = self._free(tokens, stops, constraint.trigger if constraint else "")
            if written is not None and constraint is not None:
                self._constrained(list(tokens), written, constraint)
        return Generated(self.produced, self.finish, self.cancel.is_set(), self.stop)

    def _tokens(self, tokens: list[int], grammar: str = "") -> Generator[str, None, None]:
        """Decoded pieces of the sampled tokens, until end of text, budget or cancel."""
        if self.produced >= self.max_tokens:
            return
        llm, sampling = self.model.llm, self.sampling
        temperature = _DEFAULT_TEMPERATURE if sampling.temperature is None else sampling.temperature
        top_p = _DEFAULT_TOP_P if sampling.top_p is None else sampling.top_p
        top_k = _DEFAULT_TOP_K if sampling.top_k is None else sampling.top_k
        with contextlib.ExitStack() as stack:
            if grammar:
                sampler = GrammarSampler(
                    llm, grammar, temperature=temperature, top_p=top_p, top_k=top_k, seed=self.seed
                )
                stack.enter_context(constrained(llm, sampler))
            generation = llm.generate(
                tokens, temp=temperature, top_p=top_p, top_k=top_k, reset=True
            )
            for token in generation:
                if self.cancel.is_set():
                    return
                if token in self.model.eos and not sampling.ignore_eos:
                    self.finish = "stop"
                    return
                self.produced += 1
                yield self.decoder.decode(llm.detokenize([token], special=self.special))
                if self.produced >= self.max_tokens:
                    self.finish = "length"
                    return

    def _free(self, tokens: Sequence[int], stops: Sequence[str], trigger: str) -> str | None:
        """Sample without a grammar; returns all text written once ``trigger`` appears."""
        scanner = StopScanner(stops)
        watch = _TriggerWatch(trigger)
        fired = False
        pieces = self._tokens(list(tokens))
        for piece in pieces:
            released, fired = watch.feed(piece)
            text = scanner.feed(released)
            if text:
                self.emit(text)
            if scanner.stopped:
                self.finish, self.stop = "stop", scanner.matched
                return None
            if fired:
                break
        pieces.close()
        tail = watch.flush() if not fired else ""
        tail = scanner.feed(tail + self.decoder.decode(b"", final=True)) + scanner.flush()
        if tail:
            self.emit(tail)
        return watch.written if fired else None

    def _constrained(self, tokens: list[int], written: str, constraint: Constraint) -> None:
        """Write the prefix after ``written`` (the free part), then sample in the grammar."""
        llm = self.model.llm
        self.finish = "length"
        prefix_ids = llm.tokenize(constraint.prefix.encode("utf-8"), add_bos=False, special=True)
        if constraint.prefix:
            self.emit(constraint.prefix)
            self.produced += len(prefix_ids)
        context = written + constraint.prefix
        ids = llm.tokenize(context.encode("utf-8"), add_bos=False, special=True) if context else []
        with contextlib.closing(self._tokens([*tokens, *ids], constraint.grammar)) as pieces:
            for piece in pieces:
                if piece:
                    self.emit(piece)
        tail = self.decoder.decode(b"", final=True)
        if tail:
            self.emit(tail)


class _TriggerWatch:
    """Passes text on until ``trigger`` appears (held back while it might be starting)."""

    def __init__(self, trigger: str) -> None:
        self.trigger = trigger
        self.held = ""
        self.written = ""
        """Everything released so far (the trigger last, once it fired)."""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text to pass on now, and whether the trigger was just completed."""
        if not self.trigger:
            self.written += text
            return text, False
        buffer = self.held + text
        at = buffer.find(self.trigger)
        if at >= 0:
            released = buffer[: at + len(self.trigger)]
            self.held = ""
            self.written += released
            return released, True
        keep = next(
            (n for n in range(min(len(self.trigger) - 1, len(buffer)), 0, -1)
             if buffer.endswith(self.trigger[:n])),
            0,
        )  # fmt: skip
        released = buffer[: len(buffer) - keep]
        self.held = buffer[len(buffer) - keep :]
        self.written += released
        return released, False

    def flush(self) -> str:
        """The held-back text, at the end."""
        held, self.held = self.held, ""
        self.written += held
        return held


def token_counts(model: LoadedModel, texts: Sequence[str]) -> list[int]:
    """How many tokens each of ``texts`` is, as :func:`embed` will read it."""
    llm = model.llm
    with model.lock:
        return [len(llm.tokenize(t.encode(), add_bos=True)) for t in texts]


def embed(model: LoadedModel, texts: Sequence[str]) -> tuple[list[list[float]], int]:
    """Mean-pooled, normalised vectors for ``texts``, and the tokens read."""
    llm = model.llm
    with model.lock:
        tokens = sum(len(llm.tokenize(t.encode(), add_bos=True)) for t in texts)
        vectors = llm.embed(list(texts), normalize=True)
    return [list(map(float, v)) for v in vectors], tokens
