"""Configuration layers, strictness about unknown keys, and value checks."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest

from edgecoder.config import Config, load_config, systemd_env
from edgecoder.errors import ConfigError


@pytest.fixture
def etc(tmp_path: Path) -> Path:
    path = tmp_path / "etc"
    (path / "conf.d").mkdir(parents=True)
    return path


def _load(etc: Path, environ: dict[str, str] | None = None, **kwargs: object) -> object:
    return load_config(etc_dir=etc, environ={"HOME": "/home/u", **(environ or {})}, **kwargs)  # type: ignore[arg-type]


def test_defaults_without_any_file(etc: Path) -> None:
    config = load_config(etc_dir=etc, environ={"STATE_DIRECTORY": "/var/lib/edgecoder"})
    assert config.mesh.port == 4301
    assert config.api.port == 4304
    assert config.mesh.bind == "0.0.0.0"
    assert config.inference.backend == "auto"
    assert config.node.data_dir == Path("/var/lib/edgecoder")
    assert config.sources == ()


def test_layers_apply_in_order(etc: Path) -> None:
    (etc / "edgecoder.toml").write_text('[mesh]\nport = 5001\nbootstrap = ["http://a:4301"]\n')
    (etc / "conf.d" / "10-api.toml").write_text("[api]\nport = 5004\n[mesh]\nport = 5002\n")
    (etc / "conf.d" / "20-mesh.toml").write_text("[mesh]\nport = 5003\n")
    config = load_config(
        etc_dir=etc,
        environ={"EDGECODER_API_PORT": "6004", "EDGECODER_MESH_MDNS": "off"},
        overrides=[("api.port", "7004", "--api-port")],
    )
    assert config.mesh.port == 5003
    assert config.mesh.bootstrap == ("http://a:4301",)
    assert config.mesh.mdns is False
    assert config.api.port == 7004
    assert [Path(p).name for p in config.sources] == [
        "edgecoder.toml",
        "10-api.toml",
        "20-mesh.toml",
    ]


def test_explicit_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*missing\.toml"):
        load_config(config_file=tmp_path / "missing.toml", environ={})


def test_config_file_from_environment(tmp_path: Path) -> None:
    file = tmp_path / "my.toml"
    file.write_text('[node]\nnetwork = "lab"\n')
    config = load_config(environ={"EDGECODER_CONFIG": str(file)})
    assert config.node.network == "lab"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[mesh]\nprot = 1\n", r"unknown key mesh\.prot in .*edgecoder\.toml"),
        ("[meshh]\nport = 1\n", r"unknown section \[meshh\] in .*edgecoder\.toml"),
        ("[mesh]\nport = 'x'\n", r"mesh\.port \(from .*edgecoder\.toml\) must be a whole number"),
        ("[mesh]\nport = 70000\n", r"mesh\.port .* must be a port number"),
        ("[mesh]\nbind = 'localhost'\n", r"mesh\.bind .* must be an IP address"),
        ("[mesh]\nbootstrap = ['ftp://x']\n", r"mesh\.bootstrap .* not an http"),
        ("[mesh]\nmdns = 'sometimes'\n", r"mesh\.mdns .* must be true or false"),
        ("[inference]\nbackend = 'gpu'\n", r"inference\.backend .* must be one of auto"),
        ("[node]\nnetwork = 'a b'\n", r"node\.network .* must be 1-63"),
        ("[mesh]\nmax_body_bytes = 67108865\n", r"mesh\.max_body_bytes .* from 1 to 67108864"),
        ("[api]\nrate_limit_per_min = 1e9\n", r"api\.rate_limit_per_min .* whole number"),
        ("[api]\nrate_limit_per_min = 1000000000\n", r"api\.rate_limit_per_min .* to 1000000"),
        ("[api]\nmax_connections = 0\n", r"api\.max_connections .* from 1 to 65536"),
        ("[api]\nmax_header_bytes = 100\n", r"api\.max_header_bytes .* from 1024 to 1048576"),
        ("[mesh]\nheader_timeout_s = 86400\n", r"mesh\.header_timeout_s .* from 1 to 3600"),
        ("[tasks]\ndeadline_s = 86401\n", r"tasks\.deadline_s .* from 1 to 86400"),
        ("[inference]\ncontext_length = -1\n", r"inference\.context_length .* from 0 to"),
        ("[daemon]\nshutdown_timeout_s = 0\n", r"daemon\.shutdown_timeout_s .* from 1 to 3600"),
        ("mesh = 3\n", r"mesh in .* must be a table"),
        ("[mesh\n", r"is not valid TOML"),
    ],
)
def test_bad_files_are_refused_by_name(etc: Path, content: str, message: str) -> None:
    (etc / "edgecoder.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        _load(etc)


def test_every_number_has_an_upper_bound() -> None:
    for section in dataclasses.fields(Config):
        if section.name == "sources":
            continue
        cls = typing.get_type_hints(Config)[section.name]
        hints = typing.get_type_hints(cls)
        for key in dataclasses.fields(cls):
            if hints[key.name] is int:
                check = key.metadata["check"]
                assert check(getattr(cls(), key.name)) is None, f"{section.name}.{key.name}"
                assert check(10**12) is not None, f"{section.name}.{key.name} has no bound"


def test_bounds_are_inclusive(etc: Path) -> None:
    (etc / "edgecoder.toml").write_text(
        "[api]\nmax_body_bytes = 67108864\nmax_connections_per_address = 1\n"
        "[tasks]\ndeadline_s = 86400\nworker_slots = 0\n"
    )
    config = _load(etc)
    assert config.api.max_body_bytes == 64 * 1024 * 1024  # type: ignore[attr-defined]
    assert config.tasks.deadline_s == 86400  # type: ignore[attr-defined]


def test_connection_limits_from_environment(etc: Path) -> None:
    config = _load(etc, {"EDGECODER_MESH_MAX_CONNECTIONS_PER_ADDRESS": "7",
                         "EDGECODER_API_IDLE_TIMEOUT_S": "2"})  # fmt: skip
    assert config.mesh.max_connections_per_address == 7  # type: ignore[attr-defined]
    assert config.api.idle_timeout_s == 2  # type: ignore[attr-defined]
    assert config.api.max_connections_per_address == 64  # type: ignore[attr-defined]


def test_same_port_for_both_listeners_is_refused(etc: Path) -> None:
    (etc / "edgecoder.toml").write_text("[mesh]\nport = 4304\n")
    with pytest.raises(ConfigError) as raised:
        _load(etc)
    assert str(raised.value) == (
        "api.port (from built-in default) and mesh.port (from "
        f"{etc / 'edgecoder.toml'}) must differ, both are 4304"
    )
    with pytest.raises(ConfigError, match=r"api\.port \(from --api-port\) and mesh\.port \(from "
                       r"environment variable EDGECODER_MESH_PORT\) must differ"):  # fmt: skip
        _load(etc, {"EDGECODER_MESH_PORT": "5000"}, overrides=[("api.port", "5000", "--api-port")])
    # Port 0 asks the kernel for a free port, a different one for each listener.
    both_free = _load(etc, overrides=[("api.port", "0", "--api-port"),
                                      ("mesh.port", "0", "--mesh-port")])  # fmt: skip
    assert both_free.api.port == both_free.mesh.port == 0  # type: ignore[attr-defined]


def test_ack_timeout_must_be_shorter_than_period(etc: Path) -> None:
    (etc / "edgecoder.toml").write_text("[mesh]\nack_timeout_ms = 1000\n")
    expected = (r"mesh\.ack_timeout_ms \(from .*edgecoder\.toml\) must be shorter than "
                r"mesh\.period_ms \(from built-in default\), got 1000 and 1000")  # fmt: skip
    with pytest.raises(ConfigError, match=expected):
        _load(etc)


def test_unknown_key_in_conf_d_names_that_file(etc: Path) -> None:
    (etc / "conf.d" / "50-local.toml").write_text("[api]\nbnd = '127.0.0.1'\n")
    with pytest.raises(ConfigError, match=r"unknown key api\.bnd in .*50-local\.toml"):
        _load(etc)


def test_unknown_environment_setting_is_refused(etc: Path) -> None:
    with pytest.raises(ConfigError, match="EDGECODER_MESH_PROT"):
        _load(etc, {"EDGECODER_MESH_PROT": "1"})
    # Build switches are not settings.
    _load(etc, {"EDGECODER_NO_EXTENSIONS": "1", "EDGECODER_REQUIRE_EXTENSIONS": "1"})


def test_bad_flag_value_names_the_flag(etc: Path) -> None:
    with pytest.raises(ConfigError, match=r"api\.port \(from --api-port\) must be a whole number"):
        _load(etc, overrides=[("api.port", "eighty", "--api-port")])


def test_data_dir_defaults(etc: Path) -> None:
    state = load_config(etc_dir=etc, environ={"STATE_DIRECTORY": "/srv/ec:/other"})
    assert state.node.data_dir == Path("/srv/ec")
    relative = _load(etc, overrides=[("node.data_dir", "rel/dir", "--data-dir")])
    assert relative.node.data_dir == Path.cwd() / "rel/dir"  # type: ignore[attr-defined]


def test_config_is_frozen(etc: Path) -> None:
    config = load_config(etc_dir=etc, environ={})
    with pytest.raises(AttributeError):
        config.mesh.port = 1  # type: ignore[misc]


def test_systemd_environment() -> None:
    env = systemd_env(
        {
            "NOTIFY_SOCKET": "@sd",
            "WATCHDOG_USEC": "2000000",
            "WATCHDOG_PID": "x",
            "JOURNAL_STREAM": "8:9",
        }
    )
    assert (env.notify_socket, env.watchdog_usec, env.watchdog_pid, env.journal_stream) == (
        "@sd",
        2_000_000,
        0,
        True,
    )


def test_every_key_is_documented_in_its_section() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    sections = dict(re.findall(r"^## `\[(\w+)\]`\n(.*?)(?=^## )", doc, re.M | re.S))
    missing = []
    for section in dataclasses.fields(Config):
        if section.name == "sources":
            continue
        table = sections.get(section.name, "")
        for key in dataclasses.fields(getattr(Config(), section.name)):
            if not re.search(rf"^\| `{key.name}`|/ `{key.name}` \|", table, re.M):
                missing.append(f"{section.name}.{key.name}")
    assert missing == []
