"""Fixtures of the unit tests: a whole node in process (see :mod:`tests.inprocess`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.inprocess import InProcessNode


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[InProcessNode]:
    """A node's services and apps over a fresh database, with a scripted backend."""
    node = await InProcessNode.open(tmp_path)
    yield node
    await node.close()
