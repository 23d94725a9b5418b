"""The one exception tree of EdgeCoder.

Every error the project raises on purpose derives from :class:`EdgeCoderError`;
builtins are mixed in where callers would naturally catch them::

    EdgeCoderError
    ├── ConfigError(ValueError)          bad or unknown configuration
    ├── DataDirError(OSError)            data directory missing, unwritable or unsafe
    ├── IdentityError                    node key unreadable, corrupt or wrongly sealed
    │   └── PassphraseError              wrong or missing passphrase for a sealed key
    ├── StorageError                     the embedded database failed or is inconsistent
    │   ├── DiskFullError                the data dir's file system is full (or over quota)
    │   ├── ReadOnlyStorageError         the data dir cannot be written (read-only, denied)
    │   └── StorageIOError               the disk under the data dir reports I/O errors
    ├── ListenerError(OSError)           a listener could not bind (port in use, bad address)
    ├── NodeNotRunningError(ConnectionError)   no local agent answered
    ├── CanonicalError(ValueError)       an object has no canonical encoding
    │   └── DecodeError(ProtocolError)   bytes from a peer that are not a canonical document
    ├── ProtocolError                    a peer's message this node will not act on (.code)
    │   ├── RecordError                  a signed record that does not verify or fit
    │   ├── BlacklistError               a blacklist entry or chain without valid evidence
    │   ├── TaskMessageError             a task message malformed or inconsistent
    │   ├── PayloadError                 a sealed payload or stream event that cannot be opened
    │   ├── LedgerError                  a ledger entry, chain or vouch that breaks the rules
    │   └── RefusedError                 a well-formed request this node declines (gossip, tasks)
    ├── PeerTransportError               a message to a peer got no answer, or a refusal (.code)
    ├── AuthError                        a missing, unknown or revoked API key
    ├── SetupError                       no setup open, or a wrong setup code (.code)
    ├── InsufficientCreditsError         the credits (or the key's budget) cannot cover a task
    ├── RateLimitedError                 a client exceeded its request rate
    └── InferenceError                   a generation could not be served
        ├── ModelNotFoundError(LookupError)        no such model here
        ├── ContextOverflowError(ValueError)       prompt (+ output) exceeds the context
        ├── UnsupportedError(ValueError)           the model cannot do this (tools, FIM...)
        ├── BadRequestError(ValueError)            the request is malformed
        ├── OverloadedError                        every slot busy and the queue full
        └── BackendUnavailableError                the backend is down or missing

Adapters map these once: the CLI to one line on stderr and an exit code, HTTP to a
status and a JSON body. A :class:`ProtocolError`'s ``code`` is what a peer is told; the
transport adapter alone decides how it travels (on HTTP: which status, in
``edgecoder/adapters/transports/statuses.py``).
"""

from __future__ import annotations

__all__ = (
    "AuthError",
    "BackendUnavailableError",
    "BadRequestError",
    "BlacklistError",
    "CanonicalError",
    "ConfigError",
    "ContextOverflowError",
    "DataDirError",
    "DecodeError",
    "DiskFullError",
    "EdgeCoderError",
    "IdentityError",
    "InferenceError",
    "InsufficientCreditsError",
    "LedgerError",
    "ListenerError",
    "ModelNotFoundError",
    "NodeNotRunningError",
    "OverloadedError",
    "PassphraseError",
    "PayloadError",
    "PeerTransportError",
    "ProtocolError",
    "RateLimitedError",
    "ReadOnlyStorageError",
    "RecordError",
    "RefusedError",
    "SetupError",
    "StorageError",
    "StorageIOError",
    "TaskMessageError",
    "UnsupportedError",
)


class EdgeCoderError(Exception):
    """Base class of every error EdgeCoder raises on purpose."""


class ConfigError(ValueError, EdgeCoderError):
    """The configuration is invalid: an unknown key, a bad value or an unreadable file."""


class DataDirError(OSError, EdgeCoderError):
    """The data directory cannot be created, written or trusted."""


class IdentityError(EdgeCoderError):
    """The node key cannot be loaded, created or trusted."""


