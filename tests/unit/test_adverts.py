"""Typed adverts: the shape check, the exact round trip to the wire, parse-once in the
directory, and the operator's peer view."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecoder.clock import SystemClock
from edgecoder.errors import RecordError
from edgecoder.inference.calibration import Calibration
from edgecoder.inference.types import ModelInfo
from edgecoder.mesh import advert as own
from edgecoder.mesh.advert import local_advert
from edgecoder.mesh.advert_types import Advert, AdvertModel
from edgecoder.mesh.directory import RecordDirectory
from edgecoder.mesh.peer_view import PeerView
from edgecoder.security.identity import NodeIdentity
from edgecoder.wire import canonical
from edgecoder.wire.records import RecordStore, SignedRecord, sign_record
from tests.adverts import advert, model

PEER = NodeIdentity(bytes(range(32)))
MODEL = {"name": "gemma3:270m", "digest": "sha256:ab", "size_class": "xs",
         "context_length": 2048, "size_bytes": 300 << 20, "loaded": True}  # fmt: skip
BODY = {"models": [MODEL], "backend": "llamacpp", "device_class": "x86_64", "ram_mb": 7900,
        "prefill_tps": 420, "decode_tps": 38, "slots": 1, "queue_depth": 0, "load_pct": 10,
        "owner_busy": False, "price_pct": 100}  # fmt: skip


def _record(body: object, seq: int = 1) -> SignedRecord:
    now = SystemClock().now_ms()
    return sign_record(PEER, "advert", seq, body, now, 60_000)  # type: ignore[arg-type]


def _refusal(body: object) -> str:
    with pytest.raises(RecordError) as caught:
        Advert.parse(body)
    assert caught.value.code == "bad_body"
    return str(caught.value)


# -- parse and as_body -----------------------------------------------------------------------


def test_an_advert_parses_into_typed_fields() -> None:
    parsed = Advert.parse(BODY)
    assert parsed.models == (AdvertModel("gemma3:270m", "sha256:ab", "xs", 2048, 300 << 20, True),)
    assert (parsed.backend, parsed.prefill_tps, parsed.slots, parsed.owner_busy) == (
        "llamacpp", 420, 1, False)  # fmt: skip
    assert parsed.model("gemma3:270m") is parsed.models[0]
    assert parsed.model("other") is None


def test_as_body_gives_back_the_exact_body_newer_fields_included() -> None:
    newer = {**BODY, "power": "battery", "models": [{**MODEL, "quant": "q4_k_m"}]}
    for body in (BODY, newer):
        parsed = Advert.parse(body)
        assert parsed.as_body() == body
        assert canonical.encode(parsed.as_body()) == canonical.encode(body)
    assert Advert.parse(newer) != Advert.parse(BODY)


def test_the_first_entry_of_a_model_listed_twice_is_the_one_read() -> None:
    twice = {**BODY, "models": [MODEL, {**MODEL, "loaded": False}]}
    held = Advert.parse(twice).model("gemma3:270m")
    assert held is not None
    assert held.loaded


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slots": -1}, "advert field slots must be a non-negative integer"),
        ({"ram_mb": True}, "advert field ram_mb must be a non-negative integer"),
        ({"price_pct": None}, "advert field price_pct must be a non-negative integer"),
        ({"backend": None}, "advert field backend must be a string"),
        ({"owner_busy": 1}, "advert field owner_busy must be true or false"),
        ({"models": {}}, "advert models must be a list of at most 64"),
        ({"models": [MODEL] * 65}, "advert models must be a list of at most 64"),
        ({"models": [3]}, "each advert model must be an object"),
        ({"models": [{**MODEL, "size_bytes": "1"}]},
         "model context_length and size_bytes must be integers"),
        ({"models": [{**MODEL, "digest": 1}]}, "model name, digest and size_class must be strings"),
        ({"models": [{**MODEL, "loaded": 0}]}, "model loaded must be true or false"),
    ],
)  # fmt: skip
def test_a_malformed_advert_is_refused_with_bad_body(change: dict[str, Any], message: str) -> None:
    assert _refusal({**BODY, **change}) == f"bad_body: {message}"


def test_the_fields_are_checked_in_the_order_they_always_were() -> None:
    # Integers first, then strings, owner_busy, the models: the same message for the same body.
    body = {**BODY, "backend": 1, "slots": -1, "owner_busy": None, "models": [3]}
    assert _refusal(body) == "bad_body: advert field slots must be a non-negative integer"
    assert _refusal([]) == "bad_body: an advert body must be an object"
    missing = {k: v for k, v in BODY.items() if k != "decode_tps"}
    assert _refusal(missing) == "bad_body: advert field decode_tps must be a non-negative integer"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8,
)  # fmt: skip
counts = st.integers(0, 2**53 - 1)
models = st.fixed_dictionaries(
    {"name": st.text(max_size=12), "digest": st.text(max_size=12),
     "size_class": st.text(max_size=2), "context_length": st.integers(-(2**31), 2**31),
     "size_bytes": st.integers(-1, 2**53 - 1), "loaded": st.booleans()},
    optional={"quant": json_values, "family": json_values},
)  # fmt: skip
bodies = st.fixed_dictionaries(
    {"models": st.lists(models, max_size=4), "backend": st.text(max_size=10),
     "device_class": st.text(max_size=10), "ram_mb": counts, "prefill_tps": counts,
     "decode_tps": counts, "slots": counts, "queue_depth": counts, "load_pct": counts,
     "owner_busy": st.booleans(), "price_pct": counts},
    optional={"power": json_values, "battery_pct": json_values},
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(bodies)
def test_every_well_formed_advert_round_trips_exactly(body: dict[str, Any]) -> None:
    wire = canonical.encode(body)
    parsed = Advert.parse(canonical.decode(wire))
    assert parsed.as_body() == body
    assert canonical.encode(parsed.as_body()) == wire


@settings(max_examples=300, deadline=None)
@given(bodies, st.sampled_from(sorted(BODY)), json_values)
def test_a_known_field_of_another_type_is_refused(body: dict[str, Any], name: str,
                                                  value: object) -> None:  # fmt: skip
    if type(value) is type(body[name]) and not isinstance(value, list | dict):
        return  # the same type: maybe a valid value
    if name == "models" and value == []:
        return  # no models is a valid list of them
    with pytest.raises(RecordError) as caught:
        Advert.parse({**body, name: value})
    assert caught.value.code == "bad_body"


def test_this_nodes_advert_is_the_body_it_always_signed() -> None:
    models = [ModelInfo("gemma3:270m", "llamacpp", 2048, 300 << 20, "sha256:ab", loaded=True)]
    made = local_advert(models=models, backend="llamacpp", calibration=Calibration("m", 420, 38),
                        slots=1, queue_depth=-2, owner_busy=False, price_pct=100)  # fmt: skip
    expected = {**BODY, "device_class": own.device_class(), "ram_mb": own.ram_mb(),
                "load_pct": made.load_pct}  # fmt: skip
    assert canonical.encode(made.as_body()) == canonical.encode(expected)
    assert list(made.as_body()) == list(BODY)  # /healthz shows it in this order


# -- parsed once, in the directory -----------------------------------------------------------


def _directory() -> RecordDirectory:
    return RecordDirectory(RecordStore(), "default", SystemClock())


def test_an_advert_accepted_from_gossip_is_parsed_once() -> None:
    directory = _directory()
    record = _record(BODY)
    checked = directory.check_advert(record)
    assert directory.store.offer(record, SystemClock().now_ms()) == "new"
    assert directory.advert(PEER.node_id) is checked
    assert directory.advert(PEER.node_id) is checked


def test_a_refused_advert_does_not_replace_the_held_one() -> None:
    directory = _directory()
    held = _record(BODY, seq=2)
    directory.check_advert(held)
    directory.store.offer(held, SystemClock().now_ms())
    equivocation = _record({**BODY, "slots": 4}, seq=2)
    directory.check_advert(equivocation)
    assert directory.store.offer(equivocation, SystemClock().now_ms()) == "equivocation"
    found = directory.advert(PEER.node_id)
    assert found is not None
    assert found.slots == 1


def test_a_held_advert_that_did_not_come_by_gossip_is_parsed_on_first_use() -> None:
    directory = _directory()
    assert directory.advert(PEER.node_id) is None
    directory.store.offer(_record(BODY), SystemClock().now_ms())  # as /mesh/records stores it
    found = directory.advert(PEER.node_id)
    assert found == Advert.parse(BODY)
    assert directory.advert(PEER.node_id) is found
    # Signed by its author but malformed: no advert, rather than a crash in the router.
    directory.store.offer(_record({**BODY, "slots": "many"}, seq=2), SystemClock().now_ms())
    assert directory.advert(PEER.node_id) is None


# -- the peer view ---------------------------------------------------------------------------


def _view(advert: Advert | None) -> PeerView:
    return PeerView(node_id=PEER.node_id, url="http://10.0.0.5:4301", addrs=("10.0.0.5",),
                    api_port=4304, version="0.1.0", state="alive", incarnation=7,
                    state_since_ms=None, last_heard_ms=1_800_000_000_000,
                    advert=advert)  # fmt: skip


def _before(body: dict[str, Any]) -> dict[str, Any]:
    # What MeshNode.peers() built from the record's decoded body before adverts were typed.
    return {"node_id": PEER.node_id, "url": "http://10.0.0.5:4301", "addrs": ["10.0.0.5"],
            "api_port": 4304, "version": "0.1.0", "state": "alive", "incarnation": 7,
            "state_since_ms": None, "last_heard_ms": 1_800_000_000_000,
            "models": body.get("models", []),
            "load": {k: body.get(k) for k in ("load_pct", "slots", "queue_depth", "owner_busy")},
            "advert": body}  # fmt: skip


def test_the_peer_view_json_is_what_it_always_was() -> None:
    newer = {**BODY, "power": {"source": "battery"}, "models": [{**MODEL, "quant": "q4"}]}
    for body in (BODY, newer):
        decoded = canonical.decode(canonical.encode(body))  # as the record carried it
        view = _view(Advert.parse(decoded))
        assert json.dumps(view.as_json()) == json.dumps(_before(decoded))
    assert json.dumps(_view(None).as_json()) == json.dumps(_before({}))


def test_the_peer_view_reads_its_advert_as_typed_values() -> None:
    view = _view(advert(model("m"), slots=2))
    assert view.advert is not None
    assert view.advert.slots == 2
    assert view.as_json()["load"] == {"load_pct": 0, "slots": 2, "queue_depth": 0,
                                      "owner_busy": False}  # fmt: skip
    assert replace(view, state="dead").as_json()["state"] == "dead"
