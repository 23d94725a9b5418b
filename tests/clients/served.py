"""A node on a real loopback socket for client programs: the in-process node (scripted
backend, real apps) served by uvicorn in a thread of its own, so a test can run an npm or
PyPI client as a subprocess against ``url`` and then read what the backend was asked.

``agent_turn`` scripts the backend as a tool-using model would answer: asked with tools
and no tool result yet, it calls the first tool it knows how to fill in; given a tool
result, it answers with that result quoted, so a client's final answer proves the tool
really ran and its result came back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from edgecoder.inference.types import ChatRequest, Delta, ToolCall, ToolSpec, Usage
from tests.inprocess import InProcessNode, ScriptedBackend

__all__ = ("Served", "agent_turn", "served_node")

READERS = {"Read", "read_file"}
"""Tools that read a file: the scripted model asks them for ``notes.txt``."""
PATH_NAMES = ("file_path", "filepath", "path")


def _arguments(tool: ToolSpec) -> dict[str, object] | None:
    """What the scripted model passes ``tool``, or None if it does not use it."""
    if tool.name == "get_weather":
        return {"city": "Paris"}
    if tool.name in READERS:
        properties = tool.parameters.get("properties")
        names = [n for n in PATH_NAMES if isinstance(properties, dict) and n in properties]
        return {names[0]: "notes.txt"} if names else None
    return None


def agent_turn(request: ChatRequest) -> tuple[Delta, ...] | None:
    """The scripted model's turn: a call, an answer quoting a tool result, or the reply."""
    if not request.tools or request.tool_choice == "none":
        return None
    last = request.messages[-1]
    usage = Usage(sum(len(m.content.split()) for m in request.messages), 9)
    if last.role == "tool":
        answer = f"The tool said: {last.content.strip()}"
        return (Delta(text=answer), Delta(finish_reason="stop", usage=usage))
    for tool in request.tools:
        arguments = _arguments(tool)
        if arguments is not None:
            call = ToolCall(f"call_{tool.name}", tool.name, json.dumps(arguments))
            return (Delta(tool_calls=(call,)), Delta(finish_reason="tool_calls", usage=usage))
    return None


@dataclass
class Served:
    """The running node: its base URL, an admin key, and its scripted backend."""

    url: str
    key: str
    backend: ScriptedBackend


@contextmanager
def served_node(data_dir: Path) -> Iterator[Served]:
    """Serve a fresh in-process node on 127.0.0.1 (a free port) until the block ends."""
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # clients may connect at once: they wait in the backlog
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    opened: concurrent.futures.Future[InProcessNode] = concurrent.futures.Future()
    server: list[uvicorn.Server] = []

    async def run() -> None:
        try:
            node = await InProcessNode.open(data_dir)
        except BaseException as exc:
            opened.set_exception(exc)
            raise
        node.backend.script = agent_turn
        config = uvicorn.Config(node.client_app, log_level="warning", lifespan="off")
        server.append(uvicorn.Server(config))
        opened.set_result(node)
        try:
            await server[0].serve(sockets=[sock])
        finally:
            await node.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    node = opened.result(timeout=30)
    try:
        yield Served(f"http://127.0.0.1:{port}", node.admin_key, node.backend)
    finally:
        loop.call_soon_threadsafe(setattr, server[0], "should_exit", True)
        thread.join(30)
        loop.close()
        sock.close()
