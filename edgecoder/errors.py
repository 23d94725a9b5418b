"""The one exception tree of EdgeCoder.

Every error the project raises on purpose derives from :class:`EdgeCoderError`;
builtins are mixed in where callers would naturally catch them::

    EdgeCoderError
    ├── ConfigError(ValueError)          bad or unknown configuration
    ├── DataDirError(OSError)            data directory missing, unwritable or unsafe
    ├── IdentityError                    node key unreadable, corrupt or wrongly sealed
    │   └── PassphraseError              wrong or missing passphrase for a sealed key
    ├── StorageError                     the embedded database failed or is inconsistent
    ├── ListenerError(OSError)           a listener could not bind (port in use, bad address)
    ├── NodeNotRunningError(ConnectionError)   no local agent answered
    └── CanonicalError(ValueError)       an object has no canonical encoding

Adapters map these once: the CLI to one line on stderr and an exit code, HTTP to a
status and a JSON body.
"""

from __future__ import annotations

__all__ = (
    "CanonicalError",
    "ConfigError",
    "DataDirError",
    "EdgeCoderError",
    "IdentityError",
    "ListenerError",
    "NodeNotRunningError",
    "PassphraseError",
    "StorageError",
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


class ListenerError(OSError, EdgeCoderError):
    """A listener could not bind its address (for example, the port is in use)."""


class NodeNotRunningError(ConnectionError, EdgeCoderError):
    """No EdgeCoder agent answered at the expected local address."""


class CanonicalError(ValueError, EdgeCoderError):
    """The object cannot be encoded canonically (a float, a non-string key, too deep...)."""
