"""Fuzzing every parser with hypothesis: arbitrary input ends in a result or a documented error."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecoder.adapters.web import ollama_parse, openai_parse
from edgecoder.adapters.web.requests import Fields
from edgecoder.errors import (
    BadRequestError,
    BlacklistError,
    DecodeError,
    RecordError,
    TaskMessageError,
)
from edgecoder.security.blacklist import verify_evidence
from edgecoder.wire.canonical import decode
from edgecoder.wire.records import parse_record
from tests.conftest import Core

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
bodies = st.dictionaries(
    st.sampled_from(["model", "messages", "input", "prompt", "suffix", "stream", "max_tokens",
                     "temperature", "top_p", "stop", "seed", "n", "tools", "tool_choice",
                     "stream_options", "options", "instructions", "encoding_format", "raw",
                     "system", "images", "name"]),
    json_like,
    max_size=8,
)  # fmt: skip


@FUZZ
@given(st.binary(max_size=300))
def test_canonical_decode_bytes(data: bytes) -> None:
    code = None
    try:
        decode(data)
    except DecodeError as exc:
        code = exc.code
    assert code in {None, "oversize", "utf8", "json", "duplicate_key", "float",
                    "integer_range", "depth", "not_canonical"}  # fmt: skip


@FUZZ
@given(json_like)
def test_canonical_decode_json_text(value: Any) -> None:
    with contextlib.suppress(DecodeError):
        decode(json.dumps(value).encode())


@FUZZ
@given(bodies)
def test_openai_and_ollama_bodies(body: dict[str, Any]) -> None:
    for parse in (openai_parse.parse_chat, openai_parse.parse_completion,
                  openai_parse.parse_embeddings, ollama_parse.parse_chat,
                  ollama_parse.parse_generate, ollama_parse.parse_embed):  # fmt: skip
        with contextlib.suppress(BadRequestError):
            parse(Fields(body))


@FUZZ
@given(st.dictionaries(st.sampled_from(["kind", "author", "key", "seq", "issued_ms", "ttl_ms",
                                        "body", "sig"]), json_like))  # fmt: skip
def test_records(wire: dict[str, Any]) -> None:
    with contextlib.suppress(RecordError):
        parse_record(wire)


@FUZZ
@given(st.text(max_size=40), json_like)
def test_blacklist_evidence(accused: str, evidence: Any) -> None:
    with contextlib.suppress(BlacklistError):
        verify_evidence(accused, evidence)


header = st.one_of(st.none(), st.text(max_size=140), st.text("0123456789abcdef", min_size=32,
                                                              max_size=128))  # fmt: skip


@FUZZ
@given(st.tuples(header, header, header, header, header, header, header), st.binary(max_size=64))
def test_request_envelopes(core: Core, headers: tuple[Any, ...], body: bytes) -> None:
    verifier = core.envelope.RequestVerifier(
        "a" * 32, skew_ms=30_000, max_body=1024, sender_rate=10.0, sender_burst=10.0,
        address_rate=10.0, address_burst=10.0, replay_capacity=100,
    )  # fmt: skip
    code = verifier.check("POST", "/mesh/ping", *headers, body, "10.0.0.1", 1_800_000_000_000)
    assert code in core.envelope.CODES


task_bodies = st.dictionaries(
    st.sampled_from(["task_id", "attempt", "origin", "origin_key", "kind", "model", "rank",
                     "round_size", "prompt_tokens", "max_tokens", "deadline_ms", "price_pct",
                     "worker", "ttft_ms", "lease_ms", "payload"]),
    json_like | st.just("0" * 32) | st.just("a" * 32),
    max_size=15,
)  # fmt: skip


@FUZZ
@given(task_bodies)
def test_task_messages(body: dict[str, Any]) -> None:
    from edgecoder.tasks.messages import parse_claim, parse_grant, parse_notice, parse_offer
    from edgecoder.tasks.receipts import check_receipt_body

    node = "a" * 32
    for parse in (lambda b: parse_offer(b, node), lambda b: parse_claim(b, node),
                  lambda b: parse_grant(b, node), parse_notice, check_receipt_body):  # fmt: skip
        with contextlib.suppress(TaskMessageError):
            parse(body)


requests = st.fixed_dictionaries(
    {"model": st.just("m")},
    optional={
        "sampling": json_like | st.fixed_dictionaries({}, optional={
            k: json_like for k in ("max_tokens", "temperature", "top_p", "stop", "seed",
                                   "ignore_eos")}),
        "messages": json_like | st.lists(st.fixed_dictionaries({}, optional={
            k: json_like | st.sampled_from(["user", "tool", "x"])
            for k in ("role", "content", "tool_calls", "tool_call_id")}), max_size=3),
        "tools": json_like, "tool_choice": json_like, "prompt": json_like, "suffix": json_like,
    },
)  # fmt: skip


@FUZZ
@given(json_like, requests)
def test_task_payloads_and_events(value: Any, request: dict[str, Any]) -> None:
    from edgecoder.tasks.codec import decode_event, decode_payload

    data = json.dumps(value).encode()
    for decode_one in (decode_payload, decode_event):
        with contextlib.suppress(BadRequestError):
            decode_one(data)
    for kind in ("chat", "complete"):
        document = {"kind": kind, "key": "00" * 32, "continue_from": "", "request": request}
        with contextlib.suppress(BadRequestError):
            decode_payload(json.dumps(document).encode())
