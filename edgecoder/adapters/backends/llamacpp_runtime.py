"""The blocking side of the embedded backend: llama-cpp-python calls, run in worker threads.

Nothing here touches the event loop. A generation runs as :func:`generate` in a thread,
hands text to ``emit`` as it is decoded, and stops at EOS, a stop string, ``max_tokens``,
or as soon as ``cancel`` is set (checked between tokens).
"""

from __future__ import annotations

import codecs
import ctypes
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecoder.errors import BackendUnavailableError, BadRequestError
from edgecoder.inference.stops import StopScanner
from edgecoder.inference.types import FinishReason, SamplingParams

__all__ = ("Generated", "LoadedModel", "embed", "generate", "load_model", "open_vocab")

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


def generate(
    model: LoadedModel,
    tokens: Sequence[int],
    sampling: SamplingParams,
    stops: Sequence[str],
    max_tokens: int,
    emit: Callable[[str], None],
    cancel: threading.Event,
) -> Generated:
    """Sample up to ``max_tokens`` tokens after ``tokens``, emitting text as it settles."""
    with model.lock:
        if cancel.is_set():
            return Generated(0, "stop", True)
        return _generate(model, tokens, sampling, stops, max_tokens, emit, cancel)


def _generate(
    model: LoadedModel,
    tokens: Sequence[int],
    sampling: SamplingParams,
    stops: Sequence[str],
    max_tokens: int,
    emit: Callable[[str], None],
    cancel: threading.Event,
) -> Generated:
    llm = model.llm
    if sampling.seed is not None:
        # A reused prompt prefix changes the logits' rounding; a seed promises a repeat.
        llm.reset()
        llm.set_seed(sampling.seed)
    else:
        llm.set_seed(secrets.randbits(31))
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    scanner = StopScanner(stops)
    produced = 0
    finish: FinishReason = "length"
    temperature = _DEFAULT_TEMPERATURE if sampling.temperature is None else sampling.temperature
    top_p = _DEFAULT_TOP_P if sampling.top_p is None else sampling.top_p
    top_k = _DEFAULT_TOP_K if sampling.top_k is None else sampling.top_k
    if max_tokens > 0:
        generation = llm.generate(
            list(tokens), temp=temperature, top_p=top_p, top_k=top_k, reset=True
        )
        for token in generation:
            if cancel.is_set():
                break
            if token in model.eos and not sampling.ignore_eos:
                finish = "stop"
                break
            produced += 1
            text = scanner.feed(decoder.decode(llm.detokenize([token])))
            if text:
                emit(text)
            if scanner.stopped:
                finish = "stop"
                break
            if produced >= max_tokens:
                break
    tail = scanner.feed(decoder.decode(b"", final=True)) + scanner.flush()
    if tail:
        emit(tail)
    return Generated(produced, finish, cancel.is_set())


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
