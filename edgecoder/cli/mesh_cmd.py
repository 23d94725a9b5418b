"""``edgecoder mesh request``: curl for the mesh, signed with this node's key."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import httpx

from edgecoder.cli.options import add_config_option, config_from_args
from edgecoder.clock import SystemClock
from edgecoder.errors import BadRequestError, EdgeCoderError, IdentityError
from edgecoder.storage.keystore import load_identity
from edgecoder.wire import canonical

__all__ = ("add_parser", "request")


def add_parser(commands: Any) -> None:
    """Register ``mesh`` and its subcommands."""
    parser: argparse.ArgumentParser = commands.add_parser("mesh", help="talk to other nodes")
    mesh = parser.add_subparsers(dest="mesh_command", metavar="ACTION", parser_class=type(parser))
    mesh.required = True
    req = mesh.add_parser("request", help="send a request signed with this node's key")
    req.add_argument("url", help="the peer's mesh listener, e.g. http://10.0.0.5:4301")
    req.add_argument("method", help="HTTP method, e.g. POST")
    req.add_argument("path", help="path with query, e.g. /mesh/ping")
    req.add_argument("--body", default="", help="JSON body (sent in canonical form)")
    req.add_argument(
        "--dry-run", action="store_true", help="print the signed request as JSON; send nothing"
    )
    add_config_option(req)
    req.add_argument("--data-dir", metavar="DIR", help="this node's data directory")
    req.set_defaults(handler=request)


def request(args: argparse.Namespace) -> int:
    """Sign and send (or print) one mesh request; exit 1 when the peer refuses it."""
    # Imported here, not at the top: every edgecoder command would pay for the web stack.
    from edgecoder.adapters.transports.mesh_client import MeshClient
    from edgecoder.daemon.agent import read_passphrase

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
