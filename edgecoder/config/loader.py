"""Builds a :class:`Config` from its layers, later ones winning.

Layers: built-in defaults → the main file (``/etc/edgecoder/edgecoder.toml``, or the
one named by ``--config`` / ``EDGECODER_CONFIG``) → ``conf.d/*.toml`` beside it, in
name order → ``EDGECODER_<SECTION>_<KEY>`` environment variables → command-line flags.
An unknown section, key or ``EDGECODER_*`` variable is an error naming it and where it
came from. This module and the speedups selector are the only readers of the
environment.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgecoder.config.model import CROSS_CHECKS, Config, SystemdEnv
from edgecoder.errors import ConfigError

__all__ = (
    "DEFAULT_ETC_DIR",
    "ENV_PREFIX",
    "RESERVED_ENV",
    "Override",
    "load_config",
    "systemd_env",
)

ENV_PREFIX = "EDGECODER_"
DEFAULT_ETC_DIR = Path("/etc/edgecoder")
RESERVED_ENV = frozenset(
    {
        "EDGECODER_API_KEY",
        "EDGECODER_CONFIG",
        "EDGECODER_CYTHON_TRACE",
        "EDGECODER_NO_EXTENSIONS",
        "EDGECODER_REQUIRE_EXTENSIONS",
    }
)
"""Variables that are not configuration keys: build switches, the config file path, and
the API key CLI commands send."""

Override = tuple[str, object, str]
"""A command-line setting: ``("section.key", value, "--flag")``."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _sections() -> dict[str, type[Any]]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config) if f.name != "sources"}


def _default_data_dir(environ: Mapping[str, str]) -> Path:
    state = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state)
    if os.geteuid() == 0:
        return Path("/var/lib/edgecoder")
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")) / ".local/share")
    return Path(base).expanduser() / "edgecoder"


def load_config(
    *,
    config_file: Path | None = None,
    overrides: Sequence[Override] = (),
    environ: Mapping[str, str] | None = None,
    etc_dir: Path = DEFAULT_ETC_DIR,
) -> Config:
    """Load the configuration of this node from every layer.

    :param config_file: the main file; when given (or set by ``EDGECODER_CONFIG``) it must
        exist. Otherwise ``etc_dir/edgecoder.toml`` is read if present.
    :param overrides: command-line settings, applied last.
    :param environ: the process environment (``os.environ`` when omitted).
    :param etc_dir: the directory of the default main file.
    :raises ConfigError: a file is unreadable or not TOML, or a key, section, variable
        or value is unknown or invalid; the message names it and its source.
    :returns: the frozen configuration.
    """
    env = os.environ if environ is None else environ
    sections = _sections()
    layers: dict[str, dict[str, tuple[object, str]]] = {name: {} for name in sections}
    layers["node"]["data_dir"] = (_default_data_dir(env), "built-in default")

    if config_file is None and env.get("EDGECODER_CONFIG"):
        config_file = Path(env["EDGECODER_CONFIG"])
    main = config_file if config_file is not None else etc_dir / "edgecoder.toml"
    files: list[Path] = []
    if config_file is not None or main.is_file():
        files.append(main)
    conf_d = main.parent / "conf.d"
    if conf_d.is_dir():
        files.extend(sorted(p for p in conf_d.glob("*.toml") if p.is_file()))

    for path in files:
        for section, values in _read_toml(path, sections).items():
            for key, value in values.items():
                layers[section][key] = (value, str(path))
    for name, value in sorted(env.items()):
        if name.startswith(ENV_PREFIX) and name not in RESERVED_ENV:
            section, key = _env_key(name, sections)
            layers[section][key] = (value, f"environment variable {name}")
    for dotted, value, source in overrides:
        section, _, key = dotted.partition(".")
        layers[section][key] = (value, source)

    built = {name: _build(cls, name, layers[name]) for name, cls in sections.items()}
    config = Config(**built, sources=tuple(str(p) for p in files))
    _cross_check(config, layers)
    return config


