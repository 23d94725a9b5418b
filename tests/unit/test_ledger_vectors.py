"""The published ledger vectors in docs/ledger-vectors.json are what the code computes.

Entries (canonical body, hash, signature) of a three-entry chain by a fixed key, a vouch,
the prices of a few tasks, a receipt's hash, and a checkpoint's root with an inclusion
proof — on both cores. Regenerate after a deliberate format change with:
``.venv/bin/python -m tests.unit.test_ledger_vectors > docs/ledger-vectors.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgecoder.ledger import entries as entries_module
from edgecoder.ledger.checkpoints import NO_CHECKPOINT, build, leaf, verify_proof
from edgecoder.ledger.entries import ESCROW, TREASURY, new_entry, parse_entry
from edgecoder.ledger.pricing import price_mc
from edgecoder.ledger.vouches import make_vouch
from edgecoder.security.identity import NodeIdentity
from edgecoder.tasks.receipts import receipt_hash
from tests.conftest import Core

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "ledger-vectors.json"
NODE_SEED = bytes(range(32))
NETWORK_SEED = bytes(range(32, 64))
TS = 1_800_000_000_000
PRICES = [(100, 50, "xs", 100), (100, 50, "m", 100), (1, 0, "xs", 1), (2000, 300, "l", 150)]


def compute() -> dict[str, Any]:
    node, network = NodeIdentity(NODE_SEED), NodeIdentity(NETWORK_SEED)
    vouch = make_vouch(network, network="office", network_key=network.public_key.hex(),
                       node=node.node_id, amount=100_000, issued_ms=TS)  # fmt: skip
    chain = []
    after = None
    postings = [("allowance", 100_000, TREASURY, vouch.hash), ("hold", 1_200, ESCROW, "0" * 32),
                ("release", 1_200, ESCROW, "0" * 32)]  # fmt: skip
    for kind, amount, party, ref in postings:
        after = new_entry(node, after, kind=kind, amount=amount, party=party, ref=ref, ts=TS)
        chain.append(after)
    receipt = {"task_id": "0" * 32, "attempt": 1, "origin": node.node_id, "worker": "a" * 32,
               "model": "gemma3:270m", "model_digest": "", "prompt_tokens": 100,
               "output_tokens": 50, "wall_ms": 900, "price_pct": 100, "finished_ms": TS,
               "price": 300, "total": 300}  # fmt: skip
    heads = {node.node_id: (3, chain[-1].hash_hex), "a" * 32: (1, "ab" * 32),
             "b" * 32: (7, "cd" * 32)}  # fmt: skip
    checkpoint = build(42, NO_CHECKPOINT, heads)
    keys = {"node_seed": NODE_SEED.hex(), "node_id": node.node_id,
            "network_seed": NETWORK_SEED.hex(),
            "network_key": network.public_key.hex()}  # fmt: skip
    prices = [{"prompt_tokens": p, "output_tokens": o, "size_class": s, "price_pct": m,
               "price_mc": price_mc(p, o, s, m)} for p, o, s, m in PRICES]  # fmt: skip
    entries = [{"entry": e.as_json(), "canonical_utf8": e.entry.encode().decode()}
               for e in chain]  # fmt: skip
    proof = [list(step) for step in checkpoint.proof_for(node.node_id) or []]
    return {
        "keys": keys,
        "prices": prices,
        "vouch": {"document": vouch.as_json(), "hash": vouch.hash},
        "chain": entries,
        "receipt": {"body": receipt, "hash": receipt_hash(receipt)},
        "checkpoint": {"body": checkpoint.body(), "hash": checkpoint.hash, "proof_for_node": proof},
    }


def test_published_vectors_match_on_both_cores(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entries_module, "chain", core.chain)
    assert compute() == json.loads(VECTORS.read_text())


def test_the_published_chain_and_proof_verify_as_published() -> None:
    published = json.loads(VECTORS.read_text())
    chain = [parse_entry(item["entry"]) for item in published["chain"]]
    assert entries_module.verify_segment("0" * 64, chain, bytes.fromhex(
        NodeIdentity(NODE_SEED).public_key.hex())) == -1  # fmt: skip
    cp = published["checkpoint"]
    own = leaf(published["keys"]["node_id"], 3, chain[-1].hash_hex)
    steps = [(str(a), str(b)) for a, b in cp["proof_for_node"]]
    assert verify_proof(own, steps, bytes.fromhex(cp["body"]["root"]))


if __name__ == "__main__":
    print(json.dumps(compute(), indent=2, ensure_ascii=False))
