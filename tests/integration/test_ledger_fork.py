"""A node that forks its credit chain is found out and shut out everywhere (§7).

Four real agents on loopback found one economy, and each holds the others' chains. One
of them is then made to fork: stopped, its first entry replaced by another it signs for
the same place (what a node rewriting its history would do), and started again. The
node that notices first blacklists it with the two entries as evidence; the entry
spreads by gossip, and every honest node checks the evidence itself and refuses the
forker's requests from then on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgecoder.ledger.entries import new_entry
from edgecoder.storage import ledger_rows
from edgecoder.storage.keystore import load_identity
from tests.integration.agent_process import AgentProcess, edgecoder
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = """
[mesh]
period_ms = 300
ack_timeout_ms = 100
advert_interval_s = 1
{bootstrap}
"""


class Node:
    def __init__(self, root: Path, name: str, seed: AgentProcess | None) -> None:
        workdir = root / name
        workdir.mkdir()
        boot = f'bootstrap = ["{seed.mesh_url}"]' if seed is not None else ""
        (workdir / "edgecoder.toml").write_text(FAST.format(bootstrap=boot))
        self.agent = AgentProcess(workdir)
        result = edgecoder("keys", "create", "root", "--admin", "--data-dir",
                           str(self.agent.data_dir), env=self.agent.env)  # fmt: skip
        assert result.returncode == 0, result.stderr
        self.key = result.stdout.strip()
        self.agent.start()
        self.node_id = str(self.agent.get(f"{self.agent.api_url}/healthz")[1]["node_id"])

    def get(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.agent.api_url}{path}", timeout=10,
                             headers={"Authorization": f"Bearer {self.key}"})  # fmt: skip
        assert response.status_code == 200, response.text
        return dict(response.json())

    def chain_heads(self) -> dict[str, tuple[int, str]]:
        db = sqlite3.connect(f"file:{self.agent.data_dir / 'edgecoder.db'}?mode=ro", uri=True)
        try:
            return ledger_rows.chain_heads(db)
        finally:
            db.close()


def test_a_forked_chain_is_proven_and_its_author_refused_by_every_peer(tmp_path: Path) -> None:
    nodes: list[Node] = []
    try:
        nodes.append(Node(tmp_path, "n0", None))
        for i in range(1, 4):
            nodes.append(Node(tmp_path, f"n{i}", nodes[0].agent))

        def founded() -> bool:
            views = [n.get("/admin/ledger") for n in nodes]
            return (
                all(v["allowance"] for v in views) and len({v["network_key"] for v in views}) == 1
            )

        wait_until(founded, 60, "one economy, every node granted its allowance")
        for node in nodes:  # everyone holds everyone's chain
            wait_until(lambda node=node: len(node.chain_heads()) == 4, 60, "every chain held")

        forker, honest = nodes[-1], nodes[:-1]
        forker.agent.stop()
        identity = load_identity(forker.agent.data_dir, None)
        db = sqlite3.connect(forker.agent.data_dir / "edgecoder.db")
        try:
            [first] = ledger_rows.entries_of(db, forker.node_id, 0, 1)
            body = first.entry
            other = new_entry(identity, None, kind=body.kind, amount=body.amount,
                              party=body.party, ref=body.ref, ts=body.ts + 1)  # fmt: skip
            assert other.hash != first.hash
            with db:
                db.execute("DELETE FROM ledger_entries WHERE node = ?", (forker.node_id,))
                ledger_rows.append_entries(db, [other])
        finally:
            db.close()
        forker.agent.start()

        def shut_out(node: Node) -> bool:
            refused = node.agent.get(f"{node.agent.api_url}/healthz")[1]["security"]["refused"]
            return bool(refused.get("blacklisted"))

        for node in honest:
            wait_until(lambda node=node: shut_out(node), 60, f"{node.node_id} refusing the forker")
        # The forker's old entry stays where each honest node had it: nothing is rewritten.
        for node in honest:
            assert node.chain_heads()[forker.node_id] == (1, first.hash_hex)
    finally:
        for node in nodes:
            node.agent.close()
