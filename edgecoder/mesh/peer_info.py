"""What the two self-authored gossip records say: a node's *peer* record and its *advert*.

A peer record (kind ``peer``, sequence number = the node's incarnation) says where the
node is: its mesh URL, every address it has, its API port, its network name and version.
An advert (kind ``advert``, its own sequence) says what it can do and how busy it is (see
``docs/mesh.md``). Both are signed by the node itself (:mod:`edgecoder.wire.records`), so
a relay can neither forge nor alter them. Everything here is integers and strings: the
canonical encoding has no floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from edgecoder.errors import RecordError
from edgecoder.mesh.advert_types import Advert
from edgecoder.wire.records import SignedRecord

__all__ = ("ADVERT", "PEER", "PeerInfo", "parse_advert", "parse_peer", "peer_body")

PEER = "peer"
ADVERT = "advert"
_MAX_ADDRS = 16


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A verified peer record's body."""

    url: str
    addrs: tuple[str, ...]
    api_port: int
    network: str
    version: str


def peer_body(
    url: str, addrs: list[str], api_port: int, network: str, version: str
) -> dict[str, object]:
    """The body of this node's peer record."""
    return {"url": url, "addrs": addrs[:_MAX_ADDRS], "api_port": api_port,
            "network": network, "version": version}  # fmt: skip


def _fail(message: str) -> RecordError:
    return RecordError("bad_body", message)


def parse_peer(record: SignedRecord) -> PeerInfo:
    """The body of a peer record, checked.

    :raises RecordError: ``bad_body``.
    """
    body = record.body
    url, addrs, port = body.get("url"), body.get("addrs"), body.get("api_port")
    network, version = body.get("network"), body.get("version")
    if not isinstance(url, str) or urlsplit(url).scheme != "http" or not urlsplit(url).hostname:
        raise _fail("a peer record needs an http:// mesh url")
    if not isinstance(addrs, list) or len(addrs) > _MAX_ADDRS:
        raise _fail(f"addrs must be a list of at most {_MAX_ADDRS} addresses")
    if not all(isinstance(a, str) and len(a) <= 64 for a in addrs):
        raise _fail("addrs must be strings")
    if type(port) is not int or not 0 < port < 65536:
        raise _fail("api_port must be a port number")
    if not isinstance(network, str) or not isinstance(version, str):
        raise _fail("network and version must be strings")
    return PeerInfo(url, tuple(addrs), port, network, version)


def parse_advert(record: SignedRecord) -> Advert:
    """The body of an advert, checked for shape (see :meth:`Advert.parse`).

    :raises RecordError: ``bad_body``.
    """
    return Advert.parse(record.body)
