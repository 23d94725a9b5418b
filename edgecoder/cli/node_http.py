"""Talking to the local node's client listener from the CLI: one request, clear failures."""

from __future__ import annotations

import argparse
import os
from typing import Any

import httpx

from edgecoder.cli.options import KEY_VARIABLE, config_from_args
from edgecoder.errors import AuthError, ConfigError, EdgeCoderError, NodeNotRunningError

__all__ = (
    "admin_key",
    "get_json",
    "local_url",
    "node_url",
    "post_json",
    "print_table",
)

_LOCAL = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104
_TIMEOUT_S = 5.0


def local_url(bind: str, port: int) -> str:
    """The URL that reaches a listener bound to ``bind:port`` from this machine."""
    host = _LOCAL.get(bind, bind)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def node_url(args: argparse.Namespace) -> str:
    """``--url``, else the client listener named by the configuration."""
    if args.url:
        return str(args.url).rstrip("/")
    config = config_from_args(args)
    return local_url(config.api.bind, config.api.port)


def get_json(
    url: str, path: str, api_key: str | None = None, timeout_s: float = _TIMEOUT_S
) -> dict[str, Any]:
    """GET ``url + path`` and return its JSON object (``timeout_s``: for each step).

    :raises NodeNotRunningError: nothing answers at ``url``.
    :raises AuthError: the key was refused (401 or 403); the node's message is kept.
    :raises EdgeCoderError: any other non-200 answer or a body that is not a JSON object.
    """
    return _request("GET", url, path, api_key, None, 200, timeout_s)


def post_json(
    url: str, path: str, body: dict[str, Any], api_key: str | None = None, status: int = 200
) -> dict[str, Any]:
    """POST ``body`` to ``url + path`` and return the JSON object it answers with ``status``.

    :raises NodeNotRunningError: nothing answers at ``url``.
    :raises AuthError: the key was refused (401 or 403); the node's message is kept.
    :raises EdgeCoderError: any other answer (the node's message is kept).
    """
    return _request("POST", url, path, api_key, body, status, _TIMEOUT_S)


def _request(
    method: str,
    url: str,
    path: str,
    api_key: str | None,
    body: object,
    status: int,
    timeout_s: float,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.request(method, f"{url}{path}", headers=headers, json=body,
                                 timeout=timeout_s)  # fmt: skip
    except httpx.ConnectError:
        raise NodeNotRunningError(f"no EdgeCoder node is running at {url}") from None
    except httpx.HTTPError as exc:
        raise NodeNotRunningError(f"the node at {url} did not answer: {exc}") from None
    try:
        document = response.json()
    except ValueError:
        document = None
    message = document.get("error", {}).get("message") if isinstance(document, dict) else None
    if response.status_code in (401, 403):
        raise AuthError(message or f"{url}{path} refused the API key")
    if response.status_code != status or not isinstance(document, dict):
        raise EdgeCoderError(
            f"{url}{path} answered HTTP {response.status_code}: {message or 'not a JSON object'}"
        )
    return document


def admin_key(args: argparse.Namespace) -> str:
    """``--api-key``, else ``$EDGECODER_API_KEY``.

    :raises ConfigError: neither is set.
    """
    key = args.api_key or os.environ.get(KEY_VARIABLE)
    if not key:
        raise ConfigError(
            f"an admin API key is needed: pass --api-key or set {KEY_VARIABLE} "
            "(create one with 'edgecoder keys create NAME --admin')"
        )
    return str(key)


def print_table(rows: list[list[str]]) -> None:
    """Print rows (the first is the header) in left-aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
