"""The configuration's shape: one frozen dataclass per TOML section, with defaults.

Every field here is a documented key (``docs/configuration.md``); the loader refuses
any other. A field's ``metadata["check"]`` validates its value after type coercion.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = (
    "BACKENDS",
    "CROSS_CHECKS",
    "DBUS_BUSES",
    "EVENT_LOOPS",
    "EXCLUDED_INTERFACES",
    "LOG_LEVELS",
    "TASK_MODES",
    "ApiConfig",
    "Config",
    "CrossCheck",
    "DaemonConfig",
    "IdentityConfig",
    "InferenceConfig",
    "MeshConfig",
    "NodeConfig",
    "SystemdEnv",
    "TasksConfig",
)

EXCLUDED_INTERFACES = ("lo", "docker*", "veth*", "br-*", "virbr*", "cni*", "flannel*",
                       "vmnet*", "vboxnet*", "tun*", "tap*", "wg*", "zt*")  # fmt: skip
"""Interface name patterns mDNS skips by default: loopback, containers, bridges, VPNs."""
LOG_LEVELS = ("debug", "info", "warning", "error")
BACKENDS = ("auto", "llamacpp", "ollama")
EVENT_LOOPS = ("uvloop", "asyncio")
DBUS_BUSES = ("system", "session", "none")
TASK_MODES = ("mesh", "local-only")


def _one_of(choices: tuple[str, ...]) -> object:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def _port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 0 to 65535"


def _ip(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IP address such as 0.0.0.0, :: or 127.0.0.1"
    return None


def _http_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme in {"http", "https"} and parts.hostname:
        return None
    return "must be an http:// or https:// URL with a host"


def _http_urls(value: tuple[str, ...]) -> str | None:
    for url in value:
        if _http_url(url) is not None:
            return f"has {url!r}, which is not an http:// or https:// URL with a host"
    return None


def _origins(value: tuple[str, ...]) -> str | None:
    for origin in value:
        parts = urlsplit(origin)
        if origin == "*":
            continue
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path:
            return f"has {origin!r}; an origin is '*' or scheme://host[:port], with no path"
    return None


def _node_ids(value: tuple[str, ...]) -> str | None:
    for node_id in value:
        if len(node_id) != 32 or not set(node_id) <= set("abcdefghijklmnopqrstuvwxyz234567"):
            return f"has {node_id!r}, which is not a node id (32 characters a-z, 2-7)"
    return None


def _network(value: str) -> str | None:
    ok = 0 < len(value) <= 63 and all(c.isalnum() or c in "-_." for c in value)
    return None if ok else "must be 1-63 letters, digits, '-', '_' or '.'"


def _host_or_empty(value: str) -> str | None:
    if not value:
        return None
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if value.replace("-", "").replace(".", "").isalnum() and len(value) <= 253:
            return None
        return "must be an IP address or a host name"
    return None


KIB = 1024
MIB = 1024 * KIB
HOUR_S = 3600
DAY_S = 24 * HOUR_S
DAY_MS = DAY_S * 1000


def _between(low: int, high: int) -> object:
    """A check for a whole number from ``low`` to ``high``: every number has an upper
    bound, so a typo (an extra zero, milliseconds for seconds) is refused at start rather
    than exhausting memory or waiting for ever."""

    def check(value: int) -> str | None:
        return None if low <= value <= high else f"must be from {low} to {high}"

    return check


def _absolute_or_empty(value: str) -> str | None:
    return None if not value or Path(value).is_absolute() else "must be an absolute path"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """``[node]``: where the node keeps its state and how it names its mesh."""

    data_dir: Path = field(default=Path("/var/lib/edgecoder"))
    network: str = field(default="default", metadata={"check": _network})
    log_level: str = field(default="info", metadata={"check": _one_of(LOG_LEVELS)})


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """``[identity]``: how the node key is protected at rest."""

    passphrase_file: str = field(default="", metadata={"check": _absolute_or_empty})


@dataclass(frozen=True, slots=True)
class MeshConfig:
    """``[mesh]``: the node-to-node listener and how peers are found."""

    bind: str = field(default="0.0.0.0", metadata={"check": _ip})  # noqa: S104
    port: int = field(default=4301, metadata={"check": _port})
    bootstrap: tuple[str, ...] = field(default=(), metadata={"check": _http_urls})
    mdns: bool = True
    deny: tuple[str, ...] = field(default=(), metadata={"check": _node_ids})
    skew_ms: int = field(default=30_000, metadata={"check": _between(1, HOUR_S * 1000)})
    max_body_bytes: int = field(default=4 * MIB, metadata={"check": _between(1, 64 * MIB)})
    header_timeout_s: int = field(default=10, metadata={"check": _between(1, HOUR_S)})
    max_header_bytes: int = field(default=16 * KIB, metadata={"check": _between(KIB, MIB)})
    idle_timeout_s: int = field(default=30, metadata={"check": _between(1, HOUR_S)})
    # Peers on one host (or behind one NAT) share an address, and an origin holds one
    # connection per offer and per streamed task: twice the client listener's share.
    max_connections: int = field(default=512, metadata={"check": _between(1, 65_536)})
    max_connections_per_address: int = field(default=128, metadata={"check": _between(1, 65_536)})
    peer_rate_per_s: int = field(default=50, metadata={"check": _between(1, 100_000)})
    peer_burst: int = field(default=100, metadata={"check": _between(1, 1_000_000)})
    address_rate_per_s: int = field(default=200, metadata={"check": _between(1, 100_000)})
    address_burst: int = field(default=400, metadata={"check": _between(1, 1_000_000)})
    replay_capacity: int = field(default=200_000, metadata={"check": _between(1, 10_000_000)})
    advertise: str = field(default="", metadata={"check": _host_or_empty})
    interfaces: tuple[str, ...] = ()
    exclude_interfaces: tuple[str, ...] = EXCLUDED_INTERFACES
    ipv6: bool = True
    period_ms: int = field(default=1000, metadata={"check": _between(1, 600_000)})
    ack_timeout_ms: int = field(default=400, metadata={"check": _between(1, 600_000)})
    indirect_k: int = field(default=3, metadata={"check": _between(0, 64)})
    suspicion_mult: int = field(default=5, metadata={"check": _between(1, 100)})
    dead_retention_ms: int = field(default=60_000, metadata={"check": _between(0, DAY_MS)})
    retransmit_mult: int = field(default=4, metadata={"check": _between(1, 100)})
    max_piggyback: int = field(default=8, metadata={"check": _between(1, 1024)})
    push_pull_periods: int = field(default=1, metadata={"check": _between(1, 10_000)})
    sync_max_entries: int = field(default=1024, metadata={"check": _between(1, 65_536)})
    max_news: int = field(default=1024, metadata={"check": _between(1, 65_536)})
    record_ttl_s: int = field(default=HOUR_S, metadata={"check": _between(1, DAY_S)})
    advert_interval_s: int = field(default=10, metadata={"check": _between(1, DAY_S)})
    calibrate: bool = True
    price_pct: int = field(default=100, metadata={"check": _between(1, 10_000)})
    # Load shedding (see docs/tasks.md "Under load"): how far behind the event loop may run
    # before new offers, then gossip, are refused, and how many requests may be in progress.
    shed_offers_lag_ms: int = field(default=1000, metadata={"check": _between(1, 600_000)})
    shed_gossip_lag_ms: int = field(default=3000, metadata={"check": _between(1, 600_000)})
    max_requests_in_progress: int = field(default=256, metadata={"check": _between(1, 65_536)})


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """``[api]``: the client listener for IDEs, browsers and scripts."""

    bind: str = field(default="0.0.0.0", metadata={"check": _ip})  # noqa: S104
    port: int = field(default=4304, metadata={"check": _port})
    rate_limit_per_min: int = field(default=600, metadata={"check": _between(1, 1_000_000)})
    rate_limit_burst: int = field(default=60, metadata={"check": _between(1, 1_000_000)})
    auth_failure_burst: int = field(default=20, metadata={"check": _between(1, 1_000_000)})
    auth_failures_per_min: int = field(default=10, metadata={"check": _between(1, 1_000_000)})
    keepalive_s: int = field(default=10, metadata={"check": _between(1, HOUR_S)})
    max_body_bytes: int = field(default=16 * MIB, metadata={"check": _between(1, 64 * MIB)})
    header_timeout_s: int = field(default=10, metadata={"check": _between(1, HOUR_S)})
    max_header_bytes: int = field(default=16 * KIB, metadata={"check": _between(KIB, MIB)})
    idle_timeout_s: int = field(default=30, metadata={"check": _between(1, HOUR_S)})
    max_connections: int = field(default=256, metadata={"check": _between(1, 65_536)})
    max_connections_per_address: int = field(default=64, metadata={"check": _between(1, 65_536)})
    cors_origins: tuple[str, ...] = field(default=(), metadata={"check": _origins})


@dataclass(frozen=True, slots=True)
class InferenceConfig:
    """``[inference]``: which local model runtime serves requests."""

    backend: str = field(default="auto", metadata={"check": _one_of(BACKENDS)})
    model: str = ""
    ollama_url: str = field(default="http://127.0.0.1:11434", metadata={"check": _http_url})
    context_length: int = field(default=8192, metadata={"check": _between(0, 1024 * KIB)})
    slots: int = field(default=1, metadata={"check": _between(1, 256)})
    max_queue: int = field(default=16, metadata={"check": _between(0, 10_000)})
    threads: int = field(default=0, metadata={"check": _between(0, 1024)})
    default_max_tokens: int = field(default=2048, metadata={"check": _between(0, 1024 * KIB)})


@dataclass(frozen=True, slots=True)
class TasksConfig:
    """``[tasks]``: when work leaves this node, and how this node works for its peers."""

    mode: str = field(default="mesh", metadata={"check": _one_of(TASK_MODES)})
    worker_slots: int = field(default=1, metadata={"check": _between(0, 256)})
    ttft_budget_ms: int = field(default=2000, metadata={"check": _between(1, 600_000)})
    max_candidates: int = field(default=4, metadata={"check": _between(1, 64)})
    claim_delay_max_ms: int = field(default=200, metadata={"check": _between(0, 60_000)})
    claim_jitter_ms: int = field(default=10, metadata={"check": _between(0, 60_000)})
    claim_stagger_ms: int = field(default=50, metadata={"check": _between(0, 60_000)})
    grant_window_ms: int = field(default=0, metadata={"check": _between(0, 60_000)})
    offer_timeout_ms: int = field(default=1500, metadata={"check": _between(1, 600_000)})
    lease_ms: int = field(default=10_000, metadata={"check": _between(1, HOUR_S * 1000)})
    max_attempts: int = field(default=3, metadata={"check": _between(1, 100)})
    deadline_s: int = field(default=600, metadata={"check": _between(1, DAY_S)})
    claim_patience_s: int = field(default=30, metadata={"check": _between(1, DAY_S)})
    receipt_retry_min_ms: int = field(default=2000, metadata={"check": _between(1, 600_000)})
    receipt_retry_max_s: int = field(default=300, metadata={"check": _between(1, DAY_S)})


@dataclass(frozen=True, slots=True)
class LedgerConfig:
    """``[ledger]``: how this node joins its network's credit economy (docs/ledger.md)."""

    genesis_wait_s: int = field(default=30, metadata={"check": _between(0, DAY_S)})
    founding_window_s: int = field(default=HOUR_S, metadata={"check": _between(0, 30 * DAY_S)})
    founders_max: int = field(default=8, metadata={"check": _between(0, 1024)})
    allowance_mc: int = field(default=100_000, metadata={"check": _between(1, 100_000)})
    network_key_file: str = field(default="", metadata={"check": _absolute_or_empty})
    epoch_s: int = field(default=600, metadata={"check": _between(1, DAY_S)})


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """``[daemon]``: process-level behaviour of the agent."""

    event_loop: str = field(default="uvloop", metadata={"check": _one_of(EVENT_LOOPS)})
    shutdown_timeout_s: int = field(default=10, metadata={"check": _between(1, HOUR_S)})
    dbus: str = field(default="system", metadata={"check": _one_of(DBUS_BUSES)})


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration of one node."""

    node: NodeConfig = field(default_factory=NodeConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    sources: tuple[str, ...] = ()
    """The files that contributed to this configuration, in the order applied."""


CrossCheck = Callable[[Config], tuple[tuple[str, ...], str] | None]
"""A rule over several keys: ``None``, or the keys (``"section.key"``) and the problem as a
template whose ``{0}``, ``{1}``... the loader fills with each key and where it came from."""


def _distinct_ports(config: Config) -> tuple[tuple[str, ...], str] | None:
    port = config.api.port
    if port and port == config.mesh.port:
        # Both sockets would bind (neither listens yet), and clients would reach either one.
        return ("api.port", "mesh.port"), f"{{0}} and {{1}} must differ, both are {port}"
    return None


def _ack_within_period(config: Config) -> tuple[tuple[str, ...], str] | None:
    mesh = config.mesh
    if mesh.ack_timeout_ms >= mesh.period_ms:
        return ("mesh.ack_timeout_ms", "mesh.period_ms"), (
            f"{{0}} must be shorter than {{1}}, got {mesh.ack_timeout_ms} and {mesh.period_ms}"
        )
    return None


def _offers_shed_first(config: Config) -> tuple[tuple[str, ...], str] | None:
    mesh = config.mesh
    if mesh.shed_offers_lag_ms > mesh.shed_gossip_lag_ms:
        # Offers have other candidates; gossip lost makes peers suspect this node.
        return ("mesh.shed_offers_lag_ms", "mesh.shed_gossip_lag_ms"), (
            f"{{0}} must not exceed {{1}}, got {mesh.shed_offers_lag_ms} and "
            f"{mesh.shed_gossip_lag_ms}"
        )
    return None


CROSS_CHECKS: tuple[CrossCheck, ...] = (_distinct_ports, _ack_within_period, _offers_shed_first)
"""Rules the loader applies to the whole configuration once every key is valid."""


@dataclass(frozen=True, slots=True)
class SystemdEnv:
    """What the service manager tells the process through its environment."""

    notify_socket: str = ""
    watchdog_usec: int = 0
    watchdog_pid: int = 0
    journal_stream: bool = False
