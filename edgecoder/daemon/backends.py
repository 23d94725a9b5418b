"""Choosing and starting the inference backend: ``auto``, ``llamacpp`` or ``ollama``.

``auto`` uses the Ollama daemon when it answers at ``inference.ollama_url``, else the
embedded llama.cpp backend. A backend that cannot start leaves the node running without
inference: ``/healthz`` and ``edgecoder status`` say which backend was asked for, which
runs, and why.
"""

from __future__ import annotations

import logging
from pathlib import Path

from edgecoder.config import Config
from edgecoder.errors import BackendUnavailableError
from edgecoder.inference.backend import Backend
from edgecoder.inference.executor import BackendState
from edgecoder.storage.database import Database

__all__ = ("start_backend",)

log = logging.getLogger(__name__)


async def _embedded(config: Config, database: Database, data_dir: Path) -> Backend:
    from edgecoder.adapters.backends.llamacpp import LlamaCppBackend

    inference = config.inference
    backend = LlamaCppBackend(
        database,
        data_dir,
        context_length=inference.context_length,
        threads=inference.threads,
        slots=inference.slots,
        max_queue=inference.max_queue,
    )
    await backend.start()
    return backend


async def _ollama(config: Config) -> Backend:
    from edgecoder.adapters.backends.ollama import OllamaBackend

    inference = config.inference
    backend = OllamaBackend(
        inference.ollama_url,
        context_length=inference.context_length,
        slots=inference.slots,
        max_queue=inference.max_queue,
    )
    await backend.start()
    return backend


async def start_backend(
    config: Config, database: Database, data_dir: Path
) -> tuple[Backend | None, BackendState]:
    """Start the configured backend; never raises for an unavailable one."""
    requested = config.inference.backend
    url = config.inference.ollama_url
    try:
        if requested == "ollama":
            return await _ollama(config), BackendState(
                requested, "ollama", "ready", f"Ollama at {url}"
            )
        if requested == "llamacpp":
            backend = await _embedded(config, database, data_dir)
            return backend, BackendState(requested, "llamacpp", "ready", "embedded llama.cpp")
        try:
            backend = await _ollama(config)
        except BackendUnavailableError as exc:
            log.info("auto backend: %s; using embedded llama.cpp", exc)
            backend = await _embedded(config, database, data_dir)
            reason = f"embedded llama.cpp (no Ollama answered at {url})"
            return backend, BackendState(requested, "llamacpp", "ready", reason)
        return backend, BackendState(requested, "ollama", "ready", f"Ollama answered at {url}")
    except BackendUnavailableError as exc:
        log.error("no inference backend: %s", exc)
        return None, BackendState(requested, None, "unavailable", str(exc))
