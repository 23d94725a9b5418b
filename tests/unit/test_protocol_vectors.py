"""The published test vectors in docs/protocol-vectors.json are what the code computes.

Regenerate after a deliberate protocol change with:
``.venv/bin/python -m tests.unit.test_protocol_vectors > docs/protocol-vectors.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from edgecoder.security.identity import NodeIdentity
from edgecoder.security.payloads import open_sealed, seal, x25519_public
from tests.conftest import Core

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "protocol-vectors.json"
TEST_SEED = bytes(range(32))
PEER_SEED = bytes(range(32, 64))
EPHEMERAL = bytes(range(64, 96))
NONCE = bytes([0x42]) * 24
CANONICAL_CASES: list[Any] = [
    {},
    {"b": 1, "a": [True, False, None], "c": "x"},
    {"node_id": "2em3lh5rvvr7huixdb5lyweitcywjtzw", "seq": 7, "models": [{"name": "gemma3:270m",
     "context": 8192}]},
    {"text": "tab\there \"quoted\" back\\slash \u0001 é 😀", "neg": -9007199254740991},
]  # fmt: skip


def compute(core: Any) -> dict[str, Any]:
    public, secret = core.signing.seed_keypair(TEST_SEED)
    peer = NodeIdentity(PEER_SEED)
    canonical = []
    for case in CANONICAL_CASES:
        data = core.canonical.encode(case)
        canonical.append({
            "object": case,
            "canonical_utf8": data.decode("utf-8"),
            "sha256": hashlib.sha256(data).hexdigest(),
            "ed25519_signature": core.signing.sign(secret, data).hex(),
        })  # fmt: skip
    body = core.canonical.encode({"hello": "mesh"})
    headers = core.envelope.sign_request(
        secret, public, "POST", "/mesh/ping?probe=1", peer.node_id, body, 1_800_000_000_000,
        nonce="000102030405060708090a0b0c0d0e0f",
    )  # fmt: skip
    signed = core.envelope.signing_bytes(
        "POST", "/mesh/ping?probe=1", headers["x-ec-sender"], peer.node_id, 1_800_000_000_000,
        headers["x-ec-nonce"], headers["x-ec-body-sha256"],
    )  # fmt: skip
    plaintext = b'{"prompt":"hello"}'
    sealed = seal(peer.public_key, "task-0001", plaintext, ephemeral_secret=EPHEMERAL,
                  nonce=NONCE)  # fmt: skip
    assert open_sealed(peer, "task-0001", sealed) == plaintext
    return {
        "sealed_payload": {
            "recipient_seed": PEER_SEED.hex(),
            "recipient_x25519_public": x25519_public(peer.public_key).hex(),
            "task_id": "task-0001",
            "plaintext_utf8": plaintext.decode(),
            "ephemeral_secret": EPHEMERAL.hex(),
            "nonce": NONCE.hex(),
            "sealed": sealed.hex(),
        },
        "test_key": {
            "seed": TEST_SEED.hex(),
            "public_key": public.hex(),
            "node_id": core.envelope.node_id_of(public),
        },
        "canonical": canonical,
        "request": {
            "recipient_seed": PEER_SEED.hex(),
            "method": "POST",
            "target": "/mesh/ping?probe=1",
            "body": body.decode(),
            "signing_string": signed.decode(),
            "headers": headers,
        },
    }


def test_published_vectors_match(core: Core) -> None:
    published = json.loads(VECTORS.read_text())
    computed = compute(core)
    for section in ("test_key", "canonical", "request", "sealed_payload"):
        assert computed[section] == published[section], section


@pytest.mark.parametrize("case", range(len(CANONICAL_CASES)))
def test_published_bytes_decode_back(case: int) -> None:
    from edgecoder.wire.canonical import decode

    published = json.loads(VECTORS.read_text())["canonical"][case]
    assert decode(published["canonical_utf8"].encode()) == published["object"]


if __name__ == "__main__":
    from edgecoder import speedups

    print(json.dumps(compute(speedups), indent=2, ensure_ascii=False))