def _read_toml(path: Path, sections: Mapping[str, type[Any]]) -> dict[str, dict[str, object]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    result: dict[str, dict[str, object]] = {}
    for section, values in data.items():
        if section not in sections:
            known = ", ".join(f"[{s}]" for s in sections)
            raise ConfigError(f"unknown section [{section}] in {path} (known: {known})")
        if not isinstance(values, dict):
            raise ConfigError(f"{section} in {path} must be a table [{section}]")
        fields = {f.name for f in dataclasses.fields(sections[section])}
        for key in values:
            if key not in fields:
                raise ConfigError(f"unknown key {section}.{key} in {path}")
        result[section] = values
    return result


def _env_key(name: str, sections: Mapping[str, type[Any]]) -> tuple[str, str]:
    rest = name[len(ENV_PREFIX) :].lower()
    for section, cls in sections.items():
        if rest.startswith(section + "_"):
            key = rest[len(section) + 1 :]
            if key in {f.name for f in dataclasses.fields(cls)}:
                return section, key
    raise ConfigError(f"unknown setting in environment variable {name}")


def _build(cls: type[Any], section: str, values: Mapping[str, tuple[object, str]]) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        raw, source = values[f.name]
        where = f"{section}.{f.name} (from {source})"
        value = _coerce(raw, hints[f.name], where)
        check = f.metadata.get("check")
        problem = check(value) if check is not None else None
        if problem is not None:
            raise ConfigError(f"{where} {problem}, got {raw!r}")
        kwargs[f.name] = value
    return cls(**kwargs)


def _cross_check(config: Config, layers: Mapping[str, Mapping[str, tuple[object, str]]]) -> None:
    """Apply the rules that involve several keys, naming each key and its source."""

    def where(dotted: str) -> str:
        section, _, key = dotted.partition(".")
        source = layers[section][key][1] if key in layers[section] else "built-in default"
        return f"{dotted} (from {source})"

    for check in CROSS_CHECKS:
        problem = check(config)
        if problem is not None:
            keys, template = problem
            raise ConfigError(template.format(*(where(key) for key in keys)))


def _coerce(raw: object, kind: object, where: str) -> object:
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
            return raw.strip().lower() in _TRUE
        raise ConfigError(f"{where} must be true or false, got {raw!r}")
    if kind is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            try:
                return int(raw.strip())
            except ValueError:
                pass
        raise ConfigError(f"{where} must be a whole number, got {raw!r}")
    if kind is str:
        if isinstance(raw, str):
            return raw
        raise ConfigError(f"{where} must be a string, got {raw!r}")
    if kind is Path:
        if isinstance(raw, Path | str) and str(raw):
            return Path(raw).expanduser().absolute()
        raise ConfigError(f"{where} must be a path, got {raw!r}")
    if kind == tuple[str, ...]:
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(raw, list | tuple) and all(isinstance(item, str) for item in raw):
            return tuple(raw)
        raise ConfigError(f"{where} must be a list of strings, got {raw!r}")
    raise TypeError(f"no coercion for {kind!r}")  # a programming error in model.py


def systemd_env(environ: Mapping[str, str] | None = None) -> SystemdEnv:
    """Read what systemd passed: ``NOTIFY_SOCKET``, ``WATCHDOG_USEC``/``_PID``, ``JOURNAL_STREAM``.

    Malformed numbers are treated as absent: the service manager, not the user, sets them.
    """
    env = os.environ if environ is None else environ

    def number(name: str) -> int:
        try:
            return max(0, int(env.get(name, "0")))
        except ValueError:
            return 0

    return SystemdEnv(
        notify_socket=env.get("NOTIFY_SOCKET", ""),
        watchdog_usec=number("WATCHDOG_USEC"),
        watchdog_pid=number("WATCHDOG_PID"),
        journal_stream=bool(env.get("JOURNAL_STREAM")),
    )
