"""Sealed payloads: only the recipient, for the right task, unaltered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgecoder.errors import PayloadError
from edgecoder.security.identity import NodeIdentity
from edgecoder.security.payloads import OVERHEAD, open_sealed, seal

WORKER = NodeIdentity(bytes(range(32, 64)))
OTHER = NodeIdentity(bytes(range(64, 96)))


@given(st.binary(max_size=2048), st.text(min_size=1, max_size=40))
def test_round_trip(plaintext: bytes, task_id: str) -> None:
    sealed = seal(WORKER.public_key, task_id, plaintext)
    assert len(sealed) == len(plaintext) + OVERHEAD
    assert open_sealed(WORKER, task_id, sealed) == plaintext


def test_only_the_recipient_for_that_task_can_open() -> None:
    sealed = seal(WORKER.public_key, "task-1", b'{"prompt":"secret code"}')
    assert b"secret" not in sealed
    with pytest.raises(PayloadError, match="another node or task"):
        open_sealed(OTHER, "task-1", sealed)
    with pytest.raises(PayloadError, match="another node or task"):
        open_sealed(WORKER, "task-2", sealed)
    for index in (1, 40, len(sealed) - 1):
        altered = bytearray(sealed)
        altered[index] ^= 1
        with pytest.raises(PayloadError):
            open_sealed(WORKER, "task-1", bytes(altered))
    with pytest.raises(PayloadError, match="version 1"):
        open_sealed(WORKER, "task-1", b"\x02" + sealed[1:])
    with pytest.raises(PayloadError, match="version 1"):
        open_sealed(WORKER, "task-1", sealed[:20])


def test_each_seal_is_fresh() -> None:
    assert seal(WORKER.public_key, "t", b"x") != seal(WORKER.public_key, "t", b"x")


def test_bad_recipient_key() -> None:
    with pytest.raises(PayloadError, match="not a valid Ed25519 key"):
        seal(b"\x01" * 31, "t", b"x")
