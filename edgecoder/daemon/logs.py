"""Logging to stderr, one line per event; with journald, lines carry syslog priorities."""

from __future__ import annotations

import logging
import sys

__all__ = ("configure_logging",)

_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    """``<priority>logger: message``: journald stamps the time and reads the priority."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record).replace("\n", " | ")
        return f"<{_PRIORITY.get(record.levelno, 6)}>{line}"


def configure_logging(level: str, *, journal: bool) -> None:
    """Send every log record at ``level`` or above to stderr, one line each.

    :param level: ``debug``, ``info``, ``warning`` or ``error``.
    :param journal: stderr is connected to journald (``$JOURNAL_STREAM``).
    """
    handler = logging.StreamHandler(sys.stderr)
    if journal:
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own start/stop chatter duplicates ours; keep its warnings and errors.
    # httpx logs every request at INFO: one line per gossip message.
    if level != "debug":
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