class PassphraseError(IdentityError):
    """A sealed node key needs a passphrase that is missing or wrong."""


class StorageError(EdgeCoderError):
    """The embedded database failed, or holds data of another node."""


class DiskFullError(StorageError):
    """A write failed because the data dir's file system is full or over quota.

    Nothing was acknowledged; the same write succeeds once space is freed.
    """


class ReadOnlyStorageError(StorageError):
    """A write failed because the data dir is read-only or not writable by the node."""


class StorageIOError(StorageError):
    """The disk under the data dir reported an I/O error."""


class ListenerError(OSError, EdgeCoderError):
    """A listener could not bind its address (for example, the port is in use)."""


class NodeNotRunningError(ConnectionError, EdgeCoderError):
    """No EdgeCoder agent answered at the expected local address."""


class CanonicalError(ValueError, EdgeCoderError):
    """The object cannot be encoded canonically (a float, a non-string key, too deep...)."""


class ProtocolError(EdgeCoderError):
    """A peer's message this node will not act on; :attr:`code` says why, on any transport."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class DecodeError(CanonicalError, ProtocolError):
    """Bytes that are not a canonical document; :attr:`code` says why."""

    def __init__(self, code: str, message: str) -> None:
        ProtocolError.__init__(self, code, f"{code}: {message}")


class RecordError(ProtocolError):
    """A record that must not be accepted; :attr:`code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, f"{code}: {message}")


class BlacklistError(ProtocolError):
    """A blacklist entry or chain that must not be accepted; :attr:`code` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, f"{code}: {message}")


class TaskMessageError(ProtocolError):
    """A task message that is malformed or inconsistent; :attr:`code` goes to the sender."""


class PayloadError(ProtocolError):
    """A sealed payload or stream event cannot be opened: not for this node, not for this
    task, or altered (or, when sealing, the recipient's key is unusable)."""


class LedgerError(ProtocolError):
    """A ledger entry, chain segment or vouch that does not verify or breaks the chain
    rules (``docs/ledger.md``); :attr:`code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, f"{code}: {message}")


class RefusedError(ProtocolError):
    """A well-formed gossip or task request this node declines: another network, a
    duplicate node id, a grant it never claimed, a receipt that does not match its run."""


class PeerTransportError(EdgeCoderError):
    """A message to a peer failed.

    :attr:`reachable` False: the peer could not be reached, or the exchange broke before
    an answer (``code`` is this node's own: ``unreachable``, ``unknown_peer``...). True:
    the peer answered with a refusal, whose ``code`` it gave; :attr:`retry_after_s` is
    how long it asked to be left alone (None when it did not say).
    """

    def __init__(
        self, code: str, message: str, *, reachable: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reachable = reachable
        self.retry_after_s = retry_after_s


class AuthError(EdgeCoderError):
    """The request carries no API key, or one that is unknown or revoked."""


class SetupError(EdgeCoderError):
    """Claiming a fresh node failed: ``code`` is ``setup_closed`` (it has an owner, or no
    setup code was ever made) or ``invalid_setup_code``."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class InsufficientCreditsError(EdgeCoderError):
    """A request to the mesh that this node's available credits, or its API key's budget,
    cannot cover; refused before anything runs."""


class RateLimitedError(EdgeCoderError):
    """The caller exceeded its request rate; retry after :attr:`retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InferenceError(EdgeCoderError):
    """A generation, embedding or model operation could not be served."""


class ModelNotFoundError(LookupError, InferenceError):
    """No model of that name on this node."""


class ContextOverflowError(ValueError, InferenceError):
    """The prompt, plus the requested output, does not fit the model's context."""

    def __init__(self, message: str, prompt_tokens: int, context_length: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


class UnsupportedError(ValueError, InferenceError):
    """The model cannot do what was asked (tools, fill-in-the-middle, embeddings)."""


class BadRequestError(ValueError, InferenceError):
    """The request is malformed; the message names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class OverloadedError(InferenceError):
    """Every slot is busy and the wait queue is full."""


class BackendUnavailableError(InferenceError):
    """The inference backend is not running or not installed."""
