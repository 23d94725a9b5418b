"""The task protocol's pure parts: messages, the arbiter, fitness, payload and stream codecs,
receipts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edgecoder.errors import (
    BadRequestError,
    ContextOverflowError,
    OverloadedError,
    PayloadError,
    TaskMessageError,
)
from edgecoder.inference.types import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    Delta,
    SamplingParams,
    ToolCall,
    ToolSpec,
    Usage,
)
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.stream_box import StreamBox, new_stream_key
from edgecoder.tasks.arbiter import CLOSED, GRANTED, PENDING, AttemptArbiter
from edgecoder.tasks.codec import (
    decode_event,
    decode_payload,
    delta_event,
    encode_event,
    encode_payload,
)
from edgecoder.tasks.errors import RETRYABLE, code_of, error_of
from edgecoder.tasks.fitness import (
    OWNER_BUSY_PENALTY_MS,
    estimate_prompt_tokens,
    peer_fit,
    predicted_ttft_ms,
)
from edgecoder.tasks.messages import (
    Claim,
    Offer,
    new_task_id,
    parse_claim,
    parse_grant,
    parse_notice,
    parse_offer,
)
from edgecoder.tasks.receipts import (
    FIELDS,
    check_receipt_body,
    sign_receipt,
    verify_signature,
)
from tests.adverts import advert, model

ORIGIN = NodeIdentity(bytes(range(32)))
WORKER = NodeIdentity(bytes(range(1, 33)))
OTHER = NodeIdentity(bytes(range(2, 34)))


def offer(**changes: object) -> dict[str, object]:
    body = Offer(
        task_id=new_task_id(), attempt=1, origin=ORIGIN.node_id,
        origin_key=ORIGIN.public_key.hex(), kind="chat", model="gemma3:270m",
        prompt_tokens=120, max_tokens=64, deadline_ms=10**13, price_pct=100, rank=2,
    ).as_dict()  # fmt: skip
    body.update(changes)
    return body


# -- messages ------------------------------------------------------------------------------


def test_an_offer_round_trips_and_carries_no_prompt_field() -> None:
    body = offer()
    parsed = parse_offer(body, ORIGIN.node_id)
    assert parsed.as_dict() == body
    assert not {"prompt", "messages", "payload"} & set(body)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"task_id": "XYZ"}, "bad_field"),
        ({"attempt": 0}, "bad_field"),
        ({"attempt": True}, "bad_field"),
        ({"kind": "embed"}, "bad_field"),
        ({"model": ""}, "bad_field"),
        ({"origin_key": "00"}, "bad_field"),
        ({"prompt_tokens": -1}, "bad_field"),
        ({"extra": 1}, "bad_shape"),
    ],
)
def test_a_malformed_offer_is_refused_with_its_code(changes: dict[str, object], code: str) -> None:
    with pytest.raises(TaskMessageError) as caught:
        parse_offer(offer(**changes), ORIGIN.node_id)
    assert caught.value.code == code


def test_an_offer_must_come_from_its_origin_and_a_claim_from_its_worker() -> None:
    with pytest.raises(TaskMessageError, match="origin must be its signer"):
        parse_offer(offer(), OTHER.node_id)
    claim = Claim(new_task_id(), 1, WORKER.node_id, 50).as_dict()
    assert parse_claim(claim, WORKER.node_id).ttft_ms == 50
    with pytest.raises(TaskMessageError) as caught:
        parse_claim(claim, OTHER.node_id)
    assert caught.value.code == "sender_mismatch"


def test_a_grant_for_another_worker_is_refused() -> None:
    grant = {"task_id": new_task_id(), "attempt": 1, "worker": OTHER.node_id, "lease_ms": 1000,
             "deadline_ms": 1, "payload": "AA=="}  # fmt: skip
    with pytest.raises(TaskMessageError) as caught:
        parse_grant(grant, WORKER.node_id)
    assert caught.value.code == "not_grantee"
    assert parse_grant({**grant, "worker": WORKER.node_id}, WORKER.node_id).lease_ms == 1000
    with pytest.raises(TaskMessageError):
        parse_notice({"task_id": new_task_id()})


# -- the arbiter -----------------------------------------------------------------------------


def claim_of(task_id: str, worker: NodeIdentity, ttft: int = 10, attempt: int = 1) -> Claim:
    return Claim(task_id, attempt, worker.node_id, ttft)


def test_the_first_valid_claim_is_granted_and_every_other_is_told_closed() -> None:
    task_id = new_task_id()
    arbiter = AttemptArbiter(task_id, 1, frozenset({WORKER.node_id, OTHER.node_id}))
    assert arbiter.claim(claim_of(task_id, ORIGIN), 0) == CLOSED  # not a candidate
    assert arbiter.claim(claim_of(task_id, WORKER, attempt=2), 0) == CLOSED  # other attempt
    assert arbiter.claim(claim_of(task_id, OTHER, ttft=500), 0) == GRANTED
    assert arbiter.claim(claim_of(task_id, WORKER, ttft=1), 1) == CLOSED
    assert arbiter.granted is not None
    assert arbiter.granted.worker == OTHER.node_id
    assert arbiter.claims == 1


def test_with_a_window_the_fittest_claim_wins_and_ties_go_to_the_lower_node_id() -> None:
    task_id = new_task_id()
    a, b = sorted([WORKER, OTHER], key=lambda n: n.node_id)
    arbiter = AttemptArbiter(task_id, 1, frozenset({a.node_id, b.node_id}), window_ms=5)
    assert arbiter.claim(claim_of(task_id, b, ttft=40), 0) == PENDING
    assert arbiter.claim(claim_of(task_id, a, ttft=40), 2) == PENDING
    assert arbiter.window_closes_ms() == 5
    granted = arbiter.decide()
    assert granted is not None
    assert granted.worker == a.node_id
    assert arbiter.claim(claim_of(task_id, b), 6) == CLOSED


def test_a_closed_attempt_grants_nothing() -> None:
    task_id = new_task_id()
    arbiter = AttemptArbiter(task_id, 1, frozenset({WORKER.node_id}))
    arbiter.close()
    assert arbiter.claim(claim_of(task_id, WORKER), 0) == CLOSED
    assert arbiter.granted is None


# -- fitness ---------------------------------------------------------------------------------


def test_predicted_ttft_grows_with_prompt_queue_load_unloaded_model_and_owner() -> None:
    loaded = model(context_length=8192, size_bytes=300 << 20)
    base = {"model": loaded, "prompt_tokens": 500, "prefill_tps": 500, "queued_ahead": 0,
            "task_ms": 2000, "load_pct": 0, "owner_busy": False}  # fmt: skip
    ttft = predicted_ttft_ms(**base)  # type: ignore[arg-type]
    assert ttft == 1000
    assert predicted_ttft_ms(**{**base, "queued_ahead": 1}) == 3000  # type: ignore[arg-type]
    assert predicted_ttft_ms(**{**base, "load_pct": 100}) == 2000  # type: ignore[arg-type]
    cold = model(loaded=False, context_length=8192, size_bytes=500 << 20)
    assert predicted_ttft_ms(**{**base, "model": cold}) == 2000  # type: ignore[arg-type]
    busy = predicted_ttft_ms(**{**base, "owner_busy": True})  # type: ignore[arg-type]
    assert busy == ttft + OWNER_BUSY_PENALTY_MS


def test_a_peer_without_the_model_the_context_or_worker_slots_is_no_candidate() -> None:
    peer = advert(model("m", context_length=1024), prefill_tps=100)
    assert peer_fit("n", peer, "other", 10, 2000) is None
    assert peer_fit("n", peer, "m", 1024, 2000) is None  # no room for one output token
    assert peer_fit("n", replace(peer, slots=0), "m", 10, 2000) is None
    fit = peer_fit("n", peer, "m", 100, 2000)
    assert fit is not None
    assert fit.ttft_ms == 1000
    assert fit.price_pct == 100
    assigned = peer_fit("n", peer, "m", 100, 2000, assigned=1)
    assert assigned is not None
    assert assigned.ttft_ms == 3000  # the origin's own task there queues this one


def test_the_prompt_estimate_errs_high() -> None:
    text = "def add(a, b):\n    return a + b\n" * 50
    assert estimate_prompt_tokens([text]) >= len(text) // 4


# -- payload and events ---------------------------------------------------------------------


def test_a_chat_payload_round_trips_with_its_continuation() -> None:
    request = ChatRequest(
        model="m",
        messages=(ChatMessage("system", "be brief"),
                  ChatMessage("assistant", "", (ToolCall("c1", "f", "{}"),)),
                  ChatMessage("tool", "42", tool_call_id="c1")),
        sampling=SamplingParams(max_tokens=9, temperature=0.5, stop=("\n",), seed=3, top_k=7),
        tools=(ToolSpec("f", "a function", {"type": "object"}),),
        tool_choice="required",
        parallel_tool_calls=False,
    )  # fmt: skip
    key = new_stream_key()
    payload = decode_payload(encode_payload(request, key, "Once upon"))
    assert payload.key == key
    assert payload.continue_from == "Once upon"
    assert payload.request == ChatRequest(
        request.model, request.messages, request.sampling, request.tools, "required", "Once upon",
        parallel_tool_calls=False,
    )  # fmt: skip


def test_a_completion_continues_by_extending_its_prompt() -> None:
    request = CompletionRequest(model="m", prompt="def f(", suffix="\n", sampling=SamplingParams())
    payload = decode_payload(encode_payload(request, new_stream_key(), "x, y"))
    assert payload.request == CompletionRequest("m", "def f(x, y", "\n", SamplingParams())


@pytest.mark.parametrize(
    "plaintext",
    [b"not json", b"[]", b'{"kind": "chat"}',
     b'{"kind": "chat", "key": "' + b"00" * 32 + b'", "request": {"model": "m", "sampling": {},'
     b' "messages": [{"role": "robot", "content": "x"}]}}'],
)  # fmt: skip
def test_a_malformed_payload_is_a_bad_request(plaintext: bytes) -> None:
    with pytest.raises(BadRequestError):
        decode_payload(plaintext)


def test_events_carry_text_and_the_end_with_usage() -> None:
    end = delta_event(Delta(text="!", finish_reason="length", usage=Usage(3, 4)), "sha")
    assert decode_event(encode_event(end)) == {
        "t": "end", "finish": "length", "prompt_tokens": 3, "completion_tokens": 4,
        "model_digest": "sha", "text": "!", "calls": (),
    }  # fmt: skip
    text = delta_event(Delta(text="hi", tool_calls=(ToolCall("a", "b", "{}"),)), "sha")
    assert decode_event(encode_event(text))["calls"] == (ToolCall("a", "b", "{}"),)
    with pytest.raises(BadRequestError):
        decode_event(encode_event({"t": "end", "finish": "maybe"}))


def test_the_stream_box_refuses_reordered_altered_and_misdirected_events() -> None:
    key, task_id = new_stream_key(), new_task_id()
    sender = StreamBox(key, task_id, 1)
    first, second = sender.seal(b"one"), sender.seal(b"two")
    with pytest.raises(PayloadError):
        StreamBox(key, task_id, 1).open(second)  # out of order
    with pytest.raises(PayloadError):
        StreamBox(key, task_id, 2).open(first)  # another attempt
    with pytest.raises(PayloadError):
        StreamBox(key, new_task_id(), 1).open(first)  # another task
    altered = first[:-1] + bytes([first[-1] ^ 1])
    with pytest.raises(PayloadError):
        StreamBox(key, task_id, 1).open(altered)
    receiver = StreamBox(key, task_id, 1)
    assert [receiver.open(first), receiver.open(second)] == [b"one", b"two"]


def test_error_codes_survive_the_trip_and_say_whether_to_retry() -> None:
    assert code_of(OverloadedError("busy")) == "overloaded"
    assert "overloaded" in RETRYABLE
    assert "context_length_exceeded" not in RETRYABLE
    assert isinstance(error_of("context_length_exceeded", "too long"), ContextOverflowError)
    assert code_of(RuntimeError("boom")) == "internal_error"


# -- receipts -------------------------------------------------------------------------------


def test_a_receipt_is_signed_by_both_and_any_change_breaks_it() -> None:
    body = {"task_id": new_task_id(), "attempt": 1, "origin": ORIGIN.node_id,
            "worker": WORKER.node_id, "model": "m", "model_digest": "d", "prompt_tokens": 5,
            "output_tokens": 7, "wall_ms": 300, "price_pct": 100, "finished_ms": 1,
            "price": 33, "total": 33}  # fmt: skip
    assert check_receipt_body(body) is body
    origin_sig = sign_receipt(ORIGIN, body)
    worker_sig = sign_receipt(WORKER, body)
    assert verify_signature(ORIGIN.public_key, body, origin_sig)
    assert verify_signature(WORKER.public_key, body, worker_sig)
    assert not verify_signature(WORKER.public_key, body, origin_sig)
    assert not verify_signature(ORIGIN.public_key, {**body, "output_tokens": 70}, origin_sig)
    assert not verify_signature(ORIGIN.public_key, body, "zz")
    with pytest.raises(TaskMessageError):
        check_receipt_body({**body, "wall_ms": -1})
    with pytest.raises(TaskMessageError):
        check_receipt_body({k: body[k] for k in FIELDS[:-1]})
