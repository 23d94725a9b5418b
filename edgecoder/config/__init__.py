"""Typed, frozen configuration and the layered loader that builds it."""

from edgecoder.config.loader import ENV_PREFIX, load_config, systemd_env
from edgecoder.config.model import (
    ApiConfig,
    Config,
    DaemonConfig,
    IdentityConfig,
    InferenceConfig,
    LedgerConfig,
    MeshConfig,
    NodeConfig,
    SystemdEnv,
    TasksConfig,
)

__all__ = (
    "ENV_PREFIX",
    "ApiConfig",
    "Config",
    "DaemonConfig",
    "IdentityConfig",
    "InferenceConfig",
    "LedgerConfig",
    "MeshConfig",
    "NodeConfig",
    "SystemdEnv",
    "TasksConfig",
    "load_config",
    "systemd_env",
)
