"""``edgecoder mesh request``: curl for the mesh, signed with this node's key."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import httpx

from edgecoder.adapters.transports.mesh_client import MeshClient
from edgecoder.cli.options import config_from_args
from edgecoder.clock import SystemClock
from edgecoder.errors import BadRequestError, EdgeCoderError, IdentityError
from edgecoder.storage.keystore import load_identity, read_passphrase
from edgecoder.wire import canonical

__all__ = ("request",)


def request(args: argparse.Namespace) -> int:
    """Sign and send (or print) one mesh request; exit 1 when the peer refuses it."""
    config = config_from_args(args)
    passphrase = read_passphrase(config.identity.passphrase_file)
    try:
        identity = load_identity(config.node.data_dir, passphrase)
    except FileNotFoundError:
        raise IdentityError(
            f"no node key in {config.node.data_dir}; start the agent once to create it"
        ) from None
    body = b""
    if args.body:
        try:
            body = canonical.encode(json.loads(args.body))
        except ValueError as exc:
            raise BadRequestError(f"--body is not canonical JSON data: {exc}", "body") from None

    async def main() -> int:
        client = MeshClient(identity, SystemClock())
        try:
            signed = await client.prepare(args.url, args.method, args.path, body)
            if args.dry_run:
                print(json.dumps(signed.as_dict(), indent=2))
                return 0
            try:
                response = await client.send(signed)
            except httpx.HTTPError as exc:
                raise EdgeCoderError(f"{args.url} could not be reached: {exc}") from None
        finally:
            await client.aclose()
        sys.stdout.write(response.text + ("\n" if not response.text.endswith("\n") else ""))
        if response.status_code >= 400:
            print(f"edgecoder: the peer answered HTTP {response.status_code}", file=sys.stderr)
            return 1
        return 0

    return asyncio.run(main())
