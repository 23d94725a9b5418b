"""The claim-delay protocol's messages: their shapes, checked field by field.

Specified in ``docs/tasks.md``. Every message travels as the canonical JSON body of a
signed mesh request, so the sender is authenticated by the envelope; these checks make
sure the body is well formed and consistent with that sender. No message here carries a
prompt: the request travels only inside the grant's sealed payload.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from edgecoder.errors import TaskMessageError
from edgecoder.security.identity import is_node_id

__all__ = (
    "KINDS",
    "Claim",
    "Grant",
    "Notice",
    "Offer",
    "new_task_id",
    "parse_claim",
    "parse_grant",
    "parse_notice",
    "parse_offer",
)

KINDS = ("chat", "complete")
_TASK_ID = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_NAME = 256
_MAX_PAYLOAD = 8 * 1024 * 1024


def new_task_id() -> str:
    """A fresh 128-bit task id in hex."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class Offer:
    """What the origin asks of its candidates; never the prompt."""

    task_id: str
    attempt: int
    origin: str
    origin_key: str
    """The origin's Ed25519 public key (hex): receipts are checked against it."""
    kind: str
    model: str
    prompt_tokens: int
    """The origin's estimate of the prompt's length in tokens (an upper bound)."""
    max_tokens: int
    deadline_ms: int
    price_pct: int
    rank: int = 0
    """The recipient's place (0 = fittest) among the candidates, by the origin's ranking:
    each place adds ``claim_stagger_ms`` to its claim delay, so equally fit nodes do not
    all claim before the first claim's close notice reaches them."""
    round_size: int = 1
    """How many candidates this round offers the attempt to: alone in its round, a
    candidate has nobody to let ahead, so it claims at once."""

    def as_dict(self) -> dict[str, Any]:
        """The wire body."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Claim:
    """A candidate's bid: it can run the task, with this predicted time to first token."""

    task_id: str
    attempt: int
    worker: str
    ttft_ms: int

    def as_dict(self) -> dict[str, Any]:
        """The wire body."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Grant:
    """The origin's one grant for an attempt, with the payload sealed to the grantee."""

    task_id: str
    attempt: int
    worker: str
    lease_ms: int
    """The worker must send something (a token or a heartbeat) at least this often."""
    deadline_ms: int
    payload: str
    """Base64 of the payload sealed to ``worker`` for ``task_id``."""

    def as_dict(self) -> dict[str, Any]:
        """The wire body."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Notice:
    """``close`` (the attempt is granted elsewhere) or ``cancel`` (stop working on it)."""

    task_id: str
    attempt: int

    def as_dict(self) -> dict[str, Any]:
        """The wire body."""
        return asdict(self)


def _fields(body: object, names: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) != set(names):
        raise TaskMessageError("bad_shape", f"body must have exactly: {', '.join(names)}")
    return body


def _int(body: dict[str, Any], name: str, low: int, high: int = 2**53) -> int:
    value = body[name]
    if type(value) is not int or not low <= value <= high:
        raise TaskMessageError("bad_field", f"{name} must be a whole number from {low} to {high}")
    return value


def _task(body: dict[str, Any]) -> tuple[str, int]:
    task_id = body["task_id"]
    if not isinstance(task_id, str) or not _TASK_ID.fullmatch(task_id):
        raise TaskMessageError("bad_field", "task_id must be 32 lowercase hex digits")
    return task_id, _int(body, "attempt", 1, 1000)


def _node(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str) or not is_node_id(value):
        raise TaskMessageError("bad_field", f"{name} must be a node id")
    return value


def parse_offer(body: object, sender: str) -> Offer:
    """Check an offer sent by ``sender``.

    :raises TaskMessageError: malformed, or ``origin`` is not the sender.
    """
    names = tuple(Offer.__dataclass_fields__)
    fields = _fields(body, names)
    task_id, attempt = _task(fields)
    origin = _node(fields, "origin")
    if origin != sender:
        raise TaskMessageError("sender_mismatch", "an offer's origin must be its signer")
    key, kind, model = fields["origin_key"], fields["kind"], fields["model"]
    if not isinstance(key, str) or not _HEX64.fullmatch(key):
        raise TaskMessageError("bad_field", "origin_key must be 64 lowercase hex digits")
    if kind not in KINDS:
        raise TaskMessageError("bad_field", f"kind must be one of {', '.join(KINDS)}")
    if not isinstance(model, str) or not 0 < len(model) <= _MAX_NAME:
        raise TaskMessageError("bad_field", f"model must be a name of 1 to {_MAX_NAME} characters")
    return Offer(
        task_id=task_id,
        attempt=attempt,
        origin=origin,
        origin_key=key,
        kind=kind,
        model=model,
        prompt_tokens=_int(fields, "prompt_tokens", 0, 10_000_000),
        max_tokens=_int(fields, "max_tokens", 0, 10_000_000),
        deadline_ms=_int(fields, "deadline_ms", 0),
        price_pct=_int(fields, "price_pct", 1, 100_000),
        rank=_int(fields, "rank", 0, 1000),
        round_size=_int(fields, "round_size", 1, 1000),
    )


def parse_claim(body: object, sender: str) -> Claim:
    """Check a claim sent by ``sender``.

    :raises TaskMessageError: malformed, or ``worker`` is not the sender.
    """
    fields = _fields(body, tuple(Claim.__dataclass_fields__))
    task_id, attempt = _task(fields)
    worker = _node(fields, "worker")
    if worker != sender:
        raise TaskMessageError("sender_mismatch", "a claim's worker must be its signer")
    return Claim(task_id, attempt, worker, _int(fields, "ttft_ms", 0, 10**9))


def parse_grant(body: object, own_id: str) -> Grant:
    """Check a grant addressed to this node (``own_id``).

    :raises TaskMessageError: malformed, or granted to another node.
    """
    fields = _fields(body, tuple(Grant.__dataclass_fields__))
    task_id, attempt = _task(fields)
    worker = _node(fields, "worker")
    if worker != own_id:
        raise TaskMessageError("not_grantee", "this grant names another worker")
    payload = fields["payload"]
    if not isinstance(payload, str) or not 0 < len(payload) <= _MAX_PAYLOAD:
        raise TaskMessageError("bad_field", "payload must be base64 text")
    return Grant(
        task_id=task_id,
        attempt=attempt,
        worker=worker,
        lease_ms=_int(fields, "lease_ms", 100, 3_600_000),
        deadline_ms=_int(fields, "deadline_ms", 0),
        payload=payload,
    )


def parse_notice(body: object) -> Notice:
    """Check a close or cancel notice.

    :raises TaskMessageError: malformed.
    """
    fields = _fields(body, tuple(Notice.__dataclass_fields__))
    task_id, attempt = _task(fields)
    return Notice(task_id, attempt)
