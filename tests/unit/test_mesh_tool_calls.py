"""Tool calls run over the mesh like any request: the tools, the choice and the JSON
format reach the worker sealed in the payload, and the calls come back whole."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgecoder.inference.types import (
    ChatRequest,
    CompletionRequest,
    Delta,
    ToolCall,
    ToolSpec,
    Usage,
)
from tests.inmemory import Mesh, remote_task

pytestmark = pytest.mark.anyio

CALL = ToolCall("call_a", "read_file", '{"path": "notes.txt"}')
PATH = {"type": "object", "required": ["path"], "properties": {"path": {"type": "string"}}}
TOOL = ToolSpec("read_file", "Read a file", PATH)


async def test_a_tool_call_routes_over_the_mesh(tmp_path: Path) -> None:
    asked: list[ChatRequest | CompletionRequest] = []

    async def worker_model(
        node_id: str, request: ChatRequest | CompletionRequest
    ) -> AsyncIterator[Delta]:
        asked.append(request)
        yield Delta()  # admitted
        # What the embedded backend streams: the call announced, its arguments, then whole.
        yield Delta(tool_call_start=ToolCall(CALL.id, CALL.name, ""))
        yield Delta(tool_call_text=CALL.arguments)
        yield Delta(tool_calls=(CALL,))
        yield Delta(finish_reason="tool_calls", usage=Usage(7, 11))

    async with Mesh.open(tmp_path, workers=1) as mesh:
        mesh._execute = worker_model  # type: ignore[method-assign]
        task = remote_task(mesh, "What is in notes.txt?")
        chat = dataclasses.replace(
            task.request, tools=(TOOL,), tool_choice="read_file", parallel_tool_calls=False,
            json_schema={"type": "object"},
        )  # fmt: skip
        task = dataclasses.replace(task, request=chat)
        deltas = [delta async for delta in mesh.origin.run(task)]
    request = asked[-1]
    assert isinstance(request, ChatRequest)
    assert (request.tools, request.tool_choice, request.parallel_tool_calls) == (
        (TOOL,), "read_file", False)  # fmt: skip
    assert request.json_schema == {"type": "object"}
    assert [c for d in deltas for c in d.tool_calls] == [CALL]
    assert deltas[-1].finish_reason == "tool_calls"
