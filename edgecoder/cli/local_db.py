"""Running a CLI operation against this node's database, with or without a running agent.

SQLite in WAL mode lets the CLI and the agent use the database at once; the agent sees
changes (new keys, imported models) on its next lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from edgecoder.config import Config
from edgecoder.storage.database import Database
from edgecoder.storage.datadir import prepare_data_dir

__all__ = ("run_with_database",)

T = TypeVar("T")


def run_with_database(config: Config, operation: Callable[[Database], Awaitable[T]]) -> T:
    """Open the node database (creating the data dir if needed), run ``operation``, close.

    :raises DataDirError: the data dir is unusable.
    :raises StorageError: the database cannot be opened.
    """

    async def main() -> T:
        await asyncio.to_thread(prepare_data_dir, config.node.data_dir)
        database = await Database.open(config.node.data_dir)
        try:
            return await operation(database)
        finally:
            await database.close()

    return asyncio.run(main())
