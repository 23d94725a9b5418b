"""The router's choice of peers: fittest first, a suspect peer only after the others."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from edgecoder.config import Config
from edgecoder.tasks.router import Router
from tests.adverts import advert, model


def _router(peers: dict[str, int], suspects: set[str]) -> Router:
    """A router over peers that hold model ``m``, each with the given prefill rate."""
    adverts = [(node_id, advert(model("m"), prefill_tps=tps)) for node_id, tps in peers.items()]
    return Router(
        config=Config(),
        node_id="self",
        origin=SimpleNamespace(assigned=Counter()),  # type: ignore[arg-type]
        peers=lambda: adverts,
        own_advert=lambda: None,
        in_flight=lambda: 0,
        execute=lambda request: None,  # type: ignore[arg-type,return-value]
        suspected=lambda node_id: node_id in suspects,
    )


def test_a_suspect_peer_is_offered_work_only_after_the_others_however_fit() -> None:
    router = _router({"fast": 100_000, "slow": 10, "slower": 5}, suspects={"fast"})
    for _ in range(20):  # the ranking is random within a band: the rule holds every time
        order = [fit.node_id for fit in router.candidates("m", 2000, frozenset())]
        assert order == ["slow", "slower", "fast"]


def test_a_suspect_is_still_a_candidate_when_no_one_else_is() -> None:
    router = _router({"only": 50}, suspects={"only"})
    assert [fit.node_id for fit in router.candidates("m", 100, frozenset())] == ["only"]
    assert router.candidates("m", 100, frozenset({"only"})) == []
